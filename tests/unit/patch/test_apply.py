"""Server-side apply through the kubectl flows: create, re-apply, change, remove, conflicts with
`kubectl scale` / `kubectl edit` / other appliers, forcing, and the client-side apply upgrade."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kubelite.api.errors import APIError
from kubelite.apiserver.patch import LAST_APPLIED_ANNOTATION, server_side_apply, update_managed_fields

T0, T1, T2, T3 = (f"2025-01-01T00:0{i}:00Z" for i in range(4))
NGINX = 'k:{"name":"nginx"}'


def web(replicas: int | None = 3, image: str = "nginx:1.25", **extra_labels: str) -> dict[str, Any]:
    """The Deployment a user keeps in a file, as `kubectl apply --server-side` sends it."""
    config: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", **extra_labels}},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": image,
                                                       "ports": [{"containerPort": 80}]}]}}},
    }
    if replicas is not None:
        config["spec"]["replicas"] = replicas
    return config


def persist(obj: dict[str, Any], resource_version: str = "1") -> dict[str, Any]:
    """What the API server stores: system metadata, defaults and a status the controller wrote."""
    stored = copy.deepcopy(obj)
    metadata = stored["metadata"]
    metadata.setdefault("uid", "4f1c"), metadata.setdefault("creationTimestamp", T0)
    metadata["resourceVersion"], metadata["generation"] = resource_version, 1
    spec = stored["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                            "maxUnavailable": "25%"}})
    for container in spec["template"]["spec"]["containers"]:
        container.setdefault("imagePullPolicy", "IfNotPresent")
        for port in container.get("ports", []):
            port.setdefault("protocol", "TCP")
    stored["status"] = {"replicas": spec["replicas"], "observedGeneration": 1}
    return stored


def apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str = "kubectl", force: bool = False,
          now: str = T1) -> dict[str, Any]:
    live_copy, config_copy = copy.deepcopy(live), copy.deepcopy(config)
    result = server_side_apply(live, config, manager=manager, force=force, api_version=config["apiVersion"],
                               kind=config["kind"], now=now)
    assert live == live_copy and config == config_copy, "inputs must not change"
    return result


def conflict(live: dict[str, Any] | None, config: dict[str, Any], **kwargs: Any) -> APIError:
    with pytest.raises(APIError) as info:
        apply(live, config, **kwargs)
    assert info.value.code == 409 and info.value.reason == "Conflict"
    return info.value


def owners(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f'{e["manager"]}/{e["operation"]}': e for e in obj["metadata"].get("managedFields", [])}


def scaled(live: dict[str, Any], replicas: int, manager: str = "kubectl-scale") -> dict[str, Any]:
    new = copy.deepcopy(live)
    new["spec"]["replicas"] = replicas
    update_managed_fields(live, new, manager=manager, api_version="apps/v1", now=T2, subresource="scale")
    return new


def edited(live: dict[str, Any], image: str) -> dict[str, Any]:
    new = copy.deepcopy(live)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = image
    update_managed_fields(live, new, manager="kubectl-edit", api_version="apps/v1", now=T2)
    return new


APPLIED_FIELDS = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {"f:replicas": {}, "f:selector": {},
               "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                              "f:spec": {"f:containers": {NGINX: {
                                  ".": {}, "f:image": {}, "f:name": {},
                                  "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                                      ".": {}, "f:containerPort": {}}}}}}}},
}


def test_create() -> None:
    result = apply(None, web(), now=T0)
    assert {k: v for k, v in result.items() if k != "metadata"} == {k: v for k, v in web().items() if k != "metadata"}
    assert result["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1", "fieldsV1": APPLIED_FIELDS}]


def test_applying_the_same_file_again_changes_nothing() -> None:
    live = persist(apply(None, web(), now=T0))
    assert apply(live, web(), now=T2) == live


def test_a_changed_file_updates_the_object_and_the_time() -> None:
    live = persist(apply(None, web(), now=T0))
    result = apply(live, web(image="nginx:1.26"), now=T2)
    assert result["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert result["status"] == live["status"] and result["metadata"]["uid"] == live["metadata"]["uid"]
    assert owners(result)["kubectl/Apply"]["time"] == T2
    assert owners(result)["kubectl/Apply"]["fieldsV1"] == APPLIED_FIELDS


def test_fields_removed_from_the_file_are_removed_from_the_object() -> None:
    live = persist(apply(None, web(tier="fe"), now=T0))
    config = web(replicas=None)
    config["spec"]["template"]["spec"]["containers"][0].pop("ports")
    result = apply(live, config)
    assert "replicas" not in result["spec"]  # the server defaults it again
    assert result["metadata"]["labels"] == {"app": "web"}
    # Unowned defaults below fields still applied stay; the removed port goes.
    assert result["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent"}]
    assert result["spec"]["strategy"] == live["spec"]["strategy"]


def test_a_container_removed_from_the_file_is_removed() -> None:
    two = web()
    two["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    live = persist(apply(None, two, now=T0))
    result = apply(live, web())
    assert [c["name"] for c in result["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_a_removed_field_another_manager_still_owns_is_kept() -> None:
    live = persist(apply(None, web(tier="fe"), now=T0))
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "fe"}}}
    live = persist(apply(live, other, manager="labeller"), "2")
    assert set(owners(live)) == {"kubectl/Apply", "labeller/Apply"}  # same value: shared, no conflict
    result = apply(live, web())
    assert result["metadata"]["labels"] == {"app": "web", "tier": "fe"}
    assert owners(result)["labeller/Apply"]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}


def test_conflict_with_kubectl_scale() -> None:
    live = scaled(persist(apply(None, web(), now=T0)), 5)
    error = conflict(live, web())
    assert error.message == ('Apply failed with 1 conflict: conflict with "kubectl-scale" with subresource '
                             '"scale" using apps/v1: .spec.replicas')
    assert error.details == {"causes": [{
        "reason": "FieldManagerConflict",
        "message": 'conflict with "kubectl-scale" with subresource "scale" using apps/v1',
        "field": ".spec.replicas"}]}


def test_the_same_manager_name_with_another_operation_is_another_manager() -> None:
    live = scaled(persist(apply(None, web(), now=T0)), 5, manager="kubectl")  # `kubectl scale`'s user agent
    assert conflict(live, web()).message == ('Apply failed with 1 conflict: conflict with "kubectl" with '
                                             'subresource "scale" using apps/v1: .spec.replicas')


def test_force_takes_the_field_over() -> None:
    live = scaled(persist(apply(None, web(), now=T0)), 5)
    result = apply(live, web(), force=True, now=T3)
    assert result["spec"]["replicas"] == 3
    assert set(owners(result)) == {"kubectl/Apply"}  # kubectl-scale owned nothing else
    assert owners(result)["kubectl/Apply"]["fieldsV1"] == APPLIED_FIELDS


def test_leaving_a_scaled_field_out_of_the_file_avoids_the_conflict() -> None:
    live = scaled(persist(apply(None, web(), now=T0)), 5)
    result = apply(live, web(replicas=None))
    assert result["spec"]["replicas"] == 5  # owned by kubectl-scale, so not removed


def test_conflict_with_kubectl_edit_and_agreement_without_conflict() -> None:
    live = edited(persist(apply(None, web(), now=T0)), "nginx:1.27")
    error = conflict(live, web(image="nginx:1.26"))
    assert error.message == ('Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: '
                             '.spec.template.spec.containers[name="nginx"].image')
    shared = apply(live, web(image="nginx:1.27"))
    assert set(owners(shared)) == {"kubectl/Apply", "kubectl-edit/Update"}


def test_conflicts_with_several_managers() -> None:
    live = edited(scaled(persist(apply(None, web(), now=T0)), 5), "nginx:1.27")
    other = {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "web", "namespace": "default", "labels": {"tier": "fe"}}}
    live = apply(live, other, manager="labeller")
    error = conflict(live, web(image="nginx:1.26", tier="be"))
    assert error.message == (
        "Apply failed with 3 conflicts: "
        'conflicts with "kubectl-edit" using apps/v1:\n'
        '- .spec.template.spec.containers[name="nginx"].image\n'
        'conflicts with "kubectl-scale" with subresource "scale" using apps/v1:\n'
        "- .spec.replicas\n"
        'conflicts with "labeller":\n'
        "- .metadata.labels.tier")
    assert [c["field"] for c in error.details["causes"]] == [
        '.spec.template.spec.containers[name="nginx"].image', ".spec.replicas", ".metadata.labels.tier"]


def test_status_is_neither_applied_nor_owned() -> None:
    live = persist(apply(None, web(), now=T0))
    config = {**web(), "status": {"replicas": 99}}
    result = apply(live, config)
    assert result["status"] == live["status"]
    assert "f:status" not in owners(result)["kubectl/Apply"]["fieldsV1"]
    assert "status" not in apply(None, config)


def test_configmap_data_keys() -> None:
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "cfg", "namespace": "default"}, "data": {"a": "1", "b": "2"}}
    live = apply(None, config, now=T0)
    assert live["metadata"]["managedFields"][0]["fieldsV1"] == {"f:data": {"f:a": {}, "f:b": {}}}
    result = apply(live, {**config, "data": {"a": "1"}})
    assert result["data"] == {"a": "1"}


def test_service_ports_keep_server_allocated_fields() -> None:
    config: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    created = apply(None, config, now=T0)
    assert created["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"]["f:ports"] == {
        'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}, "f:targetPort": {}}}
    live = copy.deepcopy(created)
    live["spec"]["ports"][0].update(protocol="TCP", nodePort=30080)
    live["spec"]["clusterIP"] = "10.96.0.10"
    assert apply(live, config, now=T2) == live


def test_finalizer_removed_from_the_file() -> None:
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cfg", "namespace": "default", "finalizers": ["example.com/a", "example.com/b"]}}
    live = apply(None, config, now=T0)
    result = apply(live, {**config, "metadata": {**config["metadata"], "finalizers": ["example.com/b"]}})
    assert result["metadata"]["finalizers"] == ["example.com/b"]


def test_objects_without_managed_fields_are_first_attributed_to_before_first_apply() -> None:
    live = persist(web(replicas=2))
    result = apply(live, web(replicas=2))
    assert set(owners(result)) == {"before-first-apply/Update", "kubectl/Apply"}
    error = conflict(live, web(replicas=4))
    assert error.message == ('Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: '
                             ".spec.replicas")


def client_side_applied(config: dict[str, Any]) -> dict[str, Any]:
    """An object created by `kubectl apply` (client-side), with its last-applied annotation."""
    obj = copy.deepcopy(config)
    obj["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: json.dumps(config, sort_keys=True) + "\n"}
    stored = persist(obj)
    update_managed_fields(None, stored, manager="kubectl-client-side-apply", api_version="apps/v1", now=T0)
    return stored


def test_kubectl_takes_over_from_client_side_apply() -> None:
    live = client_side_applied(web())
    result = apply(live, web(replicas=4))
    assert result["spec"]["replicas"] == 4
    assert json.loads(result["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]) == web(replicas=4)
    assert result["metadata"]["annotations"][LAST_APPLIED_ANNOTATION].endswith("\n")
    assert "f:replicas" not in owners(result)["kubectl-client-side-apply/Update"]["fieldsV1"]["f:spec"]


def test_other_managers_do_not_take_over_from_client_side_apply() -> None:
    live = client_side_applied(web())
    error = conflict(live, web(replicas=4), manager="argocd")
    assert error.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using '
                             "apps/v1: .spec.replicas")


def test_drift_from_the_last_applied_configuration_still_conflicts() -> None:
    live = edited(client_side_applied(web()), "nginx:1.27")
    error = conflict(live, web(image="nginx:1.26"))
    assert '"kubectl-edit" using apps/v1' in error.message


def test_last_applied_annotation_is_left_alone_when_absent() -> None:
    live = persist(apply(None, web(), now=T0))
    assert "annotations" not in apply(live, web(replicas=4))["metadata"]


def test_result_shares_untouched_subtrees() -> None:
    live = persist(apply(None, web(), now=T0))
    result = apply(live, web(replicas=5), now=T2)
    assert result["status"] is live["status"]
    assert result["metadata"] is not live["metadata"]


@pytest.mark.parametrize(("body", "manager", "code", "message"), [
    pytest.param(web(), "", 422, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                 "is required for apply requests", id="no-field-manager"),
    pytest.param(["x"], "kubectl", 400, "error decoding YAML: json: cannot unmarshal array into Go value of "
                 "type map[string]interface {}", id="not-an-object"),
    pytest.param({**web(), "metadata": {"name": "web", "managedFields": []}}, "kubectl", 400,
                 "metadata.managedFields must be nil", id="managed-fields-sent"),
    pytest.param({**web(), "kind": "ReplicaSet"}, "kubectl", 400,
                 "invalid object type: apps/v1, Kind=ReplicaSet", id="wrong-kind"),
    pytest.param({**web(), "apiVersion": "v1"}, "kubectl", 400, "invalid object type: /v1, Kind=Deployment",
                 id="wrong-version"),
    pytest.param({"metadata": {"name": "web"}}, "kubectl", 400, "invalid object type: /, Kind=",
                 id="no-type"),
])
def test_bad_requests(body: Any, manager: str, code: int, message: str) -> None:
    with pytest.raises(APIError) as info:
        server_side_apply(None, body, manager=manager, force=False, api_version="apps/v1", kind="Deployment", now=T0)
    assert (info.value.code, info.value.message) == (code, message)


def test_keyed_list_errors_are_plain_errors() -> None:
    config = web()
    config["spec"]["template"]["spec"]["containers"].append({"name": "nginx"})
    with pytest.raises(APIError) as info:
        apply(None, config)
    assert (info.value.code, info.value.reason) == (500, "")
    assert info.value.message == ("failed to create typed patch object (default/web; apps/v1, Kind=Deployment): "
                                  '.spec.template.spec.containers: duplicate entries for key [name="nginx"]')


def test_a_live_object_that_does_not_fit_its_schema_is_a_plain_error() -> None:
    live = persist(apply(None, web(), now=T0))
    live["spec"]["template"]["spec"]["hostAliases"] = [{"hostnames": ["x"]}]
    config = web()
    config["spec"]["template"]["spec"]["hostAliases"] = [{"ip": "10.0.0.1", "hostnames": ["x"]}]
    with pytest.raises(APIError) as info:
        apply(live, config)
    assert (info.value.code, info.value.reason) == (500, "")
    assert info.value.message.startswith("failed to create typed live object (default/web; apps/v1, Kind=Deployment): "
                                         ".spec.template.spec.hostAliases: element 0: associative list with keys")
