"""Kubelet summaries (``/stats/summary``) turned into ``metrics.k8s.io/v1beta1`` objects, as metrics-server
does: `node_metrics` makes a ``NodeMetrics`` from a Node and its kubelet's summary, `pod_metrics` a
``PodMetrics`` from a Pod and the summary's entry for it.

Usage: ``cpu`` is ``usageNanoCores`` as a quantity in cores (``"123456n"``, canonical: ``"1"``, ``"1500m"``),
``memory`` is ``workingSetBytes`` as a binary quantity (``"12345Ki"``); ``timestamp`` is the earlier of the
CPU and memory sample times and ``window`` the span the CPU rate was measured over (the kubelet's
`SAMPLE_WINDOW`). As in metrics-server, an object is left out rather than reported partly: a node without
both figures, a pod without containers, or with a container missing either figure (a container that just
started has no CPU rate yet), gives None. Only Running pods have metrics.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubelite.api import meta
from kubelite.api.quantity import Format, format_quantity, parse_quantity
from kubelite.kubelet.stats import SAMPLE_WINDOW

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
WINDOW = f"{SAMPLE_WINDOW:g}s"

Obj = dict[str, Any]


def cpu_quantity(nano_cores: int) -> str:
    return format_quantity(Decimal(nano_cores) / 1_000_000_000)


def memory_quantity(num_bytes: int) -> str:
    return format_quantity(num_bytes, Format.BINARY_SI)


def _usage(stats: Obj) -> tuple[dict[str, str], str] | None:
    """``({"cpu": .., "memory": ..}, timestamp)`` of a summary entry (node, pod or container), or None."""
    cpu, memory = stats.get("cpu") or {}, stats.get("memory") or {}
    nano_cores, working_set = cpu.get("usageNanoCores"), memory.get("workingSetBytes")
    times = [t for t in (cpu.get("time"), memory.get("time")) if t]
    if nano_cores is None or working_set is None or not times:
        return None
    return {"cpu": cpu_quantity(int(nano_cores)), "memory": memory_quantity(int(working_set))}, min(times)


def _metadata(obj: Obj, now: str) -> Obj:
    # As metrics-server: the object's identity and labels, created now (metrics are not stored objects).
    md: Obj = {"name": meta.name(obj)}
    if meta.namespace(obj):
        md["namespace"] = meta.namespace(obj)
    md["creationTimestamp"] = now
    if labels := meta.labels(obj):
        md["labels"] = dict(labels)
    return md


def node_metrics(node: Obj, summary: Obj, *, now: str) -> Obj | None:
    """The NodeMetrics of ``node`` from its kubelet's summary, or None without usable figures."""
    found = _usage(summary.get("node") or {})
    if found is None:
        return None
    usage, timestamp = found
    return {"kind": "NodeMetrics", "apiVersion": API_VERSION, "metadata": _metadata(node, now),
            "timestamp": timestamp, "window": WINDOW, "usage": usage}


def find_pod(summary: Obj, pod: Obj) -> Obj | None:
    """The summary's entry for ``pod``: same namespace and name, and the same uid when the entry has one
    (a pod deleted and created again under its name is another pod)."""
    uid = meta.uid(pod)
    for entry in summary.get("pods") or []:
        ref = entry.get("podRef") or {}
        if ref.get("namespace") == meta.namespace(pod) and ref.get("name") == meta.name(pod) and \
                (not ref.get("uid") or not uid or ref.get("uid") == uid):
            return dict(entry)
    return None


def pod_metrics(pod: Obj, stats: Obj, *, now: str) -> Obj | None:
    """The PodMetrics of a Running ``pod`` from its summary entry ``stats``, or None."""
    if (pod.get("status") or {}).get("phase") != "Running":
        return None
    containers = []
    timestamps = []
    for c in stats.get("containers") or []:
        found = _usage(c)
        if found is None:
            return None
        usage, timestamp = found
        containers.append({"name": c.get("name", ""), "usage": usage})
        timestamps.append(timestamp)
    if not containers:
        return None
    return {"kind": "PodMetrics", "apiVersion": API_VERSION, "metadata": _metadata(pod, now),
            "timestamp": min(timestamps), "window": WINDOW, "containers": containers}


def total_usage(metrics: Obj) -> dict[str, str]:
    """A NodeMetrics' usage, or the sum of a PodMetrics' containers (for Tables)."""
    if "usage" in metrics:
        return dict(metrics["usage"])
    cpu = sum((parse_quantity(c["usage"]["cpu"]) for c in metrics.get("containers") or []), Decimal(0))
    memory = sum((parse_quantity(c["usage"]["memory"]) for c in metrics.get("containers") or []), Decimal(0))
    return {"cpu": format_quantity(cpu), "memory": format_quantity(memory, Format.BINARY_SI)}
