"""Pure patch computations of the writing verbs.

- Client-side apply (``apply --server-side=false``) keeps the applied configuration in the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation and sends a three-way JSON merge patch:
  fields removed since the last apply are deleted (``null``), fields whose live value differs from the
  new configuration are set; lists are replaced whole (JSON merge patch has no list merging).
- ``label`` / ``annotate`` arguments (``k=v``, ``k-``) become a merge patch on ``metadata``.
- `apply_outcome` tells ``created`` / ``configured`` / ``unchanged`` from the object before and after.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_VOLATILE_METADATA = ("resourceVersion", "managedFields", "generation")


def with_last_applied(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` carrying its own configuration (without that annotation) in the annotation,
    compact JSON with sorted keys and a final newline, as kubectl stores it."""
    config = copy.deepcopy(obj)
    annotations = config.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED, None)
        if not annotations:
            del config["metadata"]["annotations"]
    out = copy.deepcopy(obj)
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = (
        json.dumps(config, separators=(",", ":"), sort_keys=True) + "\n")
    return out


def last_applied(live: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration last applied to ``live`` ({} if none or unreadable)."""
    raw = (live.get("metadata") or {}).get("annotations", {}).get(LAST_APPLIED)
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def three_way_merge_patch(original: Mapping[str, Any], modified: Mapping[str, Any],
                          current: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch turning ``current`` into ``modified``, deleting what ``original`` had and
    ``modified`` dropped; fields only ``current`` has (set by the server or other writers) are kept."""
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified and key in current:
            patch[key] = None
    for key, want in modified.items():
        have = current.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            before = original.get(key)
            sub = three_way_merge_patch(before if isinstance(before, dict) else {}, want, have)
            if sub:
                patch[key] = sub
        elif key not in current or have != want:
            patch[key] = want
    return patch


def metadata_map_patch(field: str, changes: Sequence[str], current: Mapping[str, str], *,
                       overwrite: bool) -> dict[str, Any]:
    """``{"metadata": {field: {...}}}`` for ``label``/``annotate`` arguments, or ``{}`` when nothing changes.

    ``k=v`` sets, ``k-`` removes. Raises ValueError with kubectl's messages for malformed arguments and
    for changing an existing value without ``overwrite``.
    """
    what = "label" if field == "labels" else "annotation"
    updates: dict[str, Any] = {}
    for arg in changes:
        if arg.endswith("-") and "=" not in arg:
            key = arg[:-1]
            if not key:
                raise ValueError(f"invalid {what} spec: {arg}")
            if key in current:
                updates[key] = None
            continue
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid {what} spec: {arg}, should be key=value or key-")
        if key in current and current[key] != value and not overwrite:
            raise ValueError(f"'{key}' already has a value ({current[key]}), and --overwrite is false")
        if current.get(key) != value:
            updates[key] = value
    return {"metadata": {field: updates}} if updates else {}


def _comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    md = out.get("metadata")
    if isinstance(md, dict):
        for key in _VOLATILE_METADATA:
            md.pop(key, None)
    return out


def apply_outcome(before: Mapping[str, Any] | None, after: Mapping[str, Any], *, dry_run: bool) -> str:
    """``created`` when there was nothing before; ``unchanged`` when the object reads the same apart from
    bookkeeping (resourceVersion, generation, managedFields): a write that only moved field ownership
    changed nothing the user configured; else ``configured``. A dry run never bumps the resourceVersion,
    so only the content can tell."""
    if before is None:
        return "created"
    rv_before = (before.get("metadata") or {}).get("resourceVersion")
    rv_after = (after.get("metadata") or {}).get("resourceVersion")
    if not dry_run and rv_before and rv_before == rv_after:
        return "unchanged"
    return "unchanged" if _comparable(before) == _comparable(after) else "configured"
