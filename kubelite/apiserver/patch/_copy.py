"""The one copying rule every patch result follows.

Patches copy only the containers on the way to a change and share everything else with their
input. Callers, though, routinely set ``metadata`` fields (resourceVersion, generation,
managedFields) on the result, so the result's top level and its ``metadata`` are always fresh
dicts: writing there never reaches the input object.
"""

from __future__ import annotations

from typing import Any


def detached(result: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    """``result`` with a top level and ``metadata`` not shared with ``source``."""
    if result is source:
        result = dict(source)
    metadata = result.get("metadata")
    shared = metadata is source.get("metadata")
    if shared and isinstance(metadata, dict):
        result["metadata"] = dict(metadata)
    return result
