"""Strategic merge patch, ``application/strategic-merge-patch+json``.

Sent by client-side ``kubectl apply`` (a three-way patch with ``$setElementOrder``, ``$patch:
delete`` items and ``$retainKeys``), ``kubectl rollout restart``, ``kubectl set image``,
``kubectl edit`` and the Python client for dict bodies. Semantics follow
k8s.io/apimachinery/pkg/util/strategicpatch ``StrategicMergeMapPatch`` (server side, i.e. with
parallel lists merged and unmatched nulls ignored):

- objects merge key by key; ``null`` deletes a key; a value of another JSON type replaces;
- lists with the ``merge`` strategy (see ``schema.py``) merge: items of objects by their merge key
  (recursively), primitives as a union without duplicates; the result keeps the live order for live
  items and the patch order for patch items, interleaved by the live positions of shared items.
  Any other list is replaced;
- directives: ``$patch: replace`` (this object replaces the live one; as a list item: the list is
  replaced by the other items), ``$patch: delete`` (this object becomes ``{}``; as a list item: the
  live item with that merge key is removed), ``$retainKeys: [...]`` (live keys not listed are
  dropped; listing fewer keys than the patch sets is a 400), ``$setElementOrder/<list>: [...]``
  (final order of the patch's items; live-only items keep their relative place) and
  ``$deleteFromPrimitiveList/<list>: [...]`` (remove these primitives).

Where the Go code leaves directives in values the live object did not have (they then vanish when
the result is decoded into a typed object), the value is patched against an empty one instead, with
the same outcome. Other ``$``-keys are dropped, as typed decoding drops them. A deletion list for a
list the live object does not have is a no-op (Go would store the deletion list itself).

Errors as kube-apiserver answers them: a patch that is not an object is 400 with the Go decoder's
message; malformed directives are 400 (``invalid patch format of ...``); lists of lists are 422;
other failures (an item without its merge key, mixed element types, an unknown ``$patch``) are
plain Go errors, i.e. code 500 with the error text.

Copies are cheap: only objects the patch touches are copied; the rest is shared with ``doc``. The
result's top level and ``metadata`` are always fresh dicts.
"""

from __future__ import annotations

from typing import Any, Final

from kubelite.api.errors import APIError, bad_request

from ._copy import detached
from ._errors import cannot_unmarshal, generic_invalid, plain_error
from ._json import go_sprint, json_equal, json_type_name, scalar_key
from .schema import Schema, schema_for

__all__ = ["apply_strategic_merge_patch"]

DIRECTIVE: Final = "$patch"
RETAIN_KEYS: Final = "$retainKeys"
SET_ELEMENT_ORDER: Final = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList"

_BAD_PRIMITIVE_LIST: Final = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS: Final = "invalid patch format of retainKeys"
_BAD_SET_ELEMENT_ORDER: Final = "invalid patch format of setElementOrder list"
_NO_LIST_OF_LISTS: Final = "lists of lists are not supported"
_MISSING: Final = object()


class _Failure(Exception):
    """A patch that cannot be applied; ``to_api_error`` gives the status kube-apiserver answers."""

    def __init__(self, message: str, code: int = 500) -> None:
        super().__init__(message)
        self.code = code

    def to_api_error(self) -> APIError:
        if self.code == 400:
            return bad_request(str(self))
        if self.code == 422:
            return generic_invalid(str(self))
        return plain_error(str(self))


def apply_strategic_merge_patch(doc: dict[str, Any], patch: Any, *, api_version: str, kind: str) -> dict[str, Any]:
    """Return ``doc`` (an object of ``api_version``/``kind``) with the strategic merge patch applied;
    ``doc`` and ``patch`` are left untouched. Raises APIError (see the module docstring)."""
    if patch is None:
        patch = {}  # Go decodes `null` into an empty patch
    if not isinstance(patch, dict):
        raise cannot_unmarshal(json_type_name(patch), "map[string]interface {}")
    try:
        result = _merge_map(doc, patch, schema_for(api_version, kind))
    except _Failure as exc:
        raise exc.to_api_error() from exc
    return detached(result, doc)


# -- objects ---------------------------------------------------------------------------------------


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema) -> dict[str, Any]:
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == "replace":
            return _merge_map({}, {k: v for k, v in patch.items() if k != DIRECTIVE}, schema)
        if directive == "delete":
            return {}
        raise _Failure(f"unknown patch type: {go_sprint(directive)} in map: {go_sprint(patch)}")
    out = dict(original)
    handled: set[str] = set()
    if RETAIN_KEYS in patch:
        _retain_keys(out, patch)
        handled.add(RETAIN_KEYS)
    for key, order in patch.items():
        if key.startswith(SET_ELEMENT_ORDER):
            handled.add(key)
            name = _set_element_order(out, patch, key, order, schema)
            if name is not None:
                handled.add(name)
    for key, value in patch.items():
        if key in handled:
            continue
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            _delete_from_primitive_list(out, key, value)
            continue
        if key.startswith("$"):
            continue  # not a directive we know: typed decoding drops it
        if value is None:
            out.pop(key, None)
            continue
        child_schema = schema.child(key)
        current = out.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = (_fresh(value, child_schema) if child_schema.patch_strategy == "replace"
                        else _merge_map(current, value, child_schema))
        elif isinstance(value, list) and isinstance(current, list):
            out[key] = (_merge_list(current, value, child_schema) if child_schema.patch_strategy == "merge"
                        else _fresh(value, child_schema))
        else:
            out[key] = _fresh(value, child_schema)
    return out


def _retain_keys(out: dict[str, Any], patch: dict[str, Any]) -> None:
    """Drop the live keys the ``$retainKeys`` list does not name (after checking the patch only
    sets keys it names)."""
    retain = patch[RETAIN_KEYS]
    if not isinstance(retain, list):
        raise _Failure(_BAD_RETAIN_KEYS, 400)
    allowed = {scalar_key(v) for v in retain if not isinstance(v, dict | list)}
    for key, value in patch.items():
        if value is None or key == RETAIN_KEYS or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if scalar_key(key) not in allowed:
            raise _Failure(_BAD_RETAIN_KEYS, 400)
    for key in [k for k in out if scalar_key(k) not in allowed]:
        del out[key]


def _directive_target(key: str, prefix: str, error: str) -> str:
    head, sep, name = key.partition("/")
    if not sep or head != prefix:
        raise _Failure(error, 400)
    return name


def _set_element_order(out: dict[str, Any], patch: dict[str, Any], key: str, order: Any,
                       schema: Schema) -> str | None:
    """Merge the list named by ``$setElementOrder/<name>`` and put it in the requested order.
    Returns the list's name if the patch's own value for it was consumed."""
    if not isinstance(order, list):
        raise _Failure(f"expected a slice, but received a {_go_kind(order)}")
    name = _directive_target(key, SET_ELEMENT_ORDER, _BAD_SET_ELEMENT_ORDER)
    current, patch_items = out.get(name, _MISSING), patch.get(name, _MISSING)
    for value in (current, patch_items):
        if value is not _MISSING and not isinstance(value, list):
            raise _Failure(f"expected a slice, but received a {_go_kind(value)}")
    field_schema = schema.child(name)
    merge_key = field_schema.merge_key
    _check_order(patch_items if isinstance(patch_items, list) else [], order, merge_key)
    if isinstance(current, list) and isinstance(patch_items, list):
        merged = (_merge_list(current, patch_items, field_schema) if field_schema.patch_strategy == "merge"
                  else _fresh(patch_items, field_schema))
    elif isinstance(patch_items, list):
        merged = _fresh(patch_items, field_schema)
    elif isinstance(current, list):
        merged = current
    else:
        return None
    out[name] = _reorder(merged, order, current if isinstance(current, list) else [], merge_key)
    return name


def _check_order(patch_items: list[Any], order: list[Any], merge_key: str) -> None:
    """The patch's items must appear in ``$setElementOrder`` and in the same relative order."""
    if not order or not patch_items:
        return
    items = patch_items
    if merge_key:
        for item in patch_items:
            if not isinstance(item, dict):
                raise _Failure(f"expected a map, but received a {_go_kind(item)}")
        items = [i for i in patch_items if i.get(DIRECTIVE) != "delete"]
    position = seen = 0
    while position < len(items) and seen < len(order):
        item = items[position]
        if isinstance(item, dict) and DIRECTIVE in item:
            position += 1
            continue
        if _same_merge_key(item, order[seen], merge_key):
            position += 1
        seen += 1
    if position < len(items) and seen >= len(order):
        raise _Failure(f"The order in patch list:\n{go_sprint(patch_items)}\n doesn't match "
                       f"{SET_ELEMENT_ORDER} list:\n{go_sprint(order)}\n")


def _delete_from_primitive_list(out: dict[str, Any], key: str, value: Any) -> None:
    name = _directive_target(key, DELETE_FROM_PRIMITIVE_LIST, _BAD_PRIMITIVE_LIST)
    if value is None:
        out.pop(name, None)
        return
    current = out.get(name)
    if not isinstance(current, list):
        return
    if not isinstance(value, list):
        raise _Failure(f"expected a slice, but received a {_go_kind(value)}")
    doomed = {scalar_key(v) for v in value if not isinstance(v, dict | list)}
    out[name] = [v for v in current if isinstance(v, dict | list) or scalar_key(v) not in doomed]


def _fresh(value: Any, schema: Schema) -> Any:
    """A patch value the live object does not have, with its directives and nulls applied."""
    if isinstance(value, dict):
        return _merge_map({}, value, schema)
    if isinstance(value, list):
        if schema.patch_strategy == "merge":
            return _merge_list([], value, schema)
        item_schema = schema.item
        return [_fresh(item, item_schema) if isinstance(item, dict | list) else item for item in value]
    return value


# -- lists -----------------------------------------------------------------------------------------


def _merge_list(original: list[Any], patch: list[Any], schema: Schema) -> list[Any]:
    """Merge two lists with the ``merge`` strategy (``mergeSlice``)."""
    if not original and not patch:
        return original
    element = _element_kind(original, patch)
    if element != "map":
        return _reorder(_unique(original + patch), patch, original, "")
    merge_key = schema.merge_key
    if not merge_key:
        raise _Failure("cannot merge lists without merge key for type map")
    original, patch = _special_items(original, patch, merge_key, schema)
    merged = list(original)
    where = {scalar_key(item[merge_key]): i for i, item in reversed(list(enumerate(merged)))
             if isinstance(item, dict) and merge_key in item and _hashable(item[merge_key])}
    item_schema = schema.item
    for item in patch:
        if merge_key not in item:
            raise _Failure(f"map: {go_sprint(item)} does not contain declared merge key: {merge_key}")
        value = item[merge_key]
        index = where.get(scalar_key(value)) if _hashable(value) else None
        if index is None:
            if _hashable(value):
                where[scalar_key(value)] = len(merged)
            merged.append(_fresh(item, item_schema))
        else:
            merged[index] = _merge_map(merged[index], item, item_schema)
    return _reorder(merged, patch, original, merge_key)


def _special_items(original: list[Any], patch: list[Any], merge_key: str,
                   schema: Schema) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch`` list items; returns the live items left and the ordinary patch items."""
    ordinary: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            ordinary.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _Failure(f"map: {go_sprint(item)} does not contain declared merge key: {merge_key}")
            doomed = item[merge_key]
            original = [o for o in original
                        if not (isinstance(o, dict) and merge_key in o and json_equal(o[merge_key], doomed))]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise _Failure("merging lists cannot yet be specified in the patch")
        else:
            raise _Failure(f"unknown patch type: {go_sprint(directive)} in map: {go_sprint(item)}")
    if replace:
        item_schema = schema.item
        return [_fresh(item, item_schema) for item in ordinary], []
    return original, ordinary


def _element_kind(*lists: list[Any]) -> str:
    kind = ""
    for items in lists:
        for item in items:
            current = "map" if isinstance(item, dict) else "list" if isinstance(item, list) else "scalar"
            if current == "list":
                raise _Failure(_NO_LIST_OF_LISTS, 422)
            if kind and current != kind:
                raise _Failure(f"list element types are not identical: {go_sprint(list(lists))}")
            kind = current
    return kind


def _reorder(merged: list[Any], order: list[Any], original: list[Any], merge_key: str) -> list[Any]:
    """Put the items named in ``order`` in that order and the others in their ``original`` order,
    then interleave the two runs by original position (``normalizeElementOrder``)."""
    identity = _identity(merge_key)
    if any(identity(item) is None for item in merged):
        return merged  # items that cannot be told apart keep their order
    ordered_positions = _positions(order, identity)
    server_positions = _positions(original, identity)
    ordered = [item for item in merged if identity(item) in ordered_positions]
    server_only = [item for item in merged if identity(item) not in ordered_positions]
    ordered.sort(key=lambda item: ordered_positions[identity(item)])
    server_only.sort(key=lambda item: server_positions.get(identity(item), len(server_positions)))
    return _interleave(server_only, ordered, server_positions, identity)


def _interleave(server_only: list[Any], ordered: list[Any], server_positions: dict[Any, int],
                identity: Any) -> list[Any]:
    """``mergeSortedSlice``: take a live-only item first only if both items are live and it stood
    before the patch item; otherwise the patch item comes first."""
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(ordered):
        if i >= len(server_only):
            out.append(ordered[j])
            j += 1
        elif j >= len(ordered):
            out.append(server_only[i])
            i += 1
        else:
            left = server_positions.get(identity(server_only[i]), -1)
            right = server_positions.get(identity(ordered[j]), -1)
            if left >= 0 and right >= 0 and left < right:
                out.append(server_only[i])
                i += 1
            else:
                out.append(ordered[j])
                j += 1
    return out


def _identity(merge_key: str) -> Any:
    """How items are recognised: by merge key value (objects) or by value (primitives)."""
    def by_key(item: Any) -> Any:
        if not isinstance(item, dict):
            raise _Failure(f"expected a map, but received a {_go_kind(item)}")
        if merge_key not in item:
            raise _Failure(f"map: {go_sprint(item)} does not contain declared merge key: {merge_key}")
        value = item[merge_key]
        return scalar_key(value) if _hashable(value) else None

    def by_value(item: Any) -> Any:
        return scalar_key(item) if _hashable(item) else None

    return by_key if merge_key else by_value


def _positions(items: list[Any], identity: Any) -> dict[Any, int]:
    positions: dict[Any, int] = {}
    for index, item in enumerate(items):
        key = identity(item)
        if key is not None:
            positions.setdefault(key, index)
    return positions


def _unique(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out: list[Any] = []
    for item in items:
        key = scalar_key(item) if _hashable(item) else None
        if key is None or key not in seen:
            out.append(item)
            if key is not None:
                seen.add(key)
    return out


def _same_merge_key(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return json_equal(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise _Failure(f"expected a map, but received a {_go_kind(item)}")
        if merge_key not in item:
            raise _Failure(f"map: {go_sprint(item)} does not contain declared merge key: {merge_key}")
    return json_equal(left[merge_key], right[merge_key])


def _hashable(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _go_kind(value: Any) -> str:
    """``reflect.Kind`` names of decoded JSON values, for Go's type-assertion messages."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "invalid"
