"""JSON patch (RFC 6902) with gopkg.in/evanphx/json-patch.v4 semantics and kube-apiserver's errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api.errors import APIError
from kubelite.apiserver.patch import apply_json_patch

GENERIC_422 = "the server rejected our request due to an error in our request"


def op(kind: str, path: str, value: Any = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"op": kind, "path": path, **extra}
    if value is not None:
        result["value"] = value
    return result


@pytest.mark.parametrize(("doc", "ops", "expected"), [
    # RFC 6902, appendix A.
    pytest.param({"foo": "bar"}, [op("add", "/baz", "qux")], {"baz": "qux", "foo": "bar"}, id="A1-add-member"),
    pytest.param({"foo": ["bar", "baz"]}, [op("add", "/foo/1", "qux")], {"foo": ["bar", "qux", "baz"]},
                 id="A2-add-element"),
    pytest.param({"baz": "qux", "foo": "bar"}, [op("remove", "/baz")], {"foo": "bar"}, id="A3-remove-member"),
    pytest.param({"foo": ["bar", "qux", "baz"]}, [op("remove", "/foo/1")], {"foo": ["bar", "baz"]},
                 id="A4-remove-element"),
    pytest.param({"baz": "qux", "foo": "bar"}, [op("replace", "/baz", "boo")], {"baz": "boo", "foo": "bar"},
                 id="A5-replace"),
    pytest.param({"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
                 [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
                 {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}}, id="A6-move-member"),
    pytest.param({"foo": ["all", "grass", "cows", "eat"]}, [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
                 {"foo": ["all", "cows", "eat", "grass"]}, id="A7-move-element"),
    pytest.param({"baz": "qux", "foo": ["a", 2, "c"]}, [op("test", "/baz", "qux"), op("test", "/foo/1", 2)],
                 {"baz": "qux", "foo": ["a", 2, "c"]}, id="A8-test"),
    pytest.param({"foo": "bar"}, [op("add", "/child", {"grandchild": {}})],
                 {"foo": "bar", "child": {"grandchild": {}}}, id="A10-add-nested"),
    pytest.param({"foo": "bar"}, [op("add", "/baz", "qux", xyz=123)], {"foo": "bar", "baz": "qux"},
                 id="A11-unknown-members-ignored"),
    pytest.param({"/": 9, "~1": 10}, [op("test", "/~01", 10)], {"/": 9, "~1": 10}, id="A14-escapes"),
    pytest.param({"foo": ["bar"]}, [op("add", "/foo/-", ["abc", "def"])], {"foo": ["bar", ["abc", "def"]]},
                 id="A16-append-array"),
    # evanphx v4 behaviour kube-apiserver inherits.
    pytest.param({"a": [1, 2, 3]}, [op("remove", "/a/-1")], {"a": [1, 2]}, id="negative-index"),
    pytest.param({"a": [1, 2]}, [op("add", "/a/2", 3)], {"a": [1, 2, 3]}, id="add-at-length-appends"),
    pytest.param({"a": [1, 2]}, [op("add", "/a/-1", 9)], {"a": [1, 2, 9]}, id="add-negative-index-counts-new-slot"),
    pytest.param({"a": 1}, [op("replace", "/b", 2)], {"a": 1, "b": 2}, id="replace-missing-member-adds"),
    pytest.param({"a": {"b": 1}}, [op("add", "/a", 5)], {"a": 5}, id="add-replaces-member"),
    pytest.param({"a": {"b": [1]}}, [{"op": "copy", "from": "/a", "path": "/c"}, op("add", "/c/b/-", 2)],
                 {"a": {"b": [1]}, "c": {"b": [1, 2]}}, id="copy-is-deep"),
    pytest.param({"a": 1}, [op("test", "/missing", None)], {"a": 1}, id="test-missing-equals-null"),
    pytest.param({"a": 1.0}, [op("test", "/a", 1)], {"a": 1.0}, id="test-number-equality"),
    pytest.param({"a/b": {"c~d": 1}}, [op("replace", "/a~1b/c~0d", 2)], {"a/b": {"c~d": 2}}, id="escaped-path"),
    pytest.param({"a": 1}, None, {"a": 1}, id="null-patch-is-empty"),
    # What `kubectl rollout undo` sends.
    pytest.param(
        {"metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}},
        [op("replace", "/spec/template", {"spec": {"containers": [{"name": "c", "image": "v1"}]}}),
         op("replace", "/metadata/annotations", {"deployment.kubernetes.io/revision": "1"})],
        {"metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "1"}},
         "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v1"}]}}}},
        id="kubectl-rollout-undo"),
])
def test_apply_json_patch(doc: dict[str, Any], ops: Any, expected: dict[str, Any]) -> None:
    before, ops_before = copy.deepcopy(doc), copy.deepcopy(ops)
    assert apply_json_patch(doc, ops) == expected
    assert doc == before and ops == ops_before


@pytest.mark.parametrize(("doc", "ops", "detail"), [
    pytest.param({"baz": "qux"}, [op("test", "/baz", "bar")], "testing value /baz failed", id="A9-test-fails"),
    pytest.param({"foo": "bar"}, [op("add", "/baz/bat", "qux")], "doc is missing path", id="A12-missing-parent"),
    pytest.param({"/": 9, "~1": 10}, [op("test", "/~01", "10")], "testing value", id="A15-string-is-not-number"),
    pytest.param({"a": 1}, [op("remove", "/b")], "Unable to remove nonexistent key: b", id="remove-missing"),
    pytest.param({"a": [1]}, [op("replace", "/a/1", 2)], "invalid index", id="replace-out-of-range"),
    pytest.param({"a": [1]}, [op("add", "/a/3", 2)], "invalid index", id="add-beyond-length"),
    pytest.param({"a": [1]}, [op("add", "/a/x", 2)], "invalid syntax", id="not-an-index"),
    pytest.param({"a": 1}, [op("add", "", 2)], "doc is missing path", id="root-path"),
    pytest.param({"a": 1}, [op("add", "a", 2)], "doc is missing path", id="relative-path"),
    pytest.param({"a": 1}, [{"op": "frobnicate", "path": "/a"}], "Unexpected kind: frobnicate", id="unknown-op"),
    pytest.param({"a": 1}, [{"path": "/a"}], "Unexpected kind: unknown", id="missing-op"),
    pytest.param({"a": 1}, [{"op": "add", "value": 1}], "missing path", id="missing-path"),
    pytest.param({"a": 1}, [{"op": "move", "path": "/b"}], "missing from", id="missing-from"),
    pytest.param({"a": 1}, [{"op": "copy", "from": "/x", "path": "/b"}], "nonexistent key", id="copy-missing"),
    pytest.param({"a": 1}, [op("replace", "/a", 2), op("test", "/a", 1)], "testing value /a", id="ops-in-order"),
])
def test_failed_operation_is_generic_invalid(doc: dict[str, Any], ops: list[Any], detail: str) -> None:
    with pytest.raises(APIError) as info:
        apply_json_patch(doc, ops)
    assert (info.value.code, info.value.reason, info.value.message) == (422, "Invalid", GENERIC_422)
    assert detail in str(info.value.__cause__)


@pytest.mark.parametrize(("ops", "message"), [
    pytest.param({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch", id="object"),
    pytest.param("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch", id="string"),
    pytest.param(["x"], "json: cannot unmarshal string into Go value of type jsonpatch.Operation", id="op-string"),
    pytest.param([1], "json: cannot unmarshal number into Go value of type jsonpatch.Operation", id="op-number"),
])
def test_malformed_patch_is_bad_request(ops: Any, message: str) -> None:
    with pytest.raises(APIError) as info:
        apply_json_patch({}, ops)
    assert (info.value.code, info.value.reason, info.value.message) == (400, "BadRequest", message)


def test_too_many_operations() -> None:
    with pytest.raises(APIError) as info:
        apply_json_patch({}, [op("test", "/a")] * 10001)
    assert info.value.code == 413 and info.value.reason == "RequestEntityTooLarge"
    assert info.value.message == ("Request entity too large: The allowed maximum operations in a JSON patch "
                                  "is 10000, got 10001")


def test_failed_patch_leaves_document_untouched() -> None:
    doc = {"a": {"b": [1, 2]}}
    with pytest.raises(APIError):
        apply_json_patch(doc, [op("add", "/a/b/-", 3), op("remove", "/zzz")])
    assert doc == {"a": {"b": [1, 2]}}


def test_copies_only_the_path_to_changes() -> None:
    doc: dict[str, Any] = {"metadata": {"name": "x"}, "spec": {"a": {"b": 1}, "c": {"d": 2}}}
    value = {"v": [1]}
    out = apply_json_patch(doc, [op("add", "/spec/a/e", value), op("add", "/spec/a/e/v/-", 2)])
    assert out["spec"]["c"] is doc["spec"]["c"]
    assert out["spec"]["a"]["e"] == {"v": [1, 2]} and value == {"v": [1]}
    assert out["metadata"] is not doc["metadata"] and out["metadata"] == doc["metadata"]
