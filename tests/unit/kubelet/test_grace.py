"""`kubelite.kubelet.grace.GracePeriod`: a deadline that only moves closer, and steps bounded by it."""

from __future__ import annotations

import asyncio

from kubelite.kubelet.grace import GracePeriod


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stop_timeout_keeps_the_minimum_until_the_period_is_shortened() -> None:
    clock = Clock()
    grace = GracePeriod(30, clock=clock)
    assert grace.stop_timeout(2) == 30
    clock.now += 29.5
    assert grace.stop_timeout(2) == 2  # the kubelet's minimum shutdown window
    assert grace.shorten(0)
    assert grace.stop_timeout(2) == 0 and grace.overridden  # an explicit 0 is a kill at once


def test_shorten_never_lengthens() -> None:
    clock = Clock()
    grace = GracePeriod(30, clock=clock)
    first = grace.changed
    assert grace.shorten(1)
    assert first.is_set() and not grace.changed.is_set()  # each move sets the event readers hold
    assert (grace.seconds, grace.deadline) == (1, 101.0)
    assert not grace.shorten(5)
    assert not grace.shorten(30)
    clock.now += 0.5
    assert not grace.shorten(1)  # 1 s from now ends later than the deadline already set
    assert grace.seconds == 1 and grace.deadline == 101.0
    assert not grace.changed.is_set()


def test_a_negative_period_is_zero() -> None:
    clock = Clock()
    grace = GracePeriod(-3, clock=clock)
    assert grace.seconds == 0 and grace.remaining() == 0.0


async def test_bound_returns_what_the_step_returns() -> None:
    async def step() -> str:
        return "done"
    assert await GracePeriod(5).bound(step()) == (True, "done")


async def test_bound_cuts_the_step_short_when_the_deadline_is_moved_closer() -> None:
    grace = GracePeriod(30)
    cancelled = asyncio.Event()

    async def hook() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    async def shorten_soon() -> None:
        await asyncio.sleep(0.05)
        grace.shorten(0)

    shortener = asyncio.create_task(shorten_soon())
    async with asyncio.timeout(2):
        assert await grace.bound(hook()) == (False, None)
    await shortener
    assert cancelled.is_set()


async def test_bound_follows_a_deadline_that_moves_but_has_not_passed() -> None:
    grace = GracePeriod(30)

    async def step() -> str:
        await asyncio.sleep(0.1)
        return "in time"

    async def shorten_soon() -> None:
        await asyncio.sleep(0.02)
        grace.shorten(5)

    shortener = asyncio.create_task(shorten_soon())
    assert await grace.bound(step()) == (True, "in time")
    await shortener
