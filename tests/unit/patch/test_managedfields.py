"""managedFields bookkeeping for writes that are not applies (create, update, patch, subresources)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.apiserver.patch import manager_from_user_agent, update_managed_fields

T0, T1, T2 = "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", "2025-01-01T00:02:00Z"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def deployment() -> dict[str, Any]:
    """A Deployment as `kubectl apply` creates it, after the server's defaulting."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "1",
                     "creationTimestamp": T0, "generation": 1, "labels": {"app": "web"},
                     "annotations": {LAST_APPLIED: "{}\n"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "resources": {},
                                                       "imagePullPolicy": "IfNotPresent"}],
                                       "restartPolicy": "Always", "securityContext": {}}}},
    }


def created(manager: str = "kubectl-client-side-apply") -> dict[str, Any]:
    obj = deployment()
    update_managed_fields(None, obj, manager=manager, api_version="apps/v1", now=T0)
    return obj


def changed(obj: dict[str, Any], edit: Any) -> dict[str, Any]:
    new = copy.deepcopy(obj)
    edit(new)
    return new


def entries(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["manager"] + ("/" + e["subresource"] if e.get("subresource") else ""): e
            for e in obj["metadata"].get("managedFields", [])}


def test_create_records_every_field_like_kube_apiserver() -> None:
    assert created()["metadata"]["managedFields"] == [{
        "manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:annotations": {".": {}, f"f:{LAST_APPLIED}": {}}, "f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {}, "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}, "f:maxUnavailable": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                        ".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:name": {}, "f:resources": {}}},
                        "f:restartPolicy": {}, "f:securityContext": {}}}},
        },
    }]


def test_edit_takes_the_changed_field_from_its_owner() -> None:
    old = created()
    new = changed(old, lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image="nginx:1.26"))
    update_managed_fields(old, new, manager="kubectl-edit", api_version="apps/v1", now=T1)
    owners = entries(new)
    assert owners["kubectl-edit"]["fieldsV1"] == {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"nginx"}': {"f:image": {}}}}}}}
    assert owners["kubectl-edit"]["time"] == T1
    csa = owners["kubectl-client-side-apply"]
    container = csa["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"nginx"}']
    assert "f:image" not in container and csa["time"] == T0
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == ["kubectl-client-side-apply", "kubectl-edit"]


def test_a_writer_keeps_what_it_took_before() -> None:
    old = created()
    first = changed(old, lambda o: o["metadata"]["labels"].update(tier="fe"))
    update_managed_fields(old, first, manager="kubectl-label", api_version="apps/v1", now=T1)
    second = changed(first, lambda o: o["metadata"]["labels"].update(team="a"))
    update_managed_fields(first, second, manager="kubectl-label", api_version="apps/v1", now=T2)
    label = entries(second)["kubectl-label"]
    assert label["fieldsV1"] == {"f:metadata": {"f:labels": {"f:team": {}, "f:tier": {}}}}
    assert label["time"] == T2


def test_removed_fields_leave_every_manager() -> None:
    old = created()
    new = changed(old, lambda o: o["metadata"].pop("labels"))
    update_managed_fields(old, new, manager="kubectl-edit", api_version="apps/v1", now=T1)
    assert "kubectl-edit" not in entries(new)  # it removed, but set nothing
    assert "f:labels" not in entries(new)["kubectl-client-side-apply"]["fieldsV1"]["f:metadata"]


def test_a_write_that_changes_nothing_keeps_managed_fields_as_they_were() -> None:
    old = created()
    new = copy.deepcopy(old)
    update_managed_fields(old, new, manager="kubectl-edit", api_version="apps/v1", now=T2)
    assert new == old


def test_writes_to_the_main_resource_do_not_own_status() -> None:
    old = created()
    new = changed(old, lambda o: o.update(status={"replicas": 1}))
    update_managed_fields(old, new, manager="kube-controller-manager", api_version="apps/v1", now=T1)
    assert "kube-controller-manager" not in entries(new)


def test_status_subresource_owns_status_and_not_spec() -> None:
    old = created()

    def edit(o: dict[str, Any]) -> None:
        o["status"] = {"replicas": 1, "conditions": [{"type": "Available", "status": "True"}]}
        o["spec"]["replicas"] = 7

    new = changed(old, edit)
    update_managed_fields(old, new, manager="kube-controller-manager", api_version="apps/v1", now=T1,
                          subresource="status")
    entry = entries(new)["kube-controller-manager/status"]
    assert entry["subresource"] == "status" and entry["operation"] == "Update"
    assert entry["fieldsV1"] == {"f:status": {
        ".": {}, "f:conditions": {".": {}, 'k:{"type":"Available"}': {".": {}, "f:status": {}, "f:type": {}}},
        "f:replicas": {}}}


def test_scale_subresource_entry() -> None:
    old = created()
    new = changed(old, lambda o: o["spec"].update(replicas=3))
    update_managed_fields(old, new, manager="kubectl-scale", api_version="apps/v1", now=T1, subresource="scale")
    assert entries(new)["kubectl-scale/scale"] == {
        "manager": "kubectl-scale", "operation": "Update", "apiVersion": "apps/v1", "time": T1,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"}
    assert "f:replicas" not in entries(new)["kubectl-client-side-apply"]["fieldsV1"]["f:spec"]


def test_an_empty_list_resets_and_the_object_stays_untracked() -> None:
    old = created()
    reset = changed(old, lambda o: o["metadata"].update(managedFields=[]))
    update_managed_fields(old, reset, manager="kubectl", api_version="apps/v1", now=T1)
    assert "managedFields" not in reset["metadata"]
    later = changed(reset, lambda o: o["spec"].update(replicas=2))
    update_managed_fields(reset, later, manager="kubectl-edit", api_version="apps/v1", now=T2)
    assert "managedFields" not in later["metadata"]


def test_managed_fields_sent_with_an_update_replace_the_stored_ones() -> None:
    old = created()
    sent = [{"manager": "someone", "operation": "Update", "apiVersion": "apps/v1", "time": T0,
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    new = changed(old, lambda o: o["metadata"].update(managedFields=sent))
    update_managed_fields(old, new, manager="kubectl-replace", api_version="apps/v1", now=T1)
    assert new["metadata"]["managedFields"] == sent


def test_subresource_writes_ignore_sent_managed_fields() -> None:
    old = created()
    new = changed(old, lambda o: o["metadata"].update(managedFields=[]))
    new["status"] = {"replicas": 1}
    update_managed_fields(old, new, manager="kcm", api_version="apps/v1", now=T1, subresource="status")
    assert set(entries(new)) == {"kubectl-client-side-apply", "kcm/status"}


def test_update_managers_are_capped_at_ten() -> None:
    obj = created()
    for i in range(11):
        new = changed(obj, lambda o, i=i: o["metadata"]["labels"].update({f"l{i}": "x"}))
        update_managed_fields(obj, new, manager=f"m{i}", api_version="apps/v1", now=f"2025-01-01T01:{i:02}:00Z")
        obj = new
    # Twelve updaters: the oldest three (same version) fold into one bucket, stamped with the newest of them.
    managers = [e["manager"] for e in obj["metadata"]["managedFields"]]
    assert managers == ["ancient-changes", *(f"m{i}" for i in range(2, 11))]
    ancient = entries(obj)["ancient-changes"]
    assert ancient["time"] == "2025-01-01T01:01:00Z"
    assert set(ancient["fieldsV1"]["f:metadata"]["f:labels"]) >= {"f:app", "f:l0", "f:l1"}


def test_inputs_are_not_mutated_beyond_new_managed_fields() -> None:
    old = created()
    old_copy = copy.deepcopy(old)
    stored_entries = old["metadata"]["managedFields"]
    new = changed(old, lambda o: o["spec"].update(replicas=9))
    update_managed_fields(old, new, manager="x", api_version="apps/v1", now=T1)
    assert old == old_copy and old["metadata"]["managedFields"] is stored_entries
    assert new["metadata"]["managedFields"] is not stored_entries


@pytest.mark.parametrize(("user_agent", "manager"), [
    pytest.param("kubectl/v1.37.0 (linux/amd64) kubernetes/abcdef", "kubectl", id="kubectl"),
    pytest.param("OpenAPI-Generator/37.0.0/python", "OpenAPI-Generator", id="python-client"),
    pytest.param("", "", id="empty"),
    pytest.param("a\x00b\tc/x", "abc", id="unprintable-dropped"),
    pytest.param("x" * 200, "x" * 128, id="truncated"),
    pytest.param("é" * 100, "é" * 64, id="truncated-in-bytes"),
])
def test_manager_from_user_agent(user_agent: str, manager: str) -> None:
    assert manager_from_user_agent(user_agent) == manager


def test_an_object_that_does_not_fit_its_schema_loses_its_managed_fields() -> None:
    old = created()
    new = changed(old, lambda o: o["spec"]["template"]["spec"].update(hostAliases=[{"hostnames": ["x"]}]))
    update_managed_fields(old, new, manager="kubectl-edit", api_version="apps/v1", now=T1)  # does not raise
    assert "managedFields" not in new["metadata"]
