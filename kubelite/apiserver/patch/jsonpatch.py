"""JSON patch (RFC 6902), ``application/json-patch+json``.

Sent by ``kubectl rollout undo`` (``replace`` of ``/spec/template`` and ``/metadata/annotations``),
``kubectl patch --type=json`` and the Python client when the body is a list. Semantics follow
``gopkg.in/evanphx/json-patch.v4``, the library kube-apiserver uses:

- paths are JSON pointers (RFC 6901, ``~1`` is ``/`` and ``~0`` is ``~``); an array index may be
  negative (counted from the end) and ``-`` appends in ``add``;
- ``add`` onto an existing member replaces it, into an array inserts before the index (index ==
  length appends); ``replace`` of a missing object member adds it (v4 does not check);
  ``remove`` of a missing member fails; ``move`` is get + remove + add; ``copy`` is get + add;
  ``test`` compares JSON values (a missing member tests equal to ``null``);
- the root itself (path ``""``) cannot be the target of an operation.

Errors, as kube-apiserver answers them: a patch that is not an array of objects is 400 BadRequest
with the Go decoder's message; more than 10000 operations is 413; an operation that does not apply
is 422 Invalid ``the server rejected our request due to an error in our request`` (the detail is
chained as ``__cause__``).

Copies are cheap: containers are copied on first write only; untouched subtrees are shared with
``doc`` and inserted values with ``ops``. The result's top level and ``metadata`` are always fresh.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from kubelite.api.errors import APIError, too_large

from ._copy import detached
from ._errors import cannot_unmarshal, generic_invalid
from ._json import json_equal, json_type_name

__all__ = ["MAX_OPERATIONS", "apply_json_patch"]

MAX_OPERATIONS = 10000
_INDEX = re.compile(r"[+-]?[0-9]+")


class _OpError(Exception):
    """An operation that does not apply; becomes the generic 422."""


def apply_json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Return ``doc`` with the JSON patch ``ops`` applied in order; inputs are left untouched."""
    if ops is None:
        ops = []  # Go decodes a `null` patch as an empty one.
    if not isinstance(ops, list):
        raise cannot_unmarshal(json_type_name(ops), "jsonpatch.Patch")
    for op in ops:
        if not isinstance(op, dict):
            raise cannot_unmarshal(json_type_name(op), "jsonpatch.Operation")
    if len(ops) > MAX_OPERATIONS:
        raise too_large(f"Request entity too large: The allowed maximum operations in a JSON patch is "
                        f"{MAX_OPERATIONS}, got {len(ops)}")
    state = _Document(doc)
    for op in ops:
        try:
            state.apply(op)
        except _OpError as exc:
            error: APIError = generic_invalid(str(exc))
            raise error from exc
    result = state.root
    return detached(result, doc)


class _Document:
    """The document being patched, with copy-on-write bookkeeping.

    ``owned`` holds the ids of the containers this patch created; those are mutated in place, every
    other container (from ``doc`` or from an operation's value) is copied before its first change.
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        self.root: dict[str, Any] = dict(doc)
        self.owned: set[int] = {id(self.root)}
        self._keep: list[Any] = [self.root]  # keeps owned ids alive, so they are never reused

    def apply(self, op: dict[str, Any]) -> None:
        kind = op.get("op")
        if not isinstance(kind, str):
            kind = "unknown"
        if kind == "add":
            parent, key = self._parent(_string(op, "path"), kind)
            _add(parent, key, op.get("value"))
        elif kind == "remove":
            parent, key = self._parent(_string(op, "path"), kind)
            _remove(parent, key)
        elif kind == "replace":
            path = _string(op, "path")
            parent, key = self._parent(path, kind)
            if isinstance(parent, list):
                parent[_index(parent, key, for_insert=False)] = op.get("value")
            else:
                parent[key] = op.get("value")
        elif kind == "move":
            parent, key = self._parent(_string(op, "from", "operation, missing from field"), kind, "from ")
            value = _get(parent, key)
            _remove(parent, key)
            target, tkey = self._parent(_string(op, "path"), kind, "destination ")
            _add(target, tkey, value)
        elif kind == "copy":
            parent, key = self._parent(_string(op, "from", "operation, missing from field"), kind, "from ")
            # A deep copy: the source may be a container this patch owns and keeps writing to.
            value = copy.deepcopy(_get(parent, key))
            target, tkey = self._parent(_string(op, "path"), kind, "destination ")
            _add(target, tkey, value)
        elif kind == "test":
            path = _string(op, "path")
            parent, key = self._parent(path, kind)
            actual = _get(parent, key) if isinstance(parent, list) else parent.get(key)
            if not json_equal(actual, op.get("value")):
                raise _OpError(f"testing value {path} failed: test failed")
        else:
            raise _OpError(f"Unexpected kind: {kind}")

    def _parent(self, path: str, kind: str, which: str = "") -> tuple[Any, str]:
        """The (owned, writable) container holding the last token of ``path``, and that token."""
        if not path.startswith("/"):
            raise _OpError(f'{kind} operation does not apply: doc is missing {which}path: "{path}"')
        tokens = [_unescape(t) for t in path[1:].split("/")]
        node: Any = self.root
        for token in tokens[:-1]:
            if isinstance(node, dict):
                child = node.get(token)
            elif isinstance(node, list) and _INDEX.fullmatch(token):
                position = int(token)
                child = node[position] if -len(node) <= position < len(node) else None
            else:
                child = None
            if not isinstance(child, dict | list):
                raise _OpError(f'{kind} operation does not apply: doc is missing {which}path: "{path}"')
            if id(child) not in self.owned:
                child = dict(child) if isinstance(child, dict) else list(child)
                self.owned.add(id(child))
                self._keep.append(child)
                if isinstance(node, dict):
                    node[token] = child
                else:
                    node[int(token)] = child
            node = child
        return node, tokens[-1]


def _string(op: dict[str, Any], field: str, missing: str = "") -> str:
    value = op.get(field)
    if value is None:
        raise _OpError(missing or f"operation missing {field} field: missing value")
    if not isinstance(value, str):
        raise _OpError(f"json: cannot unmarshal {json_type_name(value)} into Go value of type string")
    return value


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _index(array: list[Any], token: str, *, for_insert: bool) -> int:
    """Resolve an array index token; v4 accepts negative indices counted from the end."""
    if not _INDEX.fullmatch(token):
        raise _OpError(f'strconv.Atoi: parsing "{token}": invalid syntax')
    position = int(token)
    size = len(array) + (1 if for_insert else 0)
    if position >= size or position < -size:
        raise _OpError(f"Unable to access invalid index: {position}: invalid index referenced")
    return position + size if position < 0 else position


def _get(parent: Any, key: str) -> Any:
    if isinstance(parent, list):
        return parent[_index(parent, key, for_insert=False)]
    if key not in parent:
        raise _OpError(f"Unable to get nonexistent key: {key}: missing value")
    return parent[key]


def _add(parent: Any, key: str, value: Any) -> None:
    if isinstance(parent, list):
        if key == "-":
            parent.append(value)
        else:
            parent.insert(_index(parent, key, for_insert=True), value)
    else:
        parent[key] = value


def _remove(parent: Any, key: str) -> None:
    if isinstance(parent, list):
        del parent[_index(parent, key, for_insert=False)]
    elif key in parent:
        del parent[key]
    else:
        raise _OpError(f"Unable to remove nonexistent key: {key}: missing value")
