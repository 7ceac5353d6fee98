"""Field paths, sets of field paths, and their FieldsV1 encoding (sigs.k8s.io/structured-merge-diff).

A path element is kept as the very string FieldsV1 uses for it, which makes it hashable, cheap to
compare and free to encode:

- ``f:<name>``: a field of an object (or a key of a map);
- ``k:<json object>``: the item of a keyed list, by its key fields (``k:{"name":"nginx"}``, keys
  sorted, compact JSON);
- ``v:<json value>``: the item of a set list (``v:"example.com/finalizer"``);
- ``i:<n>``: the item of a list by position (only for lists that are neither keyed nor sets).

A :class:`FieldSet` is a trie of such elements. A path is a *member* when the set contains it
itself, not just things below it. FieldsV1 writes a member without children as ``{}`` and a member
with children with an extra ``".": {}``. Sets are built once (``insert``) and then treated as
immutable values: every operation returns a new set and may share untouched subtrees.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

__all__ = ["FieldSet", "field_element", "index_element", "key_element", "render_path", "value_element"]

Path = tuple[str, ...]


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def field_element(name: str) -> str:
    return "f:" + name


def key_element(keys: Mapping[str, Any]) -> str:
    return "k:" + _compact(dict(keys))


def value_element(value: Any) -> str:
    return "v:" + _compact(value)


def index_element(index: int) -> str:
    return f"i:{index}"


def _canonical(element: str) -> str:
    """Re-encode a ``k:``/``v:`` element read from storage so it matches the ones computed here."""
    if element[:2] in ("k:", "v:"):
        try:
            return element[:2] + _compact(json.loads(element[2:]))
        except ValueError:
            return element
    return element


def _value_order(value: Any) -> tuple[Any, ...]:
    # structured-merge-diff orders values null < numbers < strings < booleans < lists < maps.
    if value is None:
        return (0,)
    if isinstance(value, bool):
        return (3, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, list):
        return (4, tuple(_value_order(v) for v in value))
    return (5, tuple((k, _value_order(v)) for k, v in sorted(value.items())))


@lru_cache(maxsize=4096)
def _order(element: str) -> tuple[Any, ...]:
    """Sort key of an element: fields < keys < values < indices, each in value order."""
    kind, body = element[:2], element[2:]
    if kind == "f:":
        return (0, body)
    try:
        if kind == "k:":
            keys = json.loads(body)
            return (1, tuple((k, _value_order(v)) for k, v in sorted(keys.items())))
        if kind == "v:":
            return (2, _value_order(json.loads(body)))
        if kind == "i:":
            return (3, int(body))
    except (ValueError, AttributeError):
        pass
    return (4, element)


def render_path(path: Sequence[str]) -> str:
    """A path as Kubernetes prints it in conflicts: ``.spec.containers[name="nginx"].image``."""
    out: list[str] = []
    for element in path:
        kind, body = element[:2], element[2:]
        if kind == "f:":
            out.append("." + body)
        elif kind == "k:":
            keys = json.loads(body)
            out.append("[" + ",".join(f"{k}={_show(v)}" for k, v in sorted(keys.items())) + "]")
        elif kind == "v:":
            out.append(f"[={_show(json.loads(body))}]")
        else:
            out.append(f"[{body}]")
    return "".join(out)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value) if not isinstance(value, dict | list) else _compact(value)


class FieldSet:
    """A set of field paths (see the module docstring)."""

    __slots__ = ("children", "members")

    def __init__(self, members: set[str] | None = None, children: dict[str, FieldSet] | None = None) -> None:
        self.members: set[str] = members if members is not None else set()
        self.children: dict[str, FieldSet] = children if children is not None else {}

    # -- building -------------------------------------------------------------------------------

    def insert(self, path: Sequence[str]) -> None:
        """Add ``path`` as a member (only while building a new set)."""
        node = self
        for element in path[:-1]:
            node = node.child_for_insert(element)
        if path:
            node.members.add(path[-1])

    def child_for_insert(self, element: str) -> FieldSet:
        """The child set under ``element``, created if missing (only while building a new set)."""
        child = self.children.get(element)
        if child is None:
            child = self.children[element] = FieldSet()
        return child

    @classmethod
    def of(cls, *paths: Sequence[str]) -> FieldSet:
        result = cls()
        for path in paths:
            result.insert(path)
        return result

    # -- queries --------------------------------------------------------------------------------

    def is_empty(self) -> bool:
        return not self.members and not self.children

    def has(self, path: Sequence[str]) -> bool:
        node: FieldSet | None = self
        for element in path[:-1]:
            node = node.children.get(element) if node is not None else None
            if node is None:
                return False
        return bool(path) and node is not None and path[-1] in node.members

    def paths(self, prefix: Path = ()) -> Iterator[Path]:
        """Every member path, members of a level first, each level in structured-merge-diff order."""
        for element in sorted(self.members, key=_order):
            yield (*prefix, element)
        for element in sorted(self.children, key=_order):
            yield from self.children[element].paths((*prefix, element))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self.members == other.members and self.children == other.children

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FieldSet({[list(p) for p in self.paths()]!r})"

    # -- algebra (all return new sets, possibly sharing subtrees with the operands) ----------------

    def union(self, other: FieldSet) -> FieldSet:
        if other.is_empty():
            return self
        if self.is_empty():
            return other
        children = dict(self.children)
        for element, child in other.children.items():
            mine = children.get(element)
            children[element] = child if mine is None else mine.union(child)
        return FieldSet(self.members | other.members, children)

    def difference(self, other: FieldSet) -> FieldSet:
        """Paths of ``self`` that are not paths of ``other`` (exact paths: a parent in ``other``
        does not remove its children from ``self``)."""
        if other.is_empty() or self.is_empty():
            return self
        children: dict[str, FieldSet] = {}
        for element, child in self.children.items():
            theirs = other.children.get(element)
            rest = child if theirs is None else child.difference(theirs)
            if not rest.is_empty():
                children[element] = rest
        return FieldSet(self.members - other.members, children)

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like ``difference``, but a member of ``other`` also removes everything below it."""
        if other.is_empty() or self.is_empty():
            return self
        children: dict[str, FieldSet] = {}
        for element, child in self.children.items():
            if element in other.members:
                continue
            theirs = other.children.get(element)
            rest = child if theirs is None else child.recursive_difference(theirs)
            if not rest.is_empty():
                children[element] = rest
        return FieldSet(self.members - other.members, children)

    def intersection(self, other: FieldSet) -> FieldSet:
        children: dict[str, FieldSet] = {}
        for element, child in self.children.items():
            theirs = other.children.get(element)
            if theirs is not None:
                both = child.intersection(theirs)
                if not both.is_empty():
                    children[element] = both
        return FieldSet(self.members & other.members, children)

    def with_fields_as_members(self) -> FieldSet:
        """Also make every field that has children a member (structured-merge-diff's
        ``EnsureNamedFieldsAreMembers``; here every object key counts as a named field)."""
        children = {e: c.with_fields_as_members() for e, c in self.children.items()}
        named = {e for e in self.children if e.startswith("f:")}
        return FieldSet(self.members | named, children)

    # -- FieldsV1 -------------------------------------------------------------------------------

    def to_fields_v1(self) -> dict[str, Any]:
        """Encode as a FieldsV1 object, keys in structured-merge-diff order."""
        out: dict[str, Any] = {}
        for element in sorted(self.members | self.children.keys(), key=_order):
            child = self.children.get(element)
            if child is None:
                out[element] = {}
            elif element in self.members:
                out[element] = {".": {}, **child.to_fields_v1()}
            else:
                out[element] = child.to_fields_v1()
        return out

    @classmethod
    def from_fields_v1(cls, encoded: Mapping[str, Any]) -> FieldSet:
        """Decode a FieldsV1 object; malformed parts (non-object values) are ignored."""
        result = cls()
        for element, value in encoded.items():
            if element == "." or not isinstance(value, Mapping):
                continue
            element = _canonical(element)
            if not value or "." in value:
                result.members.add(element)
            child = cls.from_fields_v1(value)
            if not child.is_empty():
                existing = result.children.get(element)
                result.children[element] = child if existing is None else existing.union(child)
        return result
