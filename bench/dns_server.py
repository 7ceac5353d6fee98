"""Cluster DNS benchmark: queries/s and latency from one client, the server in a process of its own.

The server (``kubelite.proxy.dns`` with an in-memory view of 1,000 ClusterIP Services and one headless
Service of 10 endpoints, and a fake upstream on loopback for forwarded names) runs in a child process on a
loopback port; one client process asks over UDP, with 1 query in flight (latency) and with 64 in flight
(throughput), and over one TCP connection with 64 in flight, for the questions below; once with the server's
kept replies (a question asked again is answered from its rendered bytes, the common case) and once with a
server that keeps none (every question parsed, looked up and rendered: the cost of a first question):
- a ClusterIP Service's A record,
- a headless Service's A records (10 endpoints),
- a NXDOMAIN (the first search-path try of an external name from a pod),
- a forwarded name answered from the cache.
Figures are printed and written to bench/results/dns_server.json; nothing here passes or fails on time.

    python bench/dns_server.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubelite.client.informer import Indexer  # noqa: E402
from kubelite.proxy.dns.config import DNSConfig  # noqa: E402
from kubelite.proxy.dns.run import build_handler  # noqa: E402
from kubelite.proxy.dns.server import DNSServer  # noqa: E402
from kubelite.proxy.dns.view import ClusterView  # noqa: E402
from tests.support.fakedns import FakeUpstream  # noqa: E402

SERVICES = 1000
QUESTIONS = {
    "clusterip-A": "svc-500.default.svc.cluster.local",
    "headless-A-10": "headless.default.svc.cluster.local",
    "nxdomain": "www.example.com.default.svc.cluster.local",
    "forwarded-cached": "www.example.com",
}
WINDOW = 64


# --- the server process --------------------------------------------------------------------------------------

def _view() -> ClusterView:
    services, slices, pods = Indexer(), Indexer(), Indexer()
    for i in range(SERVICES):
        services.put(f"default/svc-{i}", {"metadata": {"name": f"svc-{i}", "namespace": "default"},
                                          "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                                                   "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
    services.put("default/headless", {"metadata": {"name": "headless", "namespace": "default"},
                                      "spec": {"clusterIP": "None"}})
    slices.put("default/headless-1", {
        "metadata": {"name": "headless-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "headless"}},
        "addressType": "IPv4", "ports": [],
        "endpoints": [{"addresses": [f"10.244.0.{i + 1}"], "conditions": {"ready": True}} for i in range(10)]})
    return ClusterView(services, slices, pods)


async def _serve(keep_replies: bool) -> None:
    async with FakeUpstream({"www.example.com": ["A 192.0.2.10"]}) as upstream:
        config = DNSConfig(listen=("127.0.0.1",), port=0, upstreams=(upstream.address,))
        handler = build_handler(_view(), config)
        if not keep_replies:
            handler.reply_cache_size = 0
        async with DNSServer(handler, config.listen, 0) as server:
            print(server.port, flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes it


# --- the client ---------------------------------------------------------------------------------------------

def _wires(name: str, count: int) -> list[bytes]:
    wire = dns.message.make_query(name, "A").to_wire()
    return [i.to_bytes(2, "big") + wire[2:] for i in range(count)]


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[bytes, tuple[float, asyncio.Future[float]]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        entry = self.waiting.pop(data[:2], None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(time.perf_counter() - entry[0])


async def _udp(port: int, name: str, window: int, seconds: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(_Client, remote_addr=("127.0.0.1", port))
    wires = _wires(name, 65536)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    next_id = 0

    async def worker() -> None:
        nonlocal next_id
        while time.perf_counter() < deadline:
            wire = wires[next_id % 65536]
            next_id += 1
            future: asyncio.Future[float] = loop.create_future()
            proto.waiting[wire[:2]] = (time.perf_counter(), future)
            transport.sendto(wire)
            try:
                latencies.append(await asyncio.wait_for(future, 1.0))
            except TimeoutError:
                proto.waiting.pop(wire[:2], None)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(window)))
    elapsed = time.perf_counter() - started
    transport.close()
    return _figures(latencies, elapsed)


async def _tcp(port: int, name: str, window: int, seconds: float) -> dict[str, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    wire = dns.message.make_query(name, "A").to_wire()
    frame = len(wire).to_bytes(2, "big") + wire
    answered = 0
    started = time.perf_counter()
    deadline = started + seconds
    writer.write(frame * window)
    while time.perf_counter() < deadline:
        size = int.from_bytes(await reader.readexactly(2), "big")
        await reader.readexactly(size)
        answered += 1
        writer.write(frame)
    elapsed = time.perf_counter() - started
    writer.close()
    return {"qps": round(answered / elapsed)}


def _figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "qps": round(len(ordered) / elapsed),
        "p50_ms": round(statistics.median(ordered) * 1000, 3) if ordered else float("nan"),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 3) if ordered else float("nan"),
    }


async def _bench(port: int, seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, name in QUESTIONS.items():
        results[label] = {
            "udp_1_in_flight": await _udp(port, name, 1, seconds),
            f"udp_{WINDOW}_in_flight": await _udp(port, name, WINDOW, seconds),
            f"tcp_{WINDOW}_in_flight": await _tcp(port, name, WINDOW, seconds),
        }
        print(f"  {label:18} " + "  ".join(f"{k}: {v}" for k, v in results[label].items()), flush=True)
    return results


def _measure(keep_replies: bool, seconds: float) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--serve"] + ([] if keep_replies else ["--no-kept-replies"])
    server = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(f"{'kept replies' if keep_replies else 'no kept replies'} (127.0.0.1:{port}):", flush=True)
        return asyncio.run(_bench(port, seconds))
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement (default 3)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-kept-replies", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(not args.no_kept_replies))
        return
    print(f"cluster DNS with {SERVICES} Services, one client, {args.seconds:g} s per figure; "
          f"{os.cpu_count()} CPUs", flush=True)
    results = {"kept_replies": _measure(True, args.seconds), "no_kept_replies": _measure(False, args.seconds)}
    out = ROOT / "bench" / "results" / "dns_server.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"services": SERVICES, "seconds": args.seconds, "results": results}, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
