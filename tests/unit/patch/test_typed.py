"""Schema-aware walks: field sets of configurations, comparisons, apply merges and removals."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.apiserver.patch.fieldpath import FieldSet
from kubelite.apiserver.patch.schema import schema_for
from kubelite.apiserver.patch.typed import TypedError, compare, merge, remove_items, to_field_set

POD = schema_for("v1", "Pod")
SERVICE = schema_for("v1", "Service")
NAME_A, NAME_B, NAME_C = 'k:{"name":"a"}', 'k:{"name":"b"}', 'k:{"name":"c"}'


def pod(*containers: Any, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers), **spec}}


def test_field_set_of_a_configuration() -> None:
    config = pod({"name": "a", "image": "x", "ports": [{"containerPort": 80}], "resources": {}},
                 nodeSelector={"disk": "ssd"}, tolerations=[{"key": "k"}], volumes=[])
    config["metadata"]["finalizers"] = ["f"]
    config["metadata"]["labels"] = {"app": "x", "gone": None}
    assert to_field_set(config, POD).to_fields_v1() == {
        "f:apiVersion": {}, "f:kind": {},
        "f:metadata": {"f:finalizers": {'v:"f"': {}}, "f:labels": {"f:app": {}, "f:gone": {}}, "f:name": {}},
        "f:spec": {
            "f:containers": {NAME_A: {".": {}, "f:image": {}, "f:name": {},
                                      "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                                          ".": {}, "f:containerPort": {}}},
                                      "f:resources": {}}},
            "f:nodeSelector": {},  # an atomic map
            "f:tolerations": {},  # an atomic list
            # an empty keyed list sets nothing
        },
    }


@pytest.mark.parametrize(("config", "error"), [
    pytest.param(pod({"name": "a"}, {"name": "a"}), '.spec.containers: duplicate entries for key [name="a"]',
                 id="duplicate-key"),
    pytest.param(pod({"name": "a", "ports": [{"containerPort": 1}, {"containerPort": 1, "protocol": "TCP"}]}),
                 '.spec.containers[name="a"].ports: duplicate entries for key [containerPort=1,protocol="TCP"]',
                 id="duplicate-after-default"),
    pytest.param(pod("x"), ".spec.containers: element 0: associative list with keys may not have non-map elements",
                 id="not-an-object"),
    pytest.param(pod(imagePullSecrets=[{}]), '.spec.imagePullSecrets: element 0: associative list with keys has an '
                 'element that omits key field "name" (and doesn\'t have default value)', id="missing-key"),
])
def test_invalid_configurations(config: dict[str, Any], error: str) -> None:
    with pytest.raises(TypedError) as info:
        to_field_set(config, POD)
    assert str(info.value) == error


def test_live_objects_may_hold_duplicates() -> None:
    assert not to_field_set(pod({"name": "a"}, {"name": "a"}), POD, strict=False).is_empty()


def test_compare() -> None:
    before = pod({"name": "a", "image": "1"}, {"name": "b", "image": "1"}, hostname="h")
    after = pod({"name": "a", "image": "2"}, {"name": "c", "image": "1"}, subdomain="s")
    diff = compare(before, after, POD)
    containers = ("f:spec", "f:containers")
    assert diff.modified == FieldSet.of((*containers, NAME_A, "f:image"))
    assert diff.added == FieldSet.of((*containers, NAME_C), (*containers, NAME_C, "f:name"),
                                     (*containers, NAME_C, "f:image"), ("f:spec", "f:subdomain"))
    assert diff.removed == FieldSet.of((*containers, NAME_B), (*containers, NAME_B, "f:name"),
                                       (*containers, NAME_B, "f:image"), ("f:spec", "f:hostname"))


def test_compare_leaves() -> None:
    diff = compare({"a": {}, "b": None, "c": [1], "d": True, "e": {"x": 1}},
                   {"a": None, "b": {}, "c": [1], "d": 1, "f": {"y": 2}}, POD)
    assert diff.modified == FieldSet.of(("f:a",), ("f:b",), ("f:d",))  # {} ≠ null, true ≠ 1
    assert diff.added == FieldSet.of(("f:f",), ("f:f", "f:y"))
    assert diff.removed == FieldSet.of(("f:e",), ("f:e", "f:x"))


def test_compare_against_null_containers_does_not_add_the_container() -> None:
    diff = compare({"spec": {"containers": None}}, {"spec": {"containers": [{"name": "a"}]}}, POD)
    assert diff.added == FieldSet.of(("f:spec", "f:containers", NAME_A), ("f:spec", "f:containers", NAME_A, "f:name"))


def test_merge_keeps_live_fields_and_replaces_atomics() -> None:
    live = pod({"name": "a", "image": "1", "imagePullPolicy": "Always"}, nodeSelector={"a": "1", "b": "2"},
               tolerations=[{"key": "x"}])
    config = pod({"name": "a", "image": "2"}, nodeSelector={"c": "3"}, tolerations=[])
    before = copy.deepcopy(live)
    out = merge(live, config, POD)
    assert out["spec"] == {"containers": [{"name": "a", "image": "2", "imagePullPolicy": "Always"}],
                           "nodeSelector": {"c": "3"}, "tolerations": []}
    assert live == before


def test_merge_null_removes_and_empty_keyed_list_keeps() -> None:
    live = pod({"name": "a"}, hostname="h")
    out = merge(live, {"spec": {"hostname": None, "containers": []}}, POD)
    assert out["spec"] == {"containers": [{"name": "a"}]}


@pytest.mark.parametrize(("live", "config", "expected"), [
    pytest.param("abc", "ca", "bca", id="shared-items-in-config-order"),
    pytest.param("abc", "d", "abcd", id="new-items-appended"),
    pytest.param("abc", "dab", "dabc", id="new-item-before-shared"),
    pytest.param("", "ba", "ba", id="no-live-items"),
    pytest.param("ab", "", "ab", id="empty-config-list"),
])
def test_merge_keyed_list_order(live: str, config: str, expected: str) -> None:
    out = merge(pod(*({"name": n} for n in live)), pod(*({"name": n} for n in config)), POD)
    assert "".join(c["name"] for c in out["spec"]["containers"]) == expected


def test_merge_uses_key_defaults() -> None:
    live = {"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]}}
    out = merge(live, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, SERVICE)
    assert out["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 9090, "nodePort": 30080}]


def test_remove_items() -> None:
    obj = pod({"name": "a", "image": "1", "env": [{"name": "E", "value": "v"}]}, {"name": "b"},
              hostname="h", nodeSelector={"a": "1"})
    doomed = FieldSet.of(("f:spec", "f:containers", NAME_B), ("f:spec", "f:hostname"),
                         ("f:spec", "f:containers", NAME_A, "f:env", 'k:{"name":"E"}'))
    out = remove_items(obj, doomed, POD)
    assert out["spec"] == {"containers": [{"name": "a", "image": "1"}], "nodeSelector": {"a": "1"}}
    assert out["spec"]["nodeSelector"] is obj["spec"]["nodeSelector"]
    assert obj["spec"]["hostname"] == "h"
