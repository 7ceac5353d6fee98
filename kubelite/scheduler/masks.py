"""Vectorised per-node sets and numbers without numpy: whole-cluster questions answered in C loops.

Node *slots* are small integers (0, 1, 2, ... reused after a node goes). Two representations:

- A **node mask** is a Python ``int`` with bit ``8 * slot`` set for each slot in the set (one byte per
  slot). ``&``, ``|``, ``& ~`` combine whole sets at once, ``mask.bit_count()`` counts a set, and
  ``mask.to_bytes(capacity, "little")`` gives one truthy/falsy byte per slot, which ``itertools.compress``
  walks at C speed (`iter_slots`). One byte per slot (not one bit) is what makes that last step free.
- `Lanes` holds one non-negative number per slot, each in its own 64-bit lane of one big ``int``, with the
  lane's top bit (the *guard*) always set. ``at_least(x)`` answers "which slots hold at least x?" for every
  slot with one big-int subtraction: ``(guard + v) - x`` keeps the guard bit exactly when ``v >= x`` and
  never borrows from the next lane (values stay below 2**62). The guards are then gathered into a node mask
  with one slice of the int's bytes.

Python's big-int operations are linear in the number of slots but run in C, ~100x faster per slot than a
Python loop; a 5,000-node cluster is a 40 kB int.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator
from itertools import compress

LANE_BITS = 64
_LANE_BYTES = LANE_BITS // 8
_GUARD = 1 << (LANE_BITS - 1)
# Values are clamped into [0, MAX_VALUE]: small enough that a lane never overflows into its guard bit.
MAX_VALUE = (1 << (LANE_BITS - 2)) - 1


def bit(slot: int) -> int:
    """The node mask holding only ``slot``."""
    return 1 << (8 * slot)


def mask_of(slots: Iterable[int]) -> int:
    out = 0
    for slot in slots:
        out |= 1 << (8 * slot)
    return out


def has(mask: int, slot: int) -> bool:
    return bool((mask >> (8 * slot)) & 1)


def count(mask: int) -> int:
    return mask.bit_count()


def slots_of(mask: int, capacity: int) -> list[int]:
    """Every slot in ``mask``, ascending (``capacity`` bounds the slots in use)."""
    return list(compress(range(capacity), mask.to_bytes(capacity, "little")))


def iter_slots(mask: int, capacity: int, start: int = 0) -> Iterator[int]:
    """The slots in ``mask`` in round-robin order from ``start``: start, start+1, ..., capacity-1, 0, ...
    (kube-scheduler's nextStartNodeIndex walk)."""
    if capacity == 0:
        return
    start %= capacity
    data = mask.to_bytes(capacity, "little")
    yield from compress(range(start, capacity), data[start:])
    yield from compress(range(start), data[:start])


class Lanes:
    """One clamped non-negative integer per slot; see the module docstring."""

    __slots__ = ("_guards", "_ones", "_packed", "capacity", "values")

    def __init__(self) -> None:
        self.capacity = 0
        self.values: array[int] = array("q")
        self._packed = 0  # guard bits plus values
        self._ones = 0  # 1 in the lowest bit of every lane
        self._guards = 0

    def grow(self, capacity: int) -> None:
        """Make room for slots below ``capacity`` (new slots hold 0)."""
        while self.capacity < capacity:
            shift = LANE_BITS * self.capacity
            self._ones |= 1 << shift
            self._guards |= _GUARD << shift
            self._packed |= _GUARD << shift
            self.values.append(0)
            self.capacity += 1

    def set(self, slot: int, value: int) -> None:
        value = min(max(value, 0), MAX_VALUE)
        old = self.values[slot]
        if value != old:
            self.values[slot] = value
            self._packed += (value - old) << (LANE_BITS * slot)

    def get(self, slot: int) -> int:
        return self.values[slot]

    def at_least(self, threshold: int) -> int:
        """The node mask of every slot (below capacity) whose value is >= ``threshold``."""
        if threshold <= 0:
            return _all_bytes(self.capacity)
        if threshold > MAX_VALUE:
            return 0
        kept = (self._packed - threshold * self._ones) & self._guards
        # The guard is the top bit of each lane's last byte (little-endian): one strided slice gathers them.
        tops = kept.to_bytes(self.capacity * _LANE_BYTES, "little")[_LANE_BYTES - 1::_LANE_BYTES]
        return int.from_bytes(tops, "little") >> 7


def _all_bytes(capacity: int) -> int:
    return int.from_bytes(b"\x01" * capacity, "little")


def full(capacity: int) -> int:
    """The node mask of every slot below ``capacity``."""
    return _all_bytes(capacity)
