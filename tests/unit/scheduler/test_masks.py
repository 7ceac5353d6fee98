from __future__ import annotations

import random

import pytest

from kubelite.scheduler import masks


def test_at_least_matches_a_plain_comparison_for_every_slot() -> None:
    rng = random.Random(7)
    lanes = masks.Lanes()
    lanes.grow(300)
    values = [rng.randrange(0, 5000) for _ in range(300)]
    for slot, v in enumerate(values):
        lanes.set(slot, v)
    for threshold in (0, 1, 2500, 4999, 5000, 10**12):
        got = lanes.at_least(threshold)
        assert masks.slots_of(got, 300) == [s for s, v in enumerate(values) if v >= threshold]


@pytest.mark.parametrize("value", [-5, 0, masks.MAX_VALUE, masks.MAX_VALUE + 10])
def test_values_are_clamped_and_never_borrow_from_a_neighbour(value: int) -> None:
    lanes = masks.Lanes()
    lanes.grow(3)
    lanes.set(0, 7)
    lanes.set(1, value)
    lanes.set(2, 7)
    assert masks.slots_of(lanes.at_least(7), 3) == ([0, 1, 2] if value >= 7 else [0, 2])
    assert lanes.get(1) == min(max(value, 0), masks.MAX_VALUE)


def test_iter_slots_walks_round_robin_from_start() -> None:
    mask = masks.mask_of([0, 2, 5, 7])
    assert list(masks.iter_slots(mask, 8, 3)) == [5, 7, 0, 2]
    assert list(masks.iter_slots(mask, 8, 0)) == [0, 2, 5, 7]
    assert list(masks.iter_slots(mask, 8, 11)) == [5, 7, 0, 2]
    assert list(masks.iter_slots(0, 0, 0)) == []


def test_mask_helpers() -> None:
    m = masks.mask_of([1, 4])
    assert masks.has(m, 4) and not masks.has(m, 2)
    assert masks.count(m) == 2
    assert masks.slots_of(masks.full(3), 3) == [0, 1, 2]
