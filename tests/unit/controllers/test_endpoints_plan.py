"""The Endpoints controller's pure decisions: addresses and ports from pods, Kubernetes' subset repacking,
truncation at 1000 addresses, and when the object needs writing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.controllers.endpoints import (
    MAX_CAPACITY,
    OVER_CAPACITY_ANNOTATION,
    desired_subsets,
    plan_endpoints,
    repack_subsets,
    truncate,
)

Obj = dict[str, Any]


def svc(*, ports: list[Obj] | None = None, publish: bool = False, cluster_ip: str = "10.96.0.1",
        families: list[str] | None = None, labels: Obj | None = None) -> Obj:
    spec: Obj = {"selector": {"app": "web"}, "clusterIP": cluster_ip, "ipFamilies": families or ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
                 if ports is None else ports}
    if publish:
        spec["publishNotReadyAddresses"] = True
    return {"metadata": {"name": "web", "namespace": "default", "uid": "svc", "labels": labels or {"team": "blue"}},
            "spec": spec}


def pod(name: str, ip: str | None = "10.0.0.1", *, ready: bool = True, port: int = 8080, deleting: bool = False,
        phase: str = "Running", ips: tuple[str, ...] = (), node: str = "n1", metrics_port: int | None = None) -> Obj:
    md: Obj = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    ports = [{"name": "http", "containerPort": port}]
    if metrics_port is not None:
        ports.append({"name": "metrics", "containerPort": metrics_port})
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": x} for x in (ip, *ips)]
    return {"metadata": md, "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports}]},
            "status": status}


def address(name: str, ip: str, node: str = "n1") -> Obj:
    return {"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "default", "name": name,
                                                      "uid": f"uid-{name}"}}


HTTP_8080 = {"name": "http", "port": 8080, "protocol": "TCP"}


def test_ready_and_not_ready_pods_share_a_subset() -> None:
    subsets = desired_subsets(svc(), [pod("b", "10.0.0.2", ready=False), pod("a", "10.0.0.1")])
    assert subsets == [{"addresses": [address("a", "10.0.0.1")], "notReadyAddresses": [address("b", "10.0.0.2")],
                        "ports": [HTTP_8080]}]


def test_which_pods_are_addresses() -> None:
    pods = [pod("ok", "10.0.0.1"), pod("no-ip", None), pod("done", "10.0.0.3", phase="Succeeded"),
            pod("going", "10.0.0.4", deleting=True)]
    assert desired_subsets(svc(), pods) == [{"addresses": [address("ok", "10.0.0.1")], "ports": [HTTP_8080]}]
    # Publishing not-ready addresses also keeps terminating pods, all as ready addresses.
    published = desired_subsets(svc(publish=True), [*pods, pod("slow", "10.0.0.5", ready=False)])
    assert published == [{"addresses": [address("ok", "10.0.0.1"), address("going", "10.0.0.4"),
                                        address("slow", "10.0.0.5")], "ports": [HTTP_8080]}]


def test_named_ports_split_pods_into_subsets_by_port_number() -> None:
    subsets = desired_subsets(svc(), [pod("a", "10.0.0.1", port=8080), pod("b", "10.0.0.2", port=9090)])
    assert subsets == [{"addresses": [address("a", "10.0.0.1")], "ports": [HTTP_8080]},
                       {"addresses": [address("b", "10.0.0.2")],
                        "ports": [{"name": "http", "port": 9090, "protocol": "TCP"}]}]


def test_addresses_serving_the_same_ports_are_packed_together() -> None:
    two_ports = svc(ports=[{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                           {"name": "metrics", "port": 9100, "targetPort": "metrics", "protocol": "TCP"}])
    subsets = desired_subsets(two_ports, [pod("a", "10.0.0.1", metrics_port=9100),
                                          pod("b", "10.0.0.2", metrics_port=9100), pod("c", "10.0.0.3")])
    metrics = {"name": "metrics", "port": 9100, "protocol": "TCP"}
    assert subsets == [{"addresses": [address("a", "10.0.0.1"), address("b", "10.0.0.2"), address("c", "10.0.0.3")],
                        "ports": [HTTP_8080]},
                       {"addresses": [address("a", "10.0.0.1"), address("b", "10.0.0.2")], "ports": [metrics]}]


def test_not_ready_wins_over_ready_for_the_same_address_and_port() -> None:
    a = address("a", "10.0.0.1")
    subsets = repack_subsets([(a, HTTP_8080, True), (a, HTTP_8080, False)])
    assert subsets == [{"notReadyAddresses": [a], "ports": [HTTP_8080]}]


def test_headless_services_without_ports_still_list_addresses() -> None:
    subsets = desired_subsets(svc(cluster_ip="None", ports=[]), [pod("a", "10.0.0.1")])
    assert subsets == [{"addresses": [address("a", "10.0.0.1")]}]
    assert desired_subsets(svc(ports=[]), [pod("a", "10.0.0.1")]) == []  # not headless: nothing to serve


def test_the_address_is_in_the_service_ip_family() -> None:
    dual = pod("a", "10.0.0.1", ips=("fd00::1",))
    (subset,) = desired_subsets(svc(families=["IPv6", "IPv4"]), [dual])
    assert subset["addresses"][0]["ip"] == "fd00::1"
    assert desired_subsets(svc(families=["IPv6"]), [pod("b", "10.0.0.2")]) == []


def test_hostname_when_the_pod_subdomain_is_the_service() -> None:
    p = pod("a", "10.0.0.1")
    p["spec"].update(hostname="a-host", subdomain="web")
    (subset,) = desired_subsets(svc(), [p])
    assert subset["addresses"][0]["hostname"] == "a-host"


def many(prefix: str, n: int) -> list[Obj]:
    return [address(f"{prefix}{i}", f"10.{i // 250}.{i % 250}.{1 if prefix == 'r' else 2}") for i in range(n)]


@pytest.mark.parametrize(("ready", "not_ready", "kept_ready", "kept_not_ready"), [
    pytest.param(900, 300, 900, 100, id="not-ready-cut-first"),
    pytest.param(1200, 10, 1000, 0, id="ready-cut-and-every-not-ready-dropped"),
    pytest.param(600, 400, 600, 400, id="at-capacity"),
])
def test_truncation(ready: int, not_ready: int, kept_ready: int, kept_not_ready: int) -> None:
    subsets = [{"addresses": many("r", ready), "notReadyAddresses": many("n", not_ready), "ports": [HTTP_8080]}]
    cut, truncated = truncate(copy.deepcopy(subsets))
    assert truncated == (ready + not_ready > MAX_CAPACITY)
    assert len(cut[0].get("addresses") or []) == kept_ready
    assert len(cut[0].get("notReadyAddresses") or []) == kept_not_ready


def test_truncation_shares_the_budget_in_proportion() -> None:
    subsets = [{"addresses": many("r", 900), "ports": [HTTP_8080]},
               {"addresses": many("s", 300), "ports": [{"name": "x", "port": 1, "protocol": "TCP"}]}]
    cut, truncated = truncate(subsets)
    assert truncated and [len(s["addresses"]) for s in cut] == [750, 250]


def test_a_new_endpoints_object() -> None:
    new = plan_endpoints(svc(), [pod("a")], None)
    assert new == {"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": "web", "namespace": "default", "labels": {"team": "blue"}},
                   "subsets": [{"addresses": [address("a", "10.0.0.1")], "ports": [HTTP_8080]}]}
    empty = plan_endpoints(svc(cluster_ip="None"), [], None)
    assert empty is not None and "subsets" not in empty
    assert meta.labels(empty) == {"team": "blue", "service.kubernetes.io/headless": ""}


def test_unchanged_endpoints_are_not_written() -> None:
    current = plan_endpoints(svc(), [pod("a")], None)
    assert current is not None
    current["metadata"].update(resourceVersion="4", uid="ep")
    current["subsets"][0]["addresses"][0]["targetRef"]["resourceVersion"] = "77"  # older writers set it
    assert plan_endpoints(svc(), [pod("a")], current) is None


def test_changes_are_written_over_the_version_read() -> None:
    current = plan_endpoints(svc(), [pod("a")], None)
    assert current is not None
    current["metadata"].update(resourceVersion="4", uid="ep", annotations={"keep": "me"})
    relabelled = plan_endpoints(svc(labels={"team": "red"}), [pod("a")], current)
    assert relabelled is not None and meta.resource_version(relabelled) == "4"
    assert meta.labels(relabelled) == {"team": "red"} and meta.annotations(relabelled) == {"keep": "me"}
    not_ready = plan_endpoints(svc(), [pod("a", ready=False)], current)
    assert not_ready is not None and not_ready["subsets"][0]["notReadyAddresses"] == [address("a", "10.0.0.1")]
    gone = plan_endpoints(svc(), [], current)
    assert gone is not None and "subsets" not in gone


def test_the_over_capacity_annotation_comes_and_goes() -> None:
    pods = [pod(f"p{i}", f"10.{i // 250}.{i % 250}.1") for i in range(MAX_CAPACITY + 5)]
    full = plan_endpoints(svc(), pods, None)
    assert full is not None and meta.annotations(full) == {OVER_CAPACITY_ANNOTATION: "truncated"}
    assert sum(len(s["addresses"]) for s in full["subsets"]) == MAX_CAPACITY
    full["metadata"]["resourceVersion"] = "9"
    assert plan_endpoints(svc(), pods, full) is None  # truncated, and already written that way
    fewer = plan_endpoints(svc(), pods[:10], full)
    assert fewer is not None and not meta.annotations(fewer)
