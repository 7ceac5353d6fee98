"""Scheduler benchmark: pods/s from creation to bound and scheduling latency, over many nodes.

For each scenario (10,000 pods over 1,000 and over 5,000 nodes; ``--quick``: 1,000 pods over 100 and 500):
1. a real ``kubelite apiserver`` process on the embedded SQLite store (bench/api.py's `Server`);
2. Node objects created directly, Ready, with kube-scheduler's scheduler_perf node shape (4 cpu, 32 Gi,
   110 pods); no kubelets;
3. the scheduler in **its own process** (this file, ``--scheduler-process``), started once its caches
   have synced, so that it does not share a core with this driver;
4. the driver creates the pods (scheduler_perf's default pod: 100m cpu, 500 Mi) with 32 concurrent
   clients, and a watch records when each one is seen bound; then a quarter as many more, paced at
   200 pods/s (below capacity), for the latency of a scheduler that is not behind.

Printed and written to bench/results/scheduler.json: pods/s (first creation to last binding seen), the
latency from creation to binding (p50/p99; creation is the time the create call returned, finer than the
1 s resolution of ``creationTimestamp``), and the CPU each process used over the run, which says what
bounds it: a process near 100% of one core is the bottleneck. ``--profile`` also runs the scheduler process
under cProfile and prints its top functions. Nothing here passes or fails on time; it does fail if a node
is overcommitted or a pod is left unbound.

    python bench/scheduler.py [--quick] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import pstats
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import aclosing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import Server, _pct  # noqa: E402
from kubelite.api.quantity import to_int, to_millis  # noqa: E402
from kubelite.api.registry import resolve  # noqa: E402
from kubelite.client.informer import InformerFactory  # noqa: E402
from kubelite.client.kubeconfig import load_kubeconfig  # noqa: E402
from kubelite.client.rest import Client  # noqa: E402
from kubelite.scheduler import Scheduler  # noqa: E402

NODES = resolve("nodes")
PODS = resolve("pods")
NAMESPACES = resolve("namespaces")
NAMESPACE = "bench"
CONCURRENCY = 32
NODE_ALLOCATABLE = {"cpu": "4", "memory": "32Gi", "pods": "110"}
POD_REQUESTS = {"cpu": "100m", "memory": "500Mi"}
BIND_TIMEOUT = 600.0
PACED_RATE = 200.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the scheduler process ----------------------------------------------------------------------------

async def _scheduler_process(kubeconfig: str, profile_out: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    profiler = cProfile.Profile() if profile_out else None
    async with Client(load_kubeconfig(kubeconfig), pool_size=128) as client:
        scheduler = Scheduler(client, max_bindings_in_flight=64)
        factory = InformerFactory(client)
        scheduler.setup(factory)
        async with scheduler.events, factory:
            await factory.wait_for_cache_sync()
            print("READY", flush=True)
            if profiler is not None:
                profiler.enable()
            try:
                await scheduler.run_active(stop)
            finally:
                if profiler is not None and profile_out:
                    profiler.disable()
                    profiler.dump_stats(profile_out)
    print(f"DONE scheduled={scheduler.scheduled} failed={scheduler.failed}", flush=True)


class SchedulerProcess:
    def __init__(self, tmp: Path, kubeconfig: Path, profile_out: Path | None) -> None:
        args = [sys.executable, str(Path(__file__).resolve()), "--scheduler-process", str(kubeconfig)]
        if profile_out is not None:
            args += ["--profile-out", str(profile_out)]
        self.log = open(tmp / "scheduler.log", "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT)

    def wait_ready(self, timeout: float = 120.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the scheduler process exited before it was ready")
            if line.strip() == b"READY":
                return
        raise RuntimeError("the scheduler did not become ready")

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self.log.close()
        return out.decode(errors="replace").strip()


# --- the driver ---------------------------------------------------------------------------------------

def _node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": NODE_ALLOCATABLE, "allocatable": NODE_ALLOCATABLE,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": POD_REQUESTS}}]}}


async def _concurrently(n: int, op: Any) -> None:
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await op(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


def _check_no_overcommit(pods: list[dict[str, Any]]) -> dict[str, int]:
    cpu: dict[str, int] = defaultdict(int)
    memory: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for p in pods:
        node = p["spec"].get("nodeName")
        if not node:
            raise RuntimeError(f"pod {p['metadata']['name']} was not bound")
        cpu[node] += to_millis(POD_REQUESTS["cpu"])
        memory[node] += to_int(POD_REQUESTS["memory"])
        count[node] += 1
    for node in count:
        if cpu[node] > to_millis(NODE_ALLOCATABLE["cpu"]) or memory[node] > to_int(NODE_ALLOCATABLE["memory"]) \
                or count[node] > int(NODE_ALLOCATABLE["pods"]):
            raise RuntimeError(f"node {node} is overcommitted: {cpu[node]}m, {memory[node]} bytes, {count[node]} pods")
    return {"nodes_used": len(count), "max_pods_per_node": max(count.values()), "min_pods_per_node":
            min(count.values())}


async def run_scenario(nodes: int, pods: int, *, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-sched-") as tmp_name:
        tmp = Path(tmp_name)
        server = Server(tmp, None)
        scheduler: SchedulerProcess | None = None
        try:
            await server.ready()
            async with Client(load_kubeconfig(str(server.kubeconfig)), pool_size=CONCURRENCY * 2) as client:
                await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
                t = time.perf_counter()
                await _concurrently(nodes, lambda i: client.create(NODES, _node(f"node-{i:05}")))
                node_seconds = time.perf_counter() - t
                profile_out = tmp / "scheduler.prof" if profile else None
                scheduler = SchedulerProcess(tmp, server.kubeconfig, profile_out)
                await asyncio.to_thread(scheduler.wait_ready)
                result = await _measure(client, server, scheduler, pods)
                # The burst's latency is mostly time spent queued behind it; a paced load below capacity
                # shows the latency of one scheduling decision plus its binding.
                result["paced"] = await _measure(client, server, scheduler, pods // 4, prefix="paced",
                                                 rate=PACED_RATE)
                result["nodes"] = nodes
                result["node_create_rate"] = round(nodes / node_seconds, 1)
                listed = await client.list(PODS, NAMESPACE)
                result["placement"] = _check_no_overcommit(listed["items"])
                result["scheduler_exit"] = scheduler.stop()
                scheduler = None
                if profile_out is not None and profile_out.exists():
                    result["profile_top"] = _profile_top(profile_out)
                return result
        finally:
            if scheduler is not None:
                scheduler.stop()
            server.stop()


async def _measure(client: Client, server: Server, scheduler: SchedulerProcess, pods: int, *, prefix: str = "pod",
                   rate: float | None = None) -> dict[str, Any]:
    """Create ``pods`` pods (as fast as 32 clients can, or paced at ``rate`` per second) and time their
    binding."""
    rv = (await client.list(PODS, NAMESPACE, limit=1))["metadata"]["resourceVersion"]
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    all_bound = asyncio.Event()

    async def watch() -> None:
        async with aclosing(client.watch_raw(PODS, NAMESPACE, resource_version=rv)) as events:
            async for ev in events:
                obj = ev.get("object") or {}
                name = str((obj.get("metadata") or {}).get("name") or "")
                if ev.get("type") == "MODIFIED" and (obj.get("spec") or {}).get("nodeName") and name not in bound:
                    bound[name] = time.perf_counter()
                    if len(bound) == pods:
                        all_bound.set()
                        return

    watcher = asyncio.create_task(watch())
    cpu0 = {"apiserver": _cpu_seconds(server.proc.pid), "scheduler": _cpu_seconds(scheduler.proc.pid),
            "driver": _own_cpu_seconds()}
    start = time.perf_counter()

    async def create(i: int) -> None:
        if rate is not None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        name = f"{prefix}-{i:05}"
        await client.create(PODS, _pod(name), namespace=NAMESPACE)
        created[name] = time.perf_counter()

    await _concurrently(pods, create)
    create_seconds = time.perf_counter() - start
    try:
        await asyncio.wait_for(all_bound.wait(), BIND_TIMEOUT)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    wall = max(bound.values()) - start
    driver = _own_cpu_seconds() - cpu0["driver"]
    latencies = [(bound[n] - created[n]) * 1000 for n in created if n in bound]
    return {
        "pods": pods,
        "pods_per_s": round(pods / wall, 1),
        "seconds": round(wall, 2),
        "create_rate": round(pods / create_seconds, 1),
        "latency_ms": {"p50": round(_pct(latencies, 50), 1), "p99": round(_pct(latencies, 99), 1),
                       "mean": round(statistics.fmean(latencies), 1)},
        "cpu_share_of_one_core": {
            "apiserver": round((_cpu_seconds(server.proc.pid) - cpu0["apiserver"]) / wall, 2),
            "scheduler": round((_cpu_seconds(scheduler.proc.pid) - cpu0["scheduler"]) / wall, 2),
            "driver": round(driver / wall, 2),
        },
    }


def _profile_top(path: Path, n: int = 25) -> list[str]:
    stats = pstats.Stats(str(path))
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]  # type: ignore[attr-defined]
    out = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in rows:
        out.append(f"{tottime:7.2f}s self {cumtime:7.2f}s cum {calls:>9} calls  {Path(file).name}:{line}({func})")
    return out


def _print(name: str, r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    cpu = r["cpu_share_of_one_core"]
    print(f"{name}: {r['pods']} pods over {r['nodes']} nodes: {r['pods_per_s']} pods/s "
          f"({r['seconds']} s), latency p50 {lat['p50']} ms p99 {lat['p99']} ms; pods created at "
          f"{r['create_rate']}/s; cpu (cores): apiserver {cpu['apiserver']}, scheduler {cpu['scheduler']}, "
          f"driver {cpu['driver']}; {r['placement']}")
    paced = r["paced"]
    print(f"    paced at {PACED_RATE:.0f} pods/s: {paced['pods']} pods, latency p50 {paced['latency_ms']['p50']} ms "
          f"p99 {paced['latency_ms']['p99']} ms")
    for row in r.get("profile_top", []):
        print("    " + row)


async def main_async(quick: bool, profile: bool) -> dict[str, Any]:
    scenarios = [(100, 1000), (500, 1000)] if quick else [(1000, 10_000), (5000, 10_000)]
    out: dict[str, Any] = {"scheduler_process": "separate", "store": "sqlite",
                           "node": NODE_ALLOCATABLE, "pod_requests": POD_REQUESTS}
    for nodes, pods in scenarios:
        name = f"{pods}_pods_{nodes}_nodes"
        out[name] = await run_scenario(nodes, pods, profile=profile)
        _print(name, out[name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 pods over 100 and 500 nodes")
    parser.add_argument("--profile", action="store_true", help="run the scheduler under cProfile (slower)")
    parser.add_argument("--scheduler-process", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scheduler_process:
        asyncio.run(_scheduler_process(args.scheduler_process, args.profile_out))
        return
    results = asyncio.run(main_async(args.quick, args.profile))
    if not args.quick:
        out = ROOT / "bench" / "results" / "scheduler.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
