"""When the proxy syncs: kube-proxy's BoundedFrequencyRunner, for asyncio.

`SyncRunner.run` calls an async ``fn``
- soon after `request()`: a burst of ``burst`` runs may follow each other at once, then runs are spaced by
  ``min_interval`` (a token bucket), so that a flood of changes costs one sync per ``min_interval``;
- at least every ``max_interval``, requested or not;
- again after ``delay`` once `retry_after(delay)` was called (a failed sync), unless it runs earlier.

Requests made while ``fn`` runs are coalesced into one more run after it. ``fn`` never runs twice at once;
an exception it raises is logged and retried after ``min_interval`` (at least a second).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class SyncRunner:
    def __init__(self, fn: Callable[[], Awaitable[None]], *, min_interval: float, max_interval: float,
                 burst: int = 2, clock: Callable[[], float] = time.monotonic) -> None:
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.burst = max(1, burst)
        self.clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._pending = False
        self._retry_at: float | None = None
        self._wake = asyncio.Event()

    def request(self) -> None:
        """Ask for a run as soon as the rate allows."""
        self._pending = True
        self._wake.set()

    def retry_after(self, delay: float) -> None:
        """Ask for a run ``delay`` seconds from now (or earlier, if something else asks)."""
        at = self.clock() + delay
        self._retry_at = at if self._retry_at is None else min(self._retry_at, at)
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run ``fn`` as described in the module docstring until ``stop`` is set."""
        last_run = self.clock()
        while not stop.is_set():
            due = last_run + self.max_interval
            if self._retry_at is not None:
                due = min(due, self._retry_at)
            if not self._pending and self.clock() < due:
                self._wake.clear()
                await _wait(stop, self._wake, timeout=due - self.clock())
                continue
            wait = self._take_token()
            if wait > 0:
                # Requests arriving meanwhile are folded into this run.
                await _wait(stop, timeout=wait)
                continue
            self._pending = False
            self._retry_at = None
            last_run = self.clock()
            try:
                await self.fn()
            except Exception:
                log.exception("proxy sync failed")
                self.retry_after(max(self.min_interval, 1.0))

    def _take_token(self) -> float:
        """Take a token if there is one (0), else how long until there is."""
        if self.min_interval <= 0:
            return 0.0
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) / self.min_interval)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) * self.min_interval


async def _wait(*events: asyncio.Event, timeout: float) -> None:
    """Until one of ``events`` is set or ``timeout`` seconds have passed."""
    if any(e.is_set() for e in events):
        return
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, timeout) if math.isfinite(timeout) else None,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
