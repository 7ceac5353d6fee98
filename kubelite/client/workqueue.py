"""Work queues with client-go's semantics, for controllers that reconcile keys.

`WorkQueue` (client-go ``workqueue.Type``):
- ``add(key)`` collapses duplicates: a key waiting in the queue is there once (the *dirty* set);
- ``get()`` hands a key to one worker and marks it *processing*: a key is never handed to two workers at
  once. Adding it again while it is processed only marks it dirty; ``done(key)`` then queues it again,
  so the change that arrived meanwhile is not lost;
- every ``get()`` must be paired with ``done(key)``;
- ``shutdown()`` drops further adds; ``get()`` hands out what is still queued, then raises `ShutDown`.

`DelayingQueue` adds ``add_after(key, delay)`` (a key waiting twice keeps the earlier time).
`RateLimitingQueue` adds ``add_rate_limited(key)`` / ``forget(key)`` / ``num_requeues(key)`` over a
`RateLimiter`; the default is client-go's controller limiter: the larger of a per-key exponential
backoff (5 ms doubling to 1000 s) and a global token bucket (10 qps, burst 100).

`run_workers()` runs N workers over a ``reconcile(key)`` coroutine: success forgets the key's failures
(and requeues it after the delay it may return), an exception requeues it rate-limited.

All methods except ``get()`` are synchronous so that informer handlers can call them; everything must
run on one event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class ShutDown(Exception):
    """`get()` on a queue that is shut down and empty: the worker should exit."""


class WorkQueue(Generic[K]):
    def __init__(self, name: str = "") -> None:
        self.name = name
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() queues it again
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> K:
        """The next key, waiting for one; raises `ShutDown` once shut down and drained."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # If we were woken for a key we will not take, pass the wake-up on.
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        self._shutting_down = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class DelayingQueue(WorkQueue[K]):
    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._timers: dict[K, tuple[float, asyncio.TimerHandle]] = {}

    def add_after(self, key: K, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed (at once if ``delay <= 0``)."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        ready_at = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= ready_at:
                return
            pending[1].cancel()
        self._timers[key] = (ready_at, loop.call_at(ready_at, self._fire, key))

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def shutdown(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        super().shutdown()


# --- rate limiters ---------------------------------------------------------------------------------

class RateLimiter(Protocol[K_contra]):
    def when(self, key: K_contra) -> float:
        """Seconds ``key`` should wait now; records one more failure for it."""

    def forget(self, key: K_contra) -> None:
        """Stop tracking ``key`` (it succeeded)."""

    def num_requeues(self, key: K_contra) -> int:
        """Failures recorded for ``key`` since it was last forgotten."""


class ItemExponentialFailureRateLimiter(Generic[K]):
    """``base * 2**failures``, capped at ``maximum``, per key."""

    def __init__(self, base: float = 0.005, maximum: float = 1000.0) -> None:
        self.base = base
        self.maximum = maximum
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        if exp >= 64:  # 2**64 * base is beyond any cap; avoid the overflow
            return self.maximum
        return min(self.base * 2.0**exp, self.maximum)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter(Generic[K]):
    """A global token bucket (``qps`` refill, ``burst`` capacity); each `when` reserves one token."""

    def __init__(self, qps: float = 10.0, burst: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def when(self, key: K) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        # A negative balance is a reservation: the token will exist after the deficit refills.
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: K) -> None:
        pass

    def num_requeues(self, key: K) -> int:
        return 0


class MaxOfRateLimiter(Generic[K]):
    """The longest wait any of ``limiters`` asks for (each one records the failure)."""

    def __init__(self, *limiters: RateLimiter[K]) -> None:
        self.limiters = limiters

    def when(self, key: K) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: K) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter() -> MaxOfRateLimiter[K]:
    """client-go's DefaultControllerRateLimiter: exponential 5 ms → 1000 s per key, 10 qps / 100 burst."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter(10.0, 100))


class RateLimitingQueue(DelayingQueue[K]):
    def __init__(self, name: str = "", rate_limiter: RateLimiter[K] | None = None) -> None:
        super().__init__(name)
        self.rate_limiter: RateLimiter[K] = rate_limiter or default_controller_rate_limiter()

    def add_rate_limited(self, key: K) -> None:
        """Add ``key`` after the delay its rate limiter asks for (counts as one more failure)."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset ``key``'s failure count (call after it was handled successfully)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)


# --- workers ---------------------------------------------------------------------------------------

Reconcile = Callable[[K], Awaitable[float | None]]


async def run_workers(queue: RateLimitingQueue[K], reconcile: Reconcile[K], workers: int = 1) -> None:
    """Run ``workers`` workers until the queue is shut down (then return) or this task is cancelled.

    ``reconcile(key)`` returning a number requeues the key after that many seconds (a periodic
    re-check); raising logs the error and requeues the key with its rate limiter.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    async with asyncio.TaskGroup() as tg:
        for i in range(workers):
            tg.create_task(_worker(queue, reconcile), name=f"{queue.name or 'workqueue'}-worker-{i}")


async def _worker(queue: RateLimitingQueue[K], reconcile: Reconcile[K]) -> None:
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            requeue_after = await reconcile(key)
        except Exception as e:
            # A 409 is optimistic concurrency doing its job (the cache was behind): retry quietly.
            quiet = getattr(e, "status", None) == 409
            log.log(logging.DEBUG if quiet else logging.WARNING, "%s: reconciling %r failed (%d earlier failures): %s",
                    queue.name or "workqueue", key, queue.num_requeues(key), e, exc_info=not quiet)
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
            if requeue_after is not None:
                queue.add_after(key, requeue_after)
        finally:
            queue.done(key)
