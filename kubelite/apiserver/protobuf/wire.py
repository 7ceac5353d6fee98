"""The protobuf wire format, read-only: tags, varints and length-delimited fields.

Only what decoding Kubernetes objects needs. ``fields`` yields every field of one message; unknown
fields are the caller's to skip (as gogo-generated Go code does), groups included. Any malformed
input raises :class:`WireError` with a short description; nothing is ever partially returned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

VARINT: Final = 0
FIXED64: Final = 1
BYTES: Final = 2
START_GROUP: Final = 3
END_GROUP: Final = 4
FIXED32: Final = 5

_MASK64 = (1 << 64) - 1


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` (at most 10 bytes, as Go reads it) and the position after it."""
    value = shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise WireError("unexpected EOF")
        if shift >= 64:
            raise WireError("integer overflow")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & _MASK64, pos
        shift += 7


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(number, wire type, value)`` per field: an int for varints and fixed-width fields,
    the payload bytes for length-delimited ones. Groups (deprecated, never written by Kubernetes)
    are skipped whole."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number <= 0 or number >= 1 << 29:
            raise WireError(f"illegal tag {number} (wire type {wire_type})")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire_type == BYTES:
            length, pos = read_varint(buf, pos)
            if length > end - pos:
                raise WireError(f"unexpected EOF in field {number}")
            value, pos = buf[pos:pos + length], pos + length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if size > end - pos:
                raise WireError(f"unexpected EOF in field {number}")
            value, pos = int.from_bytes(buf[pos:pos + size], "little"), pos + size
        elif wire_type == START_GROUP:
            pos = _skip_group(buf, pos, number)
            continue
        elif wire_type == END_GROUP:
            raise WireError(f"unexpected end group for field {number}")
        else:
            raise WireError(f"illegal wire type {wire_type} for field {number}")
        yield number, wire_type, value


def _skip_group(buf: bytes, pos: int, number: int) -> int:
    depth = 1
    for inner, wire_type, _ in _raw_tags(buf, pos):
        if wire_type == START_GROUP:
            depth += 1
        elif wire_type == END_GROUP:
            depth -= 1
            if depth == 0:
                return inner
    raise WireError(f"unexpected EOF in group {number}")


def _raw_tags(buf: bytes, pos: int) -> Iterator[tuple[int, int, int]]:
    """Walk fields from ``pos``, yielding (position after the field, wire type, number), groups
    not expanded; used only to find a group's end."""
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            _, pos = read_varint(buf, pos)
        elif wire_type == BYTES:
            length, pos = read_varint(buf, pos)
            pos += length
        elif wire_type == FIXED64:
            pos += 8
        elif wire_type == FIXED32:
            pos += 4
        elif wire_type not in (START_GROUP, END_GROUP):
            raise WireError(f"illegal wire type {wire_type} for field {number}")
        if pos > end:
            raise WireError(f"unexpected EOF in field {number}")
        yield pos, wire_type, number


def packed_varints(buf: bytes) -> Iterator[int]:
    """The varints of a packed repeated field's payload."""
    pos = 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        yield value


def as_int32(value: int) -> int:
    """A varint read as Go's int32 (negative numbers arrive sign-extended to 64 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def as_int64(value: int) -> int:
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value
