"""JSON merge patch (RFC 7386), ``application/merge-patch+json``.

Sent by ``kubectl label``, ``kubectl annotate``, ``kubectl scale`` (on the ``scale`` subresource) and
``kubectl patch --type=merge``. Semantics follow the library kube-apiserver uses
(``gopkg.in/evanphx/json-patch.v4`` ``MergePatch``):

- objects merge key by key, ``null`` deletes a key, anything else replaces the value;
- a value that is inserted rather than merged has its ``null`` members pruned, also inside objects
  nested in arrays (array elements themselves are kept, ``null`` included);
- a ``null``, number, string or boolean patch is ``400 Invalid JSON Patch``; an array patch
  replaces the whole document, which then is not an object: ``422``.

Copies are cheap: only the objects on the way to a change are copied, everything else is shared
with ``doc`` (and inserted values with ``patch``); the result's top level and ``metadata`` are
always fresh dicts, so a caller may set ``metadata`` fields on the result without touching ``doc``.
"""

from __future__ import annotations

import json
from typing import Any

from kubelite.api.errors import bad_request

from ._copy import detached
from ._errors import invalid_patch_result
from ._json import json_type_name

__all__ = ["apply_merge_patch"]


def apply_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Return ``doc`` with the merge patch applied; ``doc`` and ``patch`` are left untouched.

    Raises APIError 400 (``Invalid JSON Patch``) for a patch that is not an object or array, and 422
    Invalid for an array patch (the result would not be an object).
    """
    if isinstance(patch, list):
        patched = json.dumps(_prune_array(patch), separators=(",", ":"))
        raise invalid_patch_result(patched, "json: cannot unmarshal array into Go value of type "
                                            "map[string]interface {}")
    if not isinstance(patch, dict):
        # evanphx answers ErrBadJSONPatch for null and for scalars alike.
        raise bad_request("Invalid JSON Patch") from TypeError(f"merge patch is a {json_type_name(patch)}")
    result = _merge_object(doc, patch)
    return detached(result, doc)


def _merge_object(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``target``; copies ``target`` only if something changes."""
    out: dict[str, Any] | None = None
    for key, value in patch.items():
        if value is None:
            if key in target:
                if out is None:
                    out = dict(target)
                out.pop(key, None)
            continue
        current = target.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged: Any = _merge_object(current, value)
        elif isinstance(current, dict):
            # evanphx returns a non-object patch value unpruned when the target is an object.
            merged = value
        else:
            merged = _prune(value)
        if merged is not current or key not in target:
            if out is None:
                out = dict(target)
            out[key] = merged
    return target if out is None else out


def _prune(value: Any) -> Any:
    """Drop ``null`` members of objects, recursively through arrays; copies only what changes."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items() if v is not None}
        if len(pruned) == len(value) and all(pruned[k] is value[k] for k in pruned):
            return value
        return pruned
    if isinstance(value, list):
        return _prune_array(value)
    return value


def _prune_array(values: list[Any]) -> list[Any]:
    items = [_prune(v) for v in values]
    return values if all(n is o for n, o in zip(items, values, strict=True)) else items
