"""The scheduling queue (kube-scheduler's backend/queue/scheduling_queue.go, PriorityQueue).

Every pending pod this scheduler is responsible for is in exactly one place:

- **active**: ready to be tried, ordered by ``spec.priority`` (higher first), then by the time it entered
  the queue (PrioritySort);
- **backoff**: failed recently; waits ``initial_backoff * 2**(attempts-1)`` (1 s doubling to 10 s by
  default) counted from its last failure, then moves to active;
- **unschedulable**: no node fitted; waits for a cluster event that one of the plugins that rejected it
  registered (`framework.ClusterEvent`), then moves to backoff (if still backing off) or active. Pods
  that stay here longer than ``max_unschedulable_duration`` (5 min) are moved anyway by a periodic flush
  (every ``flush_interval``, 30 s as Kubernetes; the backoff queue is flushed every second);
- **in flight**: popped, its scheduling cycle running. It comes back through `add_unschedulable` (or
  `requeue_after_error`) or leaves through `done`.

A pod whose cycle overlapped a cluster event that one of its rejecting plugins cares about (the event may
be the one that makes it fit) goes to backoff, not to the unschedulable pool: it cannot miss the event it
waits for (kube-scheduler's moveRequestCycle, per event kind).

Updates that change only the status or the resourceVersion (our own PodScheduled condition, kubelet
heartbeats) do not move a pod. Synchronous except `pop`; one asyncio loop.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelite.api import meta
from kubelite.scheduler.framework import ClusterEvent
from kubelite.scheduler.nodeinfo import PodInfo

Obj = dict[str, Any]
DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_MAX_UNSCHEDULABLE_DURATION = 300.0
DEFAULT_FLUSH_INTERVAL = 30.0
BACKOFF_FLUSH_INTERVAL = 1.0

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
IN_FLIGHT = "in-flight"


@dataclass(slots=True)
class QueuedPodInfo:
    info: PodInfo
    # When the pod (re-)entered the queue: orders the active queue and starts the backoff clock.
    timestamp: float
    initial_attempt_timestamp: float | None = None
    attempts: int = 0
    # Plugins that rejected the pod in its last cycle: only their events move it back.
    unschedulable_plugins: set[str] = field(default_factory=set)
    # The scheduling cycle it was popped in, and whether it was updated while in flight.
    cycle: int = 0
    updated_in_flight: bool = False

    @property
    def pod(self) -> Obj:
        return self.info.pod

    @property
    def uid(self) -> str:
        return self.info.uid

    @property
    def priority(self) -> int:
        return int((self.info.pod.get("spec") or {}).get("priority") or 0)


def _scheduling_relevant(pod: Obj) -> Obj:
    """The pod without what never changes where it fits (isPodUpdated's view)."""
    md = {k: v for k, v in (pod.get("metadata") or {}).items()
          if k not in ("resourceVersion", "generation", "managedFields")}
    return {k: (md if k == "metadata" else v) for k, v in pod.items() if k != "status"}


def is_pod_updated(old: Obj, new: Obj) -> bool:
    return _scheduling_relevant(old) != _scheduling_relevant(new)


class SchedulingQueue:
    def __init__(self, *, plugin_events: Mapping[str, frozenset[ClusterEvent]] | None = None,
                 initial_backoff: float = DEFAULT_INITIAL_BACKOFF, max_backoff: float = DEFAULT_MAX_BACKOFF,
                 max_unschedulable_duration: float = DEFAULT_MAX_UNSCHEDULABLE_DURATION,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.plugin_events = dict(plugin_events or {})
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_duration = max_unschedulable_duration
        self.flush_interval = flush_interval
        self._clock = clock
        self._pods: dict[str, QueuedPodInfo] = {}
        self._where: dict[str, str] = {}
        self._active: list[tuple[int, float, int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._seq = 0
        # uid -> the seq of its live heap entry (older entries are stale and skipped).
        self._live: dict[str, int] = {}
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self.scheduling_cycle = 0
        # The scheduling cycle in which each kind of cluster event last happened: a pod popped at or
        # before it may have missed an event that would have made it fit.
        self._event_cycle: dict[ClusterEvent, int] = {}
        self._wakeup = asyncio.Event()
        self._closed = False

    # --- introspection -----------------------------------------------------------------------------

    def where(self, pod: Obj) -> str | None:
        return self._where.get(meta.uid(pod))

    def __len__(self) -> int:
        return len(self._pods)

    def counts(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for place in self._where.values():
            out[place] += 1
        return out

    def get(self, uid: str) -> QueuedPodInfo | None:
        return self._pods.get(uid)

    # --- placing -----------------------------------------------------------------------------------

    def _push_active(self, q: QueuedPodInfo) -> None:
        self._unschedulable.pop(q.uid, None)
        self._seq += 1
        self._live[q.uid] = self._seq
        self._where[q.uid] = ACTIVE
        heapq.heappush(self._active, (-q.priority, q.timestamp, self._seq, q.uid))
        self._wakeup.set()

    def _push_backoff(self, q: QueuedPodInfo) -> None:
        self._unschedulable.pop(q.uid, None)
        self._seq += 1
        self._live[q.uid] = self._seq
        self._where[q.uid] = BACKOFF
        heapq.heappush(self._backoff, (self.backoff_expiry(q), self._seq, q.uid))

    def _park(self, q: QueuedPodInfo) -> None:
        self._live.pop(q.uid, None)
        self._where[q.uid] = UNSCHEDULABLE
        self._unschedulable[q.uid] = q

    def backoff_duration(self, q: QueuedPodInfo) -> float:
        duration = self.initial_backoff
        for _ in range(1, q.attempts):
            duration *= 2
            if duration >= self.max_backoff:
                return self.max_backoff
        return min(duration, self.max_backoff)

    def backoff_expiry(self, q: QueuedPodInfo) -> float:
        return q.timestamp + self.backoff_duration(q)

    def is_backing_off(self, q: QueuedPodInfo) -> bool:
        return q.attempts > 0 and self.backoff_expiry(q) > self._clock()

    # --- informer events for pending pods ----------------------------------------------------------

    def add(self, pod: Obj) -> None:
        """A new pending pod (or one seen again): straight to active unless it is already queued."""
        uid = meta.uid(pod)
        if uid in self._pods:
            self.update(self._pods[uid].pod, pod)
            return
        q = QueuedPodInfo(PodInfo.of(pod), self._clock())
        self._pods[uid] = q
        self._push_active(q)

    def update(self, old: Obj, new: Obj) -> None:
        uid = meta.uid(new)
        q = self._pods.get(uid)
        if q is None:
            self.add(new)
            return
        changed = is_pod_updated(q.pod, new)
        q.info = PodInfo.of(new)
        place = self._where[uid]
        if place == IN_FLIGHT:
            q.updated_in_flight |= changed
        elif place == ACTIVE:
            if changed:
                self._push_active(q)  # re-sorted: the old heap entry goes stale
        elif place == UNSCHEDULABLE and changed:
            self._activate(q)

    def delete(self, pod: Obj) -> None:
        uid = meta.uid(pod)
        self._pods.pop(uid, None)
        self._where.pop(uid, None)
        self._live.pop(uid, None)
        self._unschedulable.pop(uid, None)

    # --- the scheduling loop's side ----------------------------------------------------------------

    async def pop(self) -> QueuedPodInfo:
        """The next pod to schedule, waiting for one; raises `asyncio.CancelledError` when closed."""
        while True:
            if self._closed:
                raise asyncio.CancelledError("scheduling queue closed")
            while self._active:
                _, _, seq, uid = heapq.heappop(self._active)
                if self._live.get(uid) != seq or self._where.get(uid) != ACTIVE:
                    continue
                q = self._pods[uid]
                del self._live[uid]
                self._where[uid] = IN_FLIGHT
                self.scheduling_cycle += 1
                q.cycle = self.scheduling_cycle
                q.attempts += 1
                q.updated_in_flight = False
                if q.initial_attempt_timestamp is None:
                    q.initial_attempt_timestamp = self._clock()
                return q
            self._wakeup.clear()
            await self._wakeup.wait()

    def done(self, pod: Obj) -> None:
        """The pod was scheduled (assumed): it leaves the queue."""
        uid = meta.uid(pod)
        if self._where.get(uid) == IN_FLIGHT:
            self.delete(pod)

    def add_unschedulable(self, q: QueuedPodInfo, *, rejected_by: set[str]) -> None:
        """After a cycle found no node: park the pod, unless something moved meanwhile."""
        if self._where.get(q.uid) != IN_FLIGHT:
            return  # deleted (or re-added) while in flight
        q.timestamp = self._clock()
        q.unschedulable_plugins = set(rejected_by)
        missed = any(cycle >= q.cycle and self._interested(q, event) for event, cycle in self._event_cycle.items())
        if q.updated_in_flight or missed:
            self._activate(q)
        else:
            self._park(q)

    def requeue_after_error(self, q: QueuedPodInfo) -> None:
        """After an error (not a fit failure, e.g. a failed binding): retry after the backoff."""
        if self._where.get(q.uid) != IN_FLIGHT:
            return
        q.timestamp = self._clock()
        q.unschedulable_plugins = set()
        self._activate(q)

    def _activate(self, q: QueuedPodInfo) -> None:
        if self.is_backing_off(q):
            self._push_backoff(q)
        else:
            self._push_active(q)

    # --- cluster events ----------------------------------------------------------------------------

    def move_all(self, event: ClusterEvent) -> int:
        """Move the unschedulable pods this event may help; returns how many moved."""
        self._event_cycle[event] = self.scheduling_cycle
        moved = 0
        for q in list(self._unschedulable.values()):
            if self._interested(q, event):
                self._activate(q)
                moved += 1
        return moved

    def _interested(self, q: QueuedPodInfo, event: ClusterEvent) -> bool:
        if event in (ClusterEvent.UNSCHEDULABLE_TIMEOUT, ClusterEvent.FORCE_ACTIVATE) \
                or not q.unschedulable_plugins:
            return True
        return any(event in self.plugin_events.get(p, frozenset({event})) for p in q.unschedulable_plugins)

    # --- periodic flushes --------------------------------------------------------------------------

    def flush_backoff_completed(self) -> int:
        now = self._clock()
        moved = 0
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, uid = heapq.heappop(self._backoff)
            if self._live.get(uid) != seq or self._where.get(uid) != BACKOFF:
                continue
            self._push_active(self._pods[uid])
            moved += 1
        return moved

    def flush_unschedulable_leftover(self) -> int:
        now = self._clock()
        moved = 0
        for q in list(self._unschedulable.values()):
            if now - q.timestamp > self.max_unschedulable_duration:
                self._activate(q)
                moved += 1
        return moved

    async def run(self) -> None:
        """Flush backoff every second and the unschedulable leftovers every ``flush_interval``."""
        last_leftover = self._clock()
        while True:
            await asyncio.sleep(BACKOFF_FLUSH_INTERVAL)
            self.flush_backoff_completed()
            if self._clock() - last_leftover >= self.flush_interval:
                last_leftover = self._clock()
                self.flush_unschedulable_leftover()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
