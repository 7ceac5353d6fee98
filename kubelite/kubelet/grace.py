"""The grace period of a container kill: a deadline that may move closer, never further away.

A pod's termination starts with ``metadata.deletionGracePeriodSeconds`` (else its
``terminationGracePeriodSeconds``). While it runs, the API server may shorten that period (``kubectl delete
--grace-period=1`` after a plain delete), or the pod may be force-deleted; the kubelet then has to finish
within the new, shorter period — Kubernetes' pod workers call this the grace period override. A longer period
given later is ignored: a grace period only ever shrinks.

`GracePeriod.bound` runs a step of the kill (the ``preStop`` hook, a ``StopContainer`` call) and cuts it
short when the deadline passes, following it as it moves; `GracePeriod.changed` is an event set each time the
deadline moves, for a caller that would rather restart its step with the new period.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class GracePeriod:
    """``seconds`` from now, on the ``clock`` (monotonic seconds)."""

    def __init__(self, seconds: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.seconds = max(seconds, 0)
        self.deadline = clock() + self.seconds
        # Whether the period was shortened: then it is used as given, without the kubelet's 2 s minimum.
        self.overridden = False
        self._changed = asyncio.Event()

    @property
    def changed(self) -> asyncio.Event:
        """Set once the deadline moves after this was read (each move makes a new event)."""
        return self._changed

    def remaining(self) -> float:
        return max(self.deadline - self.clock(), 0.0)

    def shorten(self, seconds: int) -> bool:
        """Move the deadline to ``seconds`` from now if that is earlier; whether it moved."""
        seconds = max(seconds, 0)
        deadline = self.clock() + seconds
        if deadline >= self.deadline:
            return False
        self.seconds, self.deadline, self.overridden = seconds, deadline, True
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    def stop_timeout(self, minimum: int) -> int:
        """The ``StopContainer`` timeout for what is left: whole seconds, at least ``minimum`` unless the period
        was shortened (a shortened period is the caller's explicit wish, 0 included)."""
        left = math.ceil(self.remaining() - 1e-3)  # a few ms of bookkeeping must not cost a whole second
        return max(left, 0) if self.overridden else max(left, minimum)

    async def bound(self, step: Awaitable[T]) -> tuple[bool, T | None]:
        """Run ``step`` until it finishes or the deadline passes (then it is cancelled); (finished, result)."""
        task = asyncio.ensure_future(step)
        try:
            while not task.done():
                changed = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait([task, changed], timeout=self.remaining(),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    changed.cancel()
                if not task.done() and self.remaining() <= 0:
                    return False, None
            return True, task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])
