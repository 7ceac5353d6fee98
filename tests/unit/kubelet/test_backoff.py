"""The per-key exponential back-off behind CrashLoopBackOff and ImagePullBackOff."""

from __future__ import annotations

import pytest

from kubelite.kubelet.backoff import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock) -> Backoff:
    return Backoff(10, 300, reset_after=600, clock=clock)


def test_first_failure_is_not_in_back_off_and_delays_double_up_to_the_maximum() -> None:
    clock = Clock()
    b = make(clock)
    assert not b.is_in_backoff_since("k", clock.now)
    delays = []
    for _ in range(8):
        b.next("k", clock.now)
        delays.append(b.get("k"))
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_in_back_off_is_measured_from_the_finish_time() -> None:
    clock = Clock()
    b = make(clock)
    b.next("k", clock.now)  # delay 10
    finished = clock.now
    clock.now += 9.9
    assert b.is_in_backoff_since("k", finished)
    clock.now += 0.2
    assert not b.is_in_backoff_since("k", finished)


def test_a_container_that_ran_long_enough_starts_over() -> None:
    clock = Clock()
    b = make(clock)
    for _ in range(5):
        b.next("k", clock.now)
    assert b.get("k") == 160
    clock.now += 601  # ran for more than ten minutes before failing again
    assert not b.is_in_backoff_since("k", clock.now)
    b.next("k", clock.now)
    assert b.get("k") == 10


def test_since_update_and_remaining() -> None:
    clock = Clock()
    b = make(clock)
    assert b.remaining_since_update("k", clock.now) == 0
    b.next("k", clock.now)
    clock.now += 4
    assert b.is_in_backoff_since_update("k", clock.now)
    assert b.remaining_since_update("k", clock.now) == pytest.approx(6)
    clock.now += 7
    assert not b.is_in_backoff_since_update("k", clock.now)


def test_forget_a_pods_keys_and_gc() -> None:
    clock = Clock()
    b = make(clock)
    b.next("uid1_app", clock.now)
    b.next("uid1_side", clock.now)
    b.next("uid2_app", clock.now)
    b.forget("uid1_")
    assert b.get("uid1_app") == 0 and b.get("uid1_side") == 0 and b.get("uid2_app") == 10
    clock.now += 601
    b.gc()
    assert b.get("uid2_app") == 0


def test_configurable_delays_are_checked() -> None:
    with pytest.raises(ValueError):
        Backoff(10, 5, reset_after=600)
    b = Backoff(0.5, 2, reset_after=600, clock=Clock())
    for _ in range(4):
        b.next("k", 0)
    assert b.get("k") == 2
