"""A minimal protobuf writer for building test bodies, independent of the decoder under test.

Field numbers in the tests are taken from Kubernetes' generated.proto files, not from the schema.
"""

from __future__ import annotations

MAGIC = b"k8s\x00"


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative numbers go out as 64-bit two's complement, as Go writes them
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def num(number: int, value: int | bool) -> bytes:
    """A varint field (int32, int64, bool)."""
    return key(number, 0) + _varint(int(value))


def ld(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field: string, bytes or an embedded message."""
    data = payload.encode() if isinstance(payload, str) else payload
    return key(number, 2) + _varint(len(data)) + data


def msg(number: int, *fields: bytes) -> bytes:
    return ld(number, b"".join(fields))


def entry(number: int, map_key: str, value: bytes | str) -> bytes:
    """One map entry: a message with the key in field 1 and the value in field 2."""
    return msg(number, ld(1, map_key), ld(2, value))


def packed(number: int, *values: int) -> bytes:
    return ld(number, b"".join(_varint(v) for v in values))


def timestamp(number: int, seconds: int, nanos: int = 0) -> bytes:
    """A meta/v1 Time or MicroTime: Timestamp {1 seconds, 2 nanos}."""
    return msg(number, num(1, seconds), num(2, nanos))


def envelope(api_version: str, kind: str, raw: bytes, *, encoding: str = "",
             content_type: str = "") -> bytes:
    """The magic and a runtime.Unknown {1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3, 4}."""
    return MAGIC + msg(1, ld(1, api_version), ld(2, kind)) + ld(2, raw) + ld(3, encoding) + ld(4, content_type)
