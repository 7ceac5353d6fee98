"""The scheduler: informers feed the cache and the queue; one loop decides; bindings run concurrently
(kube-scheduler's scheduler.go, schedule_one.go and eventhandlers.go).

Informers (one list+watch each): pods that are not terminal (``status.phase!=Succeeded,...``), nodes,
namespaces (labels for pod affinity's namespaceSelector). Handlers only update the cache and the queue:

- a pod with ``spec.nodeName`` is *assigned*: counted in the cache (confirming it if this scheduler assumed
  it), and its arrival, change or departure moves the unschedulable pods whose rejecting plugins care;
- a pod without one, whose ``spec.schedulerName`` is ours and that is not being deleted, is *pending*:
  queued, updated in place, dropped from the queue when deleted or bound;
- a node added or changed (allocatable, labels, taints, unschedulable) moves unschedulable pods too.

The loop pops one pod at a time and runs `algorithm.schedule_pod` synchronously over the cache (no await in
between, so the cache cannot change under it). On success it *assumes* the pod on the chosen node (the
next pod already sees the resources taken) and starts the binding in a task, so the loop never waits for
the API server; at most ``max_binding_in_flight`` bindings run at once. A binding that fails gives the
resources back (`Cache.forget_pod`); a 409 (already bound elsewhere) or 404 (deleted) ends there, other
errors requeue the pod with backoff. Success records ``Scheduled`` ("Successfully assigned ns/pod to
node").

When no node fits: a ``FailedScheduling`` Warning event with Kubernetes' message, the pod's condition
``PodScheduled=False`` (reason ``Unschedulable``, same message) written through ``pods/status`` when it
changed, and the pod parked in the queue until a relevant event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.events import EventBroadcaster, EventRecorder
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import ApiException, Client, Conflict, NotFound, TransportError
from kubelite.scheduler.algorithm import NoNodesAvailable, schedule_pod
from kubelite.scheduler.cache import DEFAULT_ASSUMED_TTL, Cache
from kubelite.scheduler.config import Profile, build_framework, load_profile
from kubelite.scheduler.framework import ClusterEvent, FitError, Framework, plugin_events
from kubelite.scheduler.nodeinfo import node_taints
from kubelite.scheduler.plugins import Handle
from kubelite.scheduler.queue import QueuedPodInfo, SchedulingQueue
from kubelite.scheduler.resources import node_allocatable

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
NAMESPACES = by_resource("", "v1", "namespaces")
NON_TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"
FIELD_MANAGER = "kube-scheduler"
DEFAULT_MAX_BINDINGS_IN_FLIGHT = 64
STATUS_UPDATE_ATTEMPTS = 3
REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"


class SchedulerCrashed(Exception):
    """An informer the scheduler depends on stopped; ``__cause__`` is why."""


def is_assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def scheduled_condition(pod: Obj, reason: str, message: str, *, now: str) -> list[Obj] | None:
    """``status.conditions`` with PodScheduled=False (reason, message), or None when it already says so.
    ``lastTransitionTime`` moves only when the status changes (podutil.UpdatePodCondition)."""
    conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or []]
    for c in conditions:
        if c.get("type") == "PodScheduled":
            if (c.get("status"), c.get("reason"), c.get("message")) == ("False", reason, message):
                return None
            if c.get("status") != "False":
                c["lastTransitionTime"] = now
            c.update(status="False", reason=reason, message=message, lastProbeTime=None)
            return conditions
    conditions.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                       "lastTransitionTime": now, "reason": reason, "message": message})
    return conditions


def binding_for(pod: Obj, node: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": meta.name(pod), "namespace": meta.namespace(pod), "uid": meta.uid(pod)},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


def _node_events(old: Obj, new: Obj) -> list[ClusterEvent]:
    """What changed on a node that may matter to a pending pod (nodeSchedulingPropertiesChange)."""
    events: list[ClusterEvent] = []
    if bool((old.get("spec") or {}).get("unschedulable")) != bool((new.get("spec") or {}).get("unschedulable")):
        events.append(ClusterEvent.NODE_SPEC_UNSCHEDULABLE)
    if node_allocatable(old) != node_allocatable(new):
        events.append(ClusterEvent.NODE_ALLOCATABLE)
    if meta.labels(old) != meta.labels(new):
        events.append(ClusterEvent.NODE_LABEL)
    if node_taints(old) != node_taints(new):
        events.append(ClusterEvent.NODE_TAINT)
    return events


class Scheduler:
    """One scheduler profile over one API client. ``setup(factory)`` then ``run_active()`` (or `run`)."""

    def __init__(self, client: Client, *, profile: Profile | None = None, events: EventBroadcaster | None = None,
                 max_bindings_in_flight: int = DEFAULT_MAX_BINDINGS_IN_FLIGHT,
                 assumed_ttl: float = DEFAULT_ASSUMED_TTL, queue: SchedulingQueue | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.profile = profile or load_profile(None)
        self.events = events or EventBroadcaster(client)
        self.recorder: EventRecorder = self.events.recorder(self.profile.scheduler_name)
        self.cache = Cache(ttl=assumed_ttl)
        self._namespaces: SharedInformer | None = None
        self.framework: Framework = build_framework(self.profile, Handle(self._namespace_labels))
        self.queue = queue or SchedulingQueue()
        self.queue.plugin_events = {name: plugin_events(p) for name, p in self.framework.plugins_by_name.items()}
        self._bindings = asyncio.Semaphore(max_bindings_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_start = 0
        self._rng = rng or random.Random()
        self.scheduled = 0
        self.failed = 0

    @property
    def name(self) -> str:
        return self.profile.scheduler_name

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self._namespaces.get(namespace) if self._namespaces is not None else None
        return meta.labels(ns) if ns is not None else {}

    # --- informers ---------------------------------------------------------------------------------

    def setup(self, factory: InformerFactory) -> None:
        """Ask ``factory`` for the informers (`_informer_keys`) and register the handlers."""
        factory.informer(NODES).add_handler(self._node_added, self._node_updated, self._node_deleted)
        factory.informer(PODS, field_selector=NON_TERMINAL).add_handler(
            self._pod_added, self._pod_updated, self._pod_deleted)
        self._namespaces = factory.informer(NAMESPACES)
        self._namespaces.add_handler(on_add=self._namespace_added, on_update=self._namespace_updated)

    def _namespace_added(self, ns: Obj) -> None:
        self.queue.move_all(ClusterEvent.NAMESPACE_CHANGE)

    def _namespace_updated(self, old: Obj, new: Obj) -> None:
        if meta.labels(old) != meta.labels(new):
            self.queue.move_all(ClusterEvent.NAMESPACE_CHANGE)

    def _node_added(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all(ClusterEvent.NODE_ADD)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self.cache.update_node(new)
        for event in _node_events(old, new):
            self.queue.move_all(event)

    def _node_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        self.cache.remove_node(object_of(gone))
        self.queue.move_all(ClusterEvent.NODE_DELETE)

    def _responsible(self, pod: Obj) -> bool:
        return bool((pod.get("spec") or {}).get("schedulerName", "default-scheduler") == self.name)

    def _pod_added(self, pod: Obj) -> None:
        if is_assigned(pod):
            if not is_terminal(pod):
                self.cache.add_pod(pod)
                self.queue.move_all(ClusterEvent.ASSIGNED_POD_ADD)
        elif self._responsible(pod) and not meta.is_being_deleted(pod) and not self.cache.is_assumed(pod):
            self.queue.add(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if is_assigned(new):
            self.queue.delete(new)  # bound: no longer pending (also when bound by someone else)
            if is_terminal(new):
                self.cache.remove_pod(new)
                self.queue.move_all(ClusterEvent.ASSIGNED_POD_DELETE)
            elif is_assigned(old) and self.cache.has_pod(new) and not self.cache.is_assumed(new):
                self.cache.update_pod(new)
                self.queue.move_all(ClusterEvent.ASSIGNED_POD_UPDATE)
            else:
                self.cache.add_pod(new)
                self.queue.move_all(ClusterEvent.ASSIGNED_POD_ADD)
        elif not self._responsible(new) or meta.is_being_deleted(new):
            self.queue.delete(new)
        elif not self.cache.is_assumed(new):
            self.queue.update(old, new)

    def _pod_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        pod = object_of(gone)
        self.queue.delete(pod)
        if self.cache.has_pod(pod) and not self.cache.is_assumed(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all(ClusterEvent.ASSIGNED_POD_DELETE)

    # --- lifetime ----------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Informers, then scheduling until ``stop`` is set. Leader election (later) goes around
        `run_active`: the informers may warm up on a standby, only the leader schedules.

        An informer that dies stops the scheduler with `SchedulerCrashed` (a scheduler on a frozen cache
        would place pods on stale facts)."""
        factory = InformerFactory(self.client)
        self.setup(factory)
        async with self.events, factory:
            informers = [factory.informer(kind, **kw).start() for kind, kw in self._informer_keys()]
            active = asyncio.create_task(self._synced_then_active(factory, stop))
            try:
                done, _ = await asyncio.wait({active, *informers}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                active.cancel()
                await asyncio.wait({active})
            if active in done:
                active.result()
                return
            dead = next(iter(done))
            cause = None if dead.cancelled() else dead.exception()
            raise SchedulerCrashed(f"scheduler {self.name}: informer {dead.get_name()} stopped") from cause

    @staticmethod
    def _informer_keys() -> list[tuple[Any, dict[str, str]]]:
        return [(NODES, {}), (PODS, {"field_selector": NON_TERMINAL}), (NAMESPACES, {})]

    async def _synced_then_active(self, factory: InformerFactory, stop: asyncio.Event) -> None:
        await factory.wait_for_cache_sync()
        log.info("scheduler %s: caches synced (%d nodes, %d pods counted, %d pending)", self.name,
                 len(self.cache.nodes), self.cache.pod_count(), len(self.queue))
        await self.run_active(stop)

    async def run_active(self, stop: asyncio.Event) -> None:
        """Schedule until ``stop`` is set (the caches must have synced)."""
        try:
            async with asyncio.TaskGroup() as tg:
                loop = tg.create_task(self._schedule_loop(), name="scheduler-loop")
                flush = tg.create_task(self.queue.run(), name="scheduler-queue-flush")
                expire = tg.create_task(self._expire_loop(), name="scheduler-assumed-expiry")
                await stop.wait()
                for t in (loop, flush, expire):
                    t.cancel()
        finally:
            self.queue.close()
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.cache.cleanup_expired():
                self.queue.move_all(ClusterEvent.ASSIGNED_POD_DELETE)

    async def _schedule_loop(self) -> None:
        while True:
            await self._bindings.acquire()
            try:
                q = await self.queue.pop()
            except BaseException:
                self._bindings.release()
                raise
            if not self.schedule_one(q):
                self._bindings.release()
            # Let the informers and the bindings run between two decisions: `pop` returns at once while
            # pods are queued, and a loop that never yields would starve them.
            await asyncio.sleep(0)

    # --- one pod -----------------------------------------------------------------------------------

    def schedule_one(self, q: QueuedPodInfo) -> bool:
        """Decide for one popped pod; returns True when a binding task was started (it holds a binding slot)."""
        pod = q.pod
        if meta.is_being_deleted(pod) or self.cache.has_pod(pod):
            self.queue.done(pod)
            return False
        try:
            result = schedule_pod(self.framework, self.cache.nodes, q.info, start=self._next_start, rng=self._rng)
        except FitError as e:
            self._failed(q, str(e), REASON_UNSCHEDULABLE, rejected_by=e.diagnosis.unschedulable_plugins)
            return False
        except NoNodesAvailable as e:
            self._failed(q, str(e), REASON_SCHEDULER_ERROR, rejected_by=None)
            return False
        except Exception as e:  # a plugin bug must not stop the scheduler: the pod retries with backoff
            log.exception("scheduler: scheduling %s failed", meta.key(pod))
            self._failed(q, str(e), REASON_SCHEDULER_ERROR, rejected_by=None)
            return False
        self._next_start = result.next_start
        node = result.node_name
        assumed = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}
        info = dataclasses.replace(q.info, pod=assumed, node_name=node)
        self.cache.assume_pod(info)
        self._spawn(self._bind(q, assumed, node), f"bind-{meta.key(pod)}")
        return True

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, q: QueuedPodInfo, assumed: Obj, node: str) -> None:
        pod = q.pod
        try:
            path = self.client.item_path(PODS, meta.name(pod), meta.namespace(pod), "binding")
            await self.client.request("POST", path, body=binding_for(pod, node))
        except (ApiException, TransportError) as e:
            self.cache.forget_pod(assumed)
            if isinstance(e, ApiException) and e.status in (404, 409):
                # Deleted, being deleted, or bound by someone else: the informer tells the rest.
                log.info("scheduler: binding %s to %s refused: %s", meta.key(pod), node, e)
                self.queue.done(pod)
            else:
                log.warning("scheduler: binding %s to %s failed: %s", meta.key(pod), node, e)
                self.recorder.warning(pod, "FailedScheduling", f"Binding rejected: {e}")
                self.queue.requeue_after_error(q)
            self.queue.move_all(ClusterEvent.ASSIGNED_POD_DELETE)
        except asyncio.CancelledError:
            self.cache.forget_pod(assumed)
            raise
        else:
            self.cache.finish_binding(assumed)
            self.queue.done(pod)
            self.scheduled += 1
            self.recorder.normal(pod, "Scheduled",
                                 f"Successfully assigned {meta.namespace(pod)}/{meta.name(pod)} to {node}")
        finally:
            self._bindings.release()

    def _failed(self, q: QueuedPodInfo, message: str, reason: str, *, rejected_by: set[str] | None) -> None:
        self.failed += 1
        pod = q.pod
        log.debug("scheduler: %s: %s", meta.key(pod), message)
        self.recorder.warning(pod, "FailedScheduling", message)
        if rejected_by is None:
            self.queue.requeue_after_error(q)
        else:
            self.queue.add_unschedulable(q, rejected_by=rejected_by)
        self._spawn(self._write_condition(pod, reason, message), f"condition-{meta.key(pod)}")

    async def _write_condition(self, pod: Obj, reason: str, message: str) -> None:
        """PodScheduled=False through pods/status, carrying the resourceVersion read; on a conflict, read
        the pod again and retry (it may have been bound meanwhile: then nothing is written)."""
        for _ in range(STATUS_UPDATE_ATTEMPTS):
            if is_assigned(pod):
                return
            conditions = scheduled_condition(pod, reason, message, now=meta.now_rfc3339())
            if conditions is None:
                return
            patch = {"metadata": {"resourceVersion": meta.resource_version(pod)},
                     "status": {"conditions": conditions}}
            try:
                await self.client.patch(PODS, meta.name(pod), patch, "merge", meta.namespace(pod),
                                        field_manager=FIELD_MANAGER, subresource="status")
                return
            except NotFound:
                return
            except Conflict:
                try:
                    pod = await self.client.get(PODS, meta.name(pod), meta.namespace(pod))
                except NotFound:
                    return
            except (ApiException, TransportError) as e:
                log.warning("scheduler: writing the PodScheduled condition of %s failed: %s", meta.key(pod), e)
                return
