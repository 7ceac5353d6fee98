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
    pos = 0
    while pos < len(buf):
        number, wire_type, pos = _read_key(buf, pos)
        if wire_type == START_GROUP:
            pos = _skip_group(buf, pos, number)
            continue
        if wire_type == END_GROUP:
            raise WireError(f"unexpected end group for field {number}")
        value, pos = _read_value(buf, pos, number, wire_type)
        yield number, wire_type, value


def _read_key(buf: bytes, pos: int) -> tuple[int, int, int]:
    key, pos = read_varint(buf, pos)
    number, wire_type = key >> 3, key & 7
    if number <= 0 or number >= 1 << 29:
        raise WireError(f"illegal tag {number} (wire type {wire_type})")
    return number, wire_type, pos


def _read_value(buf: bytes, pos: int, number: int, wire_type: int) -> tuple[int | bytes, int]:
    if wire_type == VARINT:
        return read_varint(buf, pos)
    if wire_type == BYTES:
        length, pos = read_varint(buf, pos)
        if length > len(buf) - pos:
            raise WireError(f"unexpected EOF in field {number}")
        return buf[pos:pos + length], pos + length
    if wire_type in (FIXED64, FIXED32):
        size = 8 if wire_type == FIXED64 else 4
        if size > len(buf) - pos:
            raise WireError(f"unexpected EOF in field {number}")
        return int.from_bytes(buf[pos:pos + size], "little"), pos + size
    raise WireError(f"illegal wire type {wire_type} for field {number}")


def _skip_group(buf: bytes, pos: int, number: int) -> int:
    """The position after the group that started before ``pos``; iterative, so that deep nesting
    cannot exhaust the stack."""
    depth = 1
    while pos < len(buf):
        _, wire_type, pos = _read_key(buf, pos)
        if wire_type == START_GROUP:
            depth += 1
        elif wire_type == END_GROUP:
            depth -= 1
            if depth == 0:
                return pos
        else:
            _, pos = _read_value(buf, pos, number, wire_type)
    raise WireError(f"unexpected EOF in group {number}")


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
