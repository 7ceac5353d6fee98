"""Pod startup benchmark: the time from creating a pod to seeing it Running and Ready, on one real node with
the image present, next to a bare ``runc run`` of the same image; and the node agent's idle memory.

Needs root, runc, busybox-static and containernetworking-plugins. The world it builds, all removed at the
end (also on failure): a network namespace for the node (this process moves into it, so that everything it
starts lives there), a temporary data directory with the busybox test image imported, and the processes:

1. bare runc: bundles made from the image's unpacked layers (an overlayfs mount each, as the runtime makes)
   with ``runc spec``'s default config running ``sleep``; the time of ``runc run --detach`` (create and
   start), one at a time and 30 at once, and of ``runc delete --force``;
2. ``kubelite server`` with its agent in one process (as ``kubelite server`` runs by default): one pod on
   the fresh node (reported apart: it pays one-time costs such as creating the CNI bridge), then single
   pods one after another, then a burst of 30 pods created at once;
3. ``kubelite server --disable-agent`` and a separate ``kubelite agent --server URL --token <node-token>``
   process (a node joining a cluster): the same single pods and burst.

Latency is measured as Kubernetes' pod startup SLI (creation to Running, and to Ready; the pods have no
probes), from this client's clock when it sends the create call (``creationTimestamp`` has 1 s resolution),
to the moment a watch opened beforehand delivers the pod with ``phase: Running`` / condition ``Ready``; it
includes scheduling, whose share is reported too (creation to ``spec.nodeName`` seen). Pods run busybox
``sleep`` with ``imagePullPolicy: IfNotPresent``. Idle RSS is read from ``/proc/PID/status`` once the node
has had no pods for a few seconds.

Printed and written to bench/results/pod_startup.json (not with ``--quick``: fewer pods). Targets (issue 4):
burst p50 <= 300 ms and p99 <= 1 s; agent idle RSS <= 80 MB. Nothing here passes or fails on time.

    sudo .venv/bin/python bench/pod_startup.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import _pct, _rss_mb  # noqa: E402
from kubelite.api.registry import resolve  # noqa: E402
from kubelite.client.kubeconfig import load_kubeconfig  # noqa: E402
from kubelite.client.rest import ApiException, Client, TransportError  # noqa: E402
from kubelite.kubelet.images import ImageStore  # noqa: E402
from kubelite.kubelet.paths import AgentPaths  # noqa: E402
from kubelite.kubelet.runtime.rootfs import mount_overlay, unmount  # noqa: E402
from kubelite.kubelet.stats import host  # noqa: E402
from kubelite.proxy.netns import enter  # noqa: E402
from tests.e2e.conftest import free_port  # noqa: E402
from tests.e2e.nodes import IMAGE, cleanup_node, import_busybox, node_namespace, sandbox_records  # noqa: E402

PODS = resolve("pods")
NODES = resolve("nodes")
NAMESPACES = resolve("namespaces")
NAMESPACE = "bench"
NODE = "node1"
LABEL = "bench=pod-startup"
RUNC = shutil.which("runc") or "runc"
RUNC_CGROUP = "klbench-runc"
IDLE_SECONDS = 5.0


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _stats(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50_ms": _ms(_pct(values, 50)), "p99_ms": _ms(_pct(values, 99)),
            "max_ms": _ms(max(values)) if values else None}


# --- bare runc ---------------------------------------------------------------------------------------------

class RuncBaseline:
    """Bundles over the image's layers, run and deleted with runc's own --root; `close` removes everything."""

    def __init__(self, tmp: Path, layers: list[Path]) -> None:
        self.tmp = tmp / "runc-bench"
        self.root = self.tmp / "state"
        self.layers = layers
        self.bundles: list[Path] = []
        self.ids: list[str] = []
        self.root.mkdir(parents=True)
        spec = self.tmp / "spec"
        spec.mkdir()
        subprocess.run([RUNC, "spec", "--bundle", str(spec)], check=True, capture_output=True)
        self.config = json.loads((spec / "config.json").read_text())
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = ["sleep", "3600"]
        self.config["root"] = {"path": "rootfs", "readonly": False}

    def bundle(self, cid: str) -> Path:
        b = self.tmp / cid
        self.bundles.append(b)
        mount_overlay(self.layers, upper=b / "upper", work=b / "work", target=b / "rootfs")
        config = json.loads(json.dumps(self.config))
        config["linux"]["cgroupsPath"] = f"/{RUNC_CGROUP}/{cid}"
        (b / "config.json").write_text(json.dumps(config))
        return b

    async def run(self, cid: str, bundle: Path) -> float:
        self.ids.append(cid)
        log = bundle / "runc.log"
        start = time.perf_counter()
        # The container inherits runc's stdio: no pipes, or reading them would wait for the container's end.
        proc = await asyncio.create_subprocess_exec(
            RUNC, "--root", str(self.root), "--log", str(log), "run", "--detach", "--bundle", str(bundle), cid,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()
        took = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"runc run {cid} failed: {log.read_text(errors='replace').strip()}")
        return took

    async def delete(self, cid: str) -> float:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(RUNC, "--root", str(self.root), "delete", "--force", cid,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()
        return time.perf_counter() - start

    async def measure(self, singles: int, burst: int) -> dict[str, Any]:
        sequential = []
        for i in range(singles):
            cid = f"klbench-seq-{i}"
            sequential.append(await self.run(cid, self.bundle(cid)))
        names = [f"klbench-burst-{i}" for i in range(burst)]
        bundles = [self.bundle(n) for n in names]  # made before the clock starts: only runc is timed
        at_once = await asyncio.gather(*(self.run(n, b) for n, b in zip(names, bundles, strict=True)))
        deletes = [await self.delete(cid) for cid in list(self.ids)]
        return {"run_sequential": _stats(sequential), "run_burst": _stats(list(at_once)),
                "delete": _stats(deletes)}

    def close(self) -> None:
        for cid in self.ids:
            subprocess.run([RUNC, "--root", str(self.root), "delete", "--force", cid], capture_output=True)
        for b in self.bundles:
            with contextlib.suppress(OSError):
                unmount(b / "rootfs")
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            for d in sorted(hierarchy.glob(f"**/{RUNC_CGROUP}"), key=lambda p: len(str(p)), reverse=True):
                for sub in sorted(d.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                    with contextlib.suppress(OSError):
                        sub.rmdir()
        shutil.rmtree(self.tmp, ignore_errors=True)


def image_layers(data_dir: Path) -> list[Path]:
    store = ImageStore(AgentPaths(data_dir / "agent").images)
    record = store.resolve(IMAGE)
    if record is None:
        raise RuntimeError(f"{IMAGE} is not in the image store after the import")
    return store.layer_dirs(record)


# --- kubelite processes ------------------------------------------------------------------------------------

class Process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log_path = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "kubelite.cli.main", *args], stdout=out,
                                         stderr=subprocess.STDOUT, cwd=ROOT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def rss_mb(self) -> float:
        return round(_rss_mb(self.proc.pid), 1)

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process itself (not the containers' shims, which are not its
        children once they have daemonised)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"kubelite exited with {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(tmp: Path, port: int, *, agent: bool) -> Process:
    args = ["server", "--data-dir", str(tmp / "data"), "--bind-address", "127.0.0.1", "--port", str(port),
            "--write-kubeconfig", str(tmp / "kubeconfig"), "--node-name", NODE]
    return Process(args if agent else [*args, "--disable-agent"], tmp / "server.log")


def start_agent(tmp: Path, port: int) -> Process:
    token = (tmp / "data" / "node-token").read_text().strip()
    return Process(["agent", "--server", f"https://127.0.0.1:{port}", "--token", token, "--data-dir",
                    str(tmp / "data"), "--node-name", NODE], tmp / "agent.log")


async def connect(tmp: Path, server: Process) -> Client:
    """A client once the server answers /readyz."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.check()
        if (tmp / "kubeconfig").exists():
            client = Client(load_kubeconfig(str(tmp / "kubeconfig")))
            client.open()
            try:
                await client.request("GET", "/readyz")
                return client
            except (ApiException, TransportError):
                await client.close()
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready")


async def wait_node_ready(client: Client, *processes: Process) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for p in processes:
            p.check()
        with contextlib.suppress(ApiException):
            node = await client.get(NODES, NODE)
            conditions = (node.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions) and \
                    (node.get("spec") or {}).get("podCIDR"):
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{NODE} did not become Ready")


class CpuMeter:
    """Cores used over a span: by the whole machine (``/proc/stat``'s busy time), and by each process."""

    def __init__(self, processes: dict[str, Process]) -> None:
        self.processes = processes
        self._start: tuple[float, int, dict[str, float]] = (0.0, 0, {})

    def start(self) -> None:
        self._start = (time.perf_counter(), host.cpu_time_ns(),
                       {n: p.cpu_seconds() for n, p in self.processes.items()})

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._start[0]
        used = {"machine": (host.cpu_time_ns() - self._start[1]) / 1e9}
        used |= {n: p.cpu_seconds() - self._start[2][n] for n, p in self.processes.items()}
        return {name: round(seconds / wall, 2) for name, seconds in used.items()}


# --- pods --------------------------------------------------------------------------------------------------

def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict([LABEL.split("=")])},
            "spec": {"terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def start_pods(client: Client, names: list[str], *, meter: CpuMeter | None = None,
                     timeout: float = 180) -> list[tuple[float, float, float]]:
    """Create ``names`` at once; (seconds to scheduled, to Running, to Ready) of each, from its create call.
    ``meter`` runs from the first create call until the last pod is Ready."""
    rv = (await client.list(PODS, NAMESPACE))["metadata"]["resourceVersion"]
    created: dict[str, float] = {}
    scheduled: dict[str, float] = {}
    running: dict[str, float] = {}
    ready: dict[str, float] = {}

    async def watch() -> None:
        async with aclosing(client.watch_raw(PODS, NAMESPACE, rv, label_selector=LABEL)) as events:
            async for event in events:
                if event.get("type") not in ("ADDED", "MODIFIED"):
                    continue
                now = time.perf_counter()
                pod = event["object"]
                name = pod["metadata"]["name"]
                if (pod.get("spec") or {}).get("nodeName"):
                    scheduled.setdefault(name, now)
                if (pod.get("status") or {}).get("phase") == "Running":
                    running.setdefault(name, now)
                if _ready(pod):
                    ready.setdefault(name, now)
                if ready.keys() >= set(names):
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)  # the watch is open (a loopback round trip) before the first create

    async def create(name: str) -> None:
        created[name] = time.perf_counter()
        await client.create(PODS, _pod(name), NAMESPACE)

    if meter is not None:
        meter.start()
    await asyncio.gather(*(create(n) for n in names))
    try:
        await asyncio.wait_for(watcher, timeout)
    except TimeoutError:
        raise RuntimeError(f"pods not Ready after {timeout} s: {sorted(set(names) - ready.keys())}") from None
    return [(scheduled[n] - created[n], running[n] - created[n], ready[n] - created[n]) for n in names]


async def delete_pods(client: Client, data_dir: Path) -> None:
    """Delete the bench's pods and wait until they and their sandboxes are gone."""
    await client.delete_collection(PODS, NAMESPACE, label_selector=LABEL, grace_period_seconds=0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not (await client.list(PODS, NAMESPACE))["items"] and not sandbox_records(data_dir):
            return
        await asyncio.sleep(0.3)
    raise RuntimeError("the bench's pods were not removed within 120 s")


def _latencies(samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    return {"scheduled": _stats([s[0] for s in samples]), "running": _stats([s[1] for s in samples]),
            "ready": _stats([s[2] for s in samples])}


async def pod_runs(client: Client, data_dir: Path, processes: dict[str, Process], *, singles: int, burst: int,
                   tag: str, first: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if first:
        scheduled, running, ready = (await start_pods(client, [f"{tag}-first"]))[0]
        out["first_pod"] = {"scheduled_ms": _ms(scheduled), "running_ms": _ms(running), "ready_ms": _ms(ready)}
    samples = []
    for i in range(singles):
        samples += await start_pods(client, [f"{tag}-single-{i}"])
    out["single"] = _latencies(samples)
    await delete_pods(client, data_dir)
    meter = CpuMeter(processes)
    out["burst"] = _latencies(await start_pods(client, [f"{tag}-burst-{i}" for i in range(burst)], meter=meter))
    out["burst"]["cpu_cores_used"] = meter.stop()
    return out


async def idle_rss(client: Client, data_dir: Path, processes: dict[str, Process]) -> dict[str, float]:
    """RSS of each process with pods running, then once the node has had none for `IDLE_SECONDS`."""
    busy = {f"{name}_with_pods": p.rss_mb() for name, p in processes.items()}
    await delete_pods(client, data_dir)
    await asyncio.sleep(IDLE_SECONDS)
    return {**{f"{name}_idle": p.rss_mb() for name, p in processes.items()}, **busy}


# --- the run -----------------------------------------------------------------------------------------------

async def bench_node(tmp: Path, *, singles: int, burst: int) -> dict[str, Any]:
    data_dir = tmp / "data"
    port = free_port()
    results: dict[str, Any] = {}

    server = start_server(tmp, port, agent=True)
    try:
        client = await connect(tmp, server)
        try:
            await wait_node_ready(client, server)
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            r = await pod_runs(client, data_dir, {"server_with_agent": server}, singles=singles, burst=burst,
                               tag="one", first=True)
            r["rss_mb"] = await idle_rss(client, data_dir, {"server_with_agent": server})
            results["server_with_agent"] = r
        finally:
            await client.close()
    finally:
        server.stop()

    server = start_server(tmp, port, agent=False)
    agent: Process | None = None
    try:
        client = await connect(tmp, server)
        try:
            # The Node left by the first server is stale: the agent registers it afresh.
            with contextlib.suppress(ApiException):
                await client.delete(NODES, NODE)
            agent = start_agent(tmp, port)
            await wait_node_ready(client, server, agent)
            r = await pod_runs(client, data_dir, {"agent": agent, "server": server}, singles=singles, burst=burst,
                               tag="two", first=False)
            r["rss_mb"] = await idle_rss(client, data_dir, {"agent": agent, "server": server})
            results["separate_agent"] = r
        finally:
            await client.close()
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
    return results


@contextlib.contextmanager
def node_world() -> Iterator[Path]:
    """The node's namespace (this process enters it) and a temporary directory, removed at the end."""
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-bench-startup-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        stack.callback(cleanup_node, tmp / "data")
        netns = stack.enter_context(node_namespace())
        enter(Path("/run/netns") / netns)
        yield tmp


async def run(quick: bool) -> dict[str, Any]:
    singles, burst = (3, 10) if quick else (10, 30)
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    with node_world() as tmp:
        import_busybox(tmp, tmp / "data")
        baseline = RuncBaseline(tmp, image_layers(tmp / "data"))
        try:
            runc = await baseline.measure(singles, burst)
        finally:
            baseline.close()
        node = await bench_node(tmp, singles=singles, burst=burst)
    version = subprocess.check_output([RUNC, "--version"], text=True).splitlines()  # noqa: ASYNC221
    return {"machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "runc": version[0] if version else "", "load_average_1m_at_start": round(load, 2)},
            "pods": {"single": singles, "burst": burst, "image": IMAGE, "command": "sleep 3600"},
            "bare_runc": runc, **node,
            "targets": {"burst_p50_ms": 300, "burst_p99_ms": 1000, "agent_idle_rss_mb": 80}}


def _print(r: dict[str, Any]) -> None:
    def line(label: str, s: dict[str, Any]) -> str:
        return f"  {label:24s} p50 {s['p50_ms']:7.1f} ms   p99 {s['p99_ms']:7.1f} ms   (n={s['n']})"

    b = r["bare_runc"]
    print(f"\nbare runc ({r['machine']['runc']}, {r['machine']['cpus']} cpus, load average "
          f"{r['machine']['load_average_1m_at_start']} at the start):")
    print(line("run --detach, one by one", b["run_sequential"]))
    print(line(f"run --detach, {r['pods']['burst']} at once", b["run_burst"]))
    print(line("delete --force", b["delete"]))
    for mode, title in (("server_with_agent", "kubelite server (agent in the same process)"),
                        ("separate_agent", "kubelite server + a separate kubelite agent")):
        m = r[mode]
        print(f"\n{title}:")
        if "first_pod" in m:
            print(f"  first pod on the node      Running {m['first_pod']['running_ms']} ms, "
                  f"Ready {m['first_pod']['ready_ms']} ms")
        print(line("1 pod -> scheduled", m["single"]["scheduled"]))
        print(line("1 pod -> Running", m["single"]["running"]))
        print(line("1 pod -> Ready", m["single"]["ready"]))
        print(line(f"burst of {r['pods']['burst']} -> scheduled", m["burst"]["scheduled"]))
        print(line(f"burst of {r['pods']['burst']} -> Running", m["burst"]["running"]))
        print(line(f"burst of {r['pods']['burst']} -> Ready", m["burst"]["ready"]))
        cores = m["burst"]["cpu_cores_used"]
        print("  cores used during the burst: " + ", ".join(f"{k} {v}" for k, v in cores.items()))
        print("  RSS MB: " + ", ".join(f"{k} {v}" for k, v in m["rss_mb"].items()))
    print("\ntargets: burst p50 <= 300 ms, p99 <= 1000 ms; the agent's idle RSS <= 80 MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer pods (3 single, a burst of 10); nothing written")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("pod_startup.py needs root (network namespaces, runc, mounts)")
    results = asyncio.run(run(args.quick))
    _print(results)
    if not args.quick:
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "pod_startup.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nfigures written to {out / 'pod_startup.json'}")


if __name__ == "__main__":
    main()
