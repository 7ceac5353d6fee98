"""The shared pod and Service helpers: activity, readiness and availability, deletion cost, IPs, and which Services
get endpoints from which pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubelite.controllers import endpointutil, podutil

Obj = dict[str, Any]
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def pod(*, phase: str = "Running", ready: str | None = "True", since: str = "2025-01-01T11:59:50Z",
        deleting: bool = False, annotations: Obj | None = None, status: Obj | None = None) -> Obj:
    md: Obj = {"name": "p", "namespace": "default", "labels": {"app": "web"}, "annotations": annotations or {}}
    if deleting:
        md["deletionTimestamp"] = "2025-01-01T12:00:00Z"
    st: Obj = {"phase": phase, **(status or {})}
    if ready is not None:
        st["conditions"] = [{"type": "PodScheduled", "status": "True"},
                            {"type": "Ready", "status": ready, "lastTransitionTime": since}]
    return {"metadata": md, "spec": {}, "status": st}


@pytest.mark.parametrize(("p", "active", "terminating"), [
    pytest.param(pod(), True, False, id="running"),
    pytest.param(pod(phase="Succeeded"), False, False, id="succeeded"),
    pytest.param(pod(phase="Failed", deleting=True), False, False, id="failed-and-deleted"),
    pytest.param(pod(deleting=True), False, True, id="terminating"),
])
def test_active_and_terminating(p: Obj, active: bool, terminating: bool) -> None:
    assert podutil.is_active(p) is active and podutil.is_terminating(p) is terminating


def test_availability_needs_min_ready_seconds_of_readiness() -> None:
    ten_seconds = pod()
    assert podutil.is_available(ten_seconds, 0, NOW) and podutil.is_available(ten_seconds, 9, NOW)
    assert not podutil.is_available(ten_seconds, 10, NOW)  # strictly longer than minReadySeconds
    assert podutil.seconds_until_available(ten_seconds, 15, NOW) == 5.0
    assert podutil.seconds_until_available(ten_seconds, 5, NOW) is None  # already available
    assert not podutil.is_available(pod(ready="False"), 0, NOW)
    no_time = pod(since="")
    assert not podutil.is_available(no_time, 1, NOW) and podutil.seconds_until_available(no_time, 1, NOW) is None
    assert podutil.ready_since(pod()) == NOW - timedelta(seconds=10)


@pytest.mark.parametrize(("value", "cost"), [
    pytest.param(None, 0, id="absent"),
    pytest.param("100", 100, id="positive"),
    pytest.param("-7", -7, id="negative"),
    pytest.param("0", 0, id="zero"),
    pytest.param("+5", 0, id="plus-sign"),
    pytest.param("007", 0, id="leading-zeros"),
    pytest.param("2147483648", 0, id="beyond-int32"),
    pytest.param("1.5", 0, id="not-an-int"),
])
def test_deletion_cost(value: str | None, cost: int) -> None:
    annotations = {} if value is None else {podutil.POD_DELETION_COST: value}
    assert podutil.deletion_cost(pod(annotations=annotations)) == cost


def test_pod_ips_prefer_the_plural_field() -> None:
    assert podutil.pod_ips(pod(status={"podIP": "10.0.0.1"})) == ["10.0.0.1"]
    assert podutil.pod_ips(pod(status={"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]})) \
        == ["10.0.0.1", "fd00::1"]
    assert podutil.pod_ips(pod()) == []


def svc(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "default"}, "spec": spec}


@pytest.mark.parametrize(("service", "wanted"), [
    pytest.param(svc(selector={"app": "web"}), True, id="selector"),
    pytest.param(svc(), False, id="no-selector"),
    pytest.param(svc(selector={}), False, id="empty-selector"),
    pytest.param(svc(selector={"app": "web"}, type="ExternalName"), False, id="external-name"),
    pytest.param(svc(clusterIP="None"), False, id="headless-without-selector"),
])
def test_which_services_get_endpoints(service: Obj, wanted: bool) -> None:
    assert endpointutil.wants_endpoints(service) is wanted


def test_services_selecting_a_pod_old_or_new() -> None:
    web, db = svc(selector={"app": "web"}), svc(selector={"app": "db"})
    db["metadata"]["name"] = "db"
    elsewhere = svc(selector={"app": "web"})
    elsewhere["metadata"]["namespace"] = "other"
    moved = pod()
    moved["metadata"]["labels"] = {"app": "db"}
    assert endpointutil.services_selecting([web, db, elsewhere], pod()) == {"default/web"}
    assert endpointutil.services_selecting([web, db, elsewhere], pod(), moved) == {"default/web", "default/db"}


@pytest.mark.parametrize(("target", "port"), [
    pytest.param(9000, 9000, id="number"),
    pytest.param("http", 8080, id="name"),
    pytest.param("missing", None, id="unknown-name"),
    pytest.param(True, None, id="not-a-port"),
])
def test_find_port(target: Any, port: int | None) -> None:
    p = {"spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]}}
    assert endpointutil.find_port(p, {"port": 80, "targetPort": target, "protocol": "TCP"}) == port
