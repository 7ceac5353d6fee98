"""Server-side field validation: which fields of a request body the kind's schema does not know.

kube-apiserver decodes every write with a strict JSON decoder and, depending on the ``fieldValidation``
query parameter, fails the request (``Strict``, what kubectl sends), answers with one ``Warning`` header per
unknown field (``Warn``, the default) or says nothing (``Ignore``). This module gives the same verdicts:

- ``unknown_fields(kind, obj)`` lists the dotted paths the decoder would report, in document order:
  ``spec.replicass``, ``spec.template.spec.containers[0].imagee``, ``metadata.labelz``; map values are
  addressed as ``.key`` and list items as ``[i]``, as sigs.k8s.io/json does.
- ``strict_error(kind, unknown)`` is the 400 BadRequest kube-apiserver returns for ``Strict``.
- ``unknown_field_warnings(unknown)`` and ``warning_header(text)`` build the ``Warn`` answer.

The schemas are compiled once into a table of nodes (object → known properties, array → item node, map →
value node, leaf, open), so a check is one pass over the object with dict look-ups and no schema
resolution: cheap enough for every write.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from kubelite.api.errors import APIError, bad_request
from kubelite.api.registry import Kind

from .schemas import REF_PREFIX, Schema, schema_name, schemas

_LEAF, _OPEN, _OBJECT, _ARRAY, _MAP = range(5)


class _Node:
    """One compiled schema: what a value at this place may contain."""

    __slots__ = ("child", "kind", "props")

    def __init__(self, kind: int = _LEAF) -> None:
        self.kind = kind
        self.props: dict[str, _Node] = {}
        self.child: _Node | None = None


_LEAF_NODE = _Node(_LEAF)
_OPEN_NODE = _Node(_OPEN)


class _Compiler:
    """Turns named component schemas into shared `_Node`s; recursive types become cycles of nodes."""

    def __init__(self, table: Mapping[str, Schema]) -> None:
        self.table = table
        self.named: dict[str, _Node] = {}

    def named_node(self, name: str) -> _Node:
        node = self.named.get(name)
        if node is None:
            node = self.named[name] = _Node()
            self._fill(node, self.table[name])
        return node

    def node(self, schema: Schema) -> _Node:
        target = _ref_of(schema)
        if target is not None:
            return self.named_node(target)
        node = _Node()
        self._fill(node, schema)
        return node

    def _fill(self, node: _Node, schema: Schema) -> None:
        """Compile a schema that is not itself a reference (named schemas and inline ones)."""
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            node.kind = _OPEN
        elif schema.get("x-kubernetes-int-or-string") or "oneOf" in schema:
            node.kind = _LEAF
        elif schema.get("type") == "array":
            node.kind = _ARRAY
            node.child = self.node(schema.get("items", {}))
        elif "properties" in schema:
            node.kind = _OBJECT
            node.props = {key: self.node(prop) for key, prop in schema["properties"].items()}
        elif isinstance(schema.get("additionalProperties"), dict):
            node.kind = _MAP
            node.child = self.node(schema["additionalProperties"])
        elif schema.get("type") == "object" or not schema:
            node.kind = _OPEN  # an untyped object (RawExtension-like) takes anything
        else:
            node.kind = _LEAF


def _ref_of(schema: Schema) -> str | None:
    """The schema a property stands for when it is ``$ref`` or ``allOf: [{$ref}]`` (siblings only document)."""
    target = schema.get("$ref")
    if target is None:
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            target = all_of[0].get("$ref")
    if isinstance(target, str) and target.startswith(REF_PREFIX):
        return target[len(REF_PREFIX):]
    return None


@cache
def _compiler() -> _Compiler:
    return _Compiler(schemas())


@cache
def _root(group: str, version: str, kind: str) -> _Node | None:
    name = schema_name(group, version, kind)
    return _compiler().named_node(name) if name is not None else None


def _walk(node: _Node, value: Any, path: str, out: list[str]) -> None:
    kind = node.kind
    if kind == _OBJECT:
        if not isinstance(value, dict):
            return
        props = node.props
        for key, item in value.items():
            child = props.get(key)
            where = f"{path}.{key}" if path else key
            if child is None:
                out.append(where)
            elif item is not None and child.kind > _OPEN:
                _walk(child, item, where, out)
    elif kind == _ARRAY:
        if isinstance(value, list) and node.child is not None and node.child.kind > _OPEN:
            for i, item in enumerate(value):
                _walk(node.child, item, f"{path}[{i}]", out)
    elif kind == _MAP:
        if isinstance(value, dict) and node.child is not None and node.child.kind > _OPEN:
            for key, item in value.items():
                _walk(node.child, item, f"{path}.{key}" if path else key, out)


def unknown_fields_of(group: str, version: str, kind: str, obj: Any) -> list[str]:
    """Unknown field paths of ``obj`` read as ``group/version, Kind=kind`` (e.g. an autoscaling/v1 Scale).

    A kind without a schema has no unknown fields: nothing can be said about it."""
    root = _root(group, version, kind)
    out: list[str] = []
    if root is not None:
        _walk(root, obj, "", out)
    return out


def unknown_fields(kind: Kind, obj: Any) -> list[str]:
    """Dotted paths of the fields of ``obj`` that ``kind``'s schema does not declare, in document order.

    For PATCH, check the patched object rather than the patch, whose strategic-merge directives
    (``$setElementOrder/...``, ``$patch``, ``$retainKeys``) are not fields."""
    return unknown_fields_of(kind.group, kind.version, kind.kind, obj)


def strict_error_of(kind: str, version: str, unknown: list[str]) -> APIError:
    """The 400 of ``fieldValidation=Strict``, e.g. ``Deployment in version "v1" cannot be handled as a
    Deployment: strict decoding error: unknown field "spec.replicass"`` (the version without its group)."""
    listed = ", ".join(f'unknown field "{path}"' for path in unknown)
    return bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: '
                       f"strict decoding error: {listed}")


def strict_error(kind: Kind, unknown: list[str]) -> APIError:
    return strict_error_of(kind.kind, kind.version, unknown)


def unknown_field_warnings(unknown: list[str]) -> list[str]:
    """The warning texts of ``fieldValidation=Warn`` (kubectl prints ``Warning: unknown field "x"``)."""
    return [f'unknown field "{path}"' for path in unknown]


def warning_header(text: str) -> str:
    """One ``Warning`` header value the way kube-apiserver writes it: ``299 - "<text, quoted>"``."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
