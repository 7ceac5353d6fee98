"""``-o jsonpath=TEMPLATE``: the subset of kubectl's JSONPath templates that scripts use.

A template is literal text with ``{...}`` actions:
- paths from the current object: ``{.metadata.name}``, ``{.items[0].spec}``, ``{.items[*].metadata.name}``,
  ``{.items[1:3]}``, ``{.metadata.labels['app.kubernetes.io/name']}``, ``{.spec.*}``, ``{..image}``
  (recursive), filters ``{.status.conditions[?(@.type=="Ready")].status}`` (``==`` and ``!=``);
- quoted text: ``{"\\n"}`` (``\\n``, ``\\t`` and ``\\\\`` escapes);
- ``{range PATH}...{end}``: the inner template once per result, with that result as the current object.

Results print as kubectl does: several results separated by spaces, strings as is, booleans as
``true``/``false``, maps and lists as JSON. A path that matches nothing is an error
(``error: error executing jsonpath ...: ... is not found``), as kubectl's default ``allowMissingKeys=false``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_ACTION = re.compile(r"\{((?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*)\}")
_SEGMENT = re.compile(r"""
    \.\.(?P<recurse>[A-Za-z0-9_-]+|\*)      # ..name
  | \.(?P<field>[A-Za-z0-9_$-]+|\*)        # .name or .*
  | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_-]+)+)\s*(?P<op>==|!=)\s*(?P<fval>"[^"]*"|'[^']*'|[^)\s]+)\)\]
  | \[(?P<quoted>'[^']*'|"[^"]*")\]        # ['key']
  | \[(?P<index>-?\d+|\*|-?\d*:-?\d*)\]    # [0], [*], [1:3]
""", re.VERBOSE)


class JSONPathError(ValueError):
    """The template cannot be parsed, or a path in it matched nothing."""


@dataclass
class _Node:
    kind: str  # "text" | "path" | "range"
    value: str
    body: list[_Node]


def parse(template: str) -> list[_Node]:
    """Parse a template into text, path and range nodes; raises JSONPathError."""
    root: list[_Node] = []
    stack: list[list[_Node]] = [root]
    pos = 0
    for m in _ACTION.finditer(template):
        if m.start() > pos:
            stack[-1].append(_Node("text", template[pos:m.start()], []))
        pos = m.end()
        action = m.group(1).strip()
        if action.startswith('"') and action.endswith('"') and len(action) >= 2:
            text = action[1:-1].replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\")
            stack[-1].append(_Node("text", text, []))
        elif action.startswith("range "):
            node = _Node("range", action[len("range "):].strip(), [])
            stack[-1].append(node)
            stack.append(node.body)
        elif action == "end":
            if len(stack) == 1:
                raise JSONPathError("not in range, nothing to end")
            stack.pop()
        else:
            stack[-1].append(_Node("path", action, []))
    if pos < len(template):
        stack[-1].append(_Node("text", template[pos:], []))
    if len(stack) != 1:
        raise JSONPathError("unclosed action: a {range} has no {end}")
    return root


def evaluate(path: str, data: Any) -> list[Any]:
    """Every value ``path`` selects in ``data``; raises JSONPathError if it is malformed or matches nothing."""
    text = path.strip()
    if text in ("", "@", "$"):
        return [data]
    if text.startswith(("$", "@")):
        text = text[1:]
    if not text.startswith((".", "[")):
        text = "." + text
    values = [data]
    pos = 0
    while pos < len(text):
        m = _SEGMENT.match(text, pos)
        if m is None:
            raise JSONPathError(f"unrecognized character in action: {text[pos:]!r}")
        pos = m.end()
        values = [v for current in values for v in _step(m, current)]
        if not values:
            raise JSONPathError(f"{path} is not found")
    return values


def _step(m: re.Match[str], current: Any) -> list[Any]:
    if m.group("recurse") is not None:
        return _recurse(m.group("recurse"), current)
    if m.group("field") is not None or m.group("quoted") is not None:
        key = m.group("field") if m.group("field") is not None else m.group("quoted")[1:-1]
        if key == "*" and m.group("field") is not None:
            return list(current.values()) if isinstance(current, dict) else list(current) \
                if isinstance(current, list) else []
        return [current[key]] if isinstance(current, dict) and key in current else []
    if m.group("fpath") is not None:
        if not isinstance(current, list):
            return []
        want = m.group("fval").strip("\"'")
        out = []
        for item in current:
            try:
                got = evaluate(m.group("fpath"), item)[0]
            except JSONPathError:
                got = None
            matched = got is not None and _text(got) == want
            if matched == (m.group("op") == "=="):
                out.append(item)
        return out
    index = m.group("index")
    if not isinstance(current, list):
        return []
    if index == "*":
        return list(current)
    if ":" in index:
        start, _, end = index.partition(":")
        return current[int(start) if start else None:int(end) if end else None]
    i = int(index)
    return [current[i]] if -len(current) <= i < len(current) else []


def _recurse(name: str, current: Any) -> list[Any]:
    out: list[Any] = []
    if isinstance(current, dict):
        if name == "*":
            out.extend(current.values())
        elif name in current:
            out.append(current[name])
        for v in current.values():
            out.extend(_recurse(name, v))
    elif isinstance(current, list):
        for v in current:
            out.extend(_recurse(name, v))
    return out


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "<nil>"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def render(template: str, data: Any) -> str:
    """The template applied to ``data`` (see module doc)."""
    return _render(parse(template), data)


def _render(nodes: list[_Node], data: Any) -> str:
    out: list[str] = []
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "path":
            out.append(" ".join(_text(v) for v in evaluate(node.value, data)))
        else:
            for item in evaluate(node.value, data):
                out.append(_render(node.body, item))
    return "".join(out)
