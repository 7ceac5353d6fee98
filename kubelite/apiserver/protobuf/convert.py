"""Kubernetes protobuf message bytes → the JSON value Kubernetes itself would produce.

Driven by the generated table in :mod:`.schema`. The JSON follows what Go's ``encoding/json`` makes
of the decoded Go struct, so the result equals the object's Kubernetes JSON field for field:

- Go encoders write every non-pointer field, zero or not; a non-pointer field tagged ``omitempty``
  is therefore dropped when it decoded to ``0``/``false``/``""``, while a pointer keeps an explicit
  zero (``replicas: 0`` stays). A field absent on the wire is its Go zero value: ``null`` for nil
  pointers, slices and maps unless ``omitempty``; structs render even when empty (``"status": {}``).
- ``omitzero`` drops zero scalars, nil pointers/slices/maps and zero times.
- ``json:",inline"`` structs (``Volume``'s ``VolumeSource``) are flattened into their parent.
- Map keys come out sorted; ``[]byte`` is base64; ``Time`` is RFC 3339 in whole seconds (Go's
  decoder drops the nanoseconds), ``MicroTime`` has six fractional digits, zero times are ``null``;
  ``Quantity`` is its canonical string; ``IntOrString`` an int or a string; ``RawExtension`` and
  ``FieldsV1`` embed their raw JSON.
- Unknown field numbers are skipped, as the generated Go code does; a known field with the wrong
  wire type, truncated data or an invalid special value raises :class:`DecodeError`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Final

from kubelite.api import quantity

from . import wire
from .schema import MESSAGES

OMITEMPTY: Final = 1
OMITZERO: Final = 2

_INTEGERS: Final = {"int32": wire.as_int32, "int64": wire.as_int64}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)  # Go's zero time.Time


class DecodeError(ValueError):
    """The message does not decode as the named Kubernetes type; ``path`` is the JSON path of the
    field at fault (``spec.template.spec.containers[0].ports``), empty for the object itself."""

    def __init__(self, detail: str, path: str = "") -> None:
        super().__init__(f"{path}: {detail}" if path else detail)
        self.detail = detail
        self.path = path

    def within(self, segment: str) -> DecodeError:
        """The same error, seen from the enclosing field ``segment`` (a name or ``[i]``)."""
        if not segment:
            return self
        joiner = "." if self.path and not self.path.startswith("[") else ""
        return DecodeError(self.detail, segment + joiner + self.path)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message, its Go type expression taken apart."""

    number: int
    json_name: str  # "" for an inlined struct
    pointer: bool
    container: str  # "" (single value), "[]" or "map"
    leaf: str  # bool, int32, int64, string, bytes or a message name
    omit: int

    @property
    def varint(self) -> bool:
        return self.leaf in ("bool", "int32", "int64")

    def omitted_when_nil(self) -> bool:
        """Whether a nil pointer, slice or map is left out (else it is null)."""
        return bool(self.omit & (OMITEMPTY | OMITZERO))


def _parse_field(number: int, json_name: str, expr: str, omit: int) -> Field:
    pointer = expr.startswith("*")
    expr = expr.removeprefix("*")
    container = ""
    if expr.startswith("[]"):
        container, expr = "[]", expr[2:]
    elif expr.startswith("map[string]"):
        container, expr = "map", expr[len("map[string]"):]
    return Field(number, json_name, pointer, container, expr, omit)


@cache
def fields_of(message: str) -> tuple[tuple[Field, ...], dict[int, Field]]:
    """The fields of a message, in JSON order and by number."""
    ordered = tuple(_parse_field(*entry) for entry in MESSAGES[message])
    return ordered, {f.number: f for f in ordered}


def decode_message(message: str, data: bytes) -> dict[str, Any]:
    """Decode ``data`` as ``message`` into its Kubernetes JSON object."""
    ordered, by_number = fields_of(message)
    seen: dict[int, list[int | bytes]] = {}
    try:
        for number, wire_type, value in wire.fields(data):
            f = by_number.get(number)
            if f is None:
                continue
            if wire_type != (wire.VARINT if f.varint else wire.BYTES) and not (
                    f.varint and f.container == "[]" and wire_type == wire.BYTES):
                raise DecodeError(f"wrong wire type {wire_type} for field {f.json_name or number}")
            seen.setdefault(number, []).append(value)
    except wire.WireError as e:
        raise DecodeError(str(e)) from None
    out: dict[str, Any] = {}
    for f in ordered:
        try:
            _emit(out, f, seen.get(f.number))
        except DecodeError as e:
            raise e.within(f.json_name) from None
    return out


def _emit(out: dict[str, Any], f: Field, values: list[int | bytes] | None) -> None:
    if f.container:
        collection = (_list(f, values) if f.container == "[]" else _map(f, values)) if values else None
        if collection or not f.omitted_when_nil():
            out[f.json_name] = collection  # None is a nil slice or map: null
    elif f.leaf in MESSAGES or f.leaf in SPECIAL:
        _emit_struct(out, f, values)
    else:
        _emit_scalar(out, f, values)


def _emit_scalar(out: dict[str, Any], f: Field, values: list[int | bytes] | None) -> None:
    if values is None:
        if f.pointer or f.leaf == "bytes":  # nil pointer, nil []byte
            if not f.omitted_when_nil():
                out[f.json_name] = None
            return
        value = _ZERO[f.leaf]
    else:
        value = _scalar(f.leaf, values[-1])
    if not f.pointer and not value and (f.omit & OMITEMPTY or (f.omit & OMITZERO and f.leaf != "bytes")):
        return  # a non-pointer zero (an empty []byte is zero for omitempty only: it is not nil)
    out[f.json_name] = value


def _emit_struct(out: dict[str, Any], f: Field, values: list[int | bytes] | None) -> None:
    if values is None and f.pointer:
        if not f.omitted_when_nil():
            out[f.json_name] = None
        return
    # Repeated occurrences of one message field merge, as protobuf (and Go's Unmarshal) has it.
    data = b"".join(v for v in values or () if isinstance(v, bytes))
    if f.omit & OMITZERO and not f.pointer and not data:
        return  # only times may carry omitzero (the generator checks), and no bytes is a zero time
    value = decode_value(f.leaf, data)
    if f.json_name:
        out[f.json_name] = value
    else:
        out.update(value)


def _list(f: Field, values: list[int | bytes]) -> list[Any]:
    if f.varint:
        items: list[int | bytes] = []
        try:
            for v in values:
                items.extend(wire.packed_varints(v) if isinstance(v, bytes) else (v,))
        except wire.WireError as e:
            raise DecodeError(f"malformed packed field: {e}") from None
        return [_scalar(f.leaf, v) for v in items]
    if f.leaf in _ZERO:
        return [_scalar(f.leaf, v) for v in values]
    out = []
    for i, v in enumerate(values):
        try:
            out.append(decode_value(f.leaf, v if isinstance(v, bytes) else b""))
        except DecodeError as e:
            raise e.within(f"[{i}]") from None
    return out


def _map(f: Field, entries: list[int | bytes]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for entry in entries:
        key, raw_value = "", None
        try:
            for number, wire_type, value in wire.fields(entry if isinstance(entry, bytes) else b""):
                if wire_type != wire.BYTES:
                    raise DecodeError(f"wrong wire type {wire_type} in a map entry")
                if number == 1:
                    key = _scalar("string", value)
                elif number == 2:
                    raw_value = value
        except wire.WireError as e:
            raise DecodeError(f"malformed map entry: {e}") from None
        if f.leaf in _ZERO:
            result[key] = _scalar(f.leaf, raw_value) if raw_value is not None else _ZERO[f.leaf]
            continue
        try:
            result[key] = decode_value(f.leaf, raw_value if isinstance(raw_value, bytes) else b"")
        except DecodeError as e:
            raise e.within(f"[{key}]") from None
    return dict(sorted(result.items()))


def _scalar(leaf: str, value: int | bytes) -> Any:
    if leaf == "string" and isinstance(value, bytes):
        # Go keeps the bytes; its JSON encoder replaces invalid UTF-8 with U+FFFD, as this does.
        return value.decode("utf-8", "replace")
    if leaf == "bytes" and isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if leaf == "bool" and isinstance(value, int):
        return value != 0
    if leaf in _INTEGERS and isinstance(value, int):
        return _INTEGERS[leaf](value)
    raise DecodeError(f"a {type(value).__name__} is not a {leaf}")


_ZERO: Final[dict[str, Any]] = {"bool": False, "int32": 0, "int64": 0, "string": "", "bytes": ""}


def decode_value(message: str, data: bytes) -> Any:
    """The JSON value of one message: a generated struct, or one of the special types."""
    special = SPECIAL.get(message)
    if special is not None:
        return special(data)
    return decode_message(message, data)


# -- the special types: their Go structs do not describe their protobuf or JSON forms -------------


def _flat(data: bytes) -> dict[int, int | bytes]:
    """A small message's fields, last occurrence winning."""
    try:
        return {number: value for number, _, value in wire.fields(data)}
    except wire.WireError as e:
        raise DecodeError(str(e)) from None


def _timestamp(data: bytes) -> tuple[int, int] | None:
    """(seconds, nanos) of a Timestamp, or None for the zero time (Go writes no bytes for it)."""
    if not data:
        return None
    f = _flat(data)
    seconds, nanos = f.get(1, 0), f.get(2, 0)
    if not isinstance(seconds, int) or not isinstance(nanos, int):
        raise DecodeError("malformed timestamp")
    return wire.as_int64(seconds), wire.as_int32(nanos)


def _moment(ts: tuple[int, int] | None) -> datetime | None:
    """The instant, or None where Go's ``Time.IsZero()`` holds (JSON null)."""
    if ts is None:
        return None
    seconds, nanos = ts
    try:
        moment = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise DecodeError(f"timestamp {seconds} is outside the years 1 to 9999") from None
    return None if moment == _ZERO_TIME and nanos % 1000 == 0 else moment


def _time(data: bytes) -> str | None:
    ts = _timestamp(data)
    # metav1.Time's Unmarshal keeps whole seconds only (its JSON form has no fraction either).
    moment = _moment(None if ts is None else (ts[0], 0))
    return None if moment is None else _rfc3339(moment, micro=False)


def _micro_time(data: bytes) -> str | None:
    moment = _moment(_timestamp(data))
    return None if moment is None else _rfc3339(moment, micro=True)


def _rfc3339(m: datetime, *, micro: bool) -> str:
    # Formatted by hand: strftime does not zero-pad years before 1000 everywhere; Go does.
    text = f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
    return f"{text}.{m.microsecond:06d}Z" if micro else f"{text}Z"


def _quantity(data: bytes) -> str:
    raw = _flat(data).get(1)
    if raw is None:
        return "0"  # the zero Quantity
    if not isinstance(raw, bytes):
        raise DecodeError("malformed quantity")
    try:
        return quantity.canonicalize(raw.decode("utf-8", "replace"))
    except ValueError as e:
        raise DecodeError(str(e)) from None


def _int_or_string(data: bytes) -> int | str:
    f = _flat(data)
    kind, int_val, str_val = f.get(1, 0), f.get(2, 0), f.get(3, b"")
    if kind == 0 and isinstance(int_val, int):
        return wire.as_int32(int_val)
    if kind == 1 and isinstance(str_val, bytes):
        return str(_scalar("string", str_val))
    raise DecodeError(f"impossible IntOrString.Type {kind!r}")


def _raw_json(data: bytes) -> Any:
    """RawExtension and FieldsV1: field 1 holds JSON that is embedded as is; none is null."""
    raw = _flat(data).get(1)
    if raw is None:
        return None
    if not isinstance(raw, bytes):
        raise DecodeError("malformed raw JSON field")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise DecodeError("embedded raw data is not JSON") from None


SPECIAL: Final[dict[str, Callable[[bytes], Any]]] = {
    "apis/meta/v1.Time": _time,
    "apis/meta/v1.MicroTime": _micro_time,
    "api/resource.Quantity": _quantity,
    "util/intstr.IntOrString": _int_or_string,
    "runtime.RawExtension": _raw_json,
    "apis/meta/v1.FieldsV1": _raw_json,
}
