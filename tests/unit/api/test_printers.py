"""Table printers: columns and cells as kube-apiserver computes them, the Table document, text output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubelite.api import printers, registry
from kubelite.api.printers import cells, columns, format_table, human_duration, table
from kubelite.api.registry import Kind

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def kind(name: str) -> Kind:
    return registry.resolve(name)


def row(resource: str, obj: dict[str, Any]) -> list[Any]:
    return cells(kind(resource), obj, NOW)


# ------------------------------------------------------------------------------------------------
# human_duration (the cases of apimachinery's duration_test.go and a few boundaries)
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (-3, "<invalid>"), (-2, "<invalid>"), (-1, "0s"), (-0.5, "0s"), (0, "0s"), (1, "1s"), (70, "70s"),
    (119.9, "119s"), (120, "2m"), (190, "3m10s"), (599, "9m59s"), (600, "10m"), (70 * 60, "70m"),
    (3 * 3600 - 1, "179m"), (3 * 3600, "3h"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (49 * 3600, "2d1h"), ((8 * 24 + 2) * 3600, "8d"), (367 * 24 * 3600, "367d"),
    ((365 * 2 * 24 + 25) * 3600, "2y1d"), (365 * 2 * 24 * 3600, "2y"), ((365 * 8 * 24 + 2) * 3600, "8y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# ------------------------------------------------------------------------------------------------
# Columns
# ------------------------------------------------------------------------------------------------


def _shape(resource: str) -> list[tuple[str, str, int]]:
    return [(c["name"], c["type"], c["priority"]) for c in columns(kind(resource))]


def test_pod_columns() -> None:
    assert _shape("pods") == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
        ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1),
    ]
    name = columns(kind("pods"))[0]
    assert name["format"] == "name"
    assert name["description"].startswith("Name must be unique within a namespace.")
    assert "in UTC.\n\nPopulated by the system." in columns(kind("pods"))[4]["description"]


@pytest.mark.parametrize(("resource", "names"), [
    ("services", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]),
    ("deployments", ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"]),
    ("replicasets", ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"]),
    ("nodes", ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image",
               "Kernel-Version", "Container-Runtime"]),
    ("events", ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen",
                "Count", "Name"]),
    ("namespaces", ["Name", "Status", "Age"]),
    ("configmaps", ["Name", "Data", "Age"]),
    ("secrets", ["Name", "Type", "Data", "Age"]),
    ("serviceaccounts", ["Name", "Secrets", "Age"]),
    ("endpoints", ["Name", "Endpoints", "Age"]),
    ("endpointslices", ["Name", "AddressType", "Ports", "Endpoints", "Age"]),
    ("ingresses", ["Name", "Class", "Hosts", "Address", "Ports", "Age"]),
    ("ingressclasses", ["Name", "Controller", "Parameters", "Age"]),
    ("leases", ["Name", "Holder", "Age"]),
])
def test_column_names(resource: str, names: list[str]) -> None:
    assert [c["name"] for c in columns(kind(resource))] == names


def test_wide_only_columns() -> None:
    assert [n for n, _, p in _shape("events") if p] == ["Subobject", "Source", "First Seen", "Count", "Name"]
    assert [n for n, _, p in _shape("deployments") if p] == ["Containers", "Images", "Selector"]
    assert [n for n, _, p in _shape("nodes") if p] == ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version",
                                                        "Container-Runtime"]
    assert [t for n, t, _ in _shape("replicasets") if n in ("Desired", "Current", "Ready")] == ["integer"] * 3


def test_every_served_kind_has_complete_columns_and_matching_cells() -> None:
    for k in registry.all_kinds():
        cols = columns(k)
        assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols), k.kind
        assert all(c["description"] for c in cols), k.kind
        assert len(cells(k, {"metadata": {"name": "x"}}, NOW)) == len(cols), k.kind


def test_unknown_kind_prints_name_and_age() -> None:
    job = Kind("batch", "v1", "Job", "jobs", True)
    assert [c["name"] for c in columns(job)] == ["Name", "Age"]
    assert cells(job, {"metadata": {"name": "j", "creationTimestamp": ago(30)}}, NOW) == ["j", "30s"]


def test_columns_are_fresh_copies() -> None:
    columns(kind("pods"))[0]["name"] = "changed"
    assert columns(kind("pods"))[0]["name"] == "Name"


# ------------------------------------------------------------------------------------------------
# Pods
# ------------------------------------------------------------------------------------------------


def pod(*, containers: int = 1, statuses: list[dict[str, Any]] | None = None, phase: str = "Running",
        init: list[dict[str, Any]] | None = None, init_statuses: list[dict[str, Any]] | None = None,
        conditions: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ago(192)},
        "spec": {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)]},
        "status": {"phase": phase},
    }
    if init is not None:
        obj["spec"]["initContainers"] = init
    if statuses is not None:
        obj["status"]["containerStatuses"] = statuses
    if init_statuses is not None:
        obj["status"]["initContainerStatuses"] = init_statuses
    if conditions is not None:
        obj["status"]["conditions"] = conditions
    for key, value in extra.items():
        obj["status"][key] = value
    return obj


def running(name: str = "c0", *, ready: bool = True, restarts: int = 0, **more: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {"startedAt": ago(60)}},
            **more}


def waiting(reason: str, name: str = "c0", *, restarts: int = 0, **more: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}},
            **more}


def terminated(name: str = "c0", *, reason: str = "", exit_code: int = 0, signal: int = 0,
               restarts: int = 0) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": exit_code, "finishedAt": ago(10)}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": name, "ready": False, "restartCount": restarts, "state": {"terminated": state}}


READY = [{"type": "Ready", "status": "True"}]
NOT_READY = [{"type": "Ready", "status": "False"}]


@pytest.mark.parametrize(("obj", "ready", "status", "restarts"), [
    pytest.param(pod(phase="Pending"), "0/1", "Pending", "0", id="pending"),
    pytest.param(pod(phase="Pending", statuses=[waiting("ContainerCreating")]), "0/1", "ContainerCreating", "0",
                 id="creating"),
    pytest.param(pod(statuses=[running()]), "1/1", "Running", "0", id="running"),
    pytest.param(pod(containers=2, statuses=[running("c0"), running("c1", ready=False)]), "1/2", "Running", "0",
                 id="half-ready"),
    pytest.param(pod(statuses=[waiting("CrashLoopBackOff", restarts=5,
                                       lastState={"terminated": {"exitCode": 1, "finishedAt": ago(300)}})]),
                 "0/1", "CrashLoopBackOff", "5 (5m ago)", id="crash-loop"),
    pytest.param(pod(statuses=[waiting("ImagePullBackOff", restarts=2)]), "0/1", "ImagePullBackOff", "2",
                 id="restarts-without-last-state"),
    pytest.param(pod(phase="Succeeded", statuses=[terminated(reason="Completed")]), "0/1", "Completed", "0",
                 id="completed"),
    pytest.param(pod(phase="Failed", statuses=[terminated(reason="Error", exit_code=1)]), "0/1", "Error", "0",
                 id="error"),
    pytest.param(pod(statuses=[terminated(exit_code=137)]), "0/1", "ExitCode:137", "0", id="exit-code"),
    pytest.param(pod(statuses=[terminated(exit_code=1, signal=9)]), "0/1", "Signal:9", "0", id="signal"),
    pytest.param(pod(containers=2, statuses=[terminated("c0", reason="Completed"), running("c1")],
                     conditions=READY), "1/2", "Running", "0", id="completed-but-running-ready"),
    pytest.param(pod(containers=2, statuses=[terminated("c0", reason="Completed"), running("c1")],
                     conditions=NOT_READY), "1/2", "NotReady", "0", id="completed-but-running-not-ready"),
    pytest.param(pod(phase="Failed", reason="Evicted", message="low memory"), "0/1", "Evicted", "0",
                 id="evicted"),
    pytest.param(pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                                   "reason": "SchedulingGated"}]),
                 "0/1", "SchedulingGated", "0", id="scheduling-gated"),
    pytest.param(pod(containers=2, statuses=[waiting("CrashLoopBackOff", "c0", restarts=1),
                                             waiting("ErrImagePull", "c1", restarts=2)]),
                 "0/2", "CrashLoopBackOff", "3", id="first-container-reason-wins"),
])
def test_pod_ready_status_restarts(obj: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    assert row("pods", obj)[1:5] == [ready, status, restarts, "3m12s"]


INIT = [{"name": "setup", "image": "busybox"}]


@pytest.mark.parametrize(("obj", "ready", "status"), [
    pytest.param(pod(phase="Pending", init=INIT, init_statuses=[waiting("PodInitializing", "setup")]),
                 "0/1", "Init:0/1", id="init-waiting"),
    pytest.param(pod(phase="Pending", init=INIT * 2, init_statuses=[terminated("setup"), {"name": "setup"}]),
                 "0/1", "Init:1/2", id="second-init"),
    pytest.param(pod(phase="Pending", init=INIT, init_statuses=[waiting("CrashLoopBackOff", "setup")]),
                 "0/1", "Init:CrashLoopBackOff", id="init-crash-loop"),
    pytest.param(pod(phase="Pending", init=INIT, init_statuses=[terminated("setup", reason="Error", exit_code=2)]),
                 "0/1", "Init:Error", id="init-error"),
    pytest.param(pod(phase="Pending", init=INIT, init_statuses=[terminated("setup", exit_code=3)]),
                 "0/1", "Init:ExitCode:3", id="init-exit-code"),
    pytest.param(pod(phase="Pending", init=INIT, init_statuses=[terminated("setup", exit_code=1, signal=15)]),
                 "0/1", "Init:Signal:15", id="init-signal"),
    pytest.param(pod(init=INIT, init_statuses=[terminated("setup")], statuses=[running()]),
                 "1/1", "Running", id="init-done"),
    pytest.param(pod(init=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
                     init_statuses=[running("proxy", started=True)], statuses=[running()]),
                 "2/2", "Running", id="sidecar-counts"),
])
def test_pod_init_containers(obj: dict[str, Any], ready: str, status: str) -> None:
    assert row("pods", obj)[1:3] == [ready, status]


def test_sidecar_restarts_count_once_initialized() -> None:
    obj = pod(init=[{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
              init_statuses=[running("proxy", started=True, restarts=2,
                                     lastState={"terminated": {"exitCode": 1, "finishedAt": ago(3600)}})],
              statuses=[running(restarts=1, lastState={"terminated": {"exitCode": 1, "finishedAt": ago(120)}})])
    assert row("pods", obj)[3] == "3 (2m ago)"


def test_pod_terminating_and_unknown() -> None:
    deleting = pod(statuses=[running()])
    deleting["metadata"]["deletionTimestamp"] = ago(1)
    assert row("pods", deleting)[2] == "Terminating"
    lost = pod(statuses=[running()], reason="NodeLost")
    lost["metadata"]["deletionTimestamp"] = ago(1)
    assert row("pods", lost)[2] == "Unknown"
    done = pod(phase="Succeeded", statuses=[terminated(reason="Completed")])
    done["metadata"]["deletionTimestamp"] = ago(1)
    assert row("pods", done)[2] == "Completed"


def test_pod_wide_cells() -> None:
    assert row("pods", pod(phase="Pending"))[5:] == ["<none>", "<none>", "<none>", "<none>"]
    obj = pod(statuses=[running()], podIPs=[{"ip": "10.0.0.5"}, {"ip": "fd00::5"}], podIP="10.0.0.5",
              nominatedNodeName="n2",
              conditions=[{"type": "Ready", "status": "True"}, {"type": "www.example.com/gate", "status": "True"}])
    obj["spec"]["nodeName"] = "n1"
    obj["spec"]["readinessGates"] = [{"conditionType": "www.example.com/gate"},
                                     {"conditionType": "www.example.com/other"}]
    assert row("pods", obj)[5:] == ["10.0.0.5", "n1", "n2", "1/2"]
    legacy = pod(podIP="10.0.0.9")
    assert row("pods", legacy)[5] == "10.0.0.9"


def test_age_without_creation_timestamp() -> None:
    obj = pod()
    del obj["metadata"]["creationTimestamp"]
    assert row("pods", obj)[4] == "<unknown>"


# ------------------------------------------------------------------------------------------------
# Services, endpoints
# ------------------------------------------------------------------------------------------------


def service(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "creationTimestamp": ago(86400 * 3)}, "spec": spec,
            "status": status or {}}


@pytest.mark.parametrize(("spec", "status", "expected"), [
    pytest.param({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                  "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                  "selector": {"k8s-app": "dns", "a": "b"}},
                 None, ["ClusterIP", "10.96.0.10", "<none>", "53/UDP,53/TCP", "3d", "a=b,k8s-app=dns"],
                 id="cluster-ip"),
    pytest.param({"type": "NodePort", "clusterIPs": ["10.96.0.11"], "ports": [{"port": 80, "nodePort": 30080}]},
                 None, ["NodePort", "10.96.0.11", "<none>", "80:30080/TCP", "3d", "<none>"], id="node-port"),
    pytest.param({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "ports": [{"port": 443,
                                                                                     "protocol": "TCP"}]},
                 None, ["LoadBalancer", "10.96.0.12", "<pending>", "443/TCP", "3d", "<none>"], id="lb-pending"),
    pytest.param({"type": "LoadBalancer", "clusterIPs": ["10.96.0.12"], "externalIPs": ["192.0.2.9"]},
                 {"loadBalancer": {"ingress": [{"ip": "203.0.113.2"}, {"hostname": "lb.example.com"},
                                               {"ip": "203.0.113.1"}]}},
                 ["LoadBalancer", "10.96.0.12", "203.0.113.1,203.0.113.2,lb.example.com,192.0.2.9", "<none>",
                  "3d", "<none>"], id="lb-ready"),
    pytest.param({"type": "ExternalName", "externalName": "db.example.com"}, None,
                 ["ExternalName", "<none>", "db.example.com", "<none>", "3d", "<none>"], id="external-name"),
    pytest.param({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"], "externalIPs": ["1.2.3.4"]},
                 None, ["ClusterIP", "None", "1.2.3.4", "<none>", "3d", "<none>"], id="headless-external-ip"),
    pytest.param({"clusterIP": "10.96.0.13"}, None, ["ClusterIP", "10.96.0.13", "<none>", "<none>", "3d",
                                                     "<none>"], id="defaults"),
])
def test_service_cells(spec: dict[str, Any], status: dict[str, Any] | None, expected: list[str]) -> None:
    assert row("services", service(spec, status)) == ["web", *expected]


def endpoints(*subsets: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "creationTimestamp": ago(5)}, "subsets": list(subsets)}


def addrs(*ips: str) -> list[dict[str, str]]:
    return [{"ip": ip} for ip in ips]


@pytest.mark.parametrize(("obj", "text"), [
    pytest.param(endpoints(), "<none>", id="none"),
    pytest.param(endpoints({"addresses": addrs("10.0.0.1", "10.0.0.2"), "ports": [{"port": 80}]}),
                 "10.0.0.1:80,10.0.0.2:80", id="two"),
    pytest.param(endpoints({"addresses": addrs("10.0.0.1", "10.0.0.2"), "ports": [{"port": 80}, {"port": 443}]}),
                 "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", id="more"),
    pytest.param(endpoints({"addresses": addrs("10.0.0.1")}, {"addresses": addrs("10.0.0.2")}),
                 "10.0.0.1,10.0.0.2", id="headless-no-ports"),
    pytest.param(endpoints({"addresses": addrs("fd00::1"), "ports": [{"port": 8080}]}), "[fd00::1]:8080",
                 id="ipv6"),
    pytest.param(endpoints({"notReadyAddresses": addrs("10.0.0.1"), "ports": [{"port": 80}]}), "",
                 id="only-not-ready"),
])
def test_endpoints_cells(obj: dict[str, Any], text: str) -> None:
    assert row("endpoints", obj) == ["web", text, "5s"]


def test_endpoint_slice_cells() -> None:
    eps = {"metadata": {"name": "web-abc", "creationTimestamp": ago(5)}, "addressType": "IPv4",
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics"}, {}, {"port": 9000}],
           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                         {"addresses": ["10.0.0.4"]}]}
    assert row("endpointslices", eps) == ["web-abc", "IPv4", "80,metrics,* + 1 more...",
                                          "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "5s"]
    empty = {"metadata": {"name": "e"}, "addressType": "IPv6", "ports": [{"port": 53}]}
    assert row("endpointslices", empty)[1:4] == ["IPv6", "53", "<unset>"]


# ------------------------------------------------------------------------------------------------
# Workloads
# ------------------------------------------------------------------------------------------------

TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"},
                                    {"name": "log", "image": "busybox"}]}}


def test_deployment_cells() -> None:
    deploy = {"metadata": {"name": "web", "creationTimestamp": ago(600)},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert row("deployments", deploy) == ["web", "2/3", 3, 2, "10m", "web,log", "nginx:1.27,busybox", "app=web"]
    fresh = {"metadata": {"name": "new"}, "spec": {"template": TEMPLATE}}
    assert row("deployments", fresh)[1:4] == ["0/1", 0, 0]
    assert row("deployments", fresh)[7] == ""
    broken = {"metadata": {"name": "b"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "X"}]}}}
    assert row("deployments", broken)[7] == "<invalid>"


def test_replica_set_cells() -> None:
    rs = {"metadata": {"name": "web-5d4f", "creationTimestamp": ago(7200)},
          "spec": {"replicas": 3, "template": TEMPLATE,
                   "selector": {"matchLabels": {"app": "web", "pod-template-hash": "5d4f"}}},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert row("replicasets", rs) == ["web-5d4f", 3, 3, 1, "120m", "web,log", "nginx:1.27,busybox",
                                      "app=web,pod-template-hash=5d4f"]
    assert row("replicasets", {"metadata": {"name": "x"}, "spec": {"replicas": 0}})[1:4] == [0, 0, 0]
    assert row("replicasets", {"metadata": {"name": "x"}})[7] == "<none>"
    broken = {"metadata": {"name": "b"}, "spec": {"selector": {"matchLabels": {"-": "x"}}}}
    assert row("replicasets", broken)[7] == "<error>"


# ------------------------------------------------------------------------------------------------
# Nodes, namespaces, config
# ------------------------------------------------------------------------------------------------


def node(conditions: list[dict[str, Any]], *, labels: dict[str, str] | None = None, unschedulable: bool = False,
         info: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "n1", "creationTimestamp": ago(86400 * 400), "labels": labels or {}},
            "spec": {"unschedulable": unschedulable} if unschedulable else {},
            "status": {"conditions": conditions, "nodeInfo": info or {},
                       "addresses": [{"type": "Hostname", "address": "n1"},
                                     {"type": "InternalIP", "address": "192.168.1.10"}]}}


def test_node_cells() -> None:
    ready = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]
    info = {"kubeletVersion": "v1.37.0-kubelite", "osImage": "Debian GNU/Linux 12 (bookworm)",
            "kernelVersion": "6.1.0-18-amd64", "containerRuntimeVersion": "runc://1.1.12"}
    labels = {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
              "node-role.kubernetes.io/": "", "kubernetes.io/role": "edge"}
    assert row("nodes", node(ready, labels=labels, info=info)) == [
        "n1", "Ready", "control-plane,edge,master", "400d", "v1.37.0-kubelite", "192.168.1.10", "<none>",
        "Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "runc://1.1.12"]
    cordoned = node([{"type": "Ready", "status": "Unknown"}], unschedulable=True)
    assert row("nodes", cordoned)[1:3] == ["NotReady,SchedulingDisabled", "<none>"]
    assert row("nodes", cordoned)[7:] == ["<unknown>"] * 3
    assert row("nodes", node([]))[1] == "Unknown"
    assert row("nodes", node([], unschedulable=True))[1] == "Unknown,SchedulingDisabled"


def test_namespace_config_secret_account_cells() -> None:
    meta = {"name": "x", "creationTimestamp": ago(45)}
    assert row("namespaces", {"metadata": meta, "status": {"phase": "Terminating"}}) == ["x", "Terminating", "45s"]
    assert row("configmaps", {"metadata": meta, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}) == [
        "x", 3, "45s"]
    assert row("configmaps", {"metadata": meta}) == ["x", 0, "45s"]
    assert row("secrets", {"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}) == [
        "x", "kubernetes.io/tls", 2, "45s"]
    assert row("secrets", {"metadata": meta}) == ["x", "Opaque", 0, "45s"]
    assert row("serviceaccounts", {"metadata": meta, "secrets": [{"name": "t"}]}) == ["x", 1, "45s"]
    assert row("leases", {"metadata": meta, "spec": {"holderIdentity": "kubelite-1_abc"}}) == [
        "x", "kubelite-1_abc", "45s"]
    assert row("leases", {"metadata": meta, "spec": {}}) == ["x", "", "45s"]


# ------------------------------------------------------------------------------------------------
# Events
# ------------------------------------------------------------------------------------------------


def test_event_cells() -> None:
    event = {"metadata": {"name": "web.17a", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
             "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container\n",
             "source": {"component": "kubelet", "host": "n1"},
             "firstTimestamp": ago(3 * 86400), "lastTimestamp": ago(2 * 86400), "count": 6}
    assert row("events", event) == ["2d", "Warning", "BackOff", "pod/web", "spec.containers{web}", "kubelet, n1",
                                    "Back-off restarting failed container", "3d", 6, "web.17a"]


def test_event_from_the_events_api() -> None:
    # events.k8s.io writers fill eventTime, reportingComponent/Instance and series instead.
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "type": "Normal",
             "reason": "Starting", "eventTime": "2024-05-01T11:59:50.123456Z",
             "reportingComponent": "kubelet", "reportingInstance": "n1"}
    assert row("events", event) == ["9s", "Normal", "Starting", "node", "", "kubelet, n1", "", "9s", 1, "e"]
    event["series"] = {"count": 4, "lastObservedTime": "2024-05-01T11:59:58.000000Z"}
    assert row("events", event)[0] == "2s"
    assert row("events", event)[8] == 4
    assert row("events", {"metadata": {"name": "z"}, "source": {"component": "scheduler"}})[0] == "<unknown>"
    assert row("events", {"metadata": {"name": "z"}, "source": {"component": "scheduler"}})[5] == "scheduler"


# ------------------------------------------------------------------------------------------------
# Ingress
# ------------------------------------------------------------------------------------------------


def test_ingress_cells() -> None:
    ing = {"metadata": {"name": "web", "creationTimestamp": ago(60)},
           "spec": {"ingressClassName": "kubelite", "tls": [{"hosts": ["a.example.com"]}],
                    "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"},
                              {"host": "d.example.com"}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.11"}, {"ip": "192.168.1.10"}]}}}
    assert row("ingresses", ing) == ["web", "kubelite", "a.example.com,b.example.com,c.example.com + 2 more...",
                                     "192.168.1.10,192.168.1.11", "80, 443", "60s"]
    bare = {"metadata": {"name": "b"}, "spec": {"defaultBackend": {"service": {"name": "x"}}}}
    assert row("ingresses", bare)[1:5] == ["<none>", "*", "", "80"]


def test_ingress_class_cells() -> None:
    ic: dict[str, Any] = {"metadata": {"name": "kubelite"}, "spec": {"controller": "kubelite.io/ingress"}}
    assert row("ingressclasses", ic)[:3] == ["kubelite", "kubelite.io/ingress", "<none>"]
    ic["spec"]["parameters"] = {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}
    assert row("ingressclasses", ic)[2] == "IngressParameters.k8s.example.com/p"
    ic["spec"]["parameters"] = {"kind": "ConfigMap", "name": "cfg"}
    assert row("ingressclasses", ic)[2] == "ConfigMap/cfg"


# ------------------------------------------------------------------------------------------------
# The Table document
# ------------------------------------------------------------------------------------------------


def test_table_document() -> None:
    objs = [pod(statuses=[running()]), pod(phase="Succeeded", statuses=[terminated(reason="Completed")])]
    t = table(kind("pods"), objs, resource_version="42", now=NOW, continue_token="tok")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42", "continue": "tok"}
    assert t["columnDefinitions"] == columns(kind("pods"))
    assert [r["cells"][2] for r in t["rows"]] == ["Running", "Completed"]
    assert t["rows"][0]["object"] == objs[0]
    assert "conditions" not in t["rows"][0]
    assert t["rows"][1]["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                           "message": "The pod has completed successfully."}]
    failed = table(kind("pods"), [pod(phase="Failed")], resource_version="1", now=NOW)
    assert failed["rows"][0]["conditions"][0]["reason"] == "Failed"
    assert table(kind("pods"), [], resource_version="7")["rows"] == []
    assert "continue" not in table(kind("pods"), [], resource_version="7")["metadata"]


def test_table_include_object() -> None:
    cm = {"metadata": {"name": "c", "namespace": "ns", "uid": "u"}, "data": {}}
    k = kind("configmaps")
    full = table(k, [cm], resource_version="1", now=NOW)["rows"][0]["object"]
    assert full == {"kind": "ConfigMap", "apiVersion": "v1", **cm}  # kind and apiVersion filled in
    meta_rows = [table(k, [cm], resource_version="1", include_object=v, now=NOW)["rows"][0] for v in ("Metadata", "")]
    for r in meta_rows:
        assert r["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": cm["metadata"]}
    assert "object" not in table(k, [cm], resource_version="1", include_object="None", now=NOW)["rows"][0]
    with pytest.raises(ValueError) as caught:
        table(k, [cm], resource_version="1", include_object="Everything")
    assert str(caught.value) == ('includeObject: Unsupported value: "Everything": supported values: "Metadata", '
                                 '"None", "Object"')


def test_table_uses_the_current_time_by_default() -> None:
    now = datetime.now(UTC)
    obj = {"metadata": {"name": "x", "creationTimestamp": (now - timedelta(seconds=30)).isoformat()}}
    age = table(kind("configmaps"), [obj], resource_version="1")["rows"][0]["cells"][2]
    assert age in ("30s", "31s", "32s")


# ------------------------------------------------------------------------------------------------
# Text output
# ------------------------------------------------------------------------------------------------


def _pods_table() -> dict[str, Any]:
    a = pod(statuses=[running()], podIPs=[{"ip": "10.0.0.5"}])
    a["spec"]["nodeName"] = "node-1"
    b = pod(containers=2, phase="Pending", statuses=[waiting("ContainerCreating", "c0"),
                                                     waiting("ContainerCreating", "c1")])
    b["metadata"].update(name="api-server-7d9f", namespace="kube-system")
    return table(kind("pods"), [a, b], resource_version="9", now=NOW)


def test_format_table_like_kubectl() -> None:
    assert format_table(_pods_table()) == (
        "NAME              READY   STATUS              RESTARTS   AGE\n"
        "web               1/1     Running             0          3m12s\n"
        "api-server-7d9f   0/2     ContainerCreating   0          3m12s\n")


def test_format_table_wide_with_namespace() -> None:
    assert format_table(_pods_table(), wide=True, show_namespace=True) == (
        "NAMESPACE     NAME              READY   STATUS              RESTARTS   AGE     IP         NODE     "
        "NOMINATED NODE   READINESS GATES\n"
        "default       web               1/1     Running             0          3m12s   10.0.0.5   node-1   "
        "<none>           <none>\n"
        "kube-system   api-server-7d9f   0/2     ContainerCreating   0          3m12s   <none>     <none>   "
        "<none>           <none>\n")


def test_format_table_no_headers_and_empty() -> None:
    assert format_table(_pods_table(), no_headers=True).splitlines()[0].startswith("web               1/1")
    assert format_table(table(kind("pods"), [], resource_version="1")) == ""


def test_format_table_minimum_width_and_cell_rendering() -> None:
    tbl = {"columnDefinitions": [{"name": "A", "priority": 0}, {"name": "Flag", "priority": 0},
                                 {"name": "Note", "priority": 0}],
           "rows": [{"cells": [1, True, "first line\nsecond"]}, {"cells": [2.0, False, None]}]}
    assert format_table(tbl) == (
        "A     FLAG    NOTE\n"
        "1     true    first line...\n"
        "2     false   \n")


def test_printers_module_exports() -> None:
    assert printers.INCLUDE_OBJECT_VALUES == ("Metadata", "None", "Object")
