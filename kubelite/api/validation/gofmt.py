"""Render non-string bad values the way Kubernetes prints them in ``Invalid value: ...`` messages.

apimachinery formats a cause's value with Go's ``fmt``: strings quoted, numbers plain, values that have a
``String()`` method through it, and anything else with ``%#v`` (``map[string]string{"app":"web"}``).
``errors._show`` quotes Python strings, so values that must appear unquoted or Go-shaped are wrapped in
:class:`GoValue`, whose ``str()`` is the exact text Kubernetes would print.
"""

from __future__ import annotations

from typing import Any


class GoValue:
    """Text shown verbatim (unquoted) as a cause's bad value."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"GoValue({self.text!r})"


def _quote(s: str) -> str:
    # Go's %q for the printable ASCII strings we meet in manifests.
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def string_map(value: Any) -> GoValue:
    """``%#v`` of a ``map[string]string``: keys sorted, ``map[string]string(nil)`` when absent."""
    if not isinstance(value, dict):
        return GoValue("map[string]string(nil)")
    items = ", ".join(f"{_quote(str(k))}:{_quote(str(v))}" for k, v in sorted(value.items()))
    return GoValue(f"map[string]string{{{items}}}")


def string_list(value: Any) -> GoValue:
    """``%#v`` of a ``[]string``: ``[]string{"a", "b"}``, ``[]string(nil)`` when absent."""
    if not isinstance(value, list):
        return GoValue("[]string(nil)")
    return GoValue("[]string{" + ", ".join(_quote(str(v)) for v in value) + "}")


def raw(value: Any) -> GoValue:
    """A value printed through its ``String()`` method (quantities, IntOrString): no quotes."""
    return GoValue(str(value))


def label_selector(selector: Any) -> GoValue:
    """``*metav1.LabelSelector`` printed through its generated ``String()`` method."""
    sel = _dict(selector)
    labels = _dict(sel.get("matchLabels"))
    exprs = _list(sel.get("matchExpressions"))
    match_labels = "".join(f"{k}: {v}," for k, v in sorted(labels.items()))
    requirements = "".join(_requirement(e) + "," for e in exprs)
    return GoValue(f"&LabelSelector{{MatchLabels:map[string]string{{{match_labels}}},"
                   f"MatchExpressions:[]LabelSelectorRequirement{{{requirements}}},}}")


def _requirement(expr: Any) -> str:
    e = _dict(expr)
    values = _list(e.get("values"))
    return (f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
            f"Values:[{' '.join(str(v) for v in values)}],}}")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
