"""List-then-watch that never loses its place: client-go's Reflector, as an async event stream.

`Watcher.events()` lists the collection, then watches from the list's resourceVersion, forever:
- each watch asks for bookmarks (``allowWatchBookmarks=true``) and for a server-side timeout of 5 to 10
  minutes (randomised, as client-go does, so that many watchers do not reconnect together); the last
  resourceVersion seen, from an event or a BOOKMARK, is where the next watch resumes;
- a dropped connection or a failed request is retried with exponential backoff (with jitter), reset
  once a watch delivers something;
- 410 Gone, as an HTTP answer or as an ERROR event with code 410, means the server no longer holds
  history from that resourceVersion: the watcher relists and emits the *difference* between what it
  had emitted and the fresh list, so the consumer's view becomes consistent again without gaps or
  repeats. Objects that vanished meanwhile come as DELETED with ``tombstone=True``: their object is
  the last state the consumer saw, not the final one (client-go's DeletedFinalStateUnknown).

Event semantics seen by the consumer: ADDED for a key it has not seen (or seen deleted), MODIFIED for
a key it has, DELETED removes the key; after every (re)list a SYNCED event (with an empty object)
marks that the view now equals a full list. BOOKMARK and ERROR events are consumed here.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal

from kubelite.api import meta
from kubelite.api.registry import Kind
from kubelite.client.rest import ApiException, Client, Gone, TransportError

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED", "SYNCED"]
MIN_WATCH_TIMEOUT_SECONDS = 300
# A watch that ends sooner than this without delivering anything counts as a failure (backoff).
QUICK_CLOSE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    object: dict[str, Any]
    # True for a DELETED synthesized after a relist: `object` is the last state seen, not the final one.
    tombstone: bool = False


@dataclass
class Backoff:
    """Exponential backoff with full jitter between ``initial`` and ``maximum`` seconds."""

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def next_delay(self) -> float:
        self._next = self.initial if self._next == 0.0 else min(self._next * self.factor, self.maximum)
        return random.uniform(self._next / 2, self._next)

    def reset(self) -> None:
        self._next = 0.0


class _Expired(Exception):
    """The watch's resourceVersion is too old (410): only a relist can continue."""


class Watcher:
    """One list+watch loop over a collection; see the module docstring for its guarantees."""

    def __init__(
        self,
        client: Client,
        kind: Kind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        backoff: Backoff | None = None,
        watch_timeout_seconds: int = MIN_WATCH_TIMEOUT_SECONDS,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self._backoff = backoff or Backoff()
        self._watch_timeout = watch_timeout_seconds
        self.resource_version = ""
        # What the consumer has been told exists: key -> last object emitted.
        self._known: dict[str, dict[str, Any]] = {}

    async def events(self) -> AsyncGenerator[WatchEvent, None]:
        """Yield events forever (until cancelled or closed). Never raises for server or network trouble."""
        while True:
            async for ev in self._relist():
                yield ev
            while True:
                try:
                    async for ev in self._watch_once():
                        yield ev
                except (_Expired, Gone) as e:
                    log.info("watch %s: %s; relisting", self._what(), e)
                    break
                except (ApiException, TransportError) as e:
                    delay = self._backoff.next_delay()
                    log.warning("watch %s failed: %s; retrying in %.1fs", self._what(), e, delay)
                    await asyncio.sleep(delay)

    def _what(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.kind.plural}{where} at resourceVersion {self.resource_version or '(none)'}"

    async def _relist(self) -> AsyncGenerator[WatchEvent, None]:
        while True:
            try:
                listed = await self.client.list(self.kind, self.namespace, label_selector=self.label_selector,
                                                field_selector=self.field_selector)
                break
            except (ApiException, TransportError) as e:
                delay = self._backoff.next_delay()
                log.warning("list %s failed: %s; retrying in %.1fs", self.kind.plural, e, delay)
                await asyncio.sleep(delay)
        self.resource_version = meta.resource_version(listed)
        items: list[dict[str, Any]] = list(listed.get("items") or [])
        fresh: dict[str, dict[str, Any]] = {}
        for item in items:
            # Lists omit kind/apiVersion on items; restore them so consumers see whole objects.
            item.setdefault("apiVersion", self.kind.api_version)
            item.setdefault("kind", self.kind.kind)
            fresh[meta.key(item)] = item
        for k in [k for k in self._known if k not in fresh]:
            yield WatchEvent("DELETED", self._known.pop(k), tombstone=True)
        for k, obj in fresh.items():
            old = self._known.get(k)
            self._known[k] = obj
            if old is None:
                yield WatchEvent("ADDED", obj)
            elif meta.uid(old) != meta.uid(obj):
                # Deleted and recreated under the same name while we were not watching.
                yield WatchEvent("DELETED", old, tombstone=True)
                yield WatchEvent("ADDED", obj)
            elif meta.resource_version(old) != meta.resource_version(obj):
                yield WatchEvent("MODIFIED", obj)
        yield WatchEvent("SYNCED", {})

    async def _watch_once(self) -> AsyncGenerator[WatchEvent, None]:
        """One watch connection; returns when the server ends it, raises on errors."""
        timeout = random.randint(self._watch_timeout, 2 * self._watch_timeout)
        stream = self.client.watch_raw(self.kind, self.namespace, self.resource_version,
                                       label_selector=self.label_selector, field_selector=self.field_selector,
                                       allow_bookmarks=True, timeout_seconds=timeout)
        delivered = False
        started = asyncio.get_running_loop().time()
        async with aclosing(stream) as raw_events:
            async for raw in raw_events:
                if not delivered:
                    delivered = True
                    self._backoff.reset()
                ev = self._interpret(raw)
                if ev is not None:
                    yield ev
        if not delivered and asyncio.get_running_loop().time() - started < QUICK_CLOSE_SECONDS:
            # A server that closes watches at once must not make us spin.
            await asyncio.sleep(self._backoff.next_delay())

    def _interpret(self, raw: dict[str, Any]) -> WatchEvent | None:
        etype = raw.get("type")
        obj = raw.get("object")
        if not isinstance(obj, dict):
            raise TransportError(f"watch event {etype!r} has no object")
        if etype == "ERROR":
            code = obj.get("code")
            if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                raise _Expired(obj.get("message") or "resourceVersion too old")
            raise ApiException(int(code or 500), str(obj.get("reason") or "InternalError"),
                               str(obj.get("message") or "watch error"), obj)
        rv = meta.resource_version(obj)
        if rv:
            self.resource_version = rv
        if etype == "BOOKMARK":
            return None
        k = meta.key(obj)
        if etype == "DELETED":
            self._known.pop(k, None)
            return WatchEvent("DELETED", obj)
        if etype not in ("ADDED", "MODIFIED"):
            raise TransportError(f"unknown watch event type {etype!r}")
        known = k in self._known
        self._known[k] = obj
        return WatchEvent("MODIFIED" if known else "ADDED", obj)
