"""JSON merge patch (RFC 7386) as kube-apiserver applies it (evanphx/json-patch v4 MergePatch)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api.errors import APIError
from kubelite.apiserver.patch import apply_merge_patch


@pytest.mark.parametrize(("doc", "patch", "expected"), [
    # RFC 7386, appendix A (the cases whose target and result are objects).
    pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="rfc-replace"),
    pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="rfc-add"),
    pytest.param({"a": "b"}, {"a": None}, {}, id="rfc-delete"),
    pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="rfc-delete-one"),
    pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="rfc-array-by-scalar"),
    pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="rfc-scalar-by-array"),
    pytest.param({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="rfc-nested"),
    pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="rfc-arrays-replaced"),
    pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="rfc-existing-null-kept"),
    pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="rfc-nulls-pruned-in-new-object"),
    # evanphx v4 details.
    pytest.param({}, {"a": [{"b": None, "c": 1}, None]}, {"a": [{"c": 1}, None]},
                 id="nulls-pruned-in-objects-inside-new-arrays"),
    pytest.param({"a": {"x": 1}}, {"a": [{"b": None}]}, {"a": [{"b": None}]},
                 id="array-over-object-not-pruned"),
    pytest.param({"a": 1}, {}, {"a": 1}, id="empty-patch"),
    pytest.param({"a": 1}, {"b": None}, {"a": 1}, id="delete-missing-key"),
    # What kubectl sends.
    pytest.param({"metadata": {"name": "web", "labels": {"app": "web"}}},
                 {"metadata": {"labels": {"tier": "frontend"}}},
                 {"metadata": {"name": "web", "labels": {"app": "web", "tier": "frontend"}}}, id="kubectl-label"),
    pytest.param({"metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}}},
                 {"metadata": {"labels": {"tier": None}}},
                 {"metadata": {"name": "web", "labels": {"app": "web"}}}, id="kubectl-label-remove"),
    pytest.param({"metadata": {"name": "web"}},
                 {"metadata": {"annotations": {"note": "x"}}},
                 {"metadata": {"name": "web", "annotations": {"note": "x"}}}, id="kubectl-annotate"),
    pytest.param({"kind": "Scale", "spec": {"replicas": 1}, "status": {"replicas": 1}},
                 {"spec": {"replicas": 3}},
                 {"kind": "Scale", "spec": {"replicas": 3}, "status": {"replicas": 1}}, id="kubectl-scale"),
])
def test_apply_merge_patch(doc: dict[str, Any], patch: Any, expected: dict[str, Any]) -> None:
    before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    assert apply_merge_patch(doc, patch) == expected
    assert doc == before and patch == patch_before


@pytest.mark.parametrize("patch", [
    pytest.param(None, id="null"),
    pytest.param("bar", id="string"),
    pytest.param(3, id="number"),
    pytest.param(True, id="bool"),
])
def test_non_object_patch_is_bad_request(patch: Any) -> None:
    with pytest.raises(APIError) as info:
        apply_merge_patch({"a": "foo"}, patch)
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", "Invalid JSON Patch")


def test_array_patch_is_invalid() -> None:
    with pytest.raises(APIError) as info:
        apply_merge_patch({"a": "b"}, ["c", {"d": None}])
    assert info.value.code == 422 and info.value.reason == "Invalid"
    assert info.value.message.startswith(' "" is invalid: patch: Invalid value: ')
    assert info.value.message.endswith('["c",{}]": json: cannot unmarshal array into Go value of type '
                                       'map[string]interface {}')
    assert info.value.details["causes"][0]["field"] == "patch"


def test_copies_only_what_changes() -> None:
    doc: dict[str, Any] = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"deep": {"tree": [1, 2]}},
           "status": {"phase": "Running"}}
    out = apply_merge_patch(doc, {"metadata": {"labels": {"b": "2"}}})
    assert out["spec"] is doc["spec"] and out["status"] is doc["status"]
    assert out["metadata"]["labels"] is not doc["metadata"]["labels"]
    assert doc["metadata"]["labels"] == {"a": "1"}


def test_result_top_level_and_metadata_are_fresh() -> None:
    doc: dict[str, Any] = {"metadata": {"name": "x"}, "spec": {"a": 1}}
    out = apply_merge_patch(doc, {"spec": {}})
    assert out == doc and out is not doc and out["metadata"] is not doc["metadata"]
    out["metadata"]["resourceVersion"] = "2"
    assert "resourceVersion" not in doc["metadata"]
