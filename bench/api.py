"""API server benchmark: request rates and latencies on both storage backends, next to the raw store.

Starts a real ``kubelite apiserver`` process per backend (SQLite, and etcd with a real etcd server it starts
itself), drives it over HTTPS with bearer tokens, and prints:
- creates/s and updates/s with 1 and 32 concurrent clients, with p50/p99 latency;
- LIST latency of 10,000 pods;
- watch delivery latency (p50/p99) to 100 concurrent watchers;
- the idle server's RSS, and the database file sizes (SQLite) after the runs;
- the raw rate of the same writes straight into the store (bench/store_raw.py), and the ratio.
Figures are printed and written to bench/results/api.json; nothing here passes or fails on time.

    python bench/api.py [--backend sqlite|etcd|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store_raw import raw_write_rate  # noqa: E402
from tests.support.etcd import etcd_server  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, tmp: Path, etcd_url: str | None) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.kubeconfig = tmp / "kubeconfig"
        args = [sys.executable, "-m", "kubelite.cli.main", "apiserver", "--data-dir", str(tmp / "data"),
                "--bind-address", "127.0.0.1", "--port", str(self.port), "--write-kubeconfig", str(self.kubeconfig)]
        if etcd_url:
            args += ["--etcd-endpoints", etcd_url]
        self.log = open(tmp / "server.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.url = f"https://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.tmp / "server.log").read_text()[-2000:])
            if self.kubeconfig.exists():
                try:
                    async with aiohttp.ClientSession() as s, s.get(f"{self.url}/readyz", ssl=self.ssl()) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, OSError):
                    pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server did not start")

    def ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.tmp / "data" / "tls" / "ca.crt"))

    def headers(self) -> dict[str, str]:
        token = yaml.safe_load(self.kubeconfig.read_text())["users"][0]["user"]["token"]
        return {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


async def _run_concurrent(n: int, concurrency: int, op: Callable[[int], Awaitable[None]]) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await op(i)
            latencies.append((time.perf_counter() - t0) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"rate": round(n / elapsed, 1), "p50_ms": round(_pct(latencies, 50), 2),
            "p99_ms": round(_pct(latencies, 99), 2)}


def _pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


async def bench_server(server: Server, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    conn = aiohttp.TCPConnector(limit=200, ssl=server.ssl())
    async with aiohttp.ClientSession(server.url, connector=conn, headers=server.headers()) as s:
        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with s.post(path, json=body) as r:
                if r.status != 201:
                    raise RuntimeError(f"{r.status} {await r.text()}")
                return dict(await r.json())

        await post("/api/v1/namespaces", {"metadata": {"name": "bench"}})
        await asyncio.sleep(2)
        out["idle_rss_mb"] = round(_rss_mb(server.proc.pid), 1)
        cms = "/api/v1/namespaces/bench/configmaps"
        n1, n32 = (200, 2000) if quick else (1000, 10000)
        for conc, n in ((1, n1), (32, n32)):
            async def create(i: int, conc: int = conc) -> None:
                await post(cms, {"metadata": {"name": f"cm-{conc}-{i}"}, "data": {"v": "0"}})

            out[f"create_c{conc}"] = await _run_concurrent(n, conc, create)

            async def update(i: int, conc: int = conc) -> None:
                patch = json.dumps({"data": {"v": str(i)}})
                async with s.patch(f"{cms}/cm-{conc}-{i}", data=patch,
                                   headers={"Content-Type": "application/merge-patch+json"}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"{r.status} {await r.text()}")
                    await r.read()

            out[f"update_c{conc}"] = await _run_concurrent(n, conc, update)

        npods = 2000 if quick else 10000
        pods = "/api/v1/namespaces/bench/pods"

        async def create_pod(i: int) -> None:
            await post(pods, _pod(f"pod-{i}"))

        out["create_pods_c32"] = await _run_concurrent(npods, 32, create_pod)
        list_ms = []
        for _ in range(5):
            t0 = time.perf_counter()
            async with s.get(pods) as r:
                body = await r.read()
            list_ms.append((time.perf_counter() - t0) * 1000)
        out["list_pods"] = {"count": npods, "bytes": len(body), "p50_ms": round(statistics.median(list_ms), 1),
                            "min_ms": round(min(list_ms), 1)}
        out["watch"] = await _bench_watch(s, cms, watchers=100, updates=50 if quick else 200)
        out["churn"] = await _bench_churn(s, server, objects=1000, updates=10_000 if quick else 100_000)
        out["busy_rss_mb"] = round(_rss_mb(server.proc.pid), 1)
    return out


async def _bench_churn(s: aiohttp.ClientSession, server: Server, *, objects: int, updates: int) -> dict[str, Any]:
    """kine's known failure: a database that grows without bound under churn. Update the same objects
    over and over through the API and report the store's files afterwards."""
    path = "/api/v1/namespaces/bench/configmaps"

    async def create(i: int) -> None:
        async with s.post(path, json={"metadata": {"name": f"churn-{i}"}, "data": {"v": "0" * 512}}) as r:
            await r.read()

    await _run_concurrent(objects, 32, create)

    async def update(i: int) -> None:
        patch = json.dumps({"data": {"v": f"{i:0512d}"}})
        async with s.patch(f"{path}/churn-{i % objects}", data=patch,
                           headers={"Content-Type": "application/merge-patch+json"}) as r:
            await r.read()

    result: dict[str, Any] = {"objects": objects, "updates": updates, **await _run_concurrent(updates, 32, update)}
    db = server.tmp / "data" / "state.db"
    if db.exists():
        result["sqlite_bytes"] = {p.name: p.stat().st_size for p in db.parent.glob("state.db*")}
    return result


async def _bench_watch(s: aiohttp.ClientSession, cms: str, *, watchers: int, updates: int) -> dict[str, Any]:
    async with s.post(cms, json={"metadata": {"name": "watched"}, "data": {"t": "0"}}) as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    latencies: list[float] = []
    done = asyncio.Event()
    received = 0

    async def watch() -> None:
        nonlocal received
        async with s.get(cms, params={"watch": "true", "resourceVersion": rv,
                                      "fieldSelector": "metadata.name=watched"},
                         timeout=aiohttp.ClientTimeout(total=None)) as r:
            seen = 0
            async for line in r.content:
                ev = json.loads(line)
                sent = float(ev["object"]["data"]["t"])
                if sent:
                    latencies.append((time.time() - sent) * 1000)
                seen += 1
                received += 1
                if seen >= updates:
                    break
        if received >= watchers * updates:
            done.set()

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.sleep(1.0)
    for _ in range(updates):
        patch = json.dumps({"data": {"t": repr(time.time())}})
        async with s.patch(f"{cms}/watched", data=patch,
                           headers={"Content-Type": "application/merge-patch+json"}) as r:
            await r.read()
        await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        for t in tasks:
            t.cancel()
    return {"watchers": watchers, "events": len(latencies), "p50_ms": round(_pct(latencies, 50), 2),
            "p99_ms": round(_pct(latencies, 99), 2)}


async def bench_raw(backend: str, etcd_url: str | None, tmp: Path, quick: bool) -> dict[str, Any]:
    from kubelite.apiserver.storage import EtcdStore, Store, open_store

    data = tmp / "raw"
    data.mkdir()
    store: Store
    if backend == "etcd" and etcd_url:
        # Under a prefix of its own, so that the API server started afterwards on the same etcd does not load
        # the raw benchmark's keys into its watch cache.
        store = EtcdStore([etcd_url], prefix="/raw-bench")
    else:
        store = open_store(data_dir=str(data), etcd_endpoints=None)
    await store.start()
    try:
        out = {}
        for conc, n in ((1, 500 if quick else 2000), (32, 3000 if quick else 20000)):
            out[f"c{conc}"] = await raw_write_rate(store, n=n, concurrency=conc)
        return out
    finally:
        await store.close()


async def run_backend(backend: str, quick: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"kubelite-bench-{backend}-"))
    try:
        if backend == "etcd":
            async with etcd_server() as etcd_url:
                raw = await bench_raw(backend, etcd_url, tmp, quick)
                return await _with_server(tmp, etcd_url, raw, quick)
        raw = await bench_raw(backend, None, tmp, quick)
        return await _with_server(tmp, None, raw, quick)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _with_server(tmp: Path, etcd_url: str | None, raw: dict[str, Any], quick: bool) -> dict[str, Any]:
    server = Server(tmp, etcd_url)
    try:
        await server.ready()
        result = await bench_server(server, quick)
    finally:
        server.stop()
    result["raw_store"] = raw
    for conc in (1, 32):
        raw_rate = (raw.get(f"c{conc}") or {}).get("creates_per_s")
        if raw_rate:
            result[f"create_c{conc}"]["ratio_to_raw"] = round(result[f"create_c{conc}"]["rate"] / raw_rate, 3)
    return result


def _print(backend: str, r: dict[str, Any]) -> None:
    print(f"\n== {backend} ==")
    print(f"idle RSS {r['idle_rss_mb']} MB (target <= 120), after the run {r['busy_rss_mb']} MB")
    for op in ("create_c1", "update_c1", "create_c32", "update_c32", "create_pods_c32"):
        v = r[op]
        extra = f"  ({v['ratio_to_raw']:.0%} of raw store)" if "ratio_to_raw" in v else ""
        print(f"{op:16s} {v['rate']:8.1f}/s  p50 {v['p50_ms']:6.2f} ms  p99 {v['p99_ms']:7.2f} ms{extra}")
    lp = r["list_pods"]
    print(f"LIST {lp['count']} pods ({lp['bytes'] / 1e6:.1f} MB): p50 {lp['p50_ms']} ms, best {lp['min_ms']} ms "
          "(target <= 300)")
    w = r["watch"]
    print(f"watch to {w['watchers']} watchers: {w['events']} deliveries, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms "
          "(target p99 <= 100)")
    for conc, v in r["raw_store"].items():
        print(f"raw store {conc}: {v}")
    c = r["churn"]
    print(f"churn: {c['updates']} updates of {c['objects']} objects at {c['rate']}/s"
          + (f"; SQLite files after: {c['sqlite_bytes']}" if "sqlite_bytes" in c else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "etcd", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a fast look")
    args = parser.parse_args()
    backends = ["sqlite", "etcd"] if args.backend == "both" else [args.backend]
    results = {}
    for b in backends:
        results[b] = asyncio.run(run_backend(b, args.quick))
        _print(b, results[b])
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "api.json").write_text(json.dumps(results, indent=2))
    print(f"\nfigures written to {out / 'api.json'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
