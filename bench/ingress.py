"""Ingress benchmark: requests/s and latency through kubelite's ingress gateway, straight to the backend, and
through Debian's nginx as a reverse proxy to the same backends, measured in the same run.

Everything listens on 127.0.0.1:
- the backends ("pods"): two nginx servers (one nginx process, one worker) answering every request with a
  short fixed body, so that the proxies, not the backends, are what is measured;
- kubelite: the gateway (`kubelite.proxy.ingress.gateway.Gateway`) in its own process, with the routing
  table `routes.build_routes` makes from an Ingress, a Service and EndpointSlices for the two backends —
  the data plane alone, no API server;
- nginx: a reverse proxy with one worker (like the gateway: one process, one core), upstream keep-alive,
  the same X-Forwarded-* headers as the gateway sets;
- the load: ``wrk`` (installed with apt-get when missing, as is nginx), else a Python asyncio client in
  its own process.

Two loads: throughput (64 connections, closed loop) and latency (one connection: no queueing, so p99 is
the cost of one request). The targets are measured in turns, several rounds each, so that anything else
running on the machine weighs on all of them alike; the figures are the medians over the rounds. With
two CPUs or more, the proxy under test gets a CPU of its own for the throughput load and the load
generator and backends share the others; the latency load runs unpinned. Beside requests/s, the CPU
time each proxy process spent per request is reported: it does not depend on what else runs on the
machine.

Printed, and written to bench/results/ingress.json. Nothing passes or fails on time.

    python bench/ingress.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "bench.example.com"
BODY = "hello from a pod\n"
RESULTS = ROOT / "bench" / "results" / "ingress.json"
THROUGHPUT_CONNECTIONS = 64


# --- processes ----------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children (nginx's workers)."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def cpus() -> tuple[set[int], set[int]]:
    """(the CPU for the proxy under test, the CPUs for everything else)."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return set(available), set(available)
    return {available[-1]}, set(available[:-1])


def pinned(cpu_set: set[int]) -> Any:
    return lambda: os.sched_setaffinity(0, cpu_set)


def repin(pid: int, cpu_set: set[int]) -> None:
    """Move ``pid`` and its children (nginx's workers) to ``cpu_set``."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    for p in [pid, *(int(c) for c in (children.read_text().split() if children.exists() else []))]:
        try:
            os.sched_setaffinity(p, cpu_set)
        except OSError:
            pass


class Process:
    """A child process, stopped (TERM, then KILL) on `stop`."""

    def __init__(self, args: list[str], *, cpu_set: set[int], log: Path, ready: str | None = None,
                 port: int | None = None) -> None:
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE if ready else self.log, stderr=self.log,
                                     preexec_fn=pinned(cpu_set), cwd=ROOT)
        if ready is not None:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().decode().strip()
            if line != ready:
                self.stop()
                raise RuntimeError(f"{args[0]} did not start ({line!r}); see {log}")
        if port is not None:
            wait_for_port(port)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- what is benchmarked ------------------------------------------------------------------------------

NGINX_COMMON = """
worker_processes 1;
daemon off;
pid {tmp}/{name}.pid;
error_log {tmp}/{name}.error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/{name}-body; proxy_temp_path {tmp}/{name}-proxy;
  fastcgi_temp_path {tmp}/{name}-fastcgi; uwsgi_temp_path {tmp}/{name}-uwsgi; scgi_temp_path {tmp}/{name}-scgi;
  keepalive_requests 1000000;
  {body}
}}
"""

BACKENDS = """
  server {{ listen 127.0.0.1:{port1}; default_type text/plain; location / {{ return 200 "{text}"; }} }}
  server {{ listen 127.0.0.1:{port2}; default_type text/plain; location / {{ return 200 "{text}"; }} }}
"""

NGINX_PROXY = """
  upstream pods {{ server 127.0.0.1:{port1}; server 127.0.0.1:{port2}; keepalive 64; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://pods;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Forwarded-Proto $scheme;
    }}
  }}
"""


def start_nginx(name: str, body: str, tmp: Path, cpu_set: set[int], port: int) -> Process:
    conf = tmp / f"{name}.conf"
    conf.write_text(NGINX_COMMON.format(tmp=tmp, name=name, body=body))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return Process([nginx, "-p", str(tmp), "-c", str(conf)], cpu_set=cpu_set, log=tmp / f"{name}.log", port=port)


async def serve_gateway(port: int, endpoints: list[tuple[str, int]]) -> None:
    """This file run with ``--serve-gateway``: the gateway alone with a fixed table, until SIGTERM."""
    from kubelite.proxy.ingress.config import IngressConfig
    from kubelite.proxy.ingress.gateway import Gateway
    from kubelite.proxy.ingress.routes import build_routes

    ingress = {"metadata": {"name": "bench", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
               "spec": {"rules": [{"host": HOST, "http": {"paths": [{
                   "path": "/", "pathType": "Prefix",
                   "backend": {"service": {"name": "pods", "port": {"number": 80}}}}]}}]}}

    class Cluster:
        def service(self, namespace: str, name: str) -> dict[str, Any] | None:
            return {"spec": {"ports": [{"name": "http", "port": 80}]}}

        def endpoint_slices(self, namespace: str, service: str) -> list[dict[str, Any]]:
            return [{"addressType": "IPv4", "endpoints": [{"addresses": [h], "conditions": {"ready": True}}],
                     "ports": [{"name": "http", "port": p, "protocol": "TCP"}]} for h, p in endpoints]

        def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
            return None

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    config = IngressConfig(bind_address="127.0.0.1", http_port=port, https_port=None, install_class=False)
    async with Gateway(config) as gateway:
        gateway.swap(build_routes([ingress], Cluster()).table)
        print("READY", flush=True)
        await stop.wait()


# --- load ---------------------------------------------------------------------------------------------

@dataclass
class Run:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_request: float | None = None


def ensure_tools() -> list[str]:
    """Install nginx and wrk with apt-get when missing (as root); notes on what could not be had."""
    missing = [pkg for tool, pkg in (("nginx", "nginx-light"), ("wrk", "wrk")) if not shutil.which(tool)
               and not Path(f"/usr/sbin/{tool}").exists()]
    notes: list[str] = []
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(missing)} with apt-get ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        done = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing], env=env,
                           capture_output=True, check=False)
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            notes.append(f"{tool} is not available")
    return notes


_DURATION = re.compile(r"([\d.]+)(us|ms|s)\b")


def _ms(text: str) -> float:
    m = _DURATION.fullmatch(text.strip())
    if m is None:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def run_wrk(url: str, connections: int, seconds: float, cpu_set: set[int]) -> Run:
    duration = max(1, round(seconds))  # wrk takes whole seconds
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"Host: {HOST}",
                          url], capture_output=True, text=True, check=True, preexec_fn=pinned(cpu_set)).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return Run(requests, rps, p50, p99, errors)


def run_python_load(url: str, connections: int, seconds: float, cpu_set: set[int]) -> Run:
    """The fallback load generator, in its own process (this file with ``--load``)."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--load", url, str(connections),
                          str(seconds)], capture_output=True, text=True, check=True, preexec_fn=pinned(cpu_set),
                         cwd=ROOT).stdout
    return Run(**json.loads(out))


async def python_load(url: str, connections: int, seconds: float) -> dict[str, Any]:
    """Closed-loop keep-alive GETs over ``connections`` connections for ``seconds``."""
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    request = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000 if ordered else float("nan")

    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": pct(50), "p99_ms": pct(99),
            "errors": errors}


# --- the run ------------------------------------------------------------------------------------------

@dataclass
class Target:
    name: str
    url: str
    pid: int | None  # the proxy process whose CPU time is counted
    runs: dict[str, list[Run]] = field(default_factory=dict)


def measure(targets: list[Target], load: str, connections: int, seconds: float, rounds: int,
            cpu_set: set[int]) -> None:
    runner = run_wrk if load == "wrk" else run_python_load
    for _ in range(rounds):
        for target in targets:
            before = cpu_seconds(target.pid) if target.pid else 0.0
            run = runner(target.url, connections, seconds, cpu_set)
            if target.pid:
                spent = cpu_seconds(target.pid) - before
                run.cpu_us_per_request = round(spent / run.requests * 1e6, 1) if run.requests else None
            target.runs.setdefault(load_name(connections), []).append(run)


def load_name(connections: int) -> str:
    return "throughput" if connections > 1 else "latency"


def median_run(runs: list[Run]) -> dict[str, Any]:
    cpu = [r.cpu_us_per_request for r in runs if r.cpu_us_per_request is not None]
    return {"rps": round(statistics.median(r.rps for r in runs)),
            "p50_ms": round(statistics.median(r.p50_ms for r in runs), 3),
            "p99_ms": round(statistics.median(r.p99_ms for r in runs), 3),
            "errors": sum(r.errors for r in runs),
            "cpu_us_per_request": round(statistics.median(cpu), 1) if cpu else None,
            "rounds": [asdict(r) for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round of each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput measurement")
    parser.add_argument("--serve-gateway", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", default="", help=argparse.SUPPRESS)
    parser.add_argument("--load", nargs=3, metavar=("URL", "CONNECTIONS", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_gateway is not None:
        endpoints = [(h, int(p)) for h, p in (e.rsplit(":", 1) for e in args.endpoints.split(","))]
        asyncio.run(serve_gateway(args.serve_gateway, endpoints))
        return
    if args.load is not None:
        url, connections, seconds = args.load
        print(json.dumps(asyncio.run(python_load(url, int(connections), float(seconds)))))
        return
    rounds, seconds = (1, 2.0) if args.quick else (args.rounds, args.seconds)
    notes = ensure_tools()
    load = "wrk" if shutil.which("wrk") else "python"
    have_nginx = bool(shutil.which("nginx") or Path("/usr/sbin/nginx").exists())
    if not have_nginx:
        sys.exit("nginx is needed for the backends (apt-get install nginx-light)")
    proxy_cpu, other_cpus = cpus()
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-ingress-") as folder:
        tmp = Path(folder)
        port1, port2, nginx_port, gateway_port = free_port(), free_port(), free_port(), free_port()
        processes: list[Process] = []
        try:
            processes.append(start_nginx("backends", BACKENDS.format(port1=port1, port2=port2, text=BODY.replace(
                "\n", "\\n")), tmp, other_cpus, port1))
            gateway = Process([sys.executable, str(Path(__file__).resolve()), "--serve-gateway", str(gateway_port),
                               "--endpoints", f"127.0.0.1:{port1},127.0.0.1:{port2}"], cpu_set=proxy_cpu,
                              log=tmp / "gateway.log", ready="READY")
            processes.append(gateway)
            proxy = start_nginx("proxy", NGINX_PROXY.format(port=nginx_port, port1=port1, port2=port2), tmp,
                                proxy_cpu, nginx_port)
            processes.append(proxy)
            targets = [Target("direct", f"http://127.0.0.1:{port1}/", None),
                       Target("kubelite", f"http://127.0.0.1:{gateway_port}/", gateway.pid),
                       Target("nginx", f"http://127.0.0.1:{nginx_port}/", proxy.pid)]
            for target in targets:  # warm up: connections, pools
                (run_wrk if load == "wrk" else run_python_load)(target.url, 8, 1.0, other_cpus)
            measure(targets, load, THROUGHPUT_CONNECTIONS, seconds, rounds, other_cpus)
            # One connection is a ping-pong: on separate CPUs every hop would wait for a CPU to wake up.
            everywhere = proxy_cpu | other_cpus
            for process in processes:
                repin(process.pid, everywhere)
            measure(targets, load, 1, max(round(seconds / 2), 1), rounds, everywhere)
        finally:
            for process in reversed(processes):
                process.stop()
    report(targets, load, rounds, seconds, notes)


def report(targets: list[Target], load: str, rounds: int, seconds: float, notes: list[str]) -> None:
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_generator": load,
                    "nginx": _nginx_version()},
        "setup": {"throughput_connections": THROUGHPUT_CONNECTIONS, "rounds": rounds, "seconds": seconds,
                  "backends": "2 nginx servers, one worker", "nginx_proxy_workers": 1, "gateway_processes": 1},
        "notes": notes,
    }
    for load_kind in ("throughput", "latency"):
        results[load_kind] = {t.name: median_run(t.runs[load_kind]) for t in targets}
    through, latency = results["throughput"], results["latency"]
    results["summary"] = {
        "kubelite_rps_vs_nginx": round(through["kubelite"]["rps"] / through["nginx"]["rps"], 3),
        "kubelite_rps_vs_direct": round(through["kubelite"]["rps"] / through["direct"]["rps"], 3),
        "nginx_rps_vs_direct": round(through["nginx"]["rps"] / through["direct"]["rps"], 3),
        "kubelite_added_p99_ms": round(latency["kubelite"]["p99_ms"] - latency["direct"]["p99_ms"], 3),
        "nginx_added_p99_ms": round(latency["nginx"]["p99_ms"] - latency["direct"]["p99_ms"], 3),
        "kubelite_cpu_us_per_request": through["kubelite"]["cpu_us_per_request"],
        "nginx_cpu_us_per_request": through["nginx"]["cpu_us_per_request"],
    }
    print(f"\ningress benchmark ({load}, {rounds} round(s); medians)")
    for load_kind, label in (("throughput", f"{THROUGHPUT_CONNECTIONS} connections"), ("latency", "1 connection")):
        print(f"\n  {load_kind} ({label})")
        print(f"    {'target':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'errors':>7}")
        for name, run in results[load_kind].items():
            cpu = f"{run['cpu_us_per_request']:.1f}" if run["cpu_us_per_request"] is not None else "-"
            print(f"    {name:10} {run['rps']:>9} {run['p50_ms']:>8.3f} {run['p99_ms']:>8.3f} {cpu:>11} "
                  f"{run['errors']:>7}")
    summary = results["summary"]
    print(f"\n  kubelite/nginx requests/s: {summary['kubelite_rps_vs_nginx']:.0%}"
          f"   kubelite/direct: {summary['kubelite_rps_vs_direct']:.0%}"
          f"   nginx/direct: {summary['nginx_rps_vs_direct']:.0%}")
    print(f"  added p99 at 1 connection: kubelite {summary['kubelite_added_p99_ms']:.3f} ms, "
          f"nginx {summary['nginx_added_p99_ms']:.3f} ms")
    for note in notes:
        print(f"  note: {note}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n  written to {RESULTS.relative_to(ROOT)}")


def _nginx_version() -> str:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    done = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return done.stderr.strip().removeprefix("nginx version: ")


if __name__ == "__main__":
    main()
