"""The ReplicaSet controller: keeps ``spec.replicas`` pods matching each ReplicaSet's selector alive
(Kubernetes' pkg/controller/replicaset/replica_set.go).

One reconcile of ReplicaSet R (key ``ns/name``), reading only the informer caches:

1. the candidate pods: active pods (neither terminal nor being deleted) in R's namespace that R controls or
   that nobody controls (a pod index by controller uid);
2. claim them (`plan_claims`, ClaimPods): orphans matching R's selector are adopted (a strategic merge patch
   adding R's controller reference, after a live GET that R is not being deleted), pods R controls that no
   longer match are released (the reference removed), unless R itself is being deleted;
3. if R's expectations are satisfied and R is not being deleted, act on ``diff = len(pods) - replicas``
   (`plan_replicas`): create missing pods from the template in slow-start batches (1, 2, 4, ...; a failing
   batch stops the rest), or delete the least valuable surplus pods (`deletion_order`, Kubernetes' ranking),
   at most ``burst_replicas`` (500) per pass. Expectations are raised before the writes and lowered by the
   pod informer's events, so that a cache that has not seen the new pods yet never creates them twice;
4. always recompute the status (`calculate_status`) and write it through ``replicasets/status`` only when it
   changed; when a ready pod is not available yet (``minReadySeconds``), look again when it should be.

Creation and deletion errors become ``FailedCreate``/``FailedDelete`` events and the ``ReplicaFailure``
condition, and the key is retried with backoff. Writes carry the resourceVersion they were decided from; a
conflict means the cache was behind, and the key is looked at again shortly.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.api.selectors import LabelSelector, label_selector_from_dict, selector_from_set
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import ApiException, Conflict, Invalid, NotFound, TransportError
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.controllers import podutil
from kubelite.controllers.context import ControllerContext
from kubelite.controllers.expectations import EXPECTATIONS_TIMEOUT_SECONDS, ControllerExpectations

log = logging.getLogger(__name__)

Obj = dict[str, Any]
REPLICASETS = by_resource("apps", "v1", "replicasets")
PODS = by_resource("", "v1", "pods")
COMPONENT = "replicaset-controller"
FIELD_MANAGER = "replicaset-controller"
# Kubernetes' BurstReplicas and SlowStartInitialBatchSize.
BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH_SIZE = 1
REPLICA_FAILURE = "ReplicaFailure"
# Pods by "namespace/<uid of their controller>", and "namespace/" for pods without one.
POD_CONTROLLER_INDEX = "replicaset-controller/pod-controller"
# ReplicaSets by the uid of their own controller (a Deployment): the siblings whose pods rank node crowding.
RS_CONTROLLER_INDEX = "replicaset-controller/rs-controller"
# Availability is strict ("ready for longer than minReadySeconds"): look a little after the instant.
AVAILABILITY_RECHECK_MARGIN_SECONDS = 0.05
# A write refused because the cache was behind is decided again after this long (its watch event is near).
CONFLICT_RETRY_SECONDS = 0.1
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


# --- the plan (pure) --------------------------------------------------------------------------------

def desired_replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 1) or 0)


def min_ready_seconds(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("minReadySeconds") or 0)


def selector_of(rs: Obj) -> LabelSelector:
    """The pod selector; raises ValueError for a selector that cannot be parsed."""
    return label_selector_from_dict((rs.get("spec") or {}).get("selector"))


def slow_start_batches(count: int, initial: int = SLOW_START_INITIAL_BATCH_SIZE) -> list[int]:
    """Batch sizes for ``count`` calls: ``initial``, then doubling, the last one cut to what is left."""
    batches: list[int] = []
    size = min(count, initial)
    remaining = count
    while size > 0:
        batches.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return batches


def pod_name_prefix(rs_name: str) -> str:
    """``<rs>-`` as the pods' generateName (Kubernetes drops the dash when the name would be too long)."""
    prefix = f"{rs_name}-"
    return prefix if len(prefix) <= 253 else rs_name


def pod_from_template(rs: Obj) -> Obj:
    """A new pod from ``rs``'s template: its labels, annotations and finalizers, the RS as controller."""
    template = (rs.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    md: Obj = {"generateName": pod_name_prefix(meta.name(rs)), "namespace": meta.namespace(rs),
               "ownerReferences": [controller_ref(rs)]}
    for field in ("labels", "annotations", "finalizers"):
        if tmeta.get(field):
            md[field] = copy.deepcopy(tmeta[field])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": copy.deepcopy(template.get("spec") or {})}


def controller_ref(rs: Obj) -> Obj:
    ref = meta.new_controller_ref(rs, block_owner_deletion=True)
    ref["apiVersion"] = REPLICASETS.api_version
    ref["kind"] = REPLICASETS.kind
    return ref


@dataclass(frozen=True, slots=True)
class Claims:
    """``owned``: pods the RS controls that match it; ``adopt``: orphans to take; ``release``: pods it controls
    that no longer match."""

    owned: tuple[Obj, ...]
    adopt: tuple[Obj, ...]
    release: tuple[Obj, ...]


def plan_claims(rs: Obj, pods: Iterable[Obj], selector: LabelSelector) -> Claims:
    """ClaimPods' decisions over ``pods`` (other controllers' pods are ignored)."""
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    rs_uid, rs_deleting, namespace = meta.uid(rs), meta.is_being_deleted(rs), meta.namespace(rs)
    for pod in pods:
        ref = meta.controller_ref(pod)
        matches = selector.matches(meta.labels(pod))
        if ref is not None:
            if ref.get("uid") != rs_uid:
                continue
            if matches:
                owned.append(pod)
            elif not rs_deleting:
                release.append(pod)
        elif (matches and not rs_deleting and not meta.is_being_deleted(pod)
              and meta.namespace(pod) == namespace):
            adopt.append(pod)
    return Claims(tuple(owned), tuple(adopt), tuple(release))


def adoption_patch(rs: Obj, pod: Obj) -> Obj:
    """The strategic merge patch that makes ``rs`` the controller of ``pod`` (uid and version as preconditions)."""
    return {"metadata": {"ownerReferences": [controller_ref(rs)], "uid": meta.uid(pod),
                         "resourceVersion": meta.resource_version(pod)}}


def release_patch(rs: Obj, pod: Obj) -> Obj:
    """The strategic merge patch that removes ``rs``'s reference from ``pod``."""
    return {"metadata": {"ownerReferences": [{"$patch": "delete", "uid": meta.uid(rs)}], "uid": meta.uid(pod),
                         "resourceVersion": meta.resource_version(pod)}}


@dataclass(frozen=True, slots=True)
class _Ranked:
    """One pod with what the ranking compares, computed once."""

    pod: Obj
    uid: str
    assigned: bool
    phase: int
    ready: bool
    cost: int
    rank: int
    ready_since: datetime | None
    restarts: int
    created: datetime | None


def _after_or_zero(t1: datetime | None, t2: datetime | None) -> bool:
    if t1 is None or t2 is None:
        return t1 is None
    return t1 > t2


def _log_rank_diff(t1: datetime, t2: datetime, now: datetime) -> int:
    """Difference of floor(log2(age in ns)): ages in the same power-of-two bucket compare equal."""
    def rank(t: datetime) -> int:
        ns = (now - t) // timedelta(microseconds=1) * 1000
        return int(math.log2(ns)) if ns > 0 else -1
    return rank(t1) - rank(t2)


def _compare_times(t1: datetime | None, t2: datetime | None, a: _Ranked, b: _Ranked, now: datetime | None) -> bool:
    if now is None or t1 is None or t2 is None:
        return _after_or_zero(t1, t2)
    diff = _log_rank_diff(t1, t2, now)
    if diff == 0:
        return a.uid < b.uid  # a pseudo-random order among equals
    return diff < 0


def _less(a: _Ranked, b: _Ranked, now: datetime | None) -> bool:
    """ActivePodsWithRanks.Less: whether ``a`` should go before ``b``."""
    if a.assigned != b.assigned:  # 1. unassigned < assigned
        return not a.assigned
    if a.phase != b.phase:  # 2. Pending < Unknown < Running
        return a.phase < b.phase
    if a.ready != b.ready:  # 3. not ready < ready
        return not a.ready
    if a.cost != b.cost:  # 4. lower pod-deletion-cost < higher
        return a.cost < b.cost
    if a.rank != b.rank:  # 5. more siblings on the same node < fewer
        return a.rank > b.rank
    if a.ready and b.ready and a.ready_since != b.ready_since:  # 6. ready for less time < more
        return _compare_times(a.ready_since, b.ready_since, a, b, now)
    if a.restarts != b.restarts:  # 7. more restarts < fewer
        return a.restarts > b.restarts
    if a.created != b.created:  # 8. newer < older
        return _compare_times(a.created, b.created, a, b, now)
    return False


def deletion_order(pods: Sequence[Obj], related: Iterable[Obj], now: datetime | None) -> list[Obj]:
    """``pods`` from the most to the least preferred for deletion (Kubernetes' ActivePodsWithRanks, with
    pod-deletion-cost and LogarithmicScaleDown): unscheduled before scheduled, Pending before Unknown before
    Running, not ready before ready, lower deletion cost first, pods on nodes crowded with ``related`` active
    pods first, ready for a shorter time first, more restarts first, newer first. Ties keep their order.
    ``now=None`` compares times exactly instead of by power-of-two age buckets."""
    on_node: dict[str, int] = {}
    for pod in related:
        if podutil.is_active(pod):
            on_node[podutil.node_name(pod)] = on_node.get(podutil.node_name(pod), 0) + 1
    ranked = [_Ranked(pod=p, uid=meta.uid(p), assigned=bool(podutil.node_name(p)),
                      phase=_PHASE_ORDINAL.get(podutil.phase(p), 0), ready=podutil.is_ready(p),
                      cost=podutil.deletion_cost(p), rank=on_node.get(podutil.node_name(p), 0),
                      ready_since=podutil.ready_since(p), restarts=podutil.max_container_restarts(p),
                      created=podutil.creation_time(p)) for p in pods]

    def cmp(a: _Ranked, b: _Ranked) -> int:
        return -1 if _less(a, b, now) else 1 if _less(b, a, now) else 0

    return [r.pod for r in sorted(ranked, key=functools.cmp_to_key(cmp))]


@dataclass(frozen=True, slots=True)
class ReplicaDiff:
    """Create ``create`` pods, or delete ``delete`` (never both)."""

    create: int
    delete: tuple[Obj, ...]


def plan_replicas(rs: Obj, pods: Sequence[Obj], related: Iterable[Obj], *, now: datetime | None,
                  burst: int = BURST_REPLICAS) -> ReplicaDiff:
    """manageReplicas' decision for the claimed active ``pods``: at most ``burst`` creations or deletions."""
    diff = len(pods) - desired_replicas(rs)
    if diff < 0:
        return ReplicaDiff(min(-diff, burst), ())
    if diff > 0:
        diff = min(diff, burst)
        victims = list(pods) if diff >= len(pods) else deletion_order(pods, related, now)
        return ReplicaDiff(0, tuple(victims[:diff]))
    return ReplicaDiff(0, ())


def calculate_status(rs: Obj, pods: Sequence[Obj], terminating: int, manage_error: str | None, *,
                     now: datetime) -> Obj:
    """The status ``rs`` should have for its claimed active ``pods`` (calculateStatus). Fields the controller
    does not own are kept; counters are omitted when zero, as the Go API omits them."""
    status: Obj = copy.deepcopy(rs.get("status") or {})
    template = (rs.get("spec") or {}).get("template") or {}
    template_labels = selector_from_set((template.get("metadata") or {}).get("labels"))
    min_ready = min_ready_seconds(rs)
    counts = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if template_labels.matches(meta.labels(p))),
        "readyReplicas": sum(1 for p in pods if podutil.is_ready(p)),
        "availableReplicas": sum(1 for p in pods if podutil.is_available(p, min_ready, now)),
        "observedGeneration": meta.generation(rs),
    }
    for field, value in counts.items():
        if value or field == "replicas":
            status[field] = value
        else:
            status.pop(field, None)
    status["terminatingReplicas"] = terminating
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    failure = next((c for c in conditions if c.get("type") == REPLICA_FAILURE), None)
    if manage_error is not None and failure is None:
        reason = "FailedCreate" if len(pods) < desired_replicas(rs) else "FailedDelete"
        conditions.append({"type": REPLICA_FAILURE, "status": "True", "lastTransitionTime": meta.format_rfc3339(now),
                           "reason": reason, "message": manage_error})
    elif manage_error is None and failure is not None:
        conditions = [c for c in conditions if c.get("type") != REPLICA_FAILURE]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    return status


_STATUS_FIELDS = ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas", "terminatingReplicas",
                  "observedGeneration")


def status_changed(rs: Obj, new: Obj) -> bool:
    """Whether writing ``new`` would change what the controller owns in ``rs``'s status."""
    old = rs.get("status") or {}
    return (any(old.get(f) != new.get(f) for f in _STATUS_FIELDS)
            or (old.get("conditions") or []) != (new.get("conditions") or []))


def next_availability_check(rs: Obj, pods: Iterable[Obj], now: datetime) -> float | None:
    """Seconds until the first ready pod turns available (``minReadySeconds``), if any is waiting."""
    waits = [w for p in pods if (w := podutil.seconds_until_available(p, min_ready_seconds(rs), now)) is not None]
    return min(waits) + AVAILABILITY_RECHECK_MARGIN_SECONDS if waits else None


def pod_key(pod: Obj) -> str:
    return f"{meta.namespace(pod)}/{meta.name(pod)}"


# --- the controller (I/O) ---------------------------------------------------------------------------

def _pod_controller_index(pod: Obj) -> list[str]:
    ref = meta.controller_ref(pod)
    uid = str(ref.get("uid") or "") if ref is not None else ""
    return [f"{meta.namespace(pod)}/{uid}"]


def _rs_controller_index(rs: Obj) -> list[str]:
    ref = meta.controller_ref(rs)
    return [str(ref["uid"])] if ref is not None and ref.get("uid") else []


def _namespace_terminating(e: ApiException) -> bool:
    causes = e.details.get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Outcome:
    """What the writes of one reconcile ran into."""

    error: str | None = None
    retry_soon: bool = False


class ReplicaSetController:
    """See the module docstring. Keys are ``namespace/name`` of ReplicaSets."""

    name = "replicaset"

    def __init__(self, ctx: ControllerContext, *, burst_replicas: int = BURST_REPLICAS,
                 expectations_ttl: float = EXPECTATIONS_TIMEOUT_SECONDS,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.client = ctx.client
        self.recorder = ctx.recorder(COMPONENT)
        self.burst_replicas = burst_replicas
        self.expectations = ControllerExpectations(ttl=expectations_ttl)
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("replicaset")
        self._clock = clock
        self._replicasets: SharedInformer | None = None
        self._pods: SharedInformer | None = None

    def setup(self, factory: InformerFactory) -> None:
        self._replicasets = factory.informer(REPLICASETS)
        self._replicasets.add_indexers({RS_CONTROLLER_INDEX: _rs_controller_index})
        self._replicasets.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self._pods = factory.informer(PODS)
        self._pods.add_indexers({POD_CONTROLLER_INDEX: _pod_controller_index})
        self._pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    async def run(self, workers: int) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    @property
    def _informers(self) -> tuple[SharedInformer, SharedInformer]:
        if self._replicasets is None or self._pods is None:
            raise RuntimeError("ReplicaSetController.setup() was not called")
        return self._replicasets, self._pods

    # --- handlers: bookkeeping and enqueue only ----------------------------------------------------

    def _rs_added(self, rs: Obj) -> None:
        self.queue.add(meta.key(rs))

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if meta.uid(old) != meta.uid(new):  # deleted and created again between two events
            self._rs_deleted(old)
        self.queue.add(meta.key(new))

    def _rs_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        key = meta.key(object_of(gone))
        self.expectations.delete(key)  # a new ReplicaSet with this name starts clean
        self.queue.add(key)

    def _pod_added(self, pod: Obj) -> None:
        if meta.is_being_deleted(pod):
            # Seen for the first time already going (a restart): not a creation to count.
            self._pod_deleted(pod)
            return
        ref = meta.controller_ref(pod)
        if ref is not None:
            rs = self._resolve(meta.namespace(pod), ref)
            if rs is not None:
                self.expectations.creation_observed(meta.key(rs))
                self.queue.add(meta.key(rs))
            return
        for rs in self._matching_replicasets(pod):  # an orphan: whoever selects it may adopt it
            self.queue.add(meta.key(rs))

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta.resource_version(old) == meta.resource_version(new):
            return  # a periodic resync: the level-triggered RS resync covers it
        labels_changed = meta.labels(old) != meta.labels(new)
        if meta.is_being_deleted(new):
            # A graceful deletion starts: act now rather than when the kubelet is done.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = meta.controller_ref(old), meta.controller_ref(new)
        if old_ref != new_ref and old_ref is not None:
            rs = self._resolve(meta.namespace(old), old_ref)
            if rs is not None:
                self.queue.add(meta.key(rs))
        if new_ref is not None:
            rs = self._resolve(meta.namespace(new), new_ref)
            if rs is not None:
                self.queue.add(meta.key(rs))
            return
        if labels_changed or old_ref != new_ref:
            for rs in self._matching_replicasets(new):
                self.queue.add(meta.key(rs))

    def _pod_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        pod = object_of(gone)
        ref = meta.controller_ref(pod)
        if ref is None:
            return
        rs = self._resolve(meta.namespace(pod), ref)
        if rs is None:
            return
        self.expectations.deletion_observed(meta.key(rs), pod_key(pod))
        self.queue.add(meta.key(rs))

    def _resolve(self, namespace: str, ref: Obj) -> Obj | None:
        """The cached ReplicaSet a controller reference names, if it is still the same object."""
        if ref.get("kind") != REPLICASETS.kind or not str(ref.get("apiVersion") or "").startswith("apps/"):
            return None
        rs = self._informers[0].get_by_name(str(ref.get("name") or ""), namespace)
        return rs if rs is not None and meta.uid(rs) == ref.get("uid") else None

    def _matching_replicasets(self, pod: Obj) -> list[Obj]:
        out = []
        for rs in self._informers[0].list(meta.namespace(pod)):
            try:
                selector = selector_of(rs)
            except ValueError:
                continue
            if not selector.empty and selector.matches(meta.labels(pod)):
                out.append(rs)
        if len(out) > 1:
            log.warning("user error: more than one ReplicaSet selects pod %s with labels %s: %s", meta.key(pod),
                        meta.labels(pod), ", ".join(meta.name(rs) for rs in out))
        return out

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """One pass over ReplicaSet ``key``; returns when to look again (None: only on events)."""
        replicasets, pods_informer = self._informers
        rs = replicasets.get(key)
        if rs is None:
            self.expectations.delete(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_of(rs)
        except ValueError as e:
            self.recorder.warning(rs, "InvalidSelector", f"invalid selector: {e}")
            return None
        namespace = meta.namespace(rs)
        candidates = (pods_informer.by_index(POD_CONTROLLER_INDEX, f"{namespace}/{meta.uid(rs)}")
                      + pods_informer.by_index(POD_CONTROLLER_INDEX, f"{namespace}/"))
        outcome = _Outcome()
        claims = plan_claims(rs, [p for p in candidates if podutil.is_active(p)], selector)
        pods = list(claims.owned) + await self._adopt(rs, claims.adopt, outcome)
        await self._release(rs, claims.release, outcome)

        now = self._clock()
        if needs_sync and not meta.is_being_deleted(rs):
            related = self._related_pods(rs)
            diff = plan_replicas(rs, pods, related, now=now, burst=self.burst_replicas)
            if diff.create:
                await self._create(rs, key, diff.create, outcome)
            elif diff.delete:
                await self._delete(rs, key, diff.delete, outcome)

        terminating = sum(1 for p in candidates if meta.is_controlled_by(p, rs) and podutil.is_terminating(p)
                          and selector.matches(meta.labels(p)))
        status = calculate_status(rs, pods, terminating, outcome.error, now=now)
        if status_changed(rs, status) and not await self._write_status(rs, status):
            return None  # the ReplicaSet is gone
        if outcome.error is not None:
            raise RuntimeError(f"ReplicaSet {key}: {outcome.error}")  # retried with backoff
        waits = [CONFLICT_RETRY_SECONDS] if outcome.retry_soon else []
        available_in = next_availability_check(rs, pods, now)
        if available_in is not None:
            waits.append(available_in)
        return min(waits, default=None)

    def _related_pods(self, rs: Obj) -> list[Obj]:
        """The pods of every ReplicaSet sharing ``rs``'s controller (for node crowding); none without one."""
        ref = meta.controller_ref(rs)
        if ref is None or not ref.get("uid"):
            return []
        replicasets, pods_informer = self._informers
        namespace_pods = pods_informer.list(meta.namespace(rs))
        seen: dict[str, Obj] = {}
        for sibling in replicasets.by_index(RS_CONTROLLER_INDEX, str(ref["uid"])):
            try:
                selector = selector_of(sibling)
            except ValueError:
                continue
            for pod in namespace_pods:
                if selector.matches(meta.labels(pod)):
                    seen.setdefault(meta.uid(pod), pod)
        return list(seen.values())

    # --- claims ------------------------------------------------------------------------------------

    async def _adopt(self, rs: Obj, orphans: Sequence[Obj], outcome: _Outcome) -> list[Obj]:
        """Adopt ``orphans``; returns the pods now controlled by ``rs``."""
        if not orphans:
            return []
        await self._check_can_adopt(rs)
        adopted: list[Obj] = []
        for pod in orphans:
            try:
                adopted.append(await self.client.patch(PODS, meta.name(pod), adoption_patch(rs, pod), "strategic",
                                                       meta.namespace(pod), field_manager=FIELD_MANAGER))
                log.info("replicaset %s adopted pod %s", meta.key(rs), meta.key(pod))
            except NotFound:
                continue
            except Conflict:
                outcome.retry_soon = True  # changed since the cache saw it: decide again
        return adopted

    async def _check_can_adopt(self, rs: Obj) -> None:
        """Kubernetes' RecheckDeletionTimestamp: a live read that ``rs`` is still there and not being deleted,
        so that an RS deleted in the meantime never adopts (the GC would then orphan nothing)."""
        fresh = await self.client.get(REPLICASETS, meta.name(rs), meta.namespace(rs))
        if meta.uid(fresh) != meta.uid(rs):
            raise RuntimeError(f"original ReplicaSet {meta.key(rs)} is gone: got uid {meta.uid(fresh)}, "
                               f"wanted {meta.uid(rs)}")
        if meta.is_being_deleted(fresh):
            raise RuntimeError(f"{meta.key(rs)} has just been deleted at {meta.deletion_timestamp(fresh)}")

    async def _release(self, rs: Obj, pods: Sequence[Obj], outcome: _Outcome) -> None:
        for pod in pods:
            try:
                await self.client.patch(PODS, meta.name(pod), release_patch(rs, pod), "strategic",
                                        meta.namespace(pod), field_manager=FIELD_MANAGER)
                log.info("replicaset %s released pod %s", meta.key(rs), meta.key(pod))
            except (NotFound, Invalid):
                continue  # gone, or no longer ours
            except Conflict:
                outcome.retry_soon = True

    # --- creations and deletions -------------------------------------------------------------------

    async def _create(self, rs: Obj, key: str, count: int, outcome: _Outcome) -> None:
        """Create ``count`` pods in slow-start batches; a batch with a failure ends the run."""
        self.expectations.expect_creations(key, count)
        log.info("replicaset %s: too few replicas (need %d), creating %d", key, desired_replicas(rs), count)
        done = 0
        for size in slow_start_batches(count):
            errors = [e for e in await asyncio.gather(*(self._create_one(rs) for _ in range(size))) if e]
            done += size - len(errors)
            if errors:
                outcome.error = errors[0]
                break
        for _ in range(count - done):  # never attempted or failed: no watch event will count them
            self.expectations.creation_observed(key)

    async def _create_one(self, rs: Obj) -> str | None:
        """Create one pod; returns the error message, or None."""
        pod = pod_from_template(rs)
        if not meta.labels(pod):
            return "unable to create pods, no labels"
        try:
            created = await self.client.create(PODS, pod, meta.namespace(rs), field_manager=FIELD_MANAGER)
        except ApiException as e:
            if _namespace_terminating(e):
                return None  # every create would fail; the namespace controller is removing the RS anyway
            self.recorder.warning(rs, "FailedCreate", f"Error creating: {e.message}")
            return e.message
        except TransportError as e:
            self.recorder.warning(rs, "FailedCreate", f"Error creating: {e}")
            return str(e)
        self.recorder.normal(rs, "SuccessfulCreate", f"Created pod: {meta.name(created)}")
        return None

    async def _delete(self, rs: Obj, key: str, victims: Sequence[Obj], outcome: _Outcome) -> None:
        self.expectations.expect_deletions(key, [pod_key(p) for p in victims])
        log.info("replicaset %s: too many replicas (need %d), deleting %d", key, desired_replicas(rs), len(victims))
        for error in await asyncio.gather(*(self._delete_one(rs, key, pod, outcome) for pod in victims)):
            if error is not None and outcome.error is None:
                outcome.error = error

    async def _delete_one(self, rs: Obj, key: str, pod: Obj, outcome: _Outcome) -> str | None:
        name = meta.name(pod)
        try:
            await self.client.delete(PODS, name, meta.namespace(pod), preconditions={
                "uid": meta.uid(pod), "resourceVersion": meta.resource_version(pod)})
        except NotFound:
            self.expectations.deletion_observed(key, pod_key(pod))
            return None
        except Conflict:
            self.expectations.deletion_observed(key, pod_key(pod))
            outcome.retry_soon = True  # the pod changed since it was ranked: rank again
            return None
        except (ApiException, TransportError) as e:
            self.expectations.deletion_observed(key, pod_key(pod))
            message = e.message if isinstance(e, ApiException) else str(e)
            self.recorder.warning(rs, "FailedDelete", f"Error deleting: {message}")
            return f"unable to delete pods: {message}"
        self.recorder.normal(rs, "SuccessfulDelete", f"Deleted pod: {name}")
        return None

    # --- status ------------------------------------------------------------------------------------

    async def _write_status(self, rs: Obj, status: Obj) -> bool:
        """PUT ``replicasets/status`` with the version read; on a conflict, once more over a fresh read (as
        Kubernetes' updateReplicaSetStatus). False when the ReplicaSet is gone."""
        body = copy.deepcopy(rs)
        body["status"] = status
        try:
            await self.client.update_status(REPLICASETS, body, meta.namespace(rs), field_manager=FIELD_MANAGER)
            return True
        except NotFound:
            return False
        except Conflict:
            pass
        try:
            fresh = await self.client.get(REPLICASETS, meta.name(rs), meta.namespace(rs))
        except NotFound:
            return False
        if meta.uid(fresh) != meta.uid(rs):
            return False
        fresh["status"] = status
        try:
            await self.client.update_status(REPLICASETS, fresh, meta.namespace(rs), field_manager=FIELD_MANAGER)
        except NotFound:
            return False
        return True
