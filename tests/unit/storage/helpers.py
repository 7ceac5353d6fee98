"""Helpers of the storage tests: the backend a ``store`` fixture runs on, and watch plumbing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from kubelite.apiserver.storage import EtcdStore, Event, SQLiteStore, Store


@dataclass
class Backend:
    """Where a test's data lives: an SQLite file, or a key prefix of the session's etcd. Stores opened
    on one backend see the same data, as a restarted server would."""

    name: str
    path: Path | None = None
    etcd_url: str = ""
    prefix: str = ""

    def new_store(self) -> Store:
        """A store on this backend's data, not yet started."""
        if self.path is not None:
            # No background compaction: the contract tests compact explicitly.
            return SQLiteStore(str(self.path), compact_interval=3600.0)
        return EtcdStore([self.etcd_url], prefix=self.prefix)


@contextlib.asynccontextmanager
async def watching(store: Store, prefix: str, start_revision: int) -> AsyncIterator[AsyncIterator[list[Event]]]:
    """``store.watch(...)``, closed on exit (every backend's watch is an async generator)."""
    events = store.watch(prefix, start_revision)
    try:
        yield events
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def collect(events: AsyncIterator[list[Event]], count: int) -> list[Event]:
    """The next batches of ``events`` until at least ``count`` events came. The deadline is a guard
    against a hung test, not a timing assertion: the awaited events are written already."""
    out: list[Event] = []
    async with asyncio.timeout(10):
        while len(out) < count:
            out.extend(await anext(events))
    return out
