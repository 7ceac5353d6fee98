"""One task per key, however many callers ask for it at once (Go's singleflight): concurrent pulls of one
image, downloads of one blob and unpacks of one layer happen once, and every caller gets the result.

The shared task is shielded: a caller that is cancelled stops waiting, the work goes on for the others
(and its result lands in the store for the next caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}

    def running(self, key: K) -> bool:
        return key in self._tasks

    async def do(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """Await the task for ``key``, starting ``work()`` as that task if none is running."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._tasks[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        # Every waiter may have been cancelled: retrieve the outcome so that asyncio does not report an
        # exception "never retrieved".
        if not task.cancelled():
            task.exception()
