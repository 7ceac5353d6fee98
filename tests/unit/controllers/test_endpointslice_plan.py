"""The EndpointSlice controller's pure decisions: which pods become which endpoints, in which slices, and the
writes that bring existing slices there."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api import meta
from kubelite.controllers.endpointslice import (
    CONTROLLER_NAME,
    address_types,
    endpoint_ports,
    new_slice,
    plan_slices,
    pod_to_endpoint,
)

Obj = dict[str, Any]
SVC_UID = "svc-uid"
NODES: dict[str, Obj] = {"n1": {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}},
                         "n2": {"metadata": {"name": "n2"}}}


def svc(*, target: int | str = "http", publish: bool = False, cluster_ip: str = "10.96.0.1",
        families: list[str] | None = None, labels: Obj | None = None, ports: list[Obj] | None = None,
        deleting: bool = False) -> Obj:
    spec: Obj = {"selector": {"app": "web"}, "clusterIP": cluster_ip, "ipFamilies": families or ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "targetPort": target, "protocol": "TCP"}]
                 if ports is None else ports}
    if publish:
        spec["publishNotReadyAddresses"] = True
    md: Obj = {"name": "web", "namespace": "default", "uid": SVC_UID, "labels": labels or {"team": "blue"}}
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Service", "metadata": md, "spec": spec}


def pod(name: str, ip: str | None = "10.0.0.1", *, ready: bool = True, port: int = 8080, node: str = "n1",
        phase: str = "Running", deleting: bool = False, port_name: str = "http", extra_ips: tuple[str, ...] = (),
        hostname: str = "", subdomain: str = "") -> Obj:
    md: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    spec: Obj = {"containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port,
                                                          "protocol": "TCP"}]}]}
    if node:
        spec["nodeName"] = node
    if hostname:
        spec["hostname"] = hostname
        spec["subdomain"] = subdomain
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}, *({"ip": x} for x in extra_ips)]
    return {"metadata": md, "spec": spec, "status": status}


def existing(name: str, endpoints: list[Obj], *, ports: list[Obj] | None = None, rv: str = "5",
             address_type: str = "IPv4", owner: str = SVC_UID, labels: Obj | None = None) -> Obj:
    s = new_slice(svc(), [{"name": "http", "port": 8080, "protocol": "TCP"}] if ports is None else ports,
                  address_type)
    s["metadata"].update(name=name, resourceVersion=rv, uid=f"uid-{name}")
    s["metadata"]["ownerReferences"][0]["uid"] = owner
    if labels is not None:
        s["metadata"]["labels"] = labels
    s["endpoints"] = endpoints
    return s


def ep_names(s: Obj) -> list[str]:
    return [e["targetRef"]["name"] for e in s["endpoints"]]


# --- single endpoints -------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "families"), [
    pytest.param({"ipFamilies": ["IPv6", "IPv4"]}, ["IPv6", "IPv4"], id="families"),
    pytest.param({"clusterIP": "fd00::1"}, ["IPv6"], id="from-cluster-ip"),
    pytest.param({"clusterIP": "None"}, ["IPv4", "IPv6"], id="headless-without-families"),
])
def test_address_types(spec: Obj, families: list[str]) -> None:
    assert address_types({"spec": spec}) == families


def test_named_target_ports_resolve_per_pod() -> None:
    assert endpoint_ports(svc(), pod("a", port=8080)) == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert endpoint_ports(svc(), pod("b", port=9090)) == [{"name": "http", "port": 9090, "protocol": "TCP"}]
    assert endpoint_ports(svc(), pod("c", port_name="web")) == []  # no port by that name
    assert endpoint_ports(svc(target=7000), pod("d")) == [{"name": "http", "port": 7000, "protocol": "TCP"}]
    udp = svc(ports=[{"name": "dns", "port": 53, "targetPort": "http", "protocol": "UDP", "appProtocol": "dns"}])
    assert endpoint_ports(udp, pod("e")) == []  # a name matches only with the same protocol
    tcp = svc(ports=[{"name": "x", "port": 1, "targetPort": 2, "appProtocol": "kubernetes.io/h2c"}])
    assert endpoint_ports(tcp, pod("f")) == [{"name": "x", "port": 2, "protocol": "TCP",
                                              "appProtocol": "kubernetes.io/h2c"}]


def test_sidecar_ports_count_for_named_target_ports() -> None:
    p = pod("a", port_name="other")
    p["spec"]["initContainers"] = [{"name": "proxy", "restartPolicy": "Always",
                                    "ports": [{"name": "http", "containerPort": 15000}]},
                                   {"name": "init", "ports": [{"name": "http", "containerPort": 1}]}]
    assert endpoint_ports(svc(), p) == [{"name": "http", "port": 15000, "protocol": "TCP"}]


@pytest.mark.parametrize(("ready", "deleting", "publish", "conditions"), [
    pytest.param(True, False, False, {"ready": True, "serving": True, "terminating": False}, id="ready"),
    pytest.param(False, False, False, {"ready": False, "serving": False, "terminating": False}, id="not-ready"),
    pytest.param(True, True, False, {"ready": False, "serving": True, "terminating": True}, id="terminating"),
    pytest.param(False, True, False, {"ready": False, "serving": False, "terminating": True},
                 id="terminating-not-serving"),
    pytest.param(False, False, True, {"ready": True, "serving": False, "terminating": False}, id="publish"),
    pytest.param(True, True, True, {"ready": True, "serving": True, "terminating": True}, id="publish-terminating"),
])
def test_endpoint_conditions(ready: bool, deleting: bool, publish: bool, conditions: Obj) -> None:
    endpoint = pod_to_endpoint(pod("a", ready=ready, deleting=deleting), NODES["n1"], svc(publish=publish), "IPv4")
    assert endpoint["conditions"] == conditions


def test_endpoint_fields() -> None:
    endpoint = pod_to_endpoint(pod("a", extra_ips=("fd00::5",), hostname="a", subdomain="web"), NODES["n1"], svc(),
                               "IPv4")
    assert endpoint == {"addresses": ["10.0.0.1"], "conditions": {"ready": True, "serving": True, "terminating": False},
                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a", "uid": "uid-a"},
                        "nodeName": "n1", "zone": "zone-a", "hostname": "a"}
    v6 = pod_to_endpoint(pod("a", extra_ips=("fd00::5",), hostname="a", subdomain="other"), NODES["n2"], svc(),
                         "IPv6")
    assert v6["addresses"] == ["fd00::5"] and "zone" not in v6 and "hostname" not in v6


# --- slices -----------------------------------------------------------------------------------------

def test_a_new_service_gets_one_slice_per_port_set() -> None:
    plan = plan_slices(svc(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", port=9090), pod("c", "10.0.0.3")], [],
                       NODES)
    assert plan.update == [] and plan.delete == [] and plan.missing_nodes == []
    by_port = {s["ports"][0]["port"]: s for s in plan.create}
    assert ep_names(by_port[8080]) == ["a", "c"] and ep_names(by_port[9090]) == ["b"]
    s = by_port[8080]
    assert s["metadata"] == {"generateName": "web-", "namespace": "default",
                             "labels": {"team": "blue", "kubernetes.io/service-name": "web",
                                        "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME},
                             "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                                  "uid": SVC_UID, "controller": True, "blockOwnerDeletion": True}]}
    assert s["addressType"] == "IPv4" and s["apiVersion"] == "discovery.k8s.io/v1"


def test_slices_hold_at_most_the_maximum() -> None:
    pods = [pod(f"p{i:03}", f"10.0.{i // 200}.{i % 200 + 1}") for i in range(250)]
    plan = plan_slices(svc(), pods, [], NODES)
    assert sorted(len(s["endpoints"]) for s in plan.create) == [50, 100, 100]
    assert len(plan_slices(svc(), pods[:7], [], NODES, max_endpoints=3).create) == 3


def test_which_pods_become_endpoints() -> None:
    pods = [pod("ok"), pod("no-ip", None), pod("done", phase="Succeeded"), pod("failed", phase="Failed"),
            pod("going", deleting=True), pod("not-ready", ready=False)]
    (s,) = plan_slices(svc(), pods, [], NODES).create
    assert ep_names(s) == ["going", "not-ready", "ok"]


def test_headless_service_labels_and_no_ports() -> None:
    headless = svc(cluster_ip="None", ports=[])
    (s,) = plan_slices(headless, [pod("a")], [], NODES).create
    assert meta.labels(s)["service.kubernetes.io/headless"] == "" and s["ports"] == []
    assert ep_names(s) == ["a"]


def test_an_unchanged_slice_is_left_alone() -> None:
    current = plan_slices(svc(), [pod("a"), pod("b", "10.0.0.2")], [], NODES).create[0]
    current["metadata"].update(name="web-abcde", resourceVersion="5", uid="u")
    # What the server adds (defaults, bookkeeping) is no reason to write.
    current["metadata"]["managedFields"] = [{"manager": "endpointslice-controller"}]
    current["endpoints"][0]["hints"] = None
    plan = plan_slices(svc(), [pod("b", "10.0.0.2"), pod("a")], [current], NODES)
    assert plan.empty


def test_a_changed_endpoint_updates_its_slice_in_place() -> None:
    current = existing("web-1", plan_slices(svc(), [pod("a"), pod("b", "10.0.0.2")], [], NODES).create[0]["endpoints"])
    plan = plan_slices(svc(), [pod("a", ready=False), pod("b", "10.0.0.2")], [current], NODES)
    (updated,) = plan.update
    assert plan.create == [] and plan.delete == []
    assert meta.name(updated) == "web-1" and meta.resource_version(updated) == "5"
    assert updated["endpoints"][0]["conditions"]["ready"] is False


def test_new_endpoints_fill_an_existing_slice_before_a_new_one() -> None:
    current = existing("web-1", plan_slices(svc(), [pod("a")], [], NODES).create[0]["endpoints"])
    plan = plan_slices(svc(), [pod("a"), pod("b", "10.0.0.2")], [current], NODES)
    assert plan.create == [] and [ep_names(s) for s in plan.update] == [["a", "b"]]


def test_removed_pods_leave_and_an_empty_slice_becomes_the_placeholder() -> None:
    two = plan_slices(svc(), [pod("a"), pod("b", "10.0.0.2")], [], NODES).create[0]["endpoints"]
    plan = plan_slices(svc(), [pod("a")], [existing("web-1", two)], NODES)
    assert [ep_names(s) for s in plan.update] == [["a"]]

    plan = plan_slices(svc(), [], [existing("web-1", two)], NODES)
    # The slice would go and a placeholder come: the slice is updated into the placeholder instead.
    (placeholder,) = plan.update
    assert plan.create == [] and plan.delete == []
    assert meta.name(placeholder) == "web-1" and placeholder["endpoints"] == [] and placeholder["ports"] == []


def test_the_placeholder_stays_while_there_are_no_endpoints() -> None:
    (placeholder,) = plan_slices(svc(), [], [], NODES).create
    assert placeholder["endpoints"] == [] and placeholder["ports"] == []
    placeholder["metadata"].update(name="web-p", resourceVersion="3")
    assert plan_slices(svc(), [pod("no-ip", None)], [placeholder], NODES).empty
    filled = plan_slices(svc(), [pod("a")], [placeholder], NODES)
    assert [ep_names(s) for s in filled.update] == [["a"]] and filled.create == [] and filled.delete == []
    assert filled.update[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


def test_foreign_and_unsupported_slices_are_deleted() -> None:
    endpoints = plan_slices(svc(), [pod("a")], [], NODES).create[0]["endpoints"]
    foreign = existing("old-owner", endpoints, owner="previous-service-uid")
    v6 = existing("v6", [], address_type="IPv6")
    mine = existing("mine", endpoints)
    plan = plan_slices(svc(), [pod("a")], [foreign, v6, mine], NODES)
    assert sorted(meta.name(s) for s in plan.delete) == ["old-owner", "v6"]
    assert plan.create == [] and plan.update == []


def test_service_label_changes_reach_the_slices() -> None:
    current = existing("web-1", plan_slices(svc(), [pod("a")], [], NODES).create[0]["endpoints"])
    plan = plan_slices(svc(labels={"team": "red"}), [pod("a")], [current], NODES)
    (updated,) = plan.update
    assert meta.labels(updated)["team"] == "red"
    assert meta.labels(updated)["endpointslice.kubernetes.io/managed-by"] == CONTROLLER_NAME


def test_pods_on_unknown_nodes_wait_unless_published() -> None:
    plan = plan_slices(svc(), [pod("a"), pod("lost", "10.0.0.9", node="gone")], [], NODES)
    assert [ep_names(s) for s in plan.create] == [["a"]] and plan.missing_nodes == [("lost", "gone")]
    published = plan_slices(svc(publish=True), [pod("lost", "10.0.0.9", node="gone")], [], NODES)
    assert [ep_names(s) for s in published.create] == [["lost"]] and published.missing_nodes == []


def test_a_service_being_deleted_gets_no_new_slices() -> None:
    plan = plan_slices(svc(deleting=True), [pod("a")], [], NODES)
    assert plan.empty
