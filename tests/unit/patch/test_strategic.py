"""Strategic merge patch: the apimachinery test cases mapped onto real fields, the patches kubectl
sends, directives, error statuses, and copy-on-write."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api.errors import APIError
from kubelite.apiserver.patch import apply_strategic_merge_patch

GENERIC_422 = "the server rejected our request due to an error in our request"


def pod(spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", **metadata}, "spec": spec or {}}


def containers(*names: Any, **fields: dict[str, Any]) -> list[dict[str, Any]]:
    """Containers named ``names``; ``fields[name]`` adds fields to one of them."""
    return [{"name": str(n), **fields.get(f"c{n}", {})} for n in names]


def smp(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    result = apply_strategic_merge_patch(doc, patch, api_version=doc["apiVersion"], kind=doc["kind"])
    assert doc == before and patch == patch_before, "inputs must not change"
    return result


# Cases from k8s.io/apimachinery/pkg/util/strategicpatch/patch_test.go, on Pod fields: `containers`
# is a list merged by name, `finalizers` a merged list of primitives, `tolerations` a replaced list,
# `labels` a map.
@pytest.mark.parametrize(("doc", "patch", "expected"), [
    pytest.param(pod(finalizers=["1", "2"]), {"metadata": {"finalizers": ["2", "3"]}},
                 pod(finalizers=["1", "2", "3"]), id="unique-scalars-when-merging"),
    pytest.param(pod(labels={"k1": "1", "k2": "1"}), {"metadata": {"labels": {"$patch": "delete"}}},
                 pod(labels={}), id="delete-map-from-nested-map"),
    pytest.param(pod({"containers": containers(1, 2)}), {"spec": {"containers": [{"$patch": "replace"}]}},
                 pod({"containers": []}), id="delete-all-items-with-replace"),
    pytest.param(pod({"containers": []}), {"spec": {"containers": []}}, pod({"containers": []}),
                 id="merge-empty-lists"),
    pytest.param(pod(labels={"a": "1", "b": "1"}), {"metadata": {"labels": {"$patch": "replace"}}},
                 pod(labels={}), id="replace-with-nothing"),
    pytest.param(pod(labels={"a": "1", "b": "1"}), {"metadata": {"labels": {"other": "a", "$patch": "replace"}}},
                 pod(labels={"other": "a"}), id="replace-map"),
    pytest.param(pod({"containers": containers(1, 1, 2, 3, 3, c2={"image": "a"})}),
                 {"spec": {"containers": [{"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}]}},
                 pod({"containers": containers(2, c2={"image": "a"})}), id="delete-removes-all-duplicates"),
    pytest.param(pod({"containers": containers(1, 2, 3, c2={"image": "b"})}),
                 {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                                          {"name": "2", "tty": True}]}},
                 pod({"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"},
                                     {"name": "2", "image": "b", "tty": True}]}), id="patch-order-wins"),
    pytest.param(pod({"containers": containers(1, 2, 3, c2={"image": "b"})}),
                 {"spec": {"containers": [{"name": "3", "image": "c"}, {"name": "1", "image": "a"}]}},
                 pod({"containers": [{"name": "2", "image": "b"}, {"name": "3", "image": "c"},
                                     {"name": "1", "image": "a"}]}), id="patch-order-with-live-only-item"),
    pytest.param(pod(finalizers=["1", "2", "3"]), {"metadata": {"finalizers": ["3", "1", "2"]}},
                 pod(finalizers=["3", "1", "2"]), id="primitive-patch-order"),
    pytest.param(pod(finalizers=["1", "2", "3"]), {"metadata": {"finalizers": ["3", "1"]}},
                 pod(finalizers=["2", "3", "1"]), id="primitive-patch-order-with-live-only-item"),
    pytest.param(pod(finalizers=["a"]), {"metadata": {"finalizers": ["c"]}},
                 pod(finalizers=["c", "a"]), id="new-primitive-goes-first-without-order"),
    pytest.param(pod({"containers": containers(1, 3)}),
                 {"spec": {"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                           "containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}},
                 pod({"containers": [{"name": "3", "image": "3"}, {"name": "1", "image": "1"}]}),
                 id="set-element-order-naming-absent-item"),
    pytest.param(pod(finalizers=["1", "3"]), {"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}},
                 pod(finalizers=["3", "1"]), id="set-element-order-primitives-only"),
    pytest.param(pod(finalizers=["1", "2", "3", "4"]),
                 {"metadata": {"$setElementOrder/finalizers": ["1", "2"],
                               "$deleteFromPrimitiveList/finalizers": ["3"]}},
                 pod(finalizers=["1", "2", "4"]), id="delete-from-primitive-list"),
    pytest.param(pod(finalizers=["1", "2", "3", "3", "4"]),
                 {"metadata": {"$setElementOrder/finalizers": ["1", "2"],
                               "$deleteFromPrimitiveList/finalizers": ["3"]}},
                 pod(finalizers=["1", "2", "4"]), id="delete-all-duplicate-primitives"),
    pytest.param(pod(finalizers=["1", "2", "3", "4"]),
                 {"metadata": {"$setElementOrder/finalizers": ["1", "2", "4"],
                               "$deleteFromPrimitiveList/finalizers": ["3"], "finalizers": ["4"]}},
                 pod(finalizers=["1", "2", "4"]), id="add-and-delete-primitives"),
    pytest.param(pod({"containers": [{"name": "1", "tty": True}, {"name": "2", "image": "2", "tty": False}]}),
                 {"spec": {"$setElementOrder/containers": [{"name": "4"}, {"name": "1"}, {"name": "2"}, {"name": "3"}],
                           "containers": [{"name": "4", "image": "4"}, {"name": "3", "image": "3"}]}},
                 pod({"containers": [{"name": "4", "image": "4"}, {"name": "1", "tty": True},
                                     {"name": "2", "image": "2", "tty": False}, {"name": "3", "image": "3"}]}),
                 id="merge-lists-of-maps-in-order"),
    pytest.param(pod({"containers": [{"name": "1", "tty": True}, {"name": "2", "image": "2"}]}),
                 {"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}],
                           "containers": [{"name": "1", "image": "1"}]}},
                 pod({"containers": [{"name": "1", "tty": True, "image": "1"}, {"name": "2", "image": "2"}]}),
                 id="add-field-to-map-in-merging-list"),
    pytest.param(pod({"tolerations": [{"key": "a"}, {"key": "b"}]}), {"spec": {"tolerations": [{"key": "c"}]}},
                 pod({"tolerations": [{"key": "c"}]}), id="replace-non-merging-list"),
    pytest.param(pod(labels={"a": "1"}), {"metadata": {"labels": {"a": None, "b": None, "c": "3"}}},
                 pod(labels={"c": "3"}), id="null-deletes-and-unmatched-null-ignored"),
    pytest.param(pod({"hostname": "h"}), {"spec": {"hostname": {"x": 1}}}, pod({"hostname": {"x": 1}}),
                 id="type-change-replaces"),
    pytest.param(pod(), None, pod(), id="null-patch-is-empty"),
])
def test_strategic_merge_cases(doc: dict[str, Any], patch: Any, expected: dict[str, Any]) -> None:
    assert smp(doc, patch) == expected


def deployment(template_spec: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, **spec,
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": template_spec}}}


WEB = deployment(
    {"containers": [{"name": "nginx", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"},
                                                                     {"name": "B", "value": "2"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                    {"name": "sidecar", "image": "busybox"}],
     "volumes": [{"name": "data", "emptyDir": {}}]},
    strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
)


def template_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def test_kubectl_apply_changes_an_image() -> None:
    patch = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}\n"}},
             "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
                                            "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}
    out = smp(WEB, patch)
    assert [c["name"] for c in template_spec(out)["containers"]] == ["nginx", "sidecar"]
    assert template_spec(out)["containers"][0]["image"] == "nginx:1.26"
    assert template_spec(out)["containers"][0]["env"] == template_spec(WEB)["containers"][0]["env"]
    assert out["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{...}\n"}
    assert out["spec"]["strategy"] is WEB["spec"]["strategy"]  # untouched subtrees are shared


def test_kubectl_apply_removes_a_container_and_an_env_var() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}],
                        "name": "nginx"},
                       {"$patch": "delete", "name": "sidecar"}]}}}}
    out = smp(WEB, patch)
    assert template_spec(out)["containers"] == [
        {"name": "nginx", "image": "nginx:1.25", "env": [{"name": "A", "value": "1"}],
         "ports": [{"containerPort": 80, "protocol": "TCP"}]}]


def test_kubectl_apply_adds_a_container_in_order() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "log"}, {"name": "sidecar"}],
        "containers": [{"image": "fluentd", "name": "log", "$setElementOrder/env": [{"name": "X"}],
                        "env": [{"name": "X", "value": "1"}]}]}}}}
    out = smp(WEB, patch)
    assert [c["name"] for c in template_spec(out)["containers"]] == ["nginx", "log", "sidecar"]
    assert template_spec(out)["containers"][1] == {"image": "fluentd", "name": "log",
                                                   "env": [{"name": "X", "value": "1"}]}


def test_kubectl_apply_switches_a_volume_source_with_retain_keys() -> None:
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "emptyDir": None,
                     "name": "data"}]}}}}
    assert template_spec(smp(WEB, patch))["volumes"] == [{"name": "data", "configMap": {"name": "cfg"}}]


def test_kubectl_apply_switches_the_deployment_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": None, "type": "Recreate"}}}
    assert smp(WEB, patch)["spec"]["strategy"] == {"type": "Recreate"}


def test_kubectl_set_image() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"image": "busybox:1.36", "name": "sidecar"}]}}}}
    out = smp(WEB, patch)
    assert [(c["name"], c["image"]) for c in template_spec(out)["containers"]] == [
        ("nginx", "nginx:1.25"), ("sidecar", "busybox:1.36")]


def test_kubectl_rollout_restart() -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}
    out = smp(WEB, patch)
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}
    assert out["spec"]["template"]["spec"] is WEB["spec"]["template"]["spec"]


def test_container_ports_merge_by_container_port() -> None:
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}}}
    out = smp(WEB, patch)
    assert template_spec(out)["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}]


def test_service_ports_merge_by_port() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}
    patch = {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
                      "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443}]}}
    assert [p["port"] for p in smp(service, patch)["spec"]["ports"]] == [80, 443]


def test_finalizer_removed_by_client_side_apply() -> None:
    doc = pod(finalizers=["example.com/a", "example.com/b"])
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                          "$setElementOrder/finalizers": ["example.com/b"]}}
    assert smp(doc, patch)["metadata"]["finalizers"] == ["example.com/b"]


def test_deletion_list_for_an_absent_list_is_a_no_op() -> None:
    assert "finalizers" not in smp(pod(), {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})["metadata"]


def test_status_conditions_merge_by_type() -> None:
    doc = {**pod(), "status": {"conditions": [{"type": "Initialized", "status": "True"},
                                              {"type": "Ready", "status": "False"}]}}
    patch = {"status": {"$setElementOrder/conditions": [{"type": "Initialized"}, {"type": "Ready"}],
                        "conditions": [{"type": "Ready", "status": "True"}]}}
    assert smp(doc, patch)["status"]["conditions"] == [{"type": "Initialized", "status": "True"},
                                                       {"type": "Ready", "status": "True"}]


def test_node_addresses_merge_by_type_and_taints_are_replaced() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"},
            "spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                     {"type": "Hostname", "address": "n"}]}}
    patch = {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]},
             "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}
    out = smp(node, patch)
    assert out["spec"]["taints"] == [{"key": "b", "effect": "NoExecute"}]
    assert out["status"]["addresses"] == [{"type": "InternalIP", "address": "10.0.0.2"},
                                          {"type": "Hostname", "address": "n"}]


def test_owner_references_merge_by_uid() -> None:
    doc = pod(ownerReferences=[{"uid": "1", "kind": "ReplicaSet", "name": "a"}])
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "kind": "ReplicaSet", "name": "b"}]}}
    assert [o["uid"] for o in smp(doc, patch)["metadata"]["ownerReferences"]] == ["2", "1"]


def test_unknown_kind_merges_objects_and_replaces_lists() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "finalizers": ["a"]},
           "spec": {"items": [1, 2], "nested": {"a": 1}}}
    patch = {"metadata": {"finalizers": ["b"]}, "spec": {"items": [3], "nested": {"b": 2}}}
    out = smp(doc, patch)
    assert out["metadata"]["finalizers"] == ["b", "a"]  # ObjectMeta is known for every kind
    assert out["spec"] == {"items": [3], "nested": {"a": 1, "b": 2}}


def test_unknown_dollar_keys_are_dropped() -> None:
    assert smp(pod(), {"spec": {"$unknown": 1, "hostname": "h"}})["spec"] == {"hostname": "h"}


def test_new_values_have_their_directives_applied() -> None:
    patch = {"spec": {"affinity": {"$patch": "replace", "nodeAffinity": {"x": None, "y": 1}},
                      "containers": [{"name": "a", "$setElementOrder/env": [{"name": "E"}],
                                      "env": [{"name": "E"}, {"name": "F", "$patch": "delete"}]}]}}
    assert smp(pod(), patch)["spec"] == {"affinity": {"nodeAffinity": {"y": 1}},
                                         "containers": [{"name": "a", "env": [{"name": "E"}]}]}


def test_result_shares_untouched_subtrees_but_not_metadata() -> None:
    out = smp(WEB, {"spec": {"replicas": 3}})
    assert out["spec"]["template"] is WEB["spec"]["template"]
    assert out["metadata"] == WEB["metadata"] and out["metadata"] is not WEB["metadata"]


@pytest.mark.parametrize(("patch", "code", "message"), [
    pytest.param([{"a": 1}], 400, "json: cannot unmarshal array into Go value of type map[string]interface {}",
                 id="not-an-object"),
    pytest.param("x", 400, "json: cannot unmarshal string into Go value of type map[string]interface {}",
                 id="string"),
    pytest.param({"spec": {"containers": [{"image": "x"}]}}, 500,
                 "map: map[image:x] does not contain declared merge key: name", id="missing-merge-key"),
    pytest.param({"spec": {"containers": [{"image": "x", "$patch": "delete"}]}}, 500,
                 "map: map[$patch:delete image:x] does not contain declared merge key: name", id="delete-without-key"),
    pytest.param({"spec": {"containers": [{"name": "1", "$patch": "merge"}]}}, 500,
                 "merging lists cannot yet be specified in the patch", id="merge-directive-in-list"),
    pytest.param({"spec": {"$patch": "merge"}}, 500, "unknown patch type: merge in map: map[$patch:merge]",
                 id="merge-directive-in-map"),
    pytest.param({"spec": {"containers": [{"name": "1", "$patch": "bogus"}]}}, 500,
                 "unknown patch type: bogus in map: map[$patch:bogus name:1]", id="unknown-list-directive"),
    pytest.param({"spec": {"$retainKeys": "hostname", "hostname": "h"}}, 400, "invalid patch format of retainKeys",
                 id="retain-keys-not-a-list"),
    pytest.param({"spec": {"$retainKeys": ["hostname"], "hostname": "h", "subdomain": "s"}}, 400,
                 "invalid patch format of retainKeys", id="retain-keys-missing-a-patched-key"),
    pytest.param({"spec": {"$setElementOrder": []}}, 400, "invalid patch format of setElementOrder list",
                 id="set-element-order-without-list-name"),
    pytest.param({"metadata": {"$deleteFromPrimitiveList": ["a"]}}, 400, "invalid patch format of primitive list",
                 id="delete-list-without-list-name"),
    pytest.param({"metadata": {"finalizers": [["a"]]}}, 422, GENERIC_422, id="list-of-lists"),
    pytest.param({"metadata": {"finalizers": [{"a": 1}]}}, 500,
                 "list element types are not identical: [[1 3] [map[a:1]]]", id="mixed-element-types"),
    pytest.param({"spec": {"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                           "containers": [{"name": "3"}, {"name": "1"}]}}, 500,
                 "The order in patch list:\n[map[name:3] map[name:1]]\n doesn't match $setElementOrder list:\n"
                 "[map[name:1] map[name:2] map[name:3]]\n", id="set-element-order-mismatch"),
])
def test_errors(patch: Any, code: int, message: str) -> None:
    doc = pod({"containers": containers(1, 3, 2)}, finalizers=[1, 3])
    with pytest.raises(APIError) as info:
        smp(doc, patch)
    assert (info.value.code, info.value.message) == (code, message)
    assert info.value.reason == {400: "BadRequest", 422: "Invalid", 500: ""}[code]
