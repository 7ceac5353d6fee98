"""A fake runtime for the kubelet's stats (`kubelite.kubelet.stats.summary.StatsSource`) and a fake ``/proc``:
pods whose containers burn a fixed number of cores, a node that burns a fixed number of cores, on a fake
clock that moves `step_ns` at every snapshot the summary takes (each snapshot starts with
``ListPodSandbox``), so that every rate is exact.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubelite.proto import runtime_pb2 as pb

T0 = 1_700_000_000_000_000_000  # unix ns: 2023-11-14T22:13:20Z
BOOT = 1_699_990_000  # unix s
GIB = 1024**3


@dataclass
class FakeContainer:
    id: str
    name: str
    cores: float
    working_set: int
    created_at: int = T0


@dataclass
class FakePod:
    sandbox_id: str
    name: str
    namespace: str
    uid: str
    containers: list[FakeContainer] = field(default_factory=list)
    created_at: int = T0
    # The snapshot (0, 1, ...) from which the runtime lists this pod.
    visible_from: int = 0


class FakeStatsSource:
    def __init__(self, proc: Path, *, node_cores: float = 0.5, step_ns: int = 1_000_000_000,
                 mem_total: int = 8 * GIB, mem_free: int = 6 * GIB, inactive_file: int = GIB // 2) -> None:
        self.proc = proc
        self.node_cores = node_cores
        self.step_ns = step_ns
        self.mem = (mem_total, mem_free, inactive_file)
        self.pods: list[FakePod] = []
        self.now = T0
        self.snapshots = 0
        self.calls: list[str] = []
        proc.mkdir(parents=True, exist_ok=True)
        self._write_proc()

    def clock(self) -> int:
        return self.now

    def add_pod(self, name: str, containers: Mapping[str, tuple[float, int]], *, namespace: str = "default",
                uid: str = "", visible_from: int = 0) -> FakePod:
        """A pod whose containers (name -> (cores, working set bytes)) run from the start."""
        n = len(self.pods)
        pod = FakePod(f"sb{n}", name, namespace, uid or f"uid-{name}", visible_from=visible_from,
                      containers=[FakeContainer(f"c{n}-{c}", c, cores, mem) for c, (cores, mem) in containers.items()])
        self.pods.append(pod)
        return pod

    def _write_proc(self) -> None:
        tck = os.sysconf("SC_CLK_TCK")
        busy = round(self.node_cores * (self.now - T0) / 1_000_000_000 * tck)
        # user nice system idle iowait irq softirq steal guest guest_nice: all busy time as "user".
        (self.proc / "stat").write_text(f"cpu  {10_000 + busy} 0 0 500000 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n"
                                        f"btime {BOOT}\n")
        total, free, inactive = self.mem
        (self.proc / "meminfo").write_text(
            f"MemTotal:       {total // 1024} kB\nMemFree:        {free // 1024} kB\n"
            f"MemAvailable:   {free // 1024} kB\nInactive(file): {inactive // 1024} kB\n"
            f"AnonPages:      {(total - free - inactive) // 1024} kB\nHugePages_Total:       0\n")

    def _visible(self) -> list[FakePod]:
        return [p for p in self.pods if p.visible_from <= self.snapshots - 1]

    # --- StatsSource -----------------------------------------------------------------------------------

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]:
        self.calls.append("ListPodSandbox")
        self.snapshots += 1
        self.now += self.step_ns
        self._write_proc()
        return [pb.PodSandbox(id=p.sandbox_id, state=pb.SANDBOX_READY, created_at=p.created_at,
                              metadata=pb.PodSandboxMetadata(name=p.name, namespace=p.namespace, uid=p.uid))
                for p in self._visible()]

    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]:
        self.calls.append("ListContainers")
        return [pb.Container(id=c.id, pod_sandbox_id=p.sandbox_id, created_at=c.created_at,
                             metadata=pb.ContainerMetadata(name=c.name), state=pb.CONTAINER_RUNNING)
                for p in self._visible() for c in p.containers]

    def _usage(self, cores: float, working_set: int, since: int) -> tuple[pb.CpuUsage, pb.MemoryUsage]:
        cpu = pb.CpuUsage(timestamp=self.now,
                          usage_core_nano_seconds=pb.UInt64Value(value=round(cores * (self.now - since))))
        mem = pb.MemoryUsage(timestamp=self.now, working_set_bytes=pb.UInt64Value(value=working_set),
                             usage_bytes=pb.UInt64Value(value=working_set + 4096),
                             rss_bytes=pb.UInt64Value(value=working_set // 2))
        return cpu, mem

    async def pod_sandbox_stats(self, sandbox_id: str) -> pb.PodSandboxStats | None:
        self.calls.append("PodSandboxStats")
        pod = next((p for p in self._visible() if p.sandbox_id == sandbox_id), None)
        if pod is None:
            return None
        containers = []
        for c in pod.containers:
            cpu, mem = self._usage(c.cores, c.working_set, c.created_at)
            containers.append(pb.ContainerStats(
                attributes=pb.ContainerAttributes(id=c.id, metadata=pb.ContainerMetadata(name=c.name)),
                cpu=cpu, memory=mem))
        cpu, mem = self._usage(sum(c.cores for c in pod.containers), sum(c.working_set for c in pod.containers),
                               pod.created_at)
        return pb.PodSandboxStats(id=pod.sandbox_id, metadata=pb.PodSandboxMetadata(
            name=pod.name, namespace=pod.namespace, uid=pod.uid), cpu=cpu, memory=mem, containers=containers)
