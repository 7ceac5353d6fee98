"""Service proxy benchmark: how fast a change reaches the rules, and what a ClusterIP costs on the data path.

Needs root (network namespaces, nftables). The world it builds, all removed at the end:
- a real ``kubelite apiserver`` process on the embedded SQLite store (bench/api.py's `Server`);
- a *node* network namespace with a bridge (10.244.0.1/24) and three *pods* on it, each answering its own
  name on port 8080 for any address of its own /16 (10.245/16, 10.246/16, 10.247/16, local routes), so that
  thousands of endpoints are served by three processes;
- a *client* pod routed by the node (10.244.1.2, on a veth of its own, no bridge), so that going straight
  to a pod and going through a ClusterIP take the same routed path and differ only by the proxy's rules;
- the proxy in **its own process** (``kubelite proxy`` with ``--netns``, default periods: ``--sync-period
  30s --min-sync-period 1s``), as on a node.

1. Rule programming latency at 10, 1,000 and 5,000 Services, 10 endpoints each (10,000 and 50,000
   endpoints): one EndpointSlice update moves one random Service's endpoints to another pod; the time from
   the API call to the first connection to its ClusterIP answered by the new pod. Changes are spaced by
   more than ``--min-sync-period``, so each measures one lone change. The proxy's log tells how many nft
   commands each of those syncs sent and how long it took (a partial sync touches one Service).
2. Data path, with every Service still loaded: bulk TCP throughput over one connection for a few
   seconds, and sequential connections per second (the rules are evaluated for each new connection), to
   the ClusterIP and straight to the pod IP, alternated (in turn first), median of three runs each. Python sender and
   receiver, in the client and the first pod.

Printed and written to bench/results/proxy.json (not with ``--quick``: 10 and 500 Services, short runs).

    sudo python bench/proxy.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import Server, _pct  # noqa: E402
from kubelite.api.registry import resolve  # noqa: E402
from kubelite.client.kubeconfig import load_kubeconfig  # noqa: E402
from kubelite.client.rest import Client  # noqa: E402
from kubelite.proxy.netns import NetnsThread  # noqa: E402

SERVICES = resolve("services")
SLICES = resolve("endpointslices.discovery.k8s.io")
NAMESPACES = resolve("namespaces")
NAMESPACE = "bench"
CONCURRENCY = 32
ENDPOINTS_PER_SERVICE = 10
PODS = ("p1", "p2", "p3")
POD_IPS = {"p1": "10.244.0.2", "p2": "10.244.0.3", "p3": "10.244.0.4"}
POD_RANGES = {"p1": 245, "p2": 246, "p3": 247}  # 10.<n>.0.0/16 answered by that pod
CLIENT_IP, CLIENT_GW = "10.244.1.2", "10.244.1.1"
NAME_PORT, BULK_PORT, CONN_PORT = 8080, 9000, 9001
CHANGE_GAP = 1.2  # seconds between measured changes: more than --min-sync-period
SYNC_LINE = re.compile(r"proxy (\w+) sync: (\d+) services, (\d+) nft commands, ([\d.]+) s")

POD_SERVER = r"""
import socket, sys, threading
name = sys.argv[1].encode()

def serve(port, handle):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    while True:
        c, _ = s.accept()
        handle(c)

def answer(c):
    c.sendall(name)
    c.close()

def drain_in_thread(c):
    def drain():
        total, buf = 0, bytearray(1 << 20)
        while n := c.recv_into(buf):
            total += n
        c.sendall(str(total).encode())
        c.close()
    threading.Thread(target=drain, daemon=True).start()

for port, handle in ((8080, answer), (9000, drain_in_thread), (9001, lambda c: c.close())):
    threading.Thread(target=serve, args=(port, handle), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

CLIENT = r"""
import json, socket, struct, sys, time
mode, host, port, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
start = time.perf_counter()
if mode == "bulk":
    c = socket.create_connection((host, port))
    buf = b"x" * (1 << 20)
    while time.perf_counter() - start < seconds:
        c.sendall(buf)
    c.shutdown(socket.SHUT_WR)
    total = int(c.recv(64))
    print(json.dumps({"bytes": total, "seconds": time.perf_counter() - start}))
else:
    n = 0
    while time.perf_counter() - start < seconds:
        c = socket.create_connection((host, port))
        c.recv(1)  # the server closes first; answering with a reset leaves no TIME_WAIT on either side,
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # so ports are reused
        c.close()  # safely (a TIME_WAIT there would turn away a reused port's SYN for a second)
        n += 1
    print(json.dumps({"connections": n, "seconds": time.perf_counter() - start}))
"""


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30)


def _in(ns: str, *argv: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *argv]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Lab:
    """The namespaces, links and pod servers (see the module docstring); `close` removes them all."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.node = f"klbench-node-{tag}"
        self.client = f"klbench-cli-{tag}"
        self.pods = {p: f"klbench-{p}-{tag}" for p in PODS}
        self.made: list[str] = []
        self.servers: list[subprocess.Popen[bytes]] = []

    def build(self) -> None:
        for ns in (self.node, self.client, *self.pods.values()):
            _sh("ip", "netns", "add", ns)
            self.made.append(ns)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
        n = self.node
        _sh("ip", "-n", n, "link", "add", "kbr0", "type", "bridge")
        _sh("ip", "-n", n, "addr", "add", "10.244.0.1/24", "dev", "kbr0")
        _sh("ip", "-n", n, "link", "set", "kbr0", "up")
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.bridge.bridge-nf-call-iptables", "1")):
            if Path("/proc/sys", *key.split(".")).exists():
                _sh(*_in(n, "sysctl", "-qw", f"{key}={value}"))
        for i, (pod, ns) in enumerate(self.pods.items()):
            _sh("ip", "-n", n, "link", "add", f"vp{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            _sh("ip", "-n", n, "link", "set", f"vp{i}", "master", "kbr0")
            _sh("ip", "-n", n, "link", "set", f"vp{i}", "up")
            _sh("ip", "-n", ns, "addr", "add", f"{POD_IPS[pod]}/24", "dev", "eth0")
            _sh("ip", "-n", ns, "link", "set", "eth0", "up")
            _sh("ip", "-n", ns, "route", "add", "default", "via", "10.244.0.1")
            # every address of the pod's /16 is its own (AnyIP), and the node routes the /16 to it
            _sh("ip", "-n", ns, "route", "add", "local", f"10.{POD_RANGES[pod]}.0.0/16", "dev", "lo")
            _sh("ip", "-n", n, "route", "add", f"10.{POD_RANGES[pod]}.0.0/16", "via", POD_IPS[pod])
            server = subprocess.Popen(_in(ns, sys.executable, "-c", POD_SERVER, pod), stdout=subprocess.PIPE)
            self.servers.append(server)
            assert server.stdout is not None
            if server.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"the server of {pod} did not start")
        _sh("ip", "-n", n, "link", "add", "vcl", "type", "veth", "peer", "name", "eth0", "netns", self.client)
        _sh("ip", "-n", n, "addr", "add", f"{CLIENT_GW}/24", "dev", "vcl")
        _sh("ip", "-n", n, "link", "set", "vcl", "up")
        _sh("ip", "-n", self.client, "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        _sh("ip", "-n", self.client, "link", "set", "eth0", "up")
        _sh("ip", "-n", self.client, "route", "add", "default", "via", CLIENT_GW)

    def close(self) -> None:
        for server in self.servers:
            server.kill()
            server.wait()
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


class ProxyProcess:
    """``kubelite proxy`` in a process of its own, its log in a file (read for the sync lines)."""

    def __init__(self, tmp: Path, kubeconfig: Path, netns: str) -> None:
        self.log_path = tmp / "proxy.log"
        self.log = open(self.log_path, "wb")
        args = [sys.executable, str(Path(__file__).resolve()), "--proxy-process", "--kubeconfig", str(kubeconfig),
                "--hostname-override", "node-a", "--cluster-cidr", "10.244.0.0/16", "--netns", netns]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def syncs_since(self, offset: int) -> list[tuple[str, int, int, float]]:
        text = self.log_path.read_bytes()[offset:].decode(errors="replace")
        return [(m[1], int(m[2]), int(m[3]), float(m[4])) for m in SYNC_LINE.finditer(text)]

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _proxy_process(argv: list[str]) -> int:
    """The proxy process: the real CLI, logging each sync (the proxier's debug lines) and little else."""
    from kubelite.cli import proxy as proxy_cli

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kubelite.proxy.proxier").setLevel(logging.DEBUG)
    parser = argparse.ArgumentParser()
    proxy_cli.register(parser.add_subparsers())
    args = parser.parse_args(["proxy", *argv])
    return int(args.func(args))


class Prober:
    """Connections from inside the client pod, made by this process (sockets created in its namespace)."""

    def __init__(self, netns: str) -> None:
        self.thread = NetnsThread(netns, name="bench-client")

    async def ask(self, ip: str, port: int = 80, timeout: float = 0.5) -> str | None:
        sock = await self.thread.run(socket.socket, socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, (ip, port)), timeout)
            data = b""
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 64), timeout):
                data += chunk
            return data.decode()
        except (OSError, TimeoutError):
            return None
        finally:
            sock.close()

    async def reachable(self, ip: str, port: int, timeout: float = 60.0) -> None:
        """Wait until a connection to ``ip:port`` is accepted (the conn server closes it at once)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if await self.ask(ip, port) is not None:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{ip}:{port} did not answer within {timeout:.0f} s")

    async def until(self, ip: str, answer: str, timeout: float = 120.0, pause: float = 0.002) -> float:
        """Seconds until a connection to ``ip`` is answered by ``answer`` (polling every ``pause``)."""
        start = time.perf_counter()
        while await self.ask(ip) != answer:
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"{ip} was not answered by {answer} within {timeout:.0f} s")
            await asyncio.sleep(pause)
        return time.perf_counter() - start


# --- the cluster --------------------------------------------------------------------------------------------

def _service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i:05}", "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": NAME_PORT}]}}


def _endpoint_ips(pod: str, i: int, generation: int) -> list[str]:
    """10 addresses of ``pod``'s /16 for Service ``i`` (a later generation gets different ones)."""
    out = []
    for j in range(ENDPOINTS_PER_SERVICE):
        n = (i * ENDPOINTS_PER_SERVICE + j + generation * 7919) % 65024 + 256
        out.append(f"10.{POD_RANGES[pod]}.{n // 256}.{n % 256}")
    return out


def _slice(i: int, ips: list[str], resource_version: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": f"svc-{i:05}-1", "namespace": NAMESPACE,
                                "labels": {"kubernetes.io/service-name": f"svc-{i:05}"}}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata, "addressType": "IPv4",
            "ports": [{"name": "http", "port": NAME_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": "node-a", "conditions": {"ready": True}} for ip in ips]}


class Cluster:
    """The Services of the benchmark, with what the driver knows of each (ClusterIP, pod, slice version)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.cluster_ips: list[str] = []
        self.pod: list[str] = []
        self.versions: list[str] = []
        self.generation: list[int] = []

    async def grow(self, n: int) -> float:
        """Add Services (and slices) up to ``n``; seconds it took."""
        first = len(self.cluster_ips)
        self.cluster_ips += [""] * (n - first)
        self.pod += [PODS[i % 3] for i in range(first, n)]
        self.versions += [""] * (n - first)
        self.generation += [0] * (n - first)

        async def create(i: int) -> None:
            svc = await self.client.create(SERVICES, _service(i), namespace=NAMESPACE)
            self.cluster_ips[i] = svc["spec"]["clusterIP"]
            created = await self.client.create(SLICES, _slice(i, _endpoint_ips(self.pod[i], i, 0)),
                                               namespace=NAMESPACE)
            self.versions[i] = created["metadata"]["resourceVersion"]

        start = time.perf_counter()
        await _concurrently(range(first, n), create)
        return time.perf_counter() - start

    async def move(self, i: int) -> str:
        """Move Service ``i``'s endpoints to the next pod with one slice update; the pod's name."""
        pod = PODS[(PODS.index(self.pod[i]) + 1) % 3]
        self.generation[i] += 1
        updated = await self.client.update(SLICES, _slice(i, _endpoint_ips(pod, i, self.generation[i]),
                                                          self.versions[i]), namespace=NAMESPACE)
        self.versions[i] = updated["metadata"]["resourceVersion"]
        self.pod[i] = pod
        return pod


async def _concurrently(items: range, op: Callable[[int], Awaitable[None]]) -> None:
    it = iter(items)

    async def worker() -> None:
        for i in it:
            await op(i)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def measure_latency(cluster: Cluster, prober: Prober, proxy: ProxyProcess, samples: int) -> dict[str, Any]:
    offset = proxy.log_size()
    latencies = []
    for i in [random.randrange(len(cluster.cluster_ips)) for _ in range(samples)]:
        await asyncio.sleep(CHANGE_GAP)
        start = time.perf_counter()
        pod = await cluster.move(i)
        await prober.until(cluster.cluster_ips[i], pod, pause=0.002)
        latencies.append((time.perf_counter() - start) * 1000)
    syncs = [s for s in proxy.syncs_since(offset) if s[0] == "partial"]
    return {
        "samples": samples,
        "latency_ms": {"p50": round(_pct(latencies, 50), 1), "p90": round(_pct(latencies, 90), 1),
                       "max": round(max(latencies), 1), "mean": round(statistics.fmean(latencies), 1)},
        "partial_syncs": {
            "count": len(syncs),
            "services_per_sync_median": statistics.median(s[1] for s in syncs) if syncs else None,
            "nft_commands_median": statistics.median(s[2] for s in syncs) if syncs else None,
            "nft_commands_max": max(s[2] for s in syncs) if syncs else None,
            "seconds_median": round(statistics.median(s[3] for s in syncs), 4) if syncs else None,
        },
    }


async def _client_run(lab: Lab, mode: str, host: str, port: int, seconds: float) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(*_in(lab.client, sys.executable, "-c", CLIENT, mode, host, str(port),
                                                     str(seconds)), stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the {mode} client failed")
    result: dict[str, float] = json.loads(out)
    return result


async def measure_data_path(lab: Lab, cluster_ip: str, seconds: float, runs: int) -> dict[str, Any]:
    results: dict[str, dict[str, list[float]]] = {"clusterip": {"bulk": [], "conn": []},
                                                  "direct": {"bulk": [], "conn": []}}
    targets = {"clusterip": cluster_ip, "direct": POD_IPS["p1"]}
    for run in range(runs):
        for path in ("direct", "clusterip") if run % 2 == 0 else ("clusterip", "direct"):
            bulk = await _client_run(lab, "bulk", targets[path], BULK_PORT, seconds)
            results[path]["bulk"].append(bulk["bytes"] * 8 / bulk["seconds"] / 1e9)
            conn = await _client_run(lab, "conn", targets[path], CONN_PORT, seconds)
            results[path]["conn"].append(conn["connections"] / conn["seconds"])
    med = {p: {k: statistics.median(v) for k, v in r.items()} for p, r in results.items()}
    return {
        "seconds_per_run": seconds, "runs": runs,
        "bulk_gbit_s": {"direct": round(med["direct"]["bulk"], 2), "clusterip": round(med["clusterip"]["bulk"], 2),
                        "clusterip_vs_direct_pct": round(100 * med["clusterip"]["bulk"] / med["direct"]["bulk"], 1)},
        "connections_per_s": {"direct": round(med["direct"]["conn"]), "clusterip": round(med["clusterip"]["conn"]),
                              "clusterip_vs_direct_pct": round(100 * med["clusterip"]["conn"] / med["direct"]["conn"],
                                                               1)},
    }


async def main_async(quick: bool) -> dict[str, Any]:
    scales = [(10, 15), (500, 15)] if quick else [(10, 25), (1000, 25), (5000, 15)]
    out: dict[str, Any] = {"proxy_process": "separate", "proxy_flags": "--sync-period 30s --min-sync-period 1s",
                           "endpoints_per_service": ENDPOINTS_PER_SERVICE,
                           "change": "one EndpointSlice update moving one Service's endpoints to another pod",
                           "latency": {}}
    lab = Lab()
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-proxy-") as tmp_name:
        tmp = Path(tmp_name)
        server = Server(tmp, None)
        proxy: ProxyProcess | None = None
        prober: Prober | None = None
        try:
            await asyncio.to_thread(lab.build)
            await server.ready()
            async with Client(load_kubeconfig(str(server.kubeconfig)), pool_size=CONCURRENCY * 2) as client:
                await client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
                cluster = Cluster(client)
                proxy = ProxyProcess(tmp, server.kubeconfig, lab.node)
                prober = Prober(lab.client)
                for services, samples in scales:
                    seconds = await cluster.grow(services)
                    last = len(cluster.cluster_ips) - 1
                    catch_up = await prober.until(cluster.cluster_ips[last], cluster.pod[last], timeout=600,
                                                  pause=0.05)
                    cpu0 = _cpu_seconds(proxy.proc.pid)
                    t0 = time.perf_counter()
                    result = await measure_latency(cluster, prober, proxy, samples)
                    result["proxy_cpu_share_of_one_core"] = round(
                        (_cpu_seconds(proxy.proc.pid) - cpu0) / (time.perf_counter() - t0), 3)
                    result["created_in_s"] = round(seconds, 1)
                    result["rules_live_after_creation_s"] = round(catch_up, 1)
                    out["latency"][f"{services}_services"] = result
                    _print_latency(services, result)
                sink = await client.create(SERVICES, {
                    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "sink", "namespace": NAMESPACE},
                    "spec": {"ports": [{"name": "bulk", "port": BULK_PORT}, {"name": "conn", "port": CONN_PORT}]}},
                    namespace=NAMESPACE)
                await client.create(SLICES, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": "sink-1", "namespace": NAMESPACE,
                                 "labels": {"kubernetes.io/service-name": "sink"}},
                    "addressType": "IPv4", "ports": [{"name": "bulk", "port": BULK_PORT}, {"name": "conn",
                                                                                           "port": CONN_PORT}],
                    "endpoints": [{"addresses": [POD_IPS["p1"]], "conditions": {"ready": True}}]},
                    namespace=NAMESPACE)
                sink_ip = sink["spec"]["clusterIP"]
                await prober.reachable(sink_ip, CONN_PORT)
                data = await measure_data_path(lab, sink_ip, 1.5 if quick else 4.0, 3)
                data["services_loaded"] = len(cluster.cluster_ips) + 1
                out["data_path"] = data
                _print_data_path(data)
        finally:
            if prober is not None:
                prober.thread.close()
            if proxy is not None:
                proxy.stop()
            server.stop()
            lab.close()
    return out


def _print_latency(services: int, r: dict[str, Any]) -> None:
    lat, syncs = r["latency_ms"], r["partial_syncs"]
    print(f"{services} services ({services * ENDPOINTS_PER_SERVICE} endpoints): change to live p50 {lat['p50']} ms, "
          f"p90 {lat['p90']} ms, max {lat['max']} ms over {r['samples']} changes; partial syncs: "
          f"{syncs['count']}, median {syncs['nft_commands_median']} nft commands for "
          f"{syncs['services_per_sync_median']} service(s), {syncs['seconds_median']} s each; proxy cpu "
          f"{r['proxy_cpu_share_of_one_core']} core; created in {r['created_in_s']} s, rules live "
          f"{r['rules_live_after_creation_s']} s after")


def _print_data_path(d: dict[str, Any]) -> None:
    bulk, conn = d["bulk_gbit_s"], d["connections_per_s"]
    print(f"data path with {d['services_loaded']} services loaded: bulk TCP {bulk['clusterip']} Gbit/s via "
          f"ClusterIP vs {bulk['direct']} direct ({bulk['clusterip_vs_direct_pct']} %); connections "
          f"{conn['clusterip']}/s via ClusterIP vs {conn['direct']}/s direct ({conn['clusterip_vs_direct_pct']} %)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--proxy-process":
        sys.exit(_proxy_process(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 and 500 Services, short runs, nothing written")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("nsenter") is None:
        sys.exit("bench/proxy.py needs root, nft (nftables) and nsenter (util-linux)")
    results = asyncio.run(main_async(args.quick))
    if not args.quick:
        out = ROOT / "bench" / "results" / "proxy.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"written to {out}")


if __name__ == "__main__":
    main()
