"""Shared informers: one list+watch per collection feeding an indexed cache and event handlers.

Contract (client-go's SharedInformer, adapted to one asyncio loop):
- The cache is eventually consistent with the server: after `has_synced()`, it holds a full list, and
  then follows every change in resourceVersion order. Readers get the cached dicts themselves: never
  mutate them (copy first, e.g. ``copy.deepcopy``), they are shared by every consumer.
- The cache is not thread-safe but is asyncio-safe: it is only changed by the informer's task between
  awaits, so a reader that does not await sees one consistent state.
- Handlers are plain (sync) callables run in the informer's task, in order per object, right after the
  cache has been updated. They must return quickly and only enqueue (see `workqueue`): long work there
  stalls every handler of this informer. An exception in a handler is logged and does not stop the
  informer. A handler added late first receives an on_add for each object already cached.
- on_update(old, new) also fires every ``resync_period`` with old is new, so level-triggered
  controllers re-check everything now and then.
- on_delete receives the deleted object, or a `DeletedFinalStateUnknown` when the deletion was learnt
  from a relist (after 410 Gone): its ``obj`` is the last state seen, not the final one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import Kind
from kubelite.client.rest import Client
from kubelite.client.watch import Backoff, Watcher, WatchEvent

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Objs = list[Obj]  # spelt once here: `list` is also a method name in the classes below
Keys = list[str]
IndexFunc = Callable[[Obj], Iterable[str]]
NAMESPACE_INDEX = "namespace"


@dataclass(frozen=True, slots=True)
class DeletedFinalStateUnknown:
    """A deletion noticed by a relist: ``obj`` is the last state seen before it vanished."""

    key: str
    obj: Obj


def object_of(obj_or_tombstone: Obj | DeletedFinalStateUnknown) -> Obj:
    """The object an on_delete handler was given, tombstone or not."""
    if isinstance(obj_or_tombstone, DeletedFinalStateUnknown):
        return obj_or_tombstone.obj
    return obj_or_tombstone


def namespace_index(obj: Obj) -> list[str]:
    return [meta.namespace(obj)]


class Indexer:
    """A key → object store with secondary indexes (index name → value → keys)."""

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index}
        self._indices: dict[str, dict[str, set[str]]] = {NAMESPACE_INDEX: {}}

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def keys(self) -> Keys:
        return list(self._items)

    def list(self) -> Objs:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def by_index(self, index_name: str, value: str) -> Objs:
        if index_name not in self._indexers:
            raise KeyError(f"no index named {index_name!r}")
        return [self._items[k] for k in self._indices[index_name].get(value, ())]

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        """Register indexes (also after objects are cached: they are indexed at once)."""
        for name in indexers:
            if name in self._indexers:
                raise ValueError(f"indexer {name!r} already exists")
        for name, fn in indexers.items():
            self._indexers[name] = fn
            self._indices[name] = {}
            for k, obj in self._items.items():
                self._index(name, k, obj)

    def put(self, key: str, obj: Obj) -> Obj | None:
        """Store ``obj`` under ``key``; returns the object it replaced."""
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name in self._indexers:
            self._index(name, key, obj)
        return old

    def remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _index(self, name: str, key: str, obj: Obj) -> None:
        index = self._indices[name]
        for value in self._indexers[name](obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in fn(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


@dataclass(frozen=True, slots=True)
class _Handler:
    on_add: Callable[[Obj], None] | None
    on_update: Callable[[Obj, Obj], None] | None
    on_delete: Callable[[Obj | DeletedFinalStateUnknown], None] | None


class SharedInformer:
    """One list+watch of (kind, namespace, selectors) into an `Indexer`; see the module contract."""

    def __init__(
        self,
        client: Client,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self._watcher = Watcher(client, kind, namespace, label_selector=label_selector,
                                field_selector=field_selector, backoff=backoff)
        self._resync_period = resync_period
        self._store = Indexer()
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failure: BaseException | None = None
        self._running = False
        self._task: asyncio.Task[None] | None = None

    # --- the cache (a lister) ----------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        """The cached object for ``ns/name`` (or ``name`` when cluster-scoped)."""
        return self._store.get(key)

    def get_by_name(self, name: str, namespace: str | None = None) -> Obj | None:
        return self._store.get(meta.make_key(namespace, name))

    def list(self, namespace: str | None = None) -> Objs:
        if namespace is None:
            return self._store.list()
        return self._store.by_index(NAMESPACE_INDEX, namespace)

    def keys(self) -> Keys:
        return self._store.keys()

    def by_index(self, index_name: str, value: str) -> Objs:
        return self._store.by_index(index_name, value)

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        self._store.add_indexers(indexers)

    @property
    def resource_version(self) -> str:
        """The resourceVersion the cache is current to."""
        return self._watcher.resource_version

    # --- handlers ----------------------------------------------------------------------------------

    def add_handler(
        self,
        on_add: Callable[[Obj], None] | None = None,
        on_update: Callable[[Obj, Obj], None] | None = None,
        on_delete: Callable[[Obj | DeletedFinalStateUnknown], None] | None = None,
    ) -> None:
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in self._store.list():
                self._call(on_add, obj)

    # --- lifetime ----------------------------------------------------------------------------------

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait for the first full list to be in the cache; raises if the informer stopped before."""
        if self._synced.is_set():
            return
        synced = asyncio.create_task(self._synced.wait())
        stopped = asyncio.create_task(self._stopped.wait())
        try:
            await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
            stopped.cancel()
        if not self._synced.is_set():
            raise RuntimeError(f"informer for {self.kind.plural} stopped before it synced") from self._failure

    async def run(self) -> None:
        """List, watch and dispatch until cancelled."""
        if self._running:
            raise RuntimeError(f"informer for {self.kind.plural} is already running")
        self._running = True
        self._stopped.clear()
        resync = asyncio.create_task(self._resync_loop(self._resync_period)) if self._resync_period else None
        try:
            async with aclosing(self._watcher.events()) as events:
                async for ev in events:
                    self._apply(ev)
        except BaseException as e:
            self._failure = e
            raise
        finally:
            self._running = False
            self._stopped.set()
            if resync is not None:
                resync.cancel()
                await asyncio.wait({resync})

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (idempotent); `stop()` ends it."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"informer-{self.kind.plural}")
        return self._task

    async def stop(self) -> None:
        """Cancel the background task; re-raises the error it died of, if it died on its own."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # wait() rather than `await task`: a cancellation of our caller must not be mistaken for the task's.
        await asyncio.wait({task})
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure

    async def __aenter__(self) -> SharedInformer:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- dispatch ----------------------------------------------------------------------------------

    def _apply(self, ev: WatchEvent) -> None:
        if ev.type == "SYNCED":
            self._synced.set()
            return
        key = meta.key(ev.object)
        if ev.type == "DELETED":
            old = self._store.remove(key)
            gone: Obj | DeletedFinalStateUnknown = (
                DeletedFinalStateUnknown(key, old or ev.object) if ev.tombstone else ev.object)
            for h in tuple(self._handlers):  # a handler may add handlers
                if h.on_delete is not None:
                    self._call(h.on_delete, gone)
            return
        old = self._store.put(key, ev.object)
        for h in tuple(self._handlers):
            if old is None:
                if h.on_add is not None:
                    self._call(h.on_add, ev.object)
            elif h.on_update is not None:
                self._call(h.on_update, old, ev.object)

    async def _resync_loop(self, period: float) -> None:
        """Cannot fail: handler errors are caught by `_call`, and it touches nothing else."""
        await self._synced.wait()
        while True:
            await asyncio.sleep(period)
            for obj in self._store.list():
                for h in tuple(self._handlers):
                    if h.on_update is not None:
                        self._call(h.on_update, obj, obj)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s informer handler %r failed", self.kind.plural, fn)


FactoryKey = tuple[Hashable, ...]


class InformerFactory:
    """Hands out one shared informer per (kind, namespace, label selector, field selector).

    ``start()`` runs every informer not yet running; informers requested after `start()` start at once.
    Use as an async context manager to start on entry and stop everything on exit.
    """

    def __init__(self, client: Client, *, resync_period: float | None = None,
                 backoff: Backoff | None = None) -> None:
        self._client = client
        self._resync_period = resync_period
        self._backoff = backoff
        self._informers: dict[FactoryKey, SharedInformer] = {}
        self._started = False

    def informer(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> SharedInformer:
        key: FactoryKey = (kind.group, kind.plural, namespace or "", label_selector or "",
                           field_selector or "")
        inf = self._informers.get(key)
        if inf is None:
            inf = SharedInformer(self._client, kind, namespace, label_selector, field_selector,
                                 self._resync_period, backoff=self._backoff)
            self._informers[key] = inf
            if self._started:
                inf.start()
        return inf

    def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_for_cache_sync(self) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in self._informers.values()))

    async def stop(self) -> None:
        """Stop every informer; re-raises the first error one of them died of."""
        self._started = False
        results = await asyncio.gather(*(inf.stop() for inf in self._informers.values()),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def __aenter__(self) -> InformerFactory:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
