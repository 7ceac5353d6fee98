"""Schema-aware walks over objects: field sets, comparisons, apply merges and removals.

These are the value operations of sigs.k8s.io/structured-merge-diff ``typed`` package that
server-side apply and managed-fields tracking need, over plain JSON values and a :class:`Schema`:

- ``to_field_set``: the fields a value sets (leaves, list items, empty objects and nulls);
- ``compare``: which fields were added, modified and removed from one value to another;
- ``merge``: an apply configuration merged into a live object (the configuration wins);
- ``remove_items``: a value without the fields of a set (and everything below them).

All four share one notion of a list item's path element (``item_element``). Values are never
mutated; new containers are built only along changed paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ._json import json_equal
from .fieldpath import FieldSet, field_element, index_element, key_element, render_path, value_element
from .schema import Schema

__all__ = ["Comparison", "TypedError", "compare", "item_element", "merge", "remove_items", "to_field_set"]


class _Missing:
    """Marks an absent field (as opposed to a field whose value is ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class TypedError(ValueError):
    """A value that does not fit its schema (a keyed list item without its key, a duplicate key)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    added: FieldSet
    modified: FieldSet
    removed: FieldSet

    def changed(self) -> FieldSet:
        """Added or modified fields: what a writer takes over from other managers."""
        return self.modified.union(self.added)

    def without(self, ignored: FieldSet) -> Comparison:
        """The comparison with ``ignored`` paths and everything below them left out."""
        if ignored.is_empty():
            return self
        return Comparison(self.added.recursive_difference(ignored),
                          self.modified.recursive_difference(ignored),
                          self.removed.recursive_difference(ignored))


def item_element(item: Any, schema: Schema, index: int) -> str:
    """The path element of a list item: ``k:`` for keyed lists, ``v:`` for sets, else ``i:``."""
    if schema.list_type == "map":
        if not isinstance(item, dict):
            raise TypedError("associative list with keys may not have non-map elements")
        keys: dict[str, Any] = {}
        for name in schema.keys:
            if name in item:
                keys[name] = item[name]
            elif name in schema.key_defaults:
                keys[name] = schema.key_defaults[name]
            else:
                raise TypedError(f'associative list with keys has an element that omits key field "{name}" '
                                 f"(and doesn't have default value)")
        return key_element(keys)
    if schema.list_type == "set":
        if isinstance(item, dict | list):
            raise TypedError("associative list without keys has an element that's a map or list type")
        return value_element(item)
    return index_element(index)


# -- field sets ----------------------------------------------------------------------------------


def to_field_set(value: dict[str, Any], schema: Schema, *, strict: bool = True) -> FieldSet:
    """The fields ``value`` sets. ``strict`` rejects duplicate list keys (as apply configurations must)."""
    result = FieldSet()
    _object_fields(value, schema, result, (), strict)
    return result


def _object_fields(value: dict[str, Any], schema: Schema, node: FieldSet, path: tuple[str, ...],
                   strict: bool) -> None:
    for name, child in value.items():
        element = field_element(name)
        child_schema = schema.child(name)
        if isinstance(child, dict):
            if child_schema.atomic or not child:
                node.members.add(element)
            else:
                _object_fields(child, child_schema, node.child_for_insert(element), (*path, element), strict)
        elif isinstance(child, list):
            if child_schema.list_type == "atomic":
                node.members.add(element)
            elif child:
                # A keyed list or set contributes its items; an empty one contributes nothing.
                _list_fields(child, child_schema, node.child_for_insert(element), (*path, element), strict)
        else:
            node.members.add(element)


def _list_fields(items: list[Any], schema: Schema, node: FieldSet, path: tuple[str, ...], strict: bool) -> None:
    item_schema = schema.item
    for index, item in enumerate(items):
        element = _element_at(item, schema, index, path)
        if strict and element in node.members:
            raise TypedError(f"{render_path(path)}: duplicate entries for key {render_path((element,))}")
        node.members.add(element)
        if isinstance(item, dict) and item and not item_schema.atomic:
            _object_fields(item, item_schema, node.child_for_insert(element), (*path, element), strict)


def _element_at(item: Any, schema: Schema, index: int, path: tuple[str, ...]) -> str:
    try:
        return item_element(item, schema, index)
    except TypedError as exc:
        raise TypedError(f"{render_path(path)}: element {index}: {exc}") from None


# -- comparison ----------------------------------------------------------------------------------


def compare(lhs: dict[str, Any], rhs: dict[str, Any], schema: Schema) -> Comparison:
    """Fields added, modified and removed going from ``lhs`` to ``rhs``.

    A leaf (scalar, null, atomic value, or a pair of empty containers) is added, removed or
    modified by value; an object or list item that appears or disappears is itself added or
    removed, along with everything below it. Equal subtrees are skipped wholesale.
    """
    added, modified, removed = FieldSet(), FieldSet(), FieldSet()
    _compare(lhs, rhs, schema, (), added, modified, removed)
    return Comparison(added, modified, removed)


def _compare(lhs: Any, rhs: Any, schema: Schema, path: tuple[str, ...],
             added: FieldSet, modified: FieldSet, removed: FieldSet) -> None:
    if lhs is rhs:
        return
    if isinstance(lhs, dict) or isinstance(rhs, dict):
        left = lhs if isinstance(lhs, dict) else ({} if lhs is None or lhs is MISSING else None)
        right = rhs if isinstance(rhs, dict) else ({} if rhs is None or rhs is MISSING else None)
        if left is None or right is None or schema.atomic or (not left and not right):
            _leaf(lhs, rhs, path, added, modified, removed)
            return
        if left != right:
            for name in _union_keys(left, right):
                element = field_element(name)
                _compare(left.get(name, MISSING), right.get(name, MISSING), schema.child(name),
                         (*path, element), added, modified, removed)
        _appeared(lhs, rhs, path, added, removed)
        return
    if isinstance(lhs, list) or isinstance(rhs, list):
        left_items = lhs if isinstance(lhs, list) else ([] if lhs is None or lhs is MISSING else None)
        right_items = rhs if isinstance(rhs, list) else ([] if rhs is None or rhs is MISSING else None)
        if (left_items is None or right_items is None or schema.list_type == "atomic"
                or (not left_items and not right_items)):
            _leaf(lhs, rhs, path, added, modified, removed)
            return
        if left_items != right_items:
            left_index = _index_items(left_items, schema, path)
            right_index = _index_items(right_items, schema, path)
            item_schema = schema.item
            for element in _union_keys(left_index, right_index):
                _compare(left_index.get(element, MISSING), right_index.get(element, MISSING), item_schema,
                         (*path, element), added, modified, removed)
        _appeared(lhs, rhs, path, added, removed)
        return
    _leaf(lhs, rhs, path, added, modified, removed)


def _leaf(lhs: Any, rhs: Any, path: tuple[str, ...], added: FieldSet, modified: FieldSet,
          removed: FieldSet) -> None:
    if lhs is MISSING:
        added.insert(path)
    elif rhs is MISSING:
        removed.insert(path)
    elif not json_equal(lhs, rhs):
        modified.insert(path)


def _appeared(lhs: Any, rhs: Any, path: tuple[str, ...], added: FieldSet, removed: FieldSet) -> None:
    if path and lhs is MISSING:
        added.insert(path)
    elif path and rhs is MISSING:
        removed.insert(path)


def _union_keys(left: dict[str, Any], right: dict[str, Any]) -> Iterable[str]:
    yield from left
    for key in right:
        if key not in left:
            yield key


def _index_items(items: list[Any], schema: Schema, path: tuple[str, ...]) -> dict[str, Any]:
    """Items by path element; a repeated key keeps its first item (live objects may hold duplicates)."""
    index: dict[str, Any] = {}
    for position, item in enumerate(items):
        index.setdefault(_element_at(item, schema, position, path), item)
    return index


# -- apply merge -----------------------------------------------------------------------------------


def merge(live: dict[str, Any], config: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """``config`` merged into ``live``: config values win, objects merge per field, keyed lists and
    sets merge per item (in an order that keeps both lists' relative orders, the config's first),
    atomic values are replaced. A ``null`` in ``config`` leaves the field out of the result."""
    result = _merge(live, config, schema, ())
    assert isinstance(result, dict)
    return result


def _merge(lhs: Any, rhs: Any, schema: Schema, path: tuple[str, ...]) -> Any:
    if isinstance(rhs, dict):
        if schema.atomic or not isinstance(lhs, dict) or (not lhs and not rhs):
            return _without_nulls(rhs)
        if not rhs:
            return lhs
        out = dict(lhs)
        for name, value in rhs.items():
            if value is None:
                out.pop(name, None)
            else:
                out[name] = _merge(lhs.get(name, MISSING), value, schema.child(name), (*path, field_element(name)))
        return out
    if isinstance(rhs, list):
        if schema.list_type == "atomic" or not isinstance(lhs, list) or (not lhs and not rhs):
            return _without_nulls(rhs)
        if not rhs:
            return lhs
        return _merge_items(lhs, rhs, schema, path)
    return rhs


def _merge_items(lhs: list[Any], rhs: list[Any], schema: Schema, path: tuple[str, ...]) -> list[Any]:
    """Merge two keyed lists (structured-merge-diff's ordering: walk both lists, emit left-only
    items where they stand, and shared items in the right list's order)."""
    item_schema = schema.item
    left_elements = [_element_at(item, schema, i, path) for i, item in enumerate(lhs)]
    right_elements = [_element_at(item, schema, i, path) for i, item in enumerate(rhs)]
    left_seen: dict[str, Any] = {}
    for element, item in zip(left_elements, lhs, strict=True):
        # A key repeated in the live list merges with nothing: the configuration replaces it.
        left_seen[element] = None if element in left_seen else item
    right_seen = dict(zip(right_elements, rhs, strict=True))
    shared = iter([e for e in right_elements if e in left_seen])
    next_shared = next(shared, None)
    merged: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(lhs) or ri < len(rhs):
        if li < len(lhs) and ri < len(rhs):
            element = left_elements[li]
            if element == right_elements[ri]:
                merged.add(element)
                out.append(_merge(left_seen[element], right_seen[element], item_schema, (*path, element)))
                li += 1
                ri += 1
                next_shared = next(shared, None)
                continue
            if element in right_seen and next_shared is not None and next_shared != element:
                li += 1  # a shared item, but not the one due now: it comes in the right list's order
                continue
        if li < len(lhs):
            element = left_elements[li]
            if element not in right_seen:
                out.append(lhs[li])
                li += 1
                continue
            if element in merged:
                li += 1
                continue
        if ri < len(rhs):
            element = right_elements[ri]
            merged.add(element)
            out.append(_merge(left_seen.get(element, MISSING), right_seen[element], item_schema, (*path, element)))
            ri += 1
            if next_shared is not None and next_shared == element:
                next_shared = next(shared, None)
    return out


def _without_nulls(value: Any) -> Any:
    """``value`` without ``null`` object members, at any depth; copies only what changes."""
    if isinstance(value, dict):
        cleaned = {k: _without_nulls(v) for k, v in value.items() if v is not None}
        if len(cleaned) == len(value) and all(cleaned[k] is value[k] for k in cleaned):
            return value
        return cleaned
    if isinstance(value, list):
        items = [_without_nulls(v) for v in value]
        return value if all(n is o for n, o in zip(items, value, strict=True)) else items
    return value


# -- removal ---------------------------------------------------------------------------------------


def remove_items(value: dict[str, Any], paths: FieldSet, schema: Schema) -> dict[str, Any]:
    """``value`` without the member paths of ``paths`` and everything below them. An object or
    list emptied by the removal is removed too (structured-merge-diff leaves it null)."""
    result = _remove_from_object(value, paths, schema, ())
    return {} if result is None else result


def _remove_from_object(value: dict[str, Any], paths: FieldSet, schema: Schema,
                        path: tuple[str, ...]) -> dict[str, Any] | None:
    """The object without ``paths``, ``value`` itself if nothing changed, None if it became empty."""
    out: dict[str, Any] | None = None
    for element in paths.members:
        name = element[2:]
        if element.startswith("f:") and name in value:
            if out is None:
                out = dict(value)
            del out[name]
    for element, below in paths.children.items():
        name = element[2:]
        if not element.startswith("f:") or name not in value or element in paths.members:
            continue
        child, child_schema = value[name], schema.child(name)
        if isinstance(child, dict) and not child_schema.atomic:
            new_child: Any = _remove_from_object(child, below, child_schema, (*path, element))
        elif isinstance(child, list) and child_schema.list_type != "atomic":
            new_child = _remove_from_list(child, below, child_schema, (*path, element))
        else:
            continue
        if new_child is child:
            continue
        if out is None:
            out = dict(value)
        if new_child is None:
            del out[name]
        else:
            out[name] = new_child
    if out is None:
        return value
    return out or None


def _remove_from_list(items: list[Any], paths: FieldSet, schema: Schema, path: tuple[str, ...]) -> list[Any] | None:
    item_schema = schema.item
    out: list[Any] = []
    changed = False
    for index, item in enumerate(items):
        element = _element_at(item, schema, index, path)
        if element in paths.members:
            changed = True
            continue
        below = paths.children.get(element)
        if below is not None and isinstance(item, dict) and not item_schema.atomic:
            new_item = _remove_from_object(item, below, item_schema, (*path, element))
            if new_item is not item:
                changed = True
                item = {} if new_item is None else new_item
        out.append(item)
    if not changed:
        return items
    return out or None
