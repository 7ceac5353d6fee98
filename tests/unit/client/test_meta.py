from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kubelite.api import meta

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "resourceVersion": "42", "generation": 3,
                 "labels": {"app": "web"}, "annotations": {"a": "b"}, "finalizers": ["f"],
                 "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": "o-1"},
                                     {"kind": "ReplicaSet", "name": "rs2", "uid": "o-2", "controller": True}]},
}


def test_accessors() -> None:
    assert (meta.name(POD), meta.namespace(POD), meta.uid(POD)) == ("web", "prod", "u-1")
    assert meta.resource_version(POD) == "42" and meta.generation(POD) == 3
    assert meta.labels(POD) == {"app": "web"} and meta.annotations(POD) == {"a": "b"}
    assert meta.finalizers(POD) == ["f"]
    assert meta.key(POD) == "prod/web"
    assert not meta.is_being_deleted(POD)
    meta.labels(POD)["x"] = "y"  # accessors hand out copies
    assert "x" not in POD["metadata"]["labels"]


def test_missing_fields_are_zero_values() -> None:
    empty: dict[str, object] = {}
    assert meta.name(empty) == "" and meta.namespace(empty) == "" and meta.generation(empty) == 0
    assert meta.labels(empty) == {} and meta.owner_references(empty) == [] and meta.controller_ref(empty) is None
    assert meta.deletion_timestamp({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})


@pytest.mark.parametrize(("key", "parts"), [
    pytest.param("ns/name", ("ns", "name"), id="namespaced"),
    pytest.param("node-1", ("", "node-1"), id="cluster"),
])
def test_keys(key: str, parts: tuple[str, str]) -> None:
    assert meta.split_key(key) == parts
    assert meta.make_key(*parts) == key


@pytest.mark.parametrize("bad", ["/name", "ns/", "a/b/c"])
def test_bad_keys(bad: str) -> None:
    with pytest.raises(ValueError):
        meta.split_key(bad)


def test_times() -> None:
    stamp = meta.now_rfc3339()
    assert stamp.endswith("Z") and len(stamp) == len("2024-01-01T00:00:00Z")
    assert abs(meta.parse_rfc3339(stamp) - datetime.now(UTC)) < timedelta(minutes=1)
    assert meta.now_rfc3339_micro().endswith("Z") and "." in meta.now_rfc3339_micro()
    plus2 = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert meta.format_rfc3339(plus2) == "2024-05-01T12:00:00Z"
    assert meta.parse_rfc3339("2024-05-01T12:00:00.123456Z") == datetime(2024, 5, 1, 12, 0, 0, 123456, UTC)
    with pytest.raises(ValueError, match="naive"):
        meta.format_rfc3339(datetime(2024, 1, 1))


def test_owner_references() -> None:
    assert meta.controller_ref(POD) == {"kind": "ReplicaSet", "name": "rs2", "uid": "o-2", "controller": True}
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs2", "uid": "o-2"}}
    assert meta.new_controller_ref(owner) == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs2",
                                              "uid": "o-2", "controller": True, "blockOwnerDeletion": True}
    assert "blockOwnerDeletion" not in meta.new_controller_ref(owner, block_owner_deletion=False)
    assert meta.is_controlled_by(POD, owner)
    assert not meta.is_controlled_by(POD, {"metadata": {"name": "rs", "uid": "o-1"}})
    assert not meta.is_controlled_by(POD, {"metadata": {}})
