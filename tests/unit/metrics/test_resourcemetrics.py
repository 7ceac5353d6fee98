"""Kubelet summaries to metrics.k8s.io objects: quantities, what is left out, pod matching, Tables and the
group's discovery entries."""

from __future__ import annotations

from typing import Any

from kubelite.apiserver.handlers import metrics
from kubelite.apiserver.resourcemetrics import (
    cpu_quantity,
    find_pod,
    memory_quantity,
    node_metrics,
    pod_metrics,
    total_usage,
)

NOW = "2026-01-01T00:00:10Z"


def _usage(nano: int | None, working_set: int | None, t: str = "2026-01-01T00:00:05Z") -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": {"time": t, "usageCoreNanoSeconds": 10**12},
                           "memory": {"time": "2026-01-01T00:00:04Z", "usageBytes": 99}}
    if nano is not None:
        out["cpu"]["usageNanoCores"] = nano
    if working_set is not None:
        out["memory"]["workingSetBytes"] = working_set
    return out


def _pod(name: str = "web", phase: str = "Running", uid: str = "u1", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": uid, "labels": labels},
            "spec": {"nodeName": "n1"}, "status": {"phase": phase}}


def test_quantities_are_canonical() -> None:
    assert [cpu_quantity(n) for n in (0, 999, 123_456, 1_000_000_000, 1_500_000_000, 1_000_413)] == \
        ["0", "999n", "123456n", "1", "1500m", "1000413n"]
    assert [memory_quantity(b) for b in (0, 1024, 1_536_000, 12_345, 2**30)] == ["0", "1Ki", "1500Ki", "12345", "1Gi"]


def test_node_metrics() -> None:
    node = {"metadata": {"name": "n1", "labels": {"kubernetes.io/os": "linux"}, "uid": "x"}}
    got = node_metrics(node, {"node": _usage(250_000_000, 512 * 2**20)}, now=NOW)
    assert got == {"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "n1", "creationTimestamp": NOW, "labels": {"kubernetes.io/os": "linux"}},
                   "timestamp": "2026-01-01T00:00:04Z", "window": "1s",
                   "usage": {"cpu": "250m", "memory": "512Mi"}}
    assert node_metrics(node, {"node": _usage(None, 1)}, now=NOW) is None
    assert node_metrics(node, {"node": _usage(1, None)}, now=NOW) is None
    assert node_metrics(node, {}, now=NOW) is None


def test_pod_metrics_need_every_container() -> None:
    stats: dict[str, Any] = {"podRef": {"name": "web", "namespace": "default", "uid": "u1"},
                             "containers": [{"name": "app", **_usage(2_000_000, 10 * 2**20)},
                                            {"name": "side", **_usage(1, 4096, t="2026-01-01T00:00:01Z")}]}
    got = pod_metrics(_pod(app="web"), stats, now=NOW)
    assert got == {"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "web", "namespace": "default", "creationTimestamp": NOW,
                                "labels": {"app": "web"}},
                   "timestamp": "2026-01-01T00:00:01Z", "window": "1s",
                   "containers": [{"name": "app", "usage": {"cpu": "2m", "memory": "10Mi"}},
                                  {"name": "side", "usage": {"cpu": "1n", "memory": "4Ki"}}]}
    assert total_usage(got) == {"cpu": "2000001n", "memory": "10244Ki"}
    # A container without a CPU rate yet: the pod is left out rather than shown partly.
    stats["containers"].append({"name": "new", **_usage(None, 1)})
    assert pod_metrics(_pod(), stats, now=NOW) is None
    assert pod_metrics(_pod(), {"containers": []}, now=NOW) is None
    assert pod_metrics(_pod(phase="Pending"), {"containers": [{"name": "a", **_usage(1, 1)}]}, now=NOW) is None


def test_find_pod_by_namespace_name_and_uid() -> None:
    summary = {"pods": [{"podRef": {"name": "web", "namespace": "other", "uid": "u1"}},
                        {"podRef": {"name": "web", "namespace": "default", "uid": "old"}},
                        {"podRef": {"name": "web", "namespace": "default", "uid": "u1"}, "x": 1}]}
    assert find_pod(summary, _pod()) == {"podRef": {"name": "web", "namespace": "default", "uid": "u1"}, "x": 1}
    assert find_pod(summary, _pod(uid="nope")) is None
    assert find_pod({}, _pod()) is None


def test_table_and_discovery_entries() -> None:
    node = node_metrics({"metadata": {"name": "n1"}}, {"node": _usage(10**9, 2**30)}, now=NOW)
    assert node is not None
    table = metrics.table([node])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "cpu", "memory", "Window"]
    assert table["rows"] == [{"cells": ["n1", "1", "1Gi", "1s"], "object": node}]

    assert metrics.legacy_group() == {"name": "metrics.k8s.io",
                                      "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
                                      "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1",
                                                           "version": "v1beta1"}}
    agg = metrics.aggregated_group()
    assert agg["metadata"]["name"] == "metrics.k8s.io"
    assert [(r["resource"], r["responseKind"]["kind"], r["scope"], r["verbs"])
            for r in agg["versions"][0]["resources"]] == \
        [("nodes", "NodeMetrics", "Cluster", ["get", "list"]), ("pods", "PodMetrics", "Namespaced", ["get", "list"])]
    assert [(r["name"], r["namespaced"], r["kind"]) for r in metrics.resource_list()["resources"]] == \
        [("nodes", False, "NodeMetrics"), ("pods", True, "PodMetrics")]
