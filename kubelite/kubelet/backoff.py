"""Per-key exponential back-off, as client-go's ``flowcontrol.Backoff`` that the kubelet uses for crashing
containers (CrashLoopBackOff) and failing image pulls (ImagePullBackOff).

Contract, with ``initial``, ``maximum`` and ``reset_after`` (Kubernetes: 10 s, 5 min, 10 min):
- `next(key, at)` records a failure at ``at``: the delay of a new key (or of one whose last failure is older
  than ``reset_after``) is ``initial``, otherwise it doubles, capped at ``maximum``;
- `is_in_backoff_since(key, at)`: ``now - at`` is still shorter than the key's delay (``at`` is when the
  container last finished). A key whose last failure is older than ``reset_after`` is never in back-off:
  a container that ran for 10 minutes before crashing again starts over at ``initial``;
- `is_in_backoff_since_update(key, now)` is the same measured from the last `next` (image pulls).

So a crash-looping container restarts at once the first time, then after 10 s, 20 s, 40 s ... 5 min.
Times are seconds on the clock passed in (the wall clock by default: container finish times come from the
runtime as wall-clock timestamps).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    def __init__(self, initial: float, maximum: float, *, reset_after: float,
                 clock: Callable[[], float] = time.time) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("back-off needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.reset_after = reset_after
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def get(self, key: str) -> float:
        """The key's current delay (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str, at: float) -> None:
        entry = self._entries.get(key)
        if entry is None or self._expired(at, entry):
            self._entries[key] = _Entry(self.initial, at)
            return
        entry.delay = min(entry.delay * 2, self.maximum)
        entry.last_update = at

    def is_in_backoff_since(self, key: str, at: float) -> bool:
        entry = self._entries.get(key)
        now = self.clock()
        if entry is None or self._expired(now, entry):
            return False
        return now - at < entry.delay

    def is_in_backoff_since_update(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return False
        return now - entry.last_update < entry.delay

    def remaining_since_update(self, key: str, now: float) -> float:
        """Seconds until `is_in_backoff_since_update` turns false (0 when it already is)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(now, entry):
            return 0.0
        return max(entry.last_update + entry.delay - now, 0.0)

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget(self, prefix: str) -> None:
        """Drop every key starting with ``prefix`` (all the keys of a pod that is gone)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        """Drop the entries that have expired."""
        now = self.clock()
        for key in [k for k, e in self._entries.items() if self._expired(now, e)]:
            del self._entries[key]

    def _expired(self, at: float, entry: _Entry) -> bool:
        return at - entry.last_update > self.reset_after
