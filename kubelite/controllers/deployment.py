"""The Deployment controller: rolls Deployments out through ReplicaSets (Kubernetes'
pkg/controller/deployment). The ReplicaSet controller turns ReplicaSets into pods and reports their
readiness and availability in ReplicaSet status, which is all this controller reads of the pods' health.

Informers: Deployments, ReplicaSets (indexed by controller uid) and Pods (indexed by controller uid; the
Recreate strategy waits until no old pod runs). Handlers only enqueue ``namespace/name`` keys:
- a Deployment added, changed or deleted: that Deployment;
- a ReplicaSet added, changed or deleted: the Deployment controlling it (the old and the new one when the
  controller reference changed); an orphan: every Deployment whose selector matches its labels (they may
  adopt it);
- a Pod deleted: its Deployment, when that uses Recreate and has no pods left.

One reconcile of a key (`reconcile`):
1. read the Deployment from the cache (gone: nothing to do);
2. claim ReplicaSets (deployment_plan.claim_replica_sets): adopt matching orphans (after a live read of
   the Deployment confirms it is not being deleted), release owned ones that no longer match;
3. plan the sync from the caches (deployment_plan.plan_deployment, pure);
4. carry out the plan's writes in order; every write carries the resourceVersion of the state it was
   planned from (or of this reconcile's own previous write to that object), so a plan made on a stale
   cache fails with 409 and is made again. The first failing write ends the reconcile (retried with
   backoff); a ReplicaSet name taken by another template raises ``status.collisionCount`` so that the
   next attempt hashes to another name.

Events (component ``deployment-controller``): ``ScalingReplicaSet`` ("Scaled up replica set web-5d4f8 from 0
to 3"), and the Warnings ``ReplicaSetCreateError``, ``SelectingAll`` and ``InvalidSelector`` (a Deployment the
controller cannot act on is reported, not retried).

kubelite's status subresource writes only ``status``, so the Deployment's revision annotation is written
with a separate merge patch of ``metadata`` (Kubernetes writes both through ``/status``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.api.selectors import LabelSelector
from kubelite.client.events import EventRecorder
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import AlreadyExists, ApiException, NotFound
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.controllers.context import ControllerContext

from .deployment_plan import INVALID_SELECTOR, claim_replica_sets, plan_deployment, selector_of
from .deployment_status import FAILED_RS_CREATE, PROGRESSING, new_condition, normalized, set_condition
from .deployment_sync import (
    Action,
    CreateReplicaSet,
    DeleteReplicaSet,
    Plan,
    RecordEvent,
    SetRevision,
    UpdateReplicaSet,
    WriteStatus,
    controller_ref,
)
from .deployment_util import REVISION, equal_ignore_hash, has_progress_deadline, spec, status, strategy_type

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEPLOYMENTS = by_resource("apps", "v1", "deployments")
REPLICA_SETS = by_resource("apps", "v1", "replicasets")
PODS = by_resource("", "v1", "pods")
COMPONENT = "deployment-controller"
FIELD_MANAGER = "deployment-controller"
# Index of ReplicaSets and Pods by the uid of their controller (name scoped: informers are shared).
CONTROLLER_INDEX = "deployment-controller/controller-uid"
NAMESPACE_TERMINATING = "NamespaceTerminating"


def _controller_uid(obj: Obj) -> list[str]:
    ref = meta.controller_ref(obj)
    return [str(ref["uid"])] if ref and ref.get("uid") else []


def _utcnow() -> datetime:
    return datetime.now(UTC)


class HashCollision(Exception):
    """The new ReplicaSet's name belongs to another ReplicaSet; ``status.collisionCount`` was raised."""


class DeploymentController:
    """See the module docstring. Keys are ``namespace/name`` of Deployments."""

    name = "deployment"

    _deployments: SharedInformer
    _replica_sets: SharedInformer
    _pods: SharedInformer

    def __init__(self, ctx: ControllerContext, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self.client = ctx.client
        self.recorder: EventRecorder = ctx.recorder(COMPONENT)
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("deployment")
        self.clock = clock

    def setup(self, factory: InformerFactory) -> None:
        self._deployments = factory.informer(DEPLOYMENTS)
        self._replica_sets = factory.informer(REPLICA_SETS)
        self._pods = factory.informer(PODS)
        self._replica_sets.add_indexers({CONTROLLER_INDEX: _controller_uid})
        self._pods.add_indexers({CONTROLLER_INDEX: _controller_uid})
        self._deployments.add_handler(self._enqueue, lambda _old, new: self._enqueue(new),
                                      lambda gone: self._enqueue(object_of(gone)))
        self._replica_sets.add_handler(self._add_replica_set, self._update_replica_set, self._delete_replica_set)
        self._pods.add_handler(on_delete=self._delete_pod)

    async def run(self, workers: int) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _enqueue(self, deployment: Obj) -> None:
        self.queue.add(meta.key(deployment))

    def _resolve(self, namespace: str, ref: Mapping[str, Any]) -> Obj | None:
        """The cached Deployment a controller reference names, if it is that very object."""
        if ref.get("kind") != "Deployment":
            return None
        found = self._deployments.get_by_name(str(ref.get("name") or ""), namespace)
        if found is None or meta.uid(found) != ref.get("uid"):
            return None
        return found

    def _deployments_for_replica_set(self, rs: Obj) -> list[Obj]:
        """Deployments whose (non-empty, valid) selector matches an orphan ReplicaSet's labels."""
        labels = meta.labels(rs)
        if not labels:
            return []
        out = []
        for d in self._deployments.list(meta.namespace(rs)):
            try:
                selector = selector_of(d)
            except ValueError:
                continue
            if not selector.empty and selector.matches(labels):
                out.append(d)
        return out

    def _add_replica_set(self, rs: Obj) -> None:
        if meta.is_being_deleted(rs):
            self._delete_replica_set(rs)
            return
        ref = meta.controller_ref(rs)
        if ref is not None:
            owner = self._resolve(meta.namespace(rs), ref)
            if owner is not None:
                self._enqueue(owner)
            return
        for d in self._deployments_for_replica_set(rs):
            self._enqueue(d)

    def _update_replica_set(self, old: Obj, cur: Obj) -> None:
        if meta.resource_version(old) == meta.resource_version(cur):
            return  # a resync: both Deployments see it through their own resync
        old_ref, cur_ref = meta.controller_ref(old), meta.controller_ref(cur)
        ref_changed = old_ref != cur_ref
        if ref_changed and old_ref is not None:
            previous = self._resolve(meta.namespace(old), old_ref)
            if previous is not None:
                self._enqueue(previous)
        if cur_ref is not None:
            owner = self._resolve(meta.namespace(cur), cur_ref)
            if owner is not None:
                self._enqueue(owner)
            return
        if ref_changed or meta.labels(old) != meta.labels(cur):
            for d in self._deployments_for_replica_set(cur):
                self._enqueue(d)

    def _delete_replica_set(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        rs = object_of(gone)
        ref = meta.controller_ref(rs)
        if ref is not None:
            owner = self._resolve(meta.namespace(rs), ref)
            if owner is not None:
                self._enqueue(owner)

    def _delete_pod(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        """A Recreate rollout waits for the old pods to go: sync when the last one did."""
        pod = object_of(gone)
        ref = meta.controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self._replica_sets.get_by_name(str(ref.get("name") or ""), meta.namespace(pod))
        if rs is None or meta.uid(rs) != ref.get("uid"):
            return
        rs_ref = meta.controller_ref(rs)
        d = self._resolve(meta.namespace(rs), rs_ref) if rs_ref is not None else None
        if d is None or strategy_type(d) != "Recreate":
            return
        owned = self._replica_sets.by_index(CONTROLLER_INDEX, meta.uid(d))
        if not any(self._pods.by_index(CONTROLLER_INDEX, meta.uid(r)) for r in owned):
            self._enqueue(d)

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """Sync one Deployment; returns when to look again for its progress deadline (None: on events only)."""
        cached = self._deployments.get(key)
        if cached is None:
            return None  # deleted: its ReplicaSets go through the garbage collector
        deployment = {**cached, "apiVersion": "apps/v1", "kind": "Deployment"}
        try:
            selector = selector_of(deployment)
        except ValueError as e:
            self.recorder.warning(deployment, INVALID_SELECTOR, f"invalid label selector: {e}")
            return None
        owned = await self._claim(deployment, selector)
        pods = self._pods_by_replica_set(deployment, selector, owned)
        plan = plan_deployment(deployment, owned, pods, now=self.clock())
        await _Writer(self, deployment, owned).run(plan)
        return plan.requeue_after

    async def _claim(self, deployment: Obj, selector: LabelSelector) -> list[Obj]:
        """Adopt and release ReplicaSets; returns the ReplicaSets the Deployment owns (as last written)."""
        namespace = meta.namespace(deployment)
        claims = claim_replica_sets(deployment, selector, self._replica_sets.list(namespace))
        errors: list[Exception] = []
        for rs in claims.release:
            refs = [r for r in meta.owner_references(rs) if r.get("uid") != meta.uid(deployment)]
            try:
                await self._set_owner_references(rs, refs)
            except NotFound:
                pass
            except ApiException as e:
                errors.append(e)
        owned = {meta.name(rs): rs for rs in claims.owned}
        if claims.adopt:
            try:
                await self._check_can_adopt(deployment)
            except (ApiException, RuntimeError) as e:
                errors.append(e)
                for rs in claims.adopt:
                    owned.pop(meta.name(rs), None)
            else:
                for rs in claims.adopt:
                    refs = [*meta.owner_references(rs), controller_ref(deployment)]
                    try:
                        owned[meta.name(rs)] = await self._set_owner_references(rs, refs)
                    except NotFound:
                        owned.pop(meta.name(rs), None)
                    except ApiException as e:
                        errors.append(e)
                        owned.pop(meta.name(rs), None)
        if errors:
            raise errors[0]
        return list(owned.values())

    async def _check_can_adopt(self, deployment: Obj) -> None:
        """Adopting needs a Deployment that is really there and not being deleted: the cache may lag."""
        fresh = await self.client.get(DEPLOYMENTS, meta.name(deployment), meta.namespace(deployment))
        if meta.uid(fresh) != meta.uid(deployment):
            raise RuntimeError(f"original Deployment {meta.key(deployment)} is gone: got uid {meta.uid(fresh)}, "
                               f"wanted {meta.uid(deployment)}")
        if meta.is_being_deleted(fresh):
            raise RuntimeError(f"{meta.key(deployment)} has just been deleted at {meta.deletion_timestamp(fresh)}")

    async def _set_owner_references(self, rs: Obj, refs: list[Obj]) -> Obj:
        patch = {"metadata": {"resourceVersion": meta.resource_version(rs), "ownerReferences": refs or None}}
        return await self.client.patch(REPLICA_SETS, meta.name(rs), patch, "merge", meta.namespace(rs),
                                       field_manager=FIELD_MANAGER)

    def _pods_by_replica_set(self, deployment: Obj, selector: LabelSelector,
                             owned: Sequence[Obj]) -> dict[str, list[Obj]]:
        """The pods each owned ReplicaSet controls, by ReplicaSet uid (terminal ones included)."""
        namespace = meta.namespace(deployment)
        return {meta.uid(rs): [p for p in self._pods.by_index(CONTROLLER_INDEX, meta.uid(rs))
                               if meta.namespace(p) == namespace and selector.matches(meta.labels(p))]
                for rs in owned}


class _Writer:
    """Carries out one plan: remembers the last state written of the Deployment and of each ReplicaSet, so
    that each write carries the resourceVersion of the state it follows."""

    def __init__(self, controller: DeploymentController, deployment: Obj, replica_sets: Sequence[Obj]) -> None:
        self.client = controller.client
        self.recorder = controller.recorder
        self.clock = controller.clock
        self.deployment = deployment
        self.namespace = meta.namespace(deployment)
        self.latest = {meta.name(rs): rs for rs in replica_sets}

    async def run(self, plan: Plan) -> None:
        for action in plan.actions:
            if not await self._do(action):
                return

    async def _do(self, action: Action) -> bool:
        """Carry out one write; False when the rest of the plan must wait for the next sync."""
        if isinstance(action, CreateReplicaSet):
            return await self._create(action)
        if isinstance(action, UpdateReplicaSet):
            await self._update(action)
        elif isinstance(action, DeleteReplicaSet):
            await self._delete(action)
        elif isinstance(action, SetRevision):
            patch = {"metadata": {"resourceVersion": meta.resource_version(self.deployment),
                                  "annotations": {REVISION: action.revision}}}
            self.deployment = await self.client.patch(DEPLOYMENTS, meta.name(self.deployment), patch, "merge",
                                                      self.namespace, field_manager=FIELD_MANAGER)
        elif isinstance(action, WriteStatus):
            await self._write_status(action.status)
        elif isinstance(action, RecordEvent):
            self.recorder.event(self.deployment, action.type, action.reason, action.message)
        return True

    async def _write_status(self, new_status: Obj) -> None:
        self.deployment = await self.client.update_status(DEPLOYMENTS, {**self.deployment, "status": new_status},
                                                          self.namespace, field_manager=FIELD_MANAGER)

    async def _create(self, action: CreateReplicaSet) -> bool:
        name = meta.name(action.body)
        try:
            created = await self.client.create(REPLICA_SETS, action.body, self.namespace,
                                               field_manager=FIELD_MANAGER)
        except AlreadyExists:
            return await self._already_exists(name)
        except ApiException as e:
            causes = e.details.get("causes") or []
            if any(isinstance(c, dict) and c.get("reason") == NAMESPACE_TERMINATING for c in causes):
                raise  # nothing can be created there any more; the namespace goes with it
            await self._report_create_error(f'Failed to create new replica set "{name}": {e.message}')
            raise
        self.latest[name] = created
        if action.replicas > 0:
            self.recorder.normal(self.deployment, "ScalingReplicaSet",
                                 f"Scaled up replica set {name} from 0 to {action.replicas}")
        return True

    async def _already_exists(self, name: str) -> bool:
        """The name is taken: by the Deployment's own new ReplicaSet (the cache had not seen it yet: the next
        sync continues from it), or by another template (a hash collision)."""
        try:
            live = await self.client.get(REPLICA_SETS, name, self.namespace)
        except NotFound:
            raise RuntimeError(f"replica set {self.namespace}/{name} existed and is gone; retrying") from None
        ref = meta.controller_ref(live)
        template = spec(self.deployment).get("template") or {}
        if ref is not None and ref.get("uid") == meta.uid(self.deployment) \
                and equal_ignore_hash(template, spec(live).get("template") or {}):
            return False
        count = int(status(self.deployment).get("collisionCount") or 0) + 1
        try:
            await self._write_status({**status(self.deployment), "collisionCount": count})
        except ApiException as e:
            log.info("deployment %s: could not raise collisionCount: %s", meta.key(self.deployment), e)
        else:
            log.info("deployment %s: hash collision on %s, collisionCount now %d", meta.key(self.deployment), name,
                     count)
        raise HashCollision(f"replica set {self.namespace}/{name} exists with another template")

    async def _report_create_error(self, message: str) -> None:
        if has_progress_deadline(self.deployment):
            current = dict(status(self.deployment))
            set_condition(current, new_condition(PROGRESSING, "False", FAILED_RS_CREATE, message, self.clock()))
            try:
                await self._write_status(normalized(current))
            except ApiException as e:
                log.info("deployment %s: could not record %s: %s", meta.key(self.deployment), FAILED_RS_CREATE, e)
        self.recorder.warning(self.deployment, FAILED_RS_CREATE, message)

    async def _update(self, action: UpdateReplicaSet) -> None:
        current = self.latest[action.name]
        patch = {"metadata": {"resourceVersion": meta.resource_version(current),
                              "annotations": dict(action.annotations)},
                 "spec": {"replicas": action.replicas, "minReadySeconds": action.min_ready_seconds}}
        self.latest[action.name] = await self.client.patch(REPLICA_SETS, action.name, patch, "merge", self.namespace,
                                                           field_manager=FIELD_MANAGER)
        if action.replicas != action.scaled_from:
            direction = "up" if action.replicas > action.scaled_from else "down"
            self.recorder.normal(self.deployment, "ScalingReplicaSet",
                                 f"Scaled {direction} replica set {action.name} from {action.scaled_from} "
                                 f"to {action.replicas}")

    async def _delete(self, action: DeleteReplicaSet) -> None:
        current = self.latest.get(action.name, {})
        preconditions = {"uid": action.uid, "resourceVersion": meta.resource_version(current)}
        try:
            await self.client.delete(REPLICA_SETS, action.name, self.namespace,
                                     preconditions={k: v for k, v in preconditions.items() if v})
        except NotFound:
            pass

