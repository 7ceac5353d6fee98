from __future__ import annotations

import asyncio

import pytest

from kubelite.scheduler.framework import ClusterEvent
from kubelite.scheduler.queue import ACTIVE, BACKOFF, IN_FLIGHT, UNSCHEDULABLE, SchedulingQueue

from .helpers import pod


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


EVENTS = {"NodeResourcesFit": frozenset({ClusterEvent.NODE_ADD, ClusterEvent.ASSIGNED_POD_DELETE}),
          "InterPodAffinity": frozenset({ClusterEvent.ASSIGNED_POD_ADD})}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(plugin_events=EVENTS, clock=clock)


def places(queue: SchedulingQueue, *pods: dict[str, object]) -> list[str | None]:
    return [queue.where(p) for p in pods]


async def test_active_queue_orders_by_priority_then_arrival(queue: SchedulingQueue, clock: Clock) -> None:
    low, high, later_high = pod("low", priority=0), pod("high", priority=100), pod("later", priority=100)
    for p in (low, high, later_high):
        queue.add(p)
        clock.now += 1
    assert [(await queue.pop()).pod["metadata"]["name"] for _ in range(3)] == ["high", "later", "low"]


async def test_pop_waits_for_a_pod(queue: SchedulingQueue) -> None:
    waiter = asyncio.create_task(queue.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.add(pod("p"))
    assert (await asyncio.wait_for(waiter, 1)).pod["metadata"]["name"] == "p"


@pytest.mark.parametrize(("attempts", "seconds"), [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)])
def test_backoff_doubles_to_the_maximum(queue: SchedulingQueue, attempts: int, seconds: float) -> None:
    queue.add(pod("p"))
    q = queue.get("uid-default-p")
    assert q is not None
    q.attempts = attempts
    assert queue.backoff_duration(q) == seconds


async def test_unschedulable_pod_waits_for_an_event_its_plugins_care_about(queue: SchedulingQueue,
                                                                        clock: Clock) -> None:
    p = pod("p")
    queue.add(p)
    q = await queue.pop()
    assert places(queue, p) == [IN_FLIGHT]
    queue.add_unschedulable(q, rejected_by={"NodeResourcesFit"})
    assert places(queue, p) == [UNSCHEDULABLE]
    assert queue.move_all(ClusterEvent.ASSIGNED_POD_ADD) == 0  # not an event NodeResourcesFit registered
    assert places(queue, p) == [UNSCHEDULABLE]
    assert queue.move_all(ClusterEvent.NODE_ADD) == 1
    assert places(queue, p) == [BACKOFF]  # it failed just now: backoff first
    clock.now += 1.5
    assert queue.flush_backoff_completed() == 1
    assert places(queue, p) == [ACTIVE]
    assert queue.counts() == {ACTIVE: 1, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}


async def test_an_event_during_the_cycle_sends_the_pod_to_backoff_not_the_pool(queue: SchedulingQueue) -> None:
    p = pod("p")
    queue.add(p)
    q = await queue.pop()
    queue.move_all(ClusterEvent.ASSIGNED_POD_DELETE)  # e.g. a pod went while this one was being scheduled
    queue.add_unschedulable(q, rejected_by={"NodeResourcesFit"})
    assert places(queue, p) == [BACKOFF]


async def test_an_unrelated_event_during_the_cycle_does_not(queue: SchedulingQueue) -> None:
    p = pod("p")
    queue.add(p)
    q = await queue.pop()
    queue.move_all(ClusterEvent.ASSIGNED_POD_ADD)
    queue.add_unschedulable(q, rejected_by={"NodeResourcesFit"})
    assert places(queue, p) == [UNSCHEDULABLE]


async def test_periodic_flush_moves_pods_parked_too_long(queue: SchedulingQueue, clock: Clock) -> None:
    p = pod("p")
    queue.add(p)
    queue.add_unschedulable(await queue.pop(), rejected_by={"NodeResourcesFit"})
    clock.now += 200
    assert queue.flush_unschedulable_leftover() == 0
    clock.now += 101
    assert queue.flush_unschedulable_leftover() == 1
    assert places(queue, p) == [ACTIVE]


async def test_updates_move_a_parked_pod_only_when_its_spec_changes(queue: SchedulingQueue, clock: Clock) -> None:
    p = pod("p")
    queue.add(p)
    queue.add_unschedulable(await queue.pop(), rejected_by={"NodeResourcesFit"})
    status_only = {**p, "metadata": {**p["metadata"], "resourceVersion": "2"},
                   "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    queue.update(p, status_only)
    assert places(queue, p) == [UNSCHEDULABLE]
    relabelled = {**status_only, "metadata": {**status_only["metadata"], "labels": {"x": "y"}}}
    clock.now += 5
    queue.update(status_only, relabelled)
    assert places(queue, p) == [ACTIVE]
    assert queue.get("uid-default-p").pod["metadata"]["labels"] == {"x": "y"}  # type: ignore[union-attr]


async def test_a_pod_is_in_exactly_one_place(queue: SchedulingQueue) -> None:
    p = pod("p")
    queue.add(p)
    queue.add(p)  # seen twice: still once
    assert len(queue) == 1
    q = await queue.pop()
    queue.add(p)  # an informer resync while in flight does not queue it a second time
    assert places(queue, p) == [IN_FLIGHT]
    queue.requeue_after_error(q)
    assert places(queue, p) == [BACKOFF]
    queue.delete(p)
    assert places(queue, p) == [None] and len(queue) == 0
    queue.add_unschedulable(q, rejected_by=set())  # a deleted pod is not brought back
    assert len(queue) == 0


async def test_done_removes_an_in_flight_pod(queue: SchedulingQueue) -> None:
    p = pod("p")
    queue.add(p)
    await queue.pop()
    queue.done(p)
    assert len(queue) == 0
