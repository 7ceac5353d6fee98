"""The node lifecycle controller: notices nodes whose kubelet went silent, taints nodes by their conditions,
and evicts pods from nodes with NoExecute taints they do not tolerate (Kubernetes' pkg/controller/nodelifecycle
and pkg/controller/tainteviction, run as one controller).

**Node health** (work keyed by node name; every node is looked at again every ``node_monitor_period``).
A node's heartbeats are its Lease in ``kube-node-lease`` (same name, ``spec.renewTime``) and the
``lastHeartbeatTime`` of its Ready condition. Like Kubernetes, the controller never compares those
timestamps with its own clock: it remembers *when it saw* one change (`NodeHealth.probe_time`, on its own
monotonic clock), so a kubelet whose clock is off is not punished. A node not heard from for
``node_monitor_grace_period`` gets Ready, MemoryPressure, DiskPressure and PIDPressure set to ``Unknown``
(reason ``NodeStatusUnknown``, message "Kubelet stopped posting node status."; a condition the kubelet never
posted is added with ``NodeStatusNeverUpdated``), written through ``nodes/status``. When that turns Ready
from True, the node gets the event NodeNotReady ("Node X status is now: NodeNotReady") and each of its pods
has its Ready condition set to False with the event NodeNotReady ("Node is not ready"). A node first seen
by this controller gets the grace period from that moment. The kubelet writes Ready=True again itself.

**Taints** follow the conditions, level-triggered on every pass (`reconciled_taints`):

- NoSchedule, as TaintNodesByCondition: Ready False ``node.kubernetes.io/not-ready``, Ready Unknown
  ``node.kubernetes.io/unreachable``, MemoryPressure/DiskPressure/PIDPressure/NetworkUnavailable True the
  matching ``node.kubernetes.io/*-pressure`` / ``network-unavailable`` taint, ``spec.unschedulable``
  ``node.kubernetes.io/unschedulable``;
- NoExecute, for taint-based eviction: Ready False ``not-ready``, Ready Unknown ``unreachable`` (the two
  are exclusive), stamped with ``timeAdded``.

Taints of other keys are never touched; those of these keys that no condition asks for are removed (so a
node that is Ready again loses them). Every write carries the resourceVersion it was decided from.

**Taint-based eviction** (work keyed by pod ``ns/name``): a pod on a node with NoExecute taints is deleted
at once if one taint is not tolerated; if all are, it is deleted when the first toleration with
``tolerationSeconds`` runs out, counted from the taint's ``timeAdded`` (Kubernetes counts from when its
controller noticed the taint; the taint's own time survives a controller restart). Tolerations without
``tolerationSeconds`` tolerate forever. The API server gives every pod 300 s for ``not-ready`` and
``unreachable``. Before deleting, the pod gets the condition DisruptionTarget (DeletionByTaintManager) and
the event TaintManagerEviction ("Marking for deletion Pod ns/name"); a planned eviction that is no longer
needed records "Cancelling deletion of Pod ns/name".

Not done, on purpose for now: Kubernetes' zones and disruption modes (it stops evicting when a whole zone
is down) and its eviction rate limit (``--node-eviction-rate``); the longer grace period for a node that
never posted status (``node_monitor_grace_period`` serves both); sparing DaemonSet pods.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import ApiException, Client, NotFound
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.controllers.context import ControllerContext, ControllerOptions

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = by_resource("", "v1", "nodes")
PODS = by_resource("", "v1", "pods")
LEASES = by_resource("coordination.k8s.io", "v1", "leases")
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_COMPONENT = "node-controller"
EVICTION_COMPONENT = "taint-eviction-controller"
POD_NODE_INDEX = "nodelifecycle-node"

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"

# Kubernetes' nodeConditionToTaintKeyStatusMap: condition type -> status -> taint key.
CONDITION_TAINTS: Mapping[str, Mapping[str, str]] = {
    "Ready": {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE},
    "MemoryPressure": {"True": TAINT_MEMORY_PRESSURE},
    "DiskPressure": {"True": TAINT_DISK_PRESSURE},
    "NetworkUnavailable": {"True": TAINT_NETWORK_UNAVAILABLE},
    "PIDPressure": {"True": TAINT_PID_PRESSURE},
}
READY_NO_EXECUTE: Mapping[str, str] = {"False": TAINT_NOT_READY, "Unknown": TAINT_UNREACHABLE}
MANAGED_TAINTS = frozenset(
    {(key, NO_SCHEDULE) for by_status in CONDITION_TAINTS.values() for key in by_status.values()}
    | {(TAINT_UNSCHEDULABLE, NO_SCHEDULE)}
    | {(key, NO_EXECUTE) for key in READY_NO_EXECUTE.values()})
# The conditions a silent node has set to Unknown (NetworkUnavailable belongs to the network, not the kubelet).
SILENT_CONDITION_TYPES = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")

REASON_NODE_NOT_READY = "NodeNotReady"
REASON_EVICTION = "TaintManagerEviction"
DISRUPTION_TARGET = {"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                     "message": "Taint manager: deleting due to NoExecute taint"}


# --- node health (pure) -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NodeHealth:
    """What the controller last saw of a node's heartbeats, and when (``probe_time``, its monotonic clock)."""

    probe_time: float
    heartbeat: str | None = None
    lease_renew: datetime | None = None


@dataclass(frozen=True, slots=True)
class HealthPlan:
    """``conditions``: the node's new ``status.conditions`` (None: leave them); ``became_not_ready``: this
    write turns Ready from True (record the event and mark its pods not ready)."""

    conditions: list[Obj] | None = None
    became_not_ready: bool = False


def condition(obj: Obj, ctype: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == ctype:
            return cond
    return None


def condition_status(obj: Obj, ctype: str) -> str | None:
    cond = condition(obj, ctype)
    return str(cond.get("status")) if cond is not None else None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return meta.parse_rfc3339(str(value))
    except ValueError:
        return None


def observe_health(prev: NodeHealth | None, node: Obj, lease: Obj | None, now: float) -> NodeHealth:
    """Fold the node's current heartbeats into what was seen before: ``probe_time`` moves to ``now`` when
    the Ready heartbeat changed or the Lease was renewed since (and on first sight)."""
    ready = condition(node, "Ready")
    heartbeat = str((ready or {}).get("lastHeartbeatTime") or "") or None
    renew = _parse_time(((lease or {}).get("spec") or {}).get("renewTime"))
    if prev is None:
        return NodeHealth(now, heartbeat, renew)
    probe = prev.probe_time
    if heartbeat != prev.heartbeat:
        probe = now
    lease_renew = prev.lease_renew
    if renew is not None and (lease_renew is None or renew > lease_renew):
        probe, lease_renew = now, renew
    return NodeHealth(probe, heartbeat, lease_renew)


def silent_conditions(node: Obj, *, now: str) -> list[Obj] | None:
    """The node's conditions with Ready and the pressure conditions Unknown (Kubernetes' reasons and
    messages); None when they already are."""
    conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
    changed = False
    for ctype in SILENT_CONDITION_TYPES:
        cur = next((c for c in conditions if c.get("type") == ctype), None)
        if cur is None:
            conditions.append({"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                               "message": "Kubelet never posted node status.",
                               "lastHeartbeatTime": meta.metadata(node).get("creationTimestamp"),
                               "lastTransitionTime": now})
            changed = True
        elif cur.get("status") != "Unknown":
            cur.update(status="Unknown", reason="NodeStatusUnknown",
                       message="Kubelet stopped posting node status.", lastTransitionTime=now)
            changed = True
    return conditions if changed else None


def plan_health(node: Obj, health: NodeHealth, *, now: float, grace: float, now_text: str) -> HealthPlan:
    """A node not heard from for ``grace`` seconds (on our clock) is marked Unknown."""
    if now <= health.probe_time + grace:
        return HealthPlan()
    conditions = silent_conditions(node, now=now_text)
    return HealthPlan(conditions, conditions is not None and condition_status(node, "Ready") == "True")


# --- taints (pure) ----------------------------------------------------------------------------------

def desired_taints(node: Obj) -> set[tuple[str, str]]:
    """The (key, effect) pairs this controller wants on ``node``, from its conditions and unschedulable."""
    out: set[tuple[str, str]] = set()
    for ctype, by_status in CONDITION_TAINTS.items():
        key = by_status.get(condition_status(node, ctype) or "")
        if key:
            out.add((key, NO_SCHEDULE))
    if (node.get("spec") or {}).get("unschedulable"):
        out.add((TAINT_UNSCHEDULABLE, NO_SCHEDULE))
    key = READY_NO_EXECUTE.get(condition_status(node, "Ready") or "")
    if key:
        out.add((key, NO_EXECUTE))
    return out


def reconciled_taints(node: Obj, *, now: str) -> list[Obj] | None:
    """``spec.taints`` with this controller's taints as the conditions ask (others kept as they are, in
    order; new ones appended, NoExecute ones with ``timeAdded``); None when nothing changes."""
    current = [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
    want = desired_taints(node)
    out: list[Obj] = []
    present: set[tuple[str, str]] = set()
    for taint in current:
        pair = (str(taint.get("key") or ""), str(taint.get("effect") or ""))
        if pair in MANAGED_TAINTS and pair not in want:
            continue
        out.append(taint)
        present.add(pair)
    for key, effect in sorted(want - present):
        added: Obj = {"key": key, "effect": effect}
        if effect == NO_EXECUTE:
            added["timeAdded"] = now
        out.append(added)
    return out if out != current else None


def no_execute_taints(node: Obj | None) -> list[Obj]:
    if node is None:
        return []
    return [t for t in (node.get("spec") or {}).get("taints") or []
            if isinstance(t, dict) and t.get("effect") == NO_EXECUTE]


# --- pods (pure) ------------------------------------------------------------------------------------

def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def plan_eviction(pod: Obj, taints: Sequence[Obj], *, now: datetime, noticed: datetime) -> datetime | None:
    """When ``pod`` must go given its node's NoExecute ``taints``: ``now`` when one is not tolerated, the
    earliest end of a used toleration's ``tolerationSeconds`` (from the taint's ``timeAdded``, else from
    ``noticed``), or None when it may stay for good."""
    if not taints:
        return None
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)]
    deadlines: list[datetime] = []
    for taint in taints:
        used = next((t for t in tolerations if tolerates(t, taint)), None)
        if used is None:
            return now
        seconds = used.get("tolerationSeconds")
        if seconds is None:
            continue
        if int(seconds) <= 0:
            return now
        start = _parse_time(taint.get("timeAdded")) or noticed
        deadlines.append(start + timedelta(seconds=int(seconds)))
    return min(deadlines) if deadlines else None


def not_ready_status(pod: Obj, *, now: str) -> Obj | None:
    """The pod's status with its Ready condition False (MarkPodsNotReady); None when it has no Ready
    condition or it is False already."""
    status = copy.deepcopy(pod.get("status") or {})
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            if cond.get("status") == "False":
                return None
            cond.update(status="False", lastTransitionTime=now)
            return status
    return None


def with_condition(status: Obj, new: Obj, *, now: str) -> Obj | None:
    """``status`` with condition ``new`` set (UpdatePodCondition); None when it is already so."""
    out = copy.deepcopy(status)
    conditions = out.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == new["type"]:
            if all(cond.get(k) == v for k, v in new.items()):
                return None
            if cond.get("status") != new["status"]:
                cond["lastTransitionTime"] = now
            cond.update(new)
            return out
    conditions.append({**new, "lastProbeTime": None, "lastTransitionTime": now})
    return out


def node_of(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


# --- the controller (I/O) ---------------------------------------------------------------------------

class NodeLifecycleController:
    """See the module docstring. Two work queues: node names (health and taints) and pod keys (eviction).

    ``clock`` is the monotonic clock heartbeats are timed with."""

    name = "nodelifecycle"

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.client: Client = ctx.client
        self.options: ControllerOptions = ctx.options
        self.node_events = ctx.recorder(NODE_COMPONENT)
        self.eviction_events = ctx.recorder(EVICTION_COMPONENT)
        self.node_queue: RateLimitingQueue[str] = RateLimitingQueue("nodelifecycle")
        self.pod_queue: RateLimitingQueue[str] = RateLimitingQueue("taint-eviction")
        self._clock = clock
        self._nodes: SharedInformer | None = None
        self._leases: SharedInformer | None = None
        self._pods: SharedInformer | None = None
        self._health: dict[str, NodeHealth] = {}
        # Nodes whose pods still have to be marked not ready after the node went silent.
        self._mark_pods: set[str] = set()
        # Pod key -> when an eviction in the future was first planned for it.
        self._planned: dict[str, datetime] = {}
        # Pod key -> uid of the pod deleted, until the cache shows it going (a stale cache must not evict twice).
        self._evicted: dict[str, str] = {}

    def setup(self, factory: InformerFactory) -> None:
        self._nodes = factory.informer(NODES)
        self._nodes.add_handler(on_add=self._node_added, on_update=self._node_updated,
                                on_delete=self._node_deleted)
        self._leases = factory.informer(LEASES, NODE_LEASE_NAMESPACE)
        self._pods = factory.informer(PODS)
        self._pods.add_indexers({POD_NODE_INDEX: lambda pod: [node_of(pod)] if node_of(pod) else []})
        self._pods.add_handler(on_add=self._pod_changed, on_update=lambda _old, new: self._pod_changed(new),
                               on_delete=self._pod_deleted)

    async def run(self, workers: int) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run_workers(self.node_queue, self.reconcile_node, workers))
                tg.create_task(run_workers(self.pod_queue, self.reconcile_pod, workers))
        finally:
            self.node_queue.shutdown()
            self.pod_queue.shutdown()

    # --- caches ------------------------------------------------------------------------------------

    def _informers(self) -> tuple[SharedInformer, SharedInformer, SharedInformer]:
        if self._nodes is None or self._leases is None or self._pods is None:
            raise RuntimeError("NodeLifecycleController.setup() was not called")
        return self._nodes, self._leases, self._pods

    def pods_on(self, node_name: str) -> list[Obj]:
        return self._informers()[2].by_index(POD_NODE_INDEX, node_name)

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        self.node_queue.add(meta.name(node))
        if no_execute_taints(node):
            self._enqueue_pods_of(meta.name(node))

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self.node_queue.add(meta.name(new))
        if no_execute_taints(old) != no_execute_taints(new):
            self._enqueue_pods_of(meta.name(new))

    def _node_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        name = meta.name(object_of(gone))
        self.node_queue.add(name)
        self._enqueue_pods_of(name)

    def _enqueue_pods_of(self, node_name: str) -> None:
        for pod in self.pods_on(node_name):
            self.pod_queue.add(meta.key(pod))

    def _pod_changed(self, pod: Obj) -> None:
        key = meta.key(pod)
        if key in self._planned or no_execute_taints(self._informers()[0].get(node_of(pod))):
            self.pod_queue.add(key)

    def _pod_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        key = meta.key(object_of(gone))
        if key in self._planned or key in self._evicted:
            self.pod_queue.add(key)

    # --- node health and taints --------------------------------------------------------------------

    async def reconcile_node(self, name: str) -> float | None:
        nodes, leases, _ = self._informers()
        node = nodes.get(name)
        if node is None:
            self._health.pop(name, None)
            self._mark_pods.discard(name)
            return None
        now = self._clock()
        health = observe_health(self._health.get(name), node, leases.get_by_name(name, NODE_LEASE_NAMESPACE), now)
        self._health[name] = health
        now_text = meta.now_rfc3339()
        plan = plan_health(node, health, now=now, grace=self.options.node_monitor_grace_period, now_text=now_text)
        if plan.conditions is not None:
            written = await self._write_conditions(node, plan.conditions)
            if written is None:
                return None
            node = written
            log.info("nodelifecycle: node %s stopped posting status; marked Unknown", name)
            if plan.became_not_ready:
                self.node_events.normal(node, REASON_NODE_NOT_READY,
                                        f"Node {name} status is now: {REASON_NODE_NOT_READY}")
                self._mark_pods.add(name)
        taints = reconciled_taints(node, now=now_text)
        if taints is not None:
            written = await self._write_taints(node, taints)
            if written is None:
                return None
        if name in self._mark_pods:
            await self._mark_pods_not_ready(name, now_text)
            self._mark_pods.discard(name)
        return self.options.node_monitor_period

    async def _write_conditions(self, node: Obj, conditions: list[Obj]) -> Obj | None:
        new = copy.deepcopy(node)
        new.setdefault("status", {})["conditions"] = conditions
        try:
            return await self.client.update_status(NODES, new, field_manager=NODE_COMPONENT)
        except NotFound:
            return None

    async def _write_taints(self, node: Obj, taints: list[Obj]) -> Obj | None:
        new = copy.deepcopy(node)
        spec = new.setdefault("spec", {})
        if taints:
            spec["taints"] = taints
        else:
            spec.pop("taints", None)
        try:
            written = await self.client.update(NODES, new, field_manager=NODE_COMPONENT)
        except NotFound:
            return None
        log.info("nodelifecycle: node %s taints now %s", meta.name(node),
                 ", ".join(f"{t['key']}:{t['effect']}" for t in taints) or "none")
        return written

    async def _mark_pods_not_ready(self, node_name: str, now: str) -> None:
        """Set Ready=False on the node's pods; raises (the node is tried again) if a write failed."""
        failures: list[str] = []
        for pod in self.pods_on(node_name):
            status = not_ready_status(pod, now=now)
            if status is None:
                continue
            try:
                await self.client.update_status(PODS, {**pod, "status": status}, field_manager=NODE_COMPONENT)
            except NotFound:
                continue
            except ApiException as e:
                failures.append(f"{meta.key(pod)}: {e.message}")
                continue
            self.node_events.warning(pod, REASON_NODE_NOT_READY, "Node is not ready")
        if failures:
            raise RuntimeError(f"marking the pods of node {node_name} not ready: " + "; ".join(failures))

    # --- taint-based eviction ----------------------------------------------------------------------

    async def reconcile_pod(self, key: str) -> float | None:
        nodes, _, pods = self._informers()
        pod = pods.get(key)
        if pod is None or meta.is_being_deleted(pod):
            self._planned.pop(key, None)
            self._evicted.pop(key, None)
            return None
        if self._evicted.get(key) == meta.uid(pod):
            return None
        node = nodes.get(node_of(pod)) if node_of(pod) else None
        now = datetime.now(UTC)
        evict_at = plan_eviction(pod, no_execute_taints(node), now=now, noticed=self._planned.get(key, now))
        if evict_at is None:
            if self._planned.pop(key, None) is not None:
                self.eviction_events.normal(pod, REASON_EVICTION, f"Cancelling deletion of Pod {key}")
            return None
        wait = (evict_at - now).total_seconds()
        if wait > 0:
            self._planned.setdefault(key, now)
            return wait
        await self._evict(pod, key)
        self._planned.pop(key, None)
        self._evicted[key] = meta.uid(pod)
        return None

    async def _evict(self, pod: Obj, key: str) -> None:
        log.info("taint eviction: deleting pod %s from node %s", key, node_of(pod))
        self.eviction_events.normal(pod, REASON_EVICTION, f"Marking for deletion Pod {key}")
        namespace, name = meta.split_key(key)
        status = with_condition(pod.get("status") or {}, DISRUPTION_TARGET, now=meta.now_rfc3339())
        try:
            if status is not None:
                pod = await self.client.update_status(PODS, {**pod, "status": status},
                                                      field_manager=EVICTION_COMPONENT)
            await self.client.delete(PODS, name, namespace, preconditions={"uid": meta.uid(pod)})
        except NotFound:
            pass  # gone already

