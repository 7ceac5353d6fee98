"""Raw write rates of the storage backends, with no API server on top, and the SQLite file size under churn.

``raw_write_rate(store, n=..., concurrency=...)`` creates ``n`` keys, then updates each once (with the
revision its create returned), from ``concurrency`` concurrent writers, and returns the rates.
``churn_size(path, ...)`` runs many updates over a fixed set of objects on an SQLite store with its
default compaction and reports the sizes of the database and its WAL.

``python bench/store_raw.py`` prints both for SQLite and for a real etcd that it starts itself
(tests/support/etcd.py), and writes them to bench/results/store_raw.json. Figures only: nothing here
passes or fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kubelite.apiserver.storage import KeyValue, SQLiteStore, Store


def pod_value(name: str, generation: int = 1) -> bytes:
    """A stored Pod of about 1 KiB, the size of a small real one."""
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": str(uuid.uuid4()), "generation": generation,
            "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "bench", "tier": "backend"},
        },
        "spec": {
            "containers": [{
                "name": "app", "image": "registry.example/bench/app:1.0", "args": ["--port=8080"],
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "env": [{"name": f"VAR_{i}", "value": "x" * 24} for i in range(12)],
            }],
            "restartPolicy": "Always", "schedulerName": "default-scheduler",
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


async def raw_write_rate(store: Store, *, n: int, concurrency: int) -> dict[str, Any]:
    """Creates/s and updates/s of ``n`` keys written by ``concurrency`` concurrent writers, under a
    fresh prefix of the (started) ``store``."""
    prefix = f"/registry/pods/bench-{uuid.uuid4().hex[:8]}/"
    keys = [f"{prefix}p{i:07}" for i in range(n)]
    values = [pod_value(f"p{i}") for i in range(n)]
    created: list[KeyValue | None] = [None] * n

    async def create(worker: int) -> None:
        for i in range(worker, n, concurrency):
            created[i] = await store.create(keys[i], values[i])

    async def update(worker: int) -> None:
        for i in range(worker, n, concurrency):
            kv = created[i]
            assert kv is not None
            await store.update(keys[i], values[i], kv.mod_revision)

    started = time.perf_counter()
    await asyncio.gather(*(create(w) for w in range(concurrency)))
    create_s = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(update(w) for w in range(concurrency)))
    update_s = time.perf_counter() - started
    return {
        "n": n,
        "concurrency": concurrency,
        "creates_per_s": round(n / create_s),
        "updates_per_s": round(n / update_s),
    }


def _on_disk(path: str) -> tuple[int, int]:
    wal = f"{path}-wal"
    return os.path.getsize(path), os.path.getsize(wal) if os.path.exists(wal) else 0


async def churn_size(
    path: str, *, objects: int = 1000, updates: int = 100_000, concurrency: int = 32
) -> dict[str, Any]:
    """``updates`` updates spread over ``objects`` objects on an SQLite store with default compaction:
    the largest database + WAL seen along the way, and the sizes once done and once closed."""
    store = SQLiteStore(path)
    await store.start()
    try:
        keys = [f"/registry/pods/churn/p{i:05}" for i in range(objects)]
        latest = {kv.key: kv for kv in await asyncio.gather(*(store.create(k, pod_value(k)) for k in keys))}
        peak = sum(_on_disk(path))
        done = 0

        async def churn(worker: int) -> None:
            nonlocal peak, done
            for i in range(worker, updates, concurrency):
                key = keys[i % objects]
                latest[key] = await store.update(key, pod_value(key, i), latest[key].mod_revision)
                done += 1
                if done % 1000 == 0:
                    peak = max(peak, sum(_on_disk(path)))

        started = time.perf_counter()
        await asyncio.gather(*(churn(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - started
        db, wal = _on_disk(path)
        compacted = await store.compacted_revision()
        head = await store.current_revision()
    finally:
        await store.close()
    closed_db, closed_wal = _on_disk(path)
    return {
        "objects": objects,
        "updates": updates,
        "updates_per_s": round(updates / elapsed),
        "value_bytes": len(pod_value(keys[0])),
        "peak_bytes": peak,
        "db_bytes": db,
        "wal_bytes": wal,
        "closed_bytes": closed_db + closed_wal,
        "head": head,
        "compacted": compacted,
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    # Run as a script, sys.path[0] is bench/: the repository root holds the test helpers.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kubelite.apiserver.storage.etcd import EtcdStore
    from tests.support.etcd import etcd_server

    results: dict[str, Any] = {"sqlite": [], "etcd": []}
    with tempfile.TemporaryDirectory(prefix="kubelite-bench-") as tmp:
        for concurrency in args.concurrency:
            store = SQLiteStore(os.path.join(tmp, f"raw-{concurrency}.db"))
            await store.start()
            try:
                results["sqlite"].append(await raw_write_rate(store, n=args.n, concurrency=concurrency))
            finally:
                await store.close()
            print("sqlite", results["sqlite"][-1], flush=True)
        if not args.skip_etcd:
            async with etcd_server() as url:
                for concurrency in args.concurrency:
                    etcd = EtcdStore([url])
                    await etcd.start()
                    try:
                        results["etcd"].append(await raw_write_rate(etcd, n=args.n, concurrency=concurrency))
                    finally:
                        await etcd.close()
                    print("etcd", results["etcd"][-1], flush=True)
        if args.churn_updates:
            results["sqlite_churn"] = await churn_size(
                os.path.join(tmp, "churn.db"), objects=args.churn_objects, updates=args.churn_updates
            )
            print("sqlite churn", results["sqlite_churn"], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="keys created, then updated, per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--skip-etcd", action="store_true")
    parser.add_argument("--churn-objects", type=int, default=1000)
    parser.add_argument("--churn-updates", type=int, default=100_000, help="0 skips the churn run")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "store_raw.json"))
    args = parser.parse_args()
    results = asyncio.run(_main(args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
