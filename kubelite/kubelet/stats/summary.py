"""The kubelet's Summary API (``GET /stats/summary``), shaped as Kubernetes' ``stats/v1alpha1.Summary``:

    {"node": {"nodeName", "startTime", "cpu": {...}, "memory": {...}},
     "pods": [{"podRef": {"name", "namespace", "uid"}, "startTime", "cpu", "memory",
               "containers": [{"name", "startTime", "cpu", "memory"}]}]}

with ``cpu = {"time", "usageNanoCores", "usageCoreNanoSeconds"}`` and ``memory = {"time", "availableBytes"
(node only), "usageBytes", "workingSetBytes", "rssBytes"}``; times are ``metav1.Time`` (RFC 3339, seconds).

Where the figures come from: the node from ``/proc`` (`host`); every ready pod sandbox and its running
containers from the runtime's ``ListPodSandbox`` and ``PodSandboxStats`` (the runtime reads their
cgroups); container start times from ``ListContainers``.

CPU rates: cgroups and ``/proc`` count CPU *time*; a rate needs two samples. Each summary takes two
snapshots `SAMPLE_WINDOW` apart and reports ``usageNanoCores`` over exactly that window (the API server's
metrics say ``window`` = `SAMPLE_WINDOW`); a pod or container that was not there at the first snapshot has
no ``usageNanoCores`` yet. Nothing samples in the background, so an idle kubelet costs nothing; a summary
is reused for `REUSE_SECONDS` and concurrent callers share one measurement, so that callers cannot make the
kubelet sample continuously.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc import aio

from kubelite.api.meta import format_rfc3339
from kubelite.kubelet.runtime_client import RuntimeClient, RuntimeServiceError
from kubelite.proto import runtime_pb2 as pb

from . import REUSE_SECONDS, SAMPLE_WINDOW, host


class StatsSource(Protocol):
    """What the summary needs from the runtime (`GrpcStatsSource`; tests plug in a fake)."""

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]: ...

    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]: ...

    async def pod_sandbox_stats(self, sandbox_id: str) -> pb.PodSandboxStats | None:
        """The sandbox's stats with its running containers', or None when the sandbox is gone."""
        ...


class GrpcStatsSource:
    """`StatsSource` over the kubelet's `RuntimeClient`."""

    def __init__(self, client: RuntimeClient, *, timeout: float = 10.0) -> None:
        self.client = client
        self.timeout = timeout

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]:
        return await self.client.list_pod_sandboxes(labels=labels, state=state)

    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]:
        return await self.client.list_containers(sandbox_id=sandbox_id, labels=labels, state=state)

    async def pod_sandbox_stats(self, sandbox_id: str) -> pb.PodSandboxStats | None:
        try:
            resp = await self.client.runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sandbox_id),
                                                             timeout=self.timeout)
        except aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None  # removed between the listing and now
            raise RuntimeServiceError("PodSandboxStats", e.code(), e.details() or "") from None
        stats: pb.PodSandboxStats = resp.stats
        return stats


@dataclass(slots=True)
class _Snapshot:
    time_ns: int
    node_cpu_ns: int
    node_memory: host.HostMemory
    pods: list[tuple[pb.PodSandbox, pb.PodSandboxStats]]


class SummaryProvider:
    """Builds summaries for one node; `summary` is safe to call concurrently."""

    def __init__(self, source: StatsSource, *, node_name: str, window: float = SAMPLE_WINDOW,
                 reuse: float = REUSE_SECONDS, proc: Path = host.PROC,
                 clock: Callable[[], int] = time.time_ns, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.node_name = node_name
        self.window = window
        self.reuse = reuse
        self.proc = proc
        self.clock = clock
        self.monotonic = monotonic
        self._lock = asyncio.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None

    async def summary(self) -> dict[str, Any]:
        async with self._lock:
            if self._last is not None and self.monotonic() - self._last[0] < self.reuse:
                return self._last[1]
            first = await self._snapshot()
            await asyncio.sleep(self.window)
            second = await self._snapshot()
            starts = {c.id: c.created_at for c in await self.source.list_containers(state=pb.CONTAINER_RUNNING)}
            summary = {"node": self._node(first, second), "pods": _pods(first, second, starts)}
            self._last = (self.monotonic(), summary)
            return summary

    async def _snapshot(self) -> _Snapshot:
        sandboxes = await self.source.list_pod_sandboxes(state=pb.SANDBOX_READY)
        stats = await asyncio.gather(*(self.source.pod_sandbox_stats(sb.id) for sb in sandboxes))
        # The node is read last, so that its sample is as close as possible to the pods'.
        return _Snapshot(time_ns=self.clock(), node_cpu_ns=host.cpu_time_ns(self.proc),
                         node_memory=host.memory(self.proc),
                         pods=[(sb, st) for sb, st in zip(sandboxes, stats, strict=True) if st is not None])

    def _node(self, first: _Snapshot, second: _Snapshot) -> dict[str, Any]:
        when = _time(second.time_ns)
        cpu: dict[str, Any] = {"time": when, "usageCoreNanoSeconds": second.node_cpu_ns}
        if (rate := _rate(first.node_cpu_ns, first.time_ns, second.node_cpu_ns, second.time_ns)) is not None:
            cpu["usageNanoCores"] = rate
        mem = second.node_memory
        return {"nodeName": self.node_name, "startTime": _time(host.boot_time(self.proc) * 1_000_000_000),
                "cpu": cpu,
                "memory": {"time": when, "availableBytes": mem.available, "usageBytes": mem.usage,
                           "workingSetBytes": mem.working_set, "rssBytes": mem.rss}}


def _pods(first: _Snapshot, second: _Snapshot, starts: Mapping[str, int]) -> list[dict[str, Any]]:
    before: dict[str, pb.CpuUsage] = {}
    for _, stats in first.pods:
        if stats.HasField("cpu"):
            before[stats.id] = stats.cpu
        for c in stats.containers:
            if c.HasField("cpu"):
                before[c.attributes.id] = c.cpu
    pods = []
    for sandbox, stats in second.pods:
        md = sandbox.metadata
        pod: dict[str, Any] = {"podRef": {"name": md.name, "namespace": md.namespace, "uid": md.uid},
                               "startTime": _time(sandbox.created_at), "containers": []}
        for c in sorted(stats.containers, key=lambda c: c.attributes.metadata.name):
            entry: dict[str, Any] = {"name": c.attributes.metadata.name}
            if c.attributes.id in starts:
                entry["startTime"] = _time(starts[c.attributes.id])
            _add_usage(entry, before.get(c.attributes.id), c)
            pod["containers"].append(entry)
        _add_usage(pod, before.get(stats.id), stats)
        pods.append(pod)
    pods.sort(key=lambda p: (p["podRef"]["namespace"], p["podRef"]["name"]))
    return pods


def _add_usage(target: dict[str, Any], previous: pb.CpuUsage | None,
               stats: pb.ContainerStats | pb.PodSandboxStats) -> None:
    if stats.HasField("cpu") and stats.cpu.HasField("usage_core_nano_seconds"):
        cur = stats.cpu
        cpu: dict[str, Any] = {"time": _time(cur.timestamp),
                               "usageCoreNanoSeconds": cur.usage_core_nano_seconds.value}
        if previous is not None and previous.HasField("usage_core_nano_seconds"):
            rate = _rate(previous.usage_core_nano_seconds.value, previous.timestamp,
                         cur.usage_core_nano_seconds.value, cur.timestamp)
            if rate is not None:
                cpu["usageNanoCores"] = rate
        target["cpu"] = cpu
    if stats.HasField("memory"):
        mem = stats.memory
        memory: dict[str, Any] = {"time": _time(mem.timestamp)}
        for key, field in (("usageBytes", "usage_bytes"), ("workingSetBytes", "working_set_bytes"),
                           ("rssBytes", "rss_bytes")):
            if mem.HasField(field):
                memory[key] = getattr(mem, field).value
        target["memory"] = memory


def _rate(cpu_a: int, time_a: int, cpu_b: int, time_b: int) -> int | None:
    """Nano-cores between two samples of CPU time (ns) taken at two times (unix ns); None without a forward
    step of the clock. A counter that went backwards reads as idle rather than as a negative rate."""
    if time_b <= time_a:
        return None
    return max(cpu_b - cpu_a, 0) * 1_000_000_000 // (time_b - time_a)


def _time(unix_ns: int) -> str:
    return format_rfc3339(datetime.fromtimestamp(unix_ns / 1_000_000_000, UTC))
