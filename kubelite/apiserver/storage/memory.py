"""An in-memory `Store` for integration tests that run the API server inside the test process.

It keeps the whole history as a list of events until ``compact`` drops the older part, which is all the
contract needs; it is not meant to hold a real cluster.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
from collections.abc import AsyncIterator

from .interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
)

EventBatch = list[Event]


class MemoryStore:
    def __init__(self) -> None:
        self._revision = 0
        self._compacted = 0
        self._live: dict[str, KeyValue] = {}
        self._log: list[Event] = []
        self._log_revs: list[int] = []
        self._changed = asyncio.Condition()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    async def get(self, key: str) -> KeyValue | None:
        return self._live.get(key)

    async def list(self, prefix: str, revision: int = 0) -> tuple[list[KeyValue], int]:
        if revision and revision < self._compacted:
            raise Compacted(revision, self._compacted)
        if revision > self._revision:
            raise FutureRevision(revision, self._revision)
        if not revision or revision == self._revision:
            items = [kv for k, kv in self._live.items() if k.startswith(prefix)]
            return sorted(items, key=lambda kv: kv.key), self._revision
        state: dict[str, KeyValue] = {}
        for ev in self._log:
            if ev.revision > revision:
                break
            if not ev.kv.key.startswith(prefix):
                continue
            if ev.type == "PUT":
                state[ev.kv.key] = ev.kv
            else:
                state.pop(ev.kv.key, None)
        # Keys written before the compacted part of the log are still live at `revision`.
        for k, kv in self._live.items():
            if k.startswith(prefix) and kv.mod_revision <= revision and k not in state:
                state[k] = kv
        return sorted(state.values(), key=lambda kv: kv.key), revision

    async def count(self, prefix: str) -> int:
        return sum(1 for k in self._live if k.startswith(prefix))

    async def _append(self, ev: Event) -> None:
        self._log.append(ev)
        self._log_revs.append(ev.revision)
        async with self._changed:
            self._changed.notify_all()

    async def create(self, key: str, value: bytes) -> KeyValue:
        if key in self._live:
            raise KeyExists(key)
        self._revision += 1
        kv = KeyValue(key, value, self._revision, self._revision)
        self._live[key] = kv
        await self._append(Event("PUT", kv, None))
        return kv

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        cur = self._live.get(key)
        if cur is None:
            raise KeyNotFound(key)
        if cur.mod_revision != expected_revision:
            raise RevisionMismatch(key, cur)
        self._revision += 1
        kv = KeyValue(key, value, cur.create_revision, self._revision)
        self._live[key] = kv
        await self._append(Event("PUT", kv, cur))
        return kv

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        cur = self._live.get(key)
        if cur is None:
            raise KeyNotFound(key)
        if expected_revision is not None and cur.mod_revision != expected_revision:
            raise RevisionMismatch(key, cur)
        self._revision += 1
        del self._live[key]
        kv = KeyValue(key, cur.value, cur.create_revision, self._revision)
        await self._append(Event("DELETE", kv, cur))
        return kv

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[EventBatch]:
        if start_revision and start_revision < self._compacted:
            raise Compacted(start_revision, self._compacted)
        next_rev = start_revision or self._revision + 1
        while True:
            i = bisect.bisect_left(self._log_revs, next_rev)
            batch = [ev for ev in self._log[i:] if ev.kv.key.startswith(prefix)]
            if i < len(self._log):
                next_rev = self._log_revs[-1] + 1
            if batch:
                yield batch
                continue
            async with self._changed:
                await self._changed.wait_for(functools.partial(self._reached, next_rev))

    def _reached(self, revision: int) -> bool:
        return self._revision >= revision

    async def compact(self, revision: int) -> None:
        i = bisect.bisect_left(self._log_revs, revision)
        del self._log[:i]
        del self._log_revs[:i]
        self._compacted = max(self._compacted, revision)
