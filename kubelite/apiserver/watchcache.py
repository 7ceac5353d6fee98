"""The watch cache: every object of every kind, kept current from one store watch, serving lists and watches.

One store watch over ``/registry/`` feeds a `KindCache` per kind (picked by key prefix). Because all caches
are fed from that one ordered stream, ``WatchCache.revision`` is the revision up to which *every* cache is
complete, which is what a consistent list waits for.

Invariants:
- Cached objects are never mutated; writers build new dicts. Each entry's JSON is rendered at most once and
  shared by every list and watch that sends it.
- Applying a store event to a cache and handing it to the watchers happens without an ``await`` in between,
  so a watcher registered together with a snapshot (or a replay) sees every later event exactly once.
- A watcher whose consumer falls too far behind is closed (its stream ends); the client resumes or relists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubelite.api.registry import Kind

from . import codec
from .storage.interface import Compacted, Event, Store

log = logging.getLogger(__name__)

Predicate = Callable[[dict[str, Any]], bool]

# Events kept per kind for watches that resume from a recent resourceVersion; older ones are read
# from the store's own history instead.
EVENT_WINDOW = 10_000
# A watcher whose queue grows past this is considered stuck and is closed.
MAX_WATCHER_BACKLOG = 50_000


@dataclass(slots=True)
class Entry:
    """A cached object and its JSON, rendered on first use."""

    obj: dict[str, Any]
    _json: str | None = None

    @property
    def json(self) -> str:
        if self._json is None:
            self._json = codec.dumps(self.obj)
        return self._json


@dataclass(slots=True)
class WatchEvent:
    """One change as a watcher sees it. ``entry`` is the object to send (for DELETED, its last state with
    the deletion revision), ``prev`` the state before the change (None on creation)."""

    type: str
    entry: Entry
    prev: Entry | None
    revision: int

    def for_watcher(self, matches: Predicate) -> WatchEvent | None:
        """The event as a watcher with this filter sees it: objects that start matching are ADDED, objects
        that stop matching are DELETED (with their previous content and this event's revision), as
        Kubernetes' cacher does."""
        cur_ok = self.type != "DELETED" and matches(self.entry.obj)
        prev_ok = self.prev is not None and matches(self.prev.obj)
        if self.type == "DELETED":
            return self if prev_ok or matches(self.entry.obj) else None
        if cur_ok and prev_ok:
            return self
        if cur_ok:
            return self if self.type == "ADDED" else WatchEvent("ADDED", self.entry, self.prev, self.revision)
        if prev_ok and self.prev is not None:
            gone = dict(self.prev.obj)
            gone["metadata"] = {**gone["metadata"], "resourceVersion": str(self.revision)}
            return WatchEvent("DELETED", Entry(gone), self.prev, self.revision)
        return None


@dataclass(eq=False)
class Watcher:
    """A subscription: events that pass ``matches`` are put on ``queue``; None on the queue ends it."""

    matches: Predicate
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def offer(self, ev: WatchEvent) -> None:
        if self.closed:
            return
        seen = ev.for_watcher(self.matches)
        if seen is None:
            return
        if self.queue.qsize() >= MAX_WATCHER_BACKLOG:
            log.warning("closing a watcher that fell %d events behind", self.queue.qsize())
            self.close()
            return
        self.queue.put_nowait(seen)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


class KindCache:
    """All objects of one kind, the recent events, and the watchers of that kind."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.entries: dict[str, Entry] = {}
        self.events: deque[WatchEvent] = deque(maxlen=EVENT_WINDOW)
        self.watchers: set[Watcher] = set()
        # Events after this revision are all in `events` (or there were none).
        self.oldest_complete = 0

    def fill(self, entries: dict[str, Entry], revision: int) -> None:
        self.entries = entries
        self.oldest_complete = revision

    def apply(self, ev: Event) -> None:
        key = ev.kv.key
        prev = self.entries.get(key)
        if ev.type == "PUT":
            entry = Entry(codec.decode(ev.kv))
            self.entries[key] = entry
            wev = WatchEvent("ADDED" if prev is None else "MODIFIED", entry, prev, ev.revision)
        else:
            self.entries.pop(key, None)
            wev = WatchEvent("DELETED", Entry(codec.decode(ev.kv)), prev, ev.revision)
        if len(self.events) == self.events.maxlen:
            self.oldest_complete = self.events[0].revision
        self.events.append(wev)
        for w in list(self.watchers):
            w.offer(wev)
            if w.closed:
                self.watchers.discard(w)

    def objects(self, prefix: str) -> Iterator[Entry]:
        """Entries whose key starts with ``prefix``, in key order (namespace, then name)."""
        for key in sorted(self.entries):
            if key.startswith(prefix):
                yield self.entries[key]

    def subscribe(self, matches: Predicate, since: int | None) -> Watcher | None:
        """Register a watcher. With ``since``, the events after that revision still held here are queued
        first; None is returned when some of them are no longer held (the caller then reads the store)."""
        w = Watcher(matches)
        if since is not None:
            if since < self.oldest_complete:
                return None
            for ev in self.events:
                if ev.revision > since:
                    w.offer(ev)
        self.watchers.add(w)
        return w

    def unsubscribe(self, w: Watcher) -> None:
        self.watchers.discard(w)


class WatchCache:
    """Caches of every kind in ``kinds``, fed by one watch on the store."""

    def __init__(self, store: Store, kinds: tuple[Kind, ...]) -> None:
        self.store = store
        self.caches: dict[str, KindCache] = {k.resource_prefix: KindCache(k) for k in kinds}
        self._by_kind = {k: c for c in self.caches.values() for k in [c.kind]}
        self.revision = 0
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self.failed: BaseException | None = None

    def cache(self, kind: Kind) -> KindCache:
        return self._by_kind[kind]

    async def start(self) -> None:
        kvs, revision = await self.store.list("/registry/")
        filled: dict[str, dict[str, Entry]] = {p: {} for p in self.caches}
        for kv in kvs:
            prefix = self._prefix_of(kv.key)
            if prefix is not None:
                filled[prefix][kv.key] = Entry(codec.decode(kv))
        for prefix, cache in self.caches.items():
            cache.fill(filled[prefix], revision)
        self.revision = revision
        self._task = asyncio.create_task(self._run(revision + 1), name="watchcache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for cache in self.caches.values():
            for w in list(cache.watchers):
                w.close()
            cache.watchers.clear()

    def _prefix_of(self, key: str) -> str | None:
        # /registry/{group/}{plural}/... : the kind's prefix is the key up to the plural's slash.
        parts = key.split("/", 4)
        for cut in (3, 4):
            prefix = "/".join(parts[:cut]) + "/"
            if prefix in self.caches:
                return prefix
        return None

    async def _run(self, start: int) -> None:
        try:
            async for batch in self.store.watch("/registry/", start):
                for ev in batch:
                    prefix = self._prefix_of(ev.kv.key)
                    if prefix is not None:
                        self.caches[prefix].apply(ev)
                    self.revision = max(self.revision, ev.revision)
                async with self._progress:
                    self._progress.notify_all()
        except asyncio.CancelledError:
            raise
        except Compacted as e:
            # The cache fell behind compaction (store outage): nothing sensible but a restart of the cache.
            self.failed = e
            log.error("watch cache fell behind compaction: %s", e)
        except Exception as e:
            self.failed = e
            log.exception("watch cache stopped")
        finally:
            for cache in self.caches.values():
                for w in list(cache.watchers):
                    w.close()

    async def wait_for(self, revision: int, timeout: float = 3.0) -> bool:
        """Wait until every cache has seen ``revision``; False on timeout."""
        if self.revision >= revision:
            return True
        async with self._progress:
            try:
                await asyncio.wait_for(self._progress.wait_for(lambda: self.revision >= revision), timeout)
            except TimeoutError:
                return False
        return True

    async def sync(self) -> int:
        """Wait until the caches hold everything the store holds now (a consistent read); return the
        revision the caches are at."""
        rev = await self.store.current_revision()
        await self.wait_for(rev, timeout=10.0)
        return self.revision


def event_line(ev: WatchEvent) -> str:
    return f'{{"type":"{ev.type}","object":{ev.entry.json}}}\n'


def bookmark_line(kind: Kind, revision: int, *, initial_events_end: bool = False) -> str:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_events_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return json.dumps({"type": "BOOKMARK",
                       "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}},
                      separators=(",", ":")) + "\n"
