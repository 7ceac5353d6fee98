"""Watch streams: ``?watch=true`` as newline-delimited JSON events over a chunked response.

What a watch starts with depends on its parameters, as in Kubernetes:
- ``sendInitialEvents=true`` (streaming lists, used by ``kubectl wait`` and ``rollout status``): ADDED for
  every current object, then a BOOKMARK annotated ``k8s.io/initial-events-end``, then live events;
- no ``resourceVersion`` or ``"0"``: ADDED for every current object, then live events;
- ``resourceVersion=N``: every event after N. Recent events come from the watch cache; older ones from the
  store's history; history that was compacted away is an ERROR event with a 410 ``Expired`` Status.
Bookmarks are sent about once a minute when ``allowWatchBookmarks=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from kubelite.api import errors, printers
from kubelite.api.registry import Kind

from .. import codec
from ..storage.interface import Compacted, Store
from ..watchcache import Entry, Predicate, WatchCache, Watcher, WatchEvent, bookmark_line, event_line
from .common import query_bool, query_int, wants_table

BOOKMARK_INTERVAL = 60.0


async def serve(request: web.Request, cache: WatchCache, store: Store, kind: Kind, namespace: str | None,
                matches: Predicate) -> web.StreamResponse:
    rv = request.query.get("resourceVersion", "")
    initial_events = query_bool(request, "sendInitialEvents")
    bookmarks = query_bool(request, "allowWatchBookmarks")
    timeout = query_int(request, "timeoutSeconds")
    if timeout is None or timeout <= 0:
        timeout = int(1800 * (1 + random.random()))
    if initial_events and not bookmarks:
        raise errors.invalid_object("ListOptions", "", [errors.forbidden(
            "allowWatchBookmarks", "sendInitialEvents requires setting allowWatchBookmarks=true")], "meta.k8s.io")
    kcache = cache.cache(kind)
    prefix = kind.prefix(namespace)
    initial: list[Entry] = []
    since: int | None = None
    if rv not in ("", "0"):
        try:
            since = int(rv)
        except ValueError:
            raise errors.bad_request(f'invalid resourceVersion "{rv}"') from None
        if not await cache.wait_for(since):
            raise errors.timeout(f"Too large resource version: {since}, current: {cache.revision}")
    elif rv == "":
        await cache.sync()

    stream: AsyncIterator[WatchEvent | None]
    watcher: Watcher | None = None
    if since is None or initial_events:
        # Snapshot and subscription with no await in between: nothing is missed or sent twice.
        initial = [e for e in kcache.objects(prefix) if matches(e.obj)]
        start = cache.revision
        watcher = kcache.subscribe(matches, None)
        assert watcher is not None  # a subscription without a resume point always succeeds
        stream = _queue_events(watcher)
    else:
        start = since
        watcher = kcache.subscribe(matches, since)
        stream = _queue_events(watcher) if watcher is not None else _store_events(store, prefix, since, matches)

    response = web.StreamResponse(headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    render = _TableRenderer(kind, request) if wants_table(request) else None
    try:
        lines = [_line(WatchEvent("ADDED", e, None, start), render) for e in initial]
        if initial_events:
            lines.append(bookmark_line(kind, start, initial_events_end=True))
        if lines:
            await response.write("".join(lines).encode())
        await _pump(response, stream, render, kind, cache, bookmarks, float(timeout))
    except Compacted as e:
        status = errors.gone(f"too old resource version: {e.revision} ({e.compacted})").to_status()
        with contextlib.suppress(ConnectionError):
            await response.write((json.dumps({"type": "ERROR", "object": status}) + "\n").encode())
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        if watcher is not None:
            kcache.unsubscribe(watcher)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write_eof()
    return response


async def _pump(response: web.StreamResponse, stream: AsyncIterator[WatchEvent | None],
                render: _TableRenderer | None, kind: Kind, cache: WatchCache, bookmarks: bool,
                timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    it = stream.__aiter__()
    pending: asyncio.Task[WatchEvent | None] | None = None
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=min(remaining, BOOKMARK_INTERVAL))
            if not done:
                if bookmarks and loop.time() < deadline:
                    await response.write(bookmark_line(kind, cache.revision).encode())
                continue
            try:
                ev = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            if ev is None:
                return
            await response.write(_line(ev, render).encode())
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def _queue_events(w: Watcher) -> AsyncIterator[WatchEvent | None]:
    while True:
        ev = await w.queue.get()
        yield ev
        if ev is None:
            return


async def _store_events(store: Store, prefix: str, since: int, matches: Predicate) -> AsyncIterator[WatchEvent | None]:
    """Events after ``since`` read from the store's history (for resumes older than the cache's window)."""
    async for batch in store.watch(prefix, since + 1):
        for ev in batch:
            prev = Entry(codec.decode(ev.prev)) if ev.prev is not None else None
            if ev.type == "DELETE":
                wev = WatchEvent("DELETED", Entry(codec.decode(ev.kv)), prev, ev.revision)
            else:
                wev = WatchEvent("MODIFIED" if prev else "ADDED", Entry(codec.decode(ev.kv)), prev, ev.revision)
            seen = wev.for_watcher(matches)
            if seen is not None:
                yield seen


def _line(ev: WatchEvent, render: _TableRenderer | None) -> str:
    if render is None:
        return event_line(ev)
    return codec.dumps({"type": ev.type, "object": render.table(ev.entry.obj)}) + "\n"


class _TableRenderer:
    """Watch events as one-row Tables; column definitions go only with the first event, as Kubernetes does."""

    def __init__(self, kind: Kind, request: web.Request) -> None:
        self.kind = kind
        self.include = request.query.get("includeObject", "Object")
        self.first = True

    def table(self, obj: dict[str, Any]) -> dict[str, Any]:
        t = printers.table(self.kind, [obj], resource_version=obj["metadata"].get("resourceVersion", ""),
                           include_object=self.include)
        if not self.first:
            t["columnDefinitions"] = []
        self.first = False
        return t
