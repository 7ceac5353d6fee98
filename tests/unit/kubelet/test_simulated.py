"""The simulated kubelet's pure parts: node and lease objects, heartbeats, pod addresses, and the pod plan
(start, run, exit, restart with backoff)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubelite.kubelet.simulated import (
    EXIT_CODE_ANNOTATION,
    RUN_SECONDS_ANNOTATION,
    PodAddresses,
    SimulationConfig,
    backoff_seconds,
    build_lease,
    build_node,
    fake_pod_cidr,
    healthy_conditions,
    image_id,
    needs_start,
    node_ip,
    node_status_update,
    plan_pod,
    renewal_offsets,
)

Obj = dict[str, Any]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
T0_TEXT = "2025-01-01T00:00:00Z"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- configuration ----------------------------------------------------------------------------------

def test_node_names_and_validation() -> None:
    assert SimulationConfig(nodes=3, name_prefix="n-").node_names() == ["n-0", "n-1", "n-2"]
    with pytest.raises(ValueError, match="at least one node"):
        SimulationConfig(nodes=0)
    with pytest.raises(ValueError, match="cannot fail sim-9"):
        SimulationConfig(nodes=3, failures={"sim-9": 1.0})
    with pytest.raises(ValueError):
        SimulationConfig(nodes=1, memory="lots")


# --- nodes and leases -------------------------------------------------------------------------------

def test_addresses_are_fake_and_distinct() -> None:
    assert [node_ip(i) for i in (0, 1, 255, 256)] == ["10.200.0.1", "10.200.0.2", "10.200.1.0", "10.200.1.1"]
    assert [fake_pod_cidr(i) for i in (0, 1, 300)] == ["100.64.0.0/24", "100.64.1.0/24", "100.65.44.0/24"]


def test_build_node() -> None:
    node = build_node(SimulationConfig(nodes=2, cpu="2000m", memory="8Gi", pods=20, arch="arm64"), 1, now=T0_TEXT)
    assert node["metadata"]["name"] == "sim-1"
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-1" and labels["kubernetes.io/arch"] == "arm64"
    assert labels["node.kubernetes.io/instance-type"] == "simulated" and labels["kubernetes.io/os"] == "linux"
    status = node["status"]
    assert status["capacity"] == status["allocatable"] == {"cpu": "2", "memory": "8Gi", "pods": "20",
                                                           "ephemeral-storage": "100Gi"}
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"] == "simulated://0.1" and info["kubeletVersion"].startswith("v1.37.0")
    assert set(info) >= {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "kubeProxyVersion",
                         "operatingSystem", "architecture"}  # the official client's required fields
    assert status["addresses"][0] == {"type": "InternalIP", "address": "10.200.0.2"}
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}


def test_healthy_conditions_keep_transition_times() -> None:
    first = healthy_conditions([], now=T0_TEXT)
    later = healthy_conditions(first, now="2025-01-01T00:05:00Z")
    assert all(c["lastTransitionTime"] == T0_TEXT and c["lastHeartbeatTime"] == "2025-01-01T00:05:00Z"
               for c in later)
    unknown = [{**c, "status": "Unknown"} for c in first]
    assert all(c["lastTransitionTime"] == "2025-01-01T00:06:00Z"
               for c in healthy_conditions(unknown, now="2025-01-01T00:06:00Z"))


def test_node_status_is_posted_when_stale_or_changed() -> None:
    node = build_node(SimulationConfig(nodes=1), 0, now=T0_TEXT)
    assert node_status_update(node, now=at(10), report_interval=300) is None
    stale = node_status_update(node, now=at(301), report_interval=300)
    assert stale is not None
    assert {c["lastHeartbeatTime"] for c in stale["conditions"]} == {"2025-01-01T00:05:01Z"}
    assert stale["capacity"] == node["status"]["capacity"]

    marked = copy.deepcopy(node)
    marked["status"]["conditions"][3]["status"] = "Unknown"
    marked["status"]["conditions"].append({"type": "NetworkUnavailable", "status": "False"})
    fixed = node_status_update(marked, now=at(10), report_interval=300)
    assert fixed is not None
    assert [(c["type"], c["status"]) for c in fixed["conditions"]][-2:] == [("Ready", "True"),
                                                                            ("NetworkUnavailable", "False")]


def test_build_lease_is_owned_by_the_node() -> None:
    node = {"metadata": {"name": "sim-0", "uid": "u-1"}}
    lease = build_lease(node, now="2025-01-01T00:00:00.000000Z", duration_seconds=40)
    assert lease["metadata"] == {"name": "sim-0", "namespace": "kube-node-lease", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "sim-0", "uid": "u-1"}]}
    assert lease["spec"] == {"holderIdentity": "sim-0", "leaseDurationSeconds": 40,
                             "renewTime": "2025-01-01T00:00:00.000000Z"}


def test_renewals_are_spread_over_the_interval() -> None:
    assert renewal_offsets(4, 10.0) == [0.0, 2.5, 5.0, 7.5]


# --- pod addresses ----------------------------------------------------------------------------------

def test_pod_addresses_skip_network_and_gateway_and_are_reused_after_release() -> None:
    book = PodAddresses()
    assert book.assign("ns/a", "n1", "10.244.3.0/24") == "10.244.3.2"
    assert book.assign("ns/b", "n1", "10.244.3.0/24") == "10.244.3.3"
    assert book.assign("ns/a", "n1", "10.244.3.0/24") == "10.244.3.2"  # stable per pod
    assert book.assign("ns/c", "n2", "10.244.4.0/24") == "10.244.4.2"  # per node
    book.release("ns/a")
    assert book.assign("ns/d", "n1", "10.244.3.0/24") == "10.244.3.2"
    book.claim("ns/e", "n1", "10.244.3.4")
    assert book.assign("ns/f", "n1", "10.244.3.0/24") == "10.244.3.5"


def test_a_full_pod_range_is_an_error() -> None:
    book = PodAddresses()
    assert book.assign("a", "n", "10.0.0.0/30") == "10.0.0.2"
    with pytest.raises(ValueError, match="no free pod address"):
        book.assign("b", "n", "10.0.0.0/30")


# --- pods -------------------------------------------------------------------------------------------

def pod(*, annotations: dict[str, str] | None = None, policy: str | None = None, inits: bool = False) -> Obj:
    spec: Obj = {"nodeName": "sim-0", "containers": [{"name": "app", "image": "ghcr.io/x/app:1.0"}]}
    if inits:
        spec["initContainers"] = [{"name": "init", "image": "busybox"}]
    if policy:
        spec["restartPolicy"] = policy
    return {"metadata": {"name": "p", "namespace": "default", "uid": "uid-p", "annotations": annotations or {}},
            "spec": spec,
            "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "early"}]}}


def advance(p: Obj, status: Obj | None) -> Obj:
    assert status is not None
    return {**p, "status": status}


def test_a_pending_pod_starts() -> None:
    p = pod(inits=True)
    assert needs_start(p)
    step = plan_pod(p, now=T0, host_ip="10.200.0.1", pod_ip="10.244.0.2")
    assert step.requeue_after is None
    status = step.status
    assert status is not None
    assert (status["phase"], status["podIP"], status["hostIP"], status["startTime"]) == \
        ("Running", "10.244.0.2", "10.200.0.1", T0_TEXT)
    assert [c["type"] for c in status["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                          "ContainersReady", "PodScheduled"]
    assert next(c for c in status["conditions"] if c["type"] == "PodScheduled")["lastTransitionTime"] == "early"
    (app,) = status["containerStatuses"]
    assert app["state"] == {"running": {"startedAt": T0_TEXT}}
    assert app["imageID"].startswith("ghcr.io/x/app@sha256:")
    (init,) = status["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed" and init["ready"]
    assert not needs_start(advance(p, status))


def test_a_running_pod_without_an_exit_is_left_alone() -> None:
    p = pod()
    running = advance(p, plan_pod(p, now=T0, host_ip="h", pod_ip="i").status)
    assert plan_pod(running, now=at(100), host_ip="h", pod_ip=None).status is None


@pytest.mark.parametrize(("code", "phase", "reason"), [(0, "Succeeded", "Completed"), (2, "Failed", "Error")])
def test_never_restarting_pods_end(code: int, phase: str, reason: str) -> None:
    p = pod(annotations={EXIT_CODE_ANNOTATION: str(code), RUN_SECONDS_ANNOTATION: "30"}, policy="Never")
    start = plan_pod(p, now=T0, host_ip="h", pod_ip="i")
    assert start.requeue_after == 30
    running = advance(p, start.status)
    assert plan_pod(running, now=at(10), host_ip="h", pod_ip=None).requeue_after == pytest.approx(20)
    done = plan_pod(running, now=at(30), host_ip="h", pod_ip=None)
    assert done.requeue_after is None and done.status is not None
    assert done.status["phase"] == phase
    (app,) = done.status["containerStatuses"]
    assert app["state"]["terminated"]["exitCode"] == code and app["state"]["terminated"]["reason"] == reason
    assert not app["ready"]
    ready = next(c for c in done.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert plan_pod(advance(p, done.status), now=at(99), host_ip="h", pod_ip=None).status is None


def test_on_failure_restarts_with_backoff() -> None:
    p = pod(annotations={EXIT_CODE_ANNOTATION: "1"}, policy="OnFailure")
    running = advance(p, plan_pod(p, now=T0, host_ip="h", pod_ip="10.1.0.2").status)
    crashed = plan_pod(running, now=T0, host_ip="h", pod_ip=None)
    assert crashed.requeue_after == 10
    assert crashed.status is not None and crashed.status["phase"] == "Running"
    (app,) = crashed.status["containerStatuses"]
    assert app["restartCount"] == 1 and app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert app["lastState"]["terminated"]["exitCode"] == 1
    waiting = advance(p, crashed.status)
    assert plan_pod(waiting, now=at(4), host_ip="h", pod_ip=None).requeue_after == pytest.approx(6)
    again = plan_pod(waiting, now=at(10), host_ip="h", pod_ip=None)
    assert again.status is not None and again.status["podIP"] == "10.1.0.2"
    (app,) = again.status["containerStatuses"]
    assert "running" in app["state"] and app["restartCount"] == 1 and app["lastState"]["terminated"]
    assert plan_pod(advance(p, again.status), now=at(10), host_ip="h", pod_ip=None).requeue_after == 20


def test_on_failure_with_success_ends() -> None:
    p = pod(annotations={EXIT_CODE_ANNOTATION: "0"}, policy="OnFailure")
    running = advance(p, plan_pod(p, now=T0, host_ip="h", pod_ip="i").status)
    done = plan_pod(running, now=T0, host_ip="h", pod_ip=None)
    assert done.status is not None and done.status["phase"] == "Succeeded"


def test_a_malformed_exit_code_is_ignored() -> None:
    p = pod(annotations={EXIT_CODE_ANNOTATION: "soon"}, policy="Never")
    running = advance(p, plan_pod(p, now=T0, host_ip="h", pod_ip="i").status)
    assert plan_pod(running, now=at(5), host_ip="h", pod_ip=None) == plan_pod(running, now=at(6), host_ip="h",
                                                                              pod_ip=None)
    assert plan_pod(running, now=at(5), host_ip="h", pod_ip=None).status is None


def test_backoff_doubles_up_to_five_minutes() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3, 6, 20)] == [10, 20, 40, 300, 300]


@pytest.mark.parametrize(("image", "repository"), [
    ("nginx:1.25", "nginx"), ("registry:5000/team/app:v2", "registry:5000/team/app"),
    ("busybox", "busybox"), ("app@sha256:abc", "app"),
])
def test_image_id_names_the_repository(image: str, repository: str) -> None:
    assert image_id(image).startswith(f"{repository}@sha256:")
