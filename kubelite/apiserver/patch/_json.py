"""JSON values as the Go API server sees them.

Patches work on plain JSON-shaped Python values (dict, list, str, int, float, bool, None). Three
places need Go's view of those values rather than Python's:

- equality: Python says ``True == 1``; JSON (and Go) do not, while ``1 == 1.0`` holds in both;
- encoding: Go's ``encoding/json`` sorts map keys, escapes ``<``, ``>``, ``&``, U+2028 and U+2029,
  and prints integral floats without a fraction (the last-applied annotation is such an encoding);
- ``%v`` formatting: Kubernetes error messages print values with Go's ``fmt`` (``map[a:b]``).
"""

from __future__ import annotations

import json
from typing import Any

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
               ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def json_equal(a: Any, b: Any) -> bool:
    """Deep JSON equality: ints and floats compare by value, booleans never equal numbers."""
    if a is b:
        return True
    ta, tb = type(a), type(b)
    if ta is dict:
        if tb is not dict or len(a) != len(b):
            return False
        for key, value in a.items():
            if key not in b or not json_equal(value, b[key]):
                return False
        return True
    if ta is list:
        if tb is not list or len(a) != len(b):
            return False
        return all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if tb is dict or tb is list:
        return False
    return bool(a == b)


def scalar_key(value: Any) -> tuple[bool, Any]:
    """A hashable key for a JSON scalar that keeps ``True`` and ``1`` apart (``1`` and ``1.0`` stay one)."""
    return (type(value) is bool, value)


def go_json(value: Any) -> str:
    """Encode like Go's ``json.Marshal`` of an unstructured object: sorted keys, compact, HTML-safe."""
    text = json.dumps(_go_numbers(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # The escaped characters can only occur inside JSON strings, so a plain replace is exact.
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def _go_numbers(value: Any) -> Any:
    """Integral floats print as integers in Go (``3.0`` → ``3``); only copies what changes."""
    if type(value) is float and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if type(value) is dict:
        changed = {k: _go_numbers(v) for k, v in value.items()}
        return changed if any(changed[k] is not v for k, v in value.items()) else value
    if type(value) is list:
        items = [_go_numbers(v) for v in value]
        return items if any(n is not o for n, o in zip(items, value, strict=True)) else value
    return value


def go_sprint(value: Any) -> str:
    """Render a JSON value like Go's ``fmt.Sprintf("%v", v)`` of its unstructured form."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_sprint(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_sprint(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    # %v of a float64 is %g with the shortest representation: 80 → "80", 1e21 → "1e+21".
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').rjust(2, '0')}"
    return text


def json_type_name(value: Any) -> str:
    """The JSON type word Go's decoder uses in ``cannot unmarshal X into ...`` messages."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"
