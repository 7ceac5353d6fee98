"""What only the SQLite backend promises: the file stays small under churn, compaction runs by itself,
slow watchers catch up from the log, one process owns the file, writes are group-committed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from kubelite.apiserver.storage import Compacted, SQLiteStore, Unavailable
from tests.unit.storage.helpers import collect, watching

PODS = "/registry/pods/"


def pod(name: str) -> str:
    return f"{PODS}default/{name}"


def on_disk(path: Path) -> int:
    """Bytes of the database and its WAL."""
    wal = Path(f"{path}-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def log_rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM log").fetchone()[0])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


async def test_a_fresh_file_is_a_wal_database_with_incremental_vacuum(db: Path) -> None:
    async with SQLiteStore(str(db)) as store:
        assert await store.current_revision() == 1  # as etcd: an empty store is at revision 1
        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # INCREMENTAL


async def test_churn_leaves_a_small_database(db: Path) -> None:
    value = b"x" * 1024
    keys, updates, keep = 100, 10_000, 100
    async with SQLiteStore(str(db), keep_revisions=keep, compact_after=1_000) as store:
        kvs = {k.key: k for k in await asyncio.gather(*(store.create(pod(f"p{i}"), value) for i in range(keys)))}

        async def churn(worker: int) -> None:
            for i in range(worker, updates, 10):
                key = pod(f"p{i % keys}")
                kvs[key] = await store.update(key, value, kvs[key].mod_revision)

        await asyncio.gather(*(churn(w) for w in range(10)))
        # The writes themselves triggered compactions along the way ...
        assert await store.compacted_revision() > 0
        # ... and a last one leaves only the live keys plus the kept history.
        await store.compact(await store.current_revision() - keep)
        assert log_rows(db) <= keys + keep
        assert await store.count(PODS) == keys
        size = on_disk(db)
    # Ten megabytes of updates, about 200 KiB of rows left.
    assert size < 1024 * 1024, size
    assert on_disk(db) < 1024 * 1024


async def test_background_compaction_keeps_the_last_revisions(db: Path) -> None:
    async with SQLiteStore(str(db), compact_interval=0.02, keep_revisions=10) as store:
        kv = await store.create(pod("a"), b"0")
        for i in range(40):
            kv = await store.update(pod("a"), str(i).encode(), kv.mod_revision)
        head = await store.current_revision()
        # The compactor is a background task with nothing to wait on from outside: poll, with a deadline.
        async with asyncio.timeout(10):
            while await store.compacted_revision() != head - 10:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        with pytest.raises(Compacted):
            await store.list(PODS, head - 11)
        assert (await store.list(PODS, head - 10))[0][0].mod_revision == head - 10
        assert await store.get(pod("a")) == kv


async def test_restart_keeps_the_head_and_the_compaction(db: Path) -> None:
    async with SQLiteStore(str(db), compact_interval=3600) as store:
        a = await store.create(pod("a"), b"a")
        await store.delete(pod("a"), a.mod_revision)
        b = await store.create(pod("b"), b"b")
        await store.delete(pod("b"), b.mod_revision)
        head = await store.current_revision()
        await store.compact(head)
    async with SQLiteStore(str(db), compact_interval=3600) as store:
        assert await store.current_revision() == head
        assert await store.compacted_revision() == head
        with pytest.raises(Compacted):
            await store.list(PODS, head - 1)
        assert (await store.create(pod("a"), b"again")).mod_revision == head + 1


async def test_a_slow_watcher_catches_up_from_the_log(db: Path) -> None:
    async with SQLiteStore(str(db), watch_buffer=5) as store:
        async with watching(store, PODS, 0) as events:
            pending = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)
            await store.create(pod("first"), b"0")
            assert len(await pending) == 1
            # The watcher does not read while 50 more events come: its buffer overflows.
            for i in range(50):
                await store.create(pod(f"w{i}"), b"1")
            seen = await collect(events, 50)
    assert [e.kv.key for e in seen] == [pod(f"w{i}") for i in range(50)]


async def test_a_slow_watcher_overtaken_by_compaction_gets_compacted(db: Path) -> None:
    async with SQLiteStore(str(db), watch_buffer=5, compact_interval=3600) as store:
        async with watching(store, PODS, 0) as events:
            pending = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)
            kv = await store.create(pod("a"), b"0")
            await pending
            for i in range(20):
                kv = await store.update(pod("a"), str(i).encode(), kv.mod_revision)
            await store.compact(kv.mod_revision)
            with pytest.raises(Compacted):
                await collect(events, 1)


async def test_one_process_owns_the_file(db: Path) -> None:
    async with SQLiteStore(str(db)):
        with pytest.raises(Unavailable, match="another process"):
            await SQLiteStore(str(db)).start()
    async with SQLiteStore(str(db)) as again:
        assert await again.current_revision() == 1


async def test_concurrent_writes_share_transactions(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with SQLiteStore(str(db)) as store:
        batches: list[int] = []
        apply = store._apply

        def counting_apply(batch: list[object], head: int) -> object:
            batches.append(len(batch))
            return apply(batch, head)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "_apply", counting_apply)
        await asyncio.gather(*(store.create(pod(f"p{i}"), b"x") for i in range(200)))
    assert sum(batches) == 200
    assert len(batches) < 20, batches


async def test_the_store_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    async with SQLiteStore(str(path)) as store:
        await store.create(pod("a"), b"a")
    assert path.exists() and os.path.exists(f"{path}.lock")
