"""Pure patch computations: client-side apply's three-way merge, label/annotate patches, apply outcomes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubelite.cli import patches


def test_three_way_deletes_dropped_fields_sets_changed_ones_keeps_server_fields() -> None:
    original = {"metadata": {"labels": {"a": "1", "old": "x"}}, "spec": {"replicas": 2, "paused": False}}
    modified = {"metadata": {"labels": {"a": "2"}}, "spec": {"replicas": 2}}
    current = {"metadata": {"labels": {"a": "1", "old": "x", "added-by-other": "y"}, "uid": "u"},
               "spec": {"replicas": 2, "paused": False, "strategy": {"type": "RollingUpdate"}}}
    assert patches.three_way_merge_patch(original, modified, current) == {
        "metadata": {"labels": {"a": "2", "old": None}}, "spec": {"paused": None}}


def test_three_way_replaces_lists_whole_and_is_empty_when_nothing_changes() -> None:
    config = {"spec": {"ports": [{"port": 80}]}}
    assert patches.three_way_merge_patch(config, config, {"spec": {"ports": [{"port": 80}]}}) == {}
    assert patches.three_way_merge_patch(config, {"spec": {"ports": [{"port": 81}]}},
                                         {"spec": {"ports": [{"port": 80}]}}) == {"spec": {"ports": [{"port": 81}]}}


def test_last_applied_annotation_round_trip() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"k": "v"}}
    annotated = patches.with_last_applied(obj)
    raw = annotated["metadata"]["annotations"][patches.LAST_APPLIED]
    assert raw.endswith("\n") and json.loads(raw) == obj
    assert patches.last_applied(annotated) == obj
    assert "annotations" not in obj["metadata"]
    assert patches.last_applied({"metadata": {}}) == {}


def test_metadata_patch_sets_removes_and_needs_overwrite_to_change() -> None:
    current = {"app": "web", "tier": "fe"}
    assert patches.metadata_map_patch("labels", ["env=prod", "tier-"], current, overwrite=False) == {
        "metadata": {"labels": {"env": "prod", "tier": None}}}
    assert patches.metadata_map_patch("labels", ["app=web", "gone-"], current, overwrite=False) == {}
    with pytest.raises(ValueError, match=r"'app' already has a value \(web\), and --overwrite is false"):
        patches.metadata_map_patch("labels", ["app=api"], current, overwrite=False)
    assert patches.metadata_map_patch("annotations", ["app=api"], current, overwrite=True) == {
        "metadata": {"annotations": {"app": "api"}}}
    with pytest.raises(ValueError, match="invalid label spec"):
        patches.metadata_map_patch("labels", ["=x"], current, overwrite=False)


def _obj(rv: str, replicas: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "web", "resourceVersion": rv, "managedFields": [{"m": rv}]},
            "spec": {"replicas": replicas}}


def test_apply_outcome() -> None:
    assert patches.apply_outcome(None, _obj("1"), dry_run=False) == "created"
    assert patches.apply_outcome(_obj("1"), _obj("1"), dry_run=False) == "unchanged"
    assert patches.apply_outcome(_obj("1"), _obj("2", 3), dry_run=False) == "configured"
    # Only bookkeeping (managedFields, resourceVersion) changed: nothing the user configured.
    assert patches.apply_outcome(_obj("1"), _obj("2"), dry_run=False) == "unchanged"
    assert patches.apply_outcome(_obj("1"), _obj("1", 3), dry_run=True) == "configured"
    assert patches.apply_outcome(_obj("1"), _obj("1"), dry_run=True) == "unchanged"
