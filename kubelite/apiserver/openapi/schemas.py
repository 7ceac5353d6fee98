"""The component schemas kubelite publishes, loaded once from the generated ``definitions.json``.

``definitions.json`` is produced by ``scripts/gen_openapi.py`` from the official Python client's models and
holds OpenAPI v3 schemas named like Kubernetes' (``io.k8s.api.apps.v1.Deployment``). This module only reads
it: the schemas, the schema of each group/version/kind, and the set of schemas one schema refers to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources
from typing import Any

REF_PREFIX = "#/components/schemas/"

Schema = dict[str, Any]


@cache
def schemas() -> dict[str, Schema]:
    """Every component schema by name. Shared: callers must not mutate it."""
    text = resources.files(__package__).joinpath("definitions.json").read_text(encoding="utf-8")
    loaded: dict[str, Schema] = json.loads(text)["schemas"]
    return loaded


@cache
def _by_gvk() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in schemas().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", ()):
            out.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return out


def schema_name(group: str, version: str, kind: str) -> str | None:
    """The schema declaring ``x-kubernetes-group-version-kind`` = (group, version, kind), if any."""
    return _by_gvk().get((group, version, kind))


def ref(name: str) -> Schema:
    return {"$ref": REF_PREFIX + name}


def _refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                yield value[len(REF_PREFIX):]
            else:
                yield from _refs_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs_in(item)


def referenced(node: Any) -> set[str]:
    """Names of the schemas that ``node`` (a schema, a path item, a whole document) refers to directly."""
    return set(_refs_in(node))


def closure(names: Iterable[str]) -> dict[str, Schema]:
    """The named schemas and every schema they reach through ``$ref``, sorted by name."""
    table = schemas()
    seen: set[str] = set()
    stack = list(names)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(referenced(table[name]) - seen)
    return {name: table[name] for name in sorted(seen)}
