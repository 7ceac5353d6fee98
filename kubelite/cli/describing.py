"""The text building blocks of ``kubelite describe``, after kubectl's describers.

`Writer` is kubectl's PrefixWriter over a tab writer (minwidth 0, padding 2): ``w.line(level, "Name:",
value)`` indents by two spaces per level and aligns the values of consecutive ``key:`` lines. Helpers
render labels and annotations one per line, timestamps as RFC 1123 with a numeric zone (Go's
``RFC1123Z``), ages as Kubernetes' ``HumanDuration``, and any object generically (`unstructured`, the
fallback for kinds without a describer: camelCase keys become "Title Case" labels).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubelite.api import meta
from kubelite.api.printers import human_duration
from kubelite.cli.tabwriter import TabWriter

NONE = "<none>"
_SKIPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})
_ACRONYMS = frozenset({"API", "URL", "UID", "OSB", "GUID"})
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


class Writer:
    """Collects indented, tab-separated lines; `text` aligns them."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def line(self, level: int, *cells: Any) -> None:
        """One line: ``cells`` joined by tabs (a single cell is a section title, aligning nothing)."""
        self._parts.append("  " * level + "\t".join(str(c) for c in cells) + "\n")

    def text(self) -> str:
        return TabWriter(minwidth=0, padding=2).format("".join(self._parts))


def timestamp(value: str | None) -> str:
    """``Mon, 02 Jan 2006 15:04:05 -0700`` in local time; ``<unknown>`` when unset."""
    if not value:
        return "<unknown>"
    try:
        return meta.parse_rfc3339(value).astimezone().strftime("%a, %d %b %Y %H:%M:%S %z")
    except ValueError:
        return value


def age(value: str | None, now: datetime | None = None) -> str:
    """How long ago an RFC 3339 time was, as HumanDuration; ``<unknown>`` when unset."""
    if not value:
        return "<unknown>"
    try:
        then = meta.parse_rfc3339(value)
    except ValueError:
        return "<unknown>"
    return human_duration(((now or datetime.now(UTC)) - then).total_seconds())


def label_lines(w: Writer, level: int, title: str, values: Mapping[str, str] | None) -> None:
    """``Labels:  a=b`` then one ``k=v`` per line, sorted; ``<none>`` when empty."""
    items = sorted((values or {}).items())
    if not items:
        w.line(level, f"{title}:", NONE)
        return
    for i, (k, v) in enumerate(items):
        w.line(level, f"{title}:" if i == 0 else "", f"{k}={v}")


def annotation_lines(w: Writer, level: int, values: Mapping[str, str] | None) -> None:
    """``Annotations:  k: v`` one per line, sorted, without kubectl's last-applied configuration."""
    items = sorted((k, v) for k, v in (values or {}).items() if k not in _SKIPPED_ANNOTATIONS)
    if not items:
        w.line(level, "Annotations:", NONE)
        return
    for i, (k, v) in enumerate(items):
        w.line(level, "Annotations:" if i == 0 else "", f"{k}: {v}")


def header(w: Writer, obj: dict[str, Any], *, namespaced: bool) -> None:
    """What every description starts with: Name, Namespace, CreationTimestamp, Labels, Annotations."""
    w.line(0, "Name:", meta.name(obj))
    if namespaced:
        w.line(0, "Namespace:", meta.namespace(obj))
    w.line(0, "CreationTimestamp:", timestamp(meta.metadata(obj).get("creationTimestamp")))
    label_lines(w, 0, "Labels", meta.labels(obj))
    annotation_lines(w, 0, meta.annotations(obj))


def smart_label(field: str) -> str:
    """kubectl's ``smartLabelFor``: ``creationTimestamp`` → ``Creation Timestamp``, ``uid`` → ``UID``;
    keys with anything but letters and dashes stay as they are."""
    if not field or any(not (c.isalpha() or c == "-") for c in field):
        return field
    words = _CAMEL.findall(field) or [field]
    return " ".join(w.upper() if w.upper() in _ACRONYMS else w[:1].upper() + w[1:] for w in words)


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def unstructured(w: Writer, level: int, content: Mapping[str, Any], skip: frozenset[str] = frozenset(),
                 path: str = "") -> None:
    """kubectl's generic description of any object: keys sorted, maps and lists as indented sections,
    scalars as ``Key:  value``; dotted ``path``s in ``skip`` are left out."""
    for key in sorted(content):
        here = f"{path}.{key}"
        if here in skip:
            continue
        value = content[key]
        if isinstance(value, dict):
            w.line(level, f"{smart_label(key)}:")
            unstructured(w, level + 1, value, skip, here)
        elif isinstance(value, list):
            w.line(level, f"{smart_label(key)}:")
            for item in value:
                if isinstance(item, dict):
                    unstructured(w, level + 1, item, skip, here)
                else:
                    w.line(level + 1, scalar(item))
        else:
            w.line(level, f"{smart_label(key)}:", scalar(value))
