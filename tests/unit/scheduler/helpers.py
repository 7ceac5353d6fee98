"""Builders for Node and Pod dicts and a cache holding them, for the scheduler's unit tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubelite.scheduler.cache import Cache
from kubelite.scheduler.framework import CycleState, MaskVerdict
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

Obj = dict[str, Any]


def node(name: str, *, cpu: str = "4", memory: str = "32Gi", pods: str = "110", ephemeral: str | None = None,
         labels: Mapping[str, str] | None = None, taints: Iterable[Obj] = (), unschedulable: bool = False) -> Obj:
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    if ephemeral is not None:
        allocatable["ephemeral-storage"] = ephemeral
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": list(taints), **({"unschedulable": True} if unschedulable else {})},
            "status": {"allocatable": allocatable, "capacity": allocatable,
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def container(cpu: str | None = None, memory: str | None = None, *, ephemeral: str | None = None,
              ports: Iterable[Obj] = (), restart_policy: str | None = None) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("ephemeral-storage", ephemeral)) if v}
    c: Obj = {"name": "c", "image": "busybox", "resources": {"requests": requests} if requests else {}}
    if ports:
        c["ports"] = list(ports)
    if restart_policy:
        c["restartPolicy"] = restart_policy
    return c


def pod(name: str, *, cpu: str | None = None, memory: str | None = None, namespace: str = "default",
        node_name: str = "", labels: Mapping[str, str] | None = None, containers: list[Obj] | None = None,
        init_containers: list[Obj] | None = None, **spec: Any) -> Obj:
    body: Obj = {"containers": containers if containers is not None else [container(cpu, memory)], **spec}
    if init_containers:
        body["initContainers"] = init_containers
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                         "labels": dict(labels or {}), "resourceVersion": "1"},
            "spec": body, "status": {"phase": "Pending"}}


def cache_with(nodes: Iterable[Obj], pods: Iterable[Obj] = ()) -> Cache:
    cache = Cache()
    for n in nodes:
        cache.add_node(n)
    for p in pods:
        cache.add_pod(p)
    return cache


def names(table: NodeTable, mask: int) -> set[str]:
    return {info.name for info in table.nodes() if (mask >> (8 * info.slot)) & 1}


def reasons(table: NodeTable, verdict: MaskVerdict) -> dict[str, set[str]]:
    """Every failing node's reasons, by node name."""
    failed = table.present & ~verdict.passed
    out: dict[str, set[str]] = {}
    for reason, mask in verdict.explain():
        for n in names(table, mask & failed):
            out.setdefault(n, set()).add(reason)
    return out


def run_filter(plugin: Any, p: Obj, table: NodeTable) -> tuple[set[str], dict[str, set[str]]]:
    """Run a mask filter plugin (with its PreFilter) like the framework does: (passing nodes, reasons)."""
    state = CycleState()
    info = PodInfo.of(p)
    if hasattr(plugin, "pre_filter"):
        status = plugin.pre_filter(state, info, table)
        if status.code.name == "SKIP":
            return names(table, table.present), {}
        assert status.success, status
    verdict = plugin.filter_mask(state, info, table)
    return names(table, verdict.passed & table.present), reasons(table, verdict)


def run_score(plugin: Any, p: Obj, table: NodeTable, node_names: list[str]) -> list[int] | None:
    """PreScore + Score + normalize over ``node_names``; None when the plugin skips the pod."""
    state = CycleState()
    info = PodInfo.of(p)
    slots = [table.by_name[n] for n in node_names]
    if hasattr(plugin, "pre_score"):
        status = plugin.pre_score(state, info, table, slots)
        if status.code.name == "SKIP":
            return None
        assert status.success, status
    scores: list[int] = plugin.score(state, info, table, slots)
    if hasattr(plugin, "normalize"):
        plugin.normalize(state, info, scores)
    return scores
