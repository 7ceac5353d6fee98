from __future__ import annotations

import asyncio

import pytest

from kubelite.client.workqueue import (
    BucketRateLimiter,
    DelayingQueue,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimitingQueue,
    ShutDown,
    WorkQueue,
    default_controller_rate_limiter,
    run_workers,
)
from tests.unit.client.helpers import eventually


async def get(q: WorkQueue[str]) -> str:
    async with asyncio.timeout(5):
        return await q.get()


async def test_duplicates_collapse() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in ("a", "b", "a", "a"):
        q.add(k)
    assert len(q) == 2
    assert [await get(q), await get(q)] == ["a", "b"]
    assert len(q) == 0


async def test_key_in_processing_is_not_handed_out_twice() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await get(q) == "a"
    q.add("a")  # changed again while a worker holds it
    q.add("a")
    assert len(q) == 0  # parked until done, never given to a second worker
    q.add("b")
    assert await get(q) == "b"
    q.done("a")
    assert len(q) == 1 and await get(q) == "a"  # requeued once
    q.done("a")
    q.done("b")
    assert len(q) == 0


async def test_get_waits_for_add() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiting = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    q.add("x")
    async with asyncio.timeout(5):
        assert await waiting == "x"


async def test_cancelled_getter_passes_its_wakeup_on() -> None:
    q: WorkQueue[str] = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it can take the key
    async with asyncio.timeout(5):
        assert await second == "x"
    assert first.cancelled()


async def test_shutdown_drains_then_raises() -> None:
    q: WorkQueue[str] = WorkQueue("test")
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await waiter

    q2: WorkQueue[str] = WorkQueue()
    q2.add("a")
    q2.shutdown()
    q2.add("b")  # ignored
    assert q2.shutting_down
    assert await get(q2) == "a"
    with pytest.raises(ShutDown):
        await get(q2)


async def test_add_after() -> None:
    q: DelayingQueue[str] = DelayingQueue()
    q.add_after("now", 0)
    assert len(q) == 1
    q.add_after("soon", 0.01)
    q.add_after("soon", 3600)  # a later time does not postpone it
    q.add_after("late", 3600)
    q.add_after("late", 0.01)  # an earlier time brings it forward
    assert len(q) == 1
    got = {await get(q), await get(q), await get(q)}
    assert got == {"now", "soon", "late"}
    q.add_after("never", 3600)
    q.shutdown()
    assert len(q) == 0


def test_item_exponential_backoff() -> None:
    rl: ItemExponentialFailureRateLimiter[str] = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    assert [rl.when("a") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    assert rl.when("b") == 0.005  # per key
    assert rl.num_requeues("a") == 4
    for _ in range(100):
        last = rl.when("a")
    assert last == 1000.0
    rl.forget("a")
    assert rl.num_requeues("a") == 0 and rl.when("a") == 0.005


def test_token_bucket() -> None:
    now = [0.0]
    rl: BucketRateLimiter[str] = BucketRateLimiter(qps=10, burst=100, clock=lambda: now[0])
    assert all(rl.when(str(i)) == 0 for i in range(100))  # the burst
    assert rl.when("x") == pytest.approx(0.1)  # then reservations at 10 per second
    assert rl.when("y") == pytest.approx(0.2)
    now[0] += 1.0  # ten tokens refill, two were already promised
    assert all(rl.when("z") == 0 for _ in range(8))
    assert rl.when("z") == pytest.approx(0.1)
    assert rl.num_requeues("z") == 0


def test_max_of_and_default() -> None:
    now = [0.0]
    rl = MaxOfRateLimiter[str](ItemExponentialFailureRateLimiter(1.0, 10.0),
                               BucketRateLimiter(qps=1, burst=1, clock=lambda: now[0]))
    assert rl.when("a") == 1.0  # exponential: 1; bucket: 0
    assert rl.when("b") == 1.0  # exponential: 1; bucket: 1 (its token is gone)
    assert rl.when("a") == 2.0
    assert rl.num_requeues("a") == 2
    rl.forget("a")
    assert rl.num_requeues("a") == 0
    default: MaxOfRateLimiter[str] = default_controller_rate_limiter()
    assert default.when("k") == 0.005


class Immediate:
    """A rate limiter that never waits but counts, so tests run at full speed."""

    def __init__(self) -> None:
        self.failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        self.failures[key] = self.failures.get(key, 0) + 1
        return 0.0

    def forget(self, key: str) -> None:
        self.failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self.failures.get(key, 0)


async def test_rate_limited_queue() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("rl", Immediate())
    q.add_rate_limited("a")
    q.add_rate_limited("a")
    assert q.num_requeues("a") == 2 and len(q) == 1
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_workers_retry_then_forget() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("ctl", Immediate())
    attempts: dict[str, int] = {}
    requeues_seen: list[int] = []

    async def reconcile(key: str) -> None:
        attempts[key] = attempts.get(key, 0) + 1
        requeues_seen.append(q.num_requeues(key))
        if attempts[key] < 3:
            raise RuntimeError("not yet")

    runner = asyncio.create_task(run_workers(q, reconcile, workers=2))
    q.add("a")
    await eventually(lambda: attempts.get("a") == 3 and len(q) == 0)
    q.shutdown()
    async with asyncio.timeout(5):
        await runner  # returns once the queue is shut down
    assert requeues_seen == [0, 1, 2]
    assert q.num_requeues("a") == 0  # forgotten after the success


async def test_workers_never_share_a_key_and_honour_requeue_after() -> None:
    q: RateLimitingQueue[str] = RateLimitingQueue("ctl", Immediate())
    in_flight: set[str] = set()
    overlaps: list[str] = []
    handled: list[str] = []
    periodic = 0

    async def reconcile(key: str) -> float | None:
        nonlocal periodic
        if key in in_flight:
            overlaps.append(key)
        in_flight.add(key)
        await asyncio.sleep(0.001)
        q.add(key if key != "periodic" else "other")  # re-adds while processing
        in_flight.discard(key)
        handled.append(key)
        if key == "periodic":
            periodic += 1
            return 0.001 if periodic < 3 else None
        return None

    runner = asyncio.create_task(run_workers(q, reconcile, workers=4))
    for k in ("a", "b", "periodic"):
        q.add(k)
    await eventually(lambda: periodic == 3 and handled.count("a") >= 5)
    q.shutdown()
    async with asyncio.timeout(5):
        await runner
    assert overlaps == []


async def test_run_workers_validates() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await run_workers(RateLimitingQueue[str](), lambda k: asyncio.sleep(0), workers=0)
