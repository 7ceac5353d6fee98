"""Recording Events the way client-go's record package does, so that `kubectl describe` shows them.

`EventBroadcaster` owns one background sender per process; each component asks it for an `EventRecorder`
named after itself (``deployment-controller``, ``default-scheduler``, ...). Recording never blocks and never
fails the caller: events go into a bounded queue, and the sender writes them.

Like client-go's EventCorrelator, an event that repeats (same object, type, reason, message and source)
within `DEDUP_WINDOW` is not written again: the existing Event's ``count`` and ``lastTimestamp`` are patched.
A per-object token bucket (burst 25, one more every 5 minutes) keeps a hot loop from flooding the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource

from .rest import ApiException, Client, is_not_found

log = logging.getLogger(__name__)

EVENTS = by_resource("", "v1", "events")
NORMAL = "Normal"
WARNING = "Warning"

DEDUP_WINDOW = 600.0
_CACHE_SIZE = 4096
_QUEUE_SIZE = 10_000
# Events are written by this many concurrent senders (a burst of pods brings a burst of events).
_SENDERS = 4
_BURST = 25
_REFILL_SECONDS = 300.0


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first: str
    last_sent: float


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class EventBroadcaster:
    """Sends the events of every recorder made from it. Use as an async context manager, or call
    `start` and `stop`."""

    def __init__(self, client: Client, *, host: str = "") -> None:
        self.client = client
        self.host = host
        # One queue per sender; an object's events always go to the same one, so that repeats are seen in
        # order by one sender and counted rather than written twice.
        self._queues: list[asyncio.Queue[tuple[str, dict[str, Any], str, str, str]]] = [
            asyncio.Queue(_QUEUE_SIZE // _SENDERS) for _ in range(_SENDERS)]
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []

    def recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self, component)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run(q), name=f"event-sender-{i}")
                           for i, q in enumerate(self._queues)]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def flush(self) -> None:
        """Wait until every event queued so far has been written (for tests and clean shutdown)."""
        for q in self._queues:
            await q.join()

    async def __aenter__(self) -> EventBroadcaster:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _offer(self, component: str, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if not self._tasks:
            self.start()
        queue = self._queues[hash((meta.uid(obj), meta.name(obj))) % _SENDERS]
        try:
            queue.put_nowait((component, obj, type_, reason, message))
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s for %s", type_, reason, meta.key(obj))

    async def _run(self, queue: asyncio.Queue[tuple[str, dict[str, Any], str, str, str]]) -> None:
        while True:
            component, obj, type_, reason, message = await queue.get()
            try:
                await self._send(component, obj, type_, reason, message)
            except (ApiException, OSError) as e:
                log.debug("could not record event %s for %s: %s", reason, meta.key(obj), e)
            except Exception:
                log.exception("recording event %s for %s failed", reason, meta.key(obj))
            finally:
                queue.task_done()

    def _allow(self, obj_key: str) -> bool:
        now = time.monotonic()
        bucket = self._buckets.get(obj_key)
        if bucket is None:
            bucket = self._buckets[obj_key] = _Bucket(_BURST, now)
            if len(self._buckets) > _CACHE_SIZE:
                self._buckets.popitem(last=False)
        bucket.tokens = min(_BURST, bucket.tokens + (now - bucket.stamp) / _REFILL_SECONDS)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    async def _send(self, component: str, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        involved = involved_object(obj)
        namespace = involved.get("namespace") or "default"
        key = (component, self.host, involved.get("uid", ""), involved["kind"], involved["name"], type_, reason,
               message)
        now_text = meta.now_rfc3339()
        seen = self._seen.get(key)
        if seen is not None and time.monotonic() - seen.last_sent < DEDUP_WINDOW:
            seen.count += 1
            seen.last_sent = time.monotonic()
            self._seen.move_to_end(key)
            patch = {"count": seen.count, "lastTimestamp": now_text}
            try:
                await self.client.patch(EVENTS, seen.name, patch, "merge", namespace=seen.namespace)
                return
            except ApiException as e:
                if not is_not_found(e):
                    raise
                # The event was deleted (TTL, namespace cleanup): write a new one below.
        if not self._allow(f"{involved['kind']}/{namespace}/{involved['name']}"):
            return
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{involved['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message[:1024], "type": type_,
            "source": {"component": component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now_text, "lastTimestamp": now_text, "count": 1,
            "reportingComponent": component, "reportingInstance": self.host,
        }
        created = await self.client.create(EVENTS, event, namespace=namespace)
        self._seen[key] = _Seen(meta.name(created), namespace, 1, now_text, time.monotonic())
        if len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)


class EventRecorder:
    """Records events on behalf of one component. ``event`` returns at once."""

    def __init__(self, broadcaster: EventBroadcaster, component: str) -> None:
        self._broadcaster = broadcaster
        self.component = component

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self._broadcaster._offer(self.component, obj, type_, reason, message)

    def normal(self, obj: dict[str, Any], reason: str, message: str) -> None:
        self.event(obj, NORMAL, reason, message)

    def warning(self, obj: dict[str, Any], reason: str, message: str) -> None:
        self.event(obj, WARNING, reason, message)


def involved_object(obj: dict[str, Any]) -> dict[str, Any]:
    """The ObjectReference an Event points at."""
    ref = {"kind": obj.get("kind", ""), "namespace": meta.namespace(obj), "name": meta.name(obj),
           "uid": meta.uid(obj), "apiVersion": obj.get("apiVersion", ""),
           "resourceVersion": meta.resource_version(obj)}
    return {k: v for k, v in ref.items() if v}
