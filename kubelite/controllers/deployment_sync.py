"""One sync of one Deployment, planned without I/O (Kubernetes' pkg/controller/deployment/sync.go).

`Sync` holds what a sync works on: the Deployment as cached (never mutated), its ReplicaSets as `RSView`s,
the Deployment's status as this sync has changed it so far, and the writes planned so far (`Action`s, in
the order they must happen). The steps are Kubernetes' own, one method each: find or create the new
ReplicaSet and sync revisions (`get_all_replica_sets_and_sync_revision`), scale proportionally on a
resize or while paused (`scale`), clean up old ReplicaSets beyond ``revisionHistoryLimit`` (`cleanup`),
compute the status (`sync_deployment_status`, `sync_rollout_status`). The rollout strategies
(rolling.py, recreate.py) are built from them; deployment_plan.py chooses which runs.

Each step sees the effect of the steps before it (a ReplicaSet scaled down is smaller for the next step),
as the Go controller sees the objects its writes returned. The controller then carries out `plan()` in
order and stops at the first write that fails; the next sync starts again from what the caches show.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubelite.api import meta

from .deployment_status import (
    FOUND_NEW_RS,
    NEW_RS_CREATED,
    PROGRESSING,
    calculate_status,
    get_condition,
    new_condition,
    normalized,
    paused_condition,
    progress_check_after,
    rollout_status,
    set_condition,
)
from .deployment_util import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    REVISION,
    RSView,
    compute_hash,
    filter_active,
    find_active_or_latest,
    find_new_replica_set,
    find_old_replica_sets,
    has_progress_deadline,
    has_revision_history_limit,
    int_annotation,
    is_rolling_update,
    is_saturated,
    max_revision,
    max_surge,
    min_ready_seconds,
    new_rs_new_replicas,
    proportion,
    replica_count,
    replica_set_name,
    replicas,
    replicas_annotations_need_update,
    set_new_replica_set_annotations,
    set_replicas_annotations,
    sorted_by_revision,
    sorted_by_size_newer,
    sorted_by_size_older,
    spec,
    status,
)

Obj = dict[str, Any]


# --- the writes a sync plans ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CreateReplicaSet:
    """POST ``body``; the Deployment records ``Scaled up replica set <name> from 0 to <replicas>``."""

    body: Obj
    replicas: int


@dataclass(frozen=True, slots=True)
class UpdateReplicaSet:
    """Set the ReplicaSet's ``spec.replicas``, ``spec.minReadySeconds`` and ``annotations`` (keys are added or
    changed, never removed). When ``replicas`` differs from ``scaled_from`` it is a scaling, recorded as
    a ``ScalingReplicaSet`` event."""

    name: str
    replicas: int
    min_ready_seconds: int
    annotations: Mapping[str, str]
    scaled_from: int


@dataclass(frozen=True, slots=True)
class DeleteReplicaSet:
    """Delete an old ReplicaSet beyond the revision history limit, only if it is still ``uid``."""

    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class SetRevision:
    """Set the Deployment's ``deployment.kubernetes.io/revision`` annotation."""

    revision: str


@dataclass(frozen=True, slots=True)
class WriteStatus:
    """Replace the Deployment's status (through the status subresource)."""

    status: Obj


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """An event about the Deployment."""

    type: str
    reason: str
    message: str


Action = CreateReplicaSet | UpdateReplicaSet | DeleteReplicaSet | SetRevision | WriteStatus | RecordEvent


@dataclass(frozen=True, slots=True)
class Plan:
    """The writes of one sync, in order, and when to sync again (seconds) to check the progress deadline."""

    actions: tuple[Action, ...]
    requeue_after: float | None = None


def controller_ref(deployment: Obj) -> Obj:
    """The ownerReference naming ``deployment`` as the controller of a ReplicaSet."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta.name(deployment),
            "uid": meta.uid(deployment), "controller": True, "blockOwnerDeletion": True}


# --- the sync -------------------------------------------------------------------------------------

class Sync:
    """See the module docstring. ``replica_sets`` are the ReplicaSets the Deployment owns."""

    def __init__(self, deployment: Obj, replica_sets: Sequence[RSView], *, now: datetime) -> None:
        self.deployment = deployment
        self.replica_sets = list(replica_sets)
        self.now = now
        # The Deployment's status as this sync has changed it (conditions), the base of the new status.
        self.status: Obj = copy.deepcopy(status(deployment))
        self.revision = meta.annotations(deployment).get(REVISION)
        self.actions: list[Action] = []
        self.final_status: Obj | None = None
        self.requeue_after: float | None = None

    def plan(self) -> Plan:
        """The planned writes, ending with the status write when the status changed."""
        actions = list(self.actions)
        if self.final_status is not None and normalized(self.final_status) != normalized(status(self.deployment)):
            actions.append(WriteStatus(normalized(self.final_status)))
        return Plan(tuple(actions), self.requeue_after)

    # --- primitives --------------------------------------------------------------------------------

    def _update(self, rs: RSView, scaled_from: int) -> None:
        self.actions.append(UpdateReplicaSet(rs.name, rs.replicas, rs.min_ready_seconds, dict(rs.annotations),
                                             scaled_from))

    def set_revision(self, revision: str) -> None:
        if revision != self.revision:
            self.revision = revision
            self.actions.append(SetRevision(revision))

    def scale_replica_set(self, rs: RSView, new_scale: int) -> bool:
        """Resize ``rs`` and refresh its desired/max-replicas annotations (``scaleReplicaSet``); True when its
        size changed."""
        desired = replicas(self.deployment)
        most = desired + max_surge(self.deployment)
        resized = rs.replicas != new_scale
        if not resized and not replicas_annotations_need_update(rs, desired, most):
            return False
        before = rs.replicas
        rs.replicas = new_scale
        set_replicas_annotations(rs, desired, most)
        self._update(rs, before)
        return resized

    def scale_replica_set_and_record_event(self, rs: RSView, new_scale: int) -> bool:
        if rs.replicas == new_scale:
            return False
        return self.scale_replica_set(rs, new_scale)

    # --- the new ReplicaSet and revisions ----------------------------------------------------------

    def get_all_replica_sets_and_sync_revision(self, *, create: bool) -> tuple[RSView | None, list[RSView]]:
        """(new ReplicaSet or None, old ReplicaSets). The new one gets the revision after every old one and the
        Deployment's annotations; it is created when missing and ``create`` is set."""
        olds = find_old_replica_sets(self.deployment, self.replica_sets)
        return self._new_replica_set(olds, create), olds

    def _new_replica_set(self, olds: list[RSView], create: bool) -> RSView | None:
        d = self.deployment
        new_revision = str(max_revision(olds) + 1)
        existing = find_new_replica_set(d, self.replica_sets)
        if existing is not None:
            changed = set_new_replica_set_annotations(d, existing, new_revision, exists=True)
            if changed or existing.min_ready_seconds != min_ready_seconds(d):
                # As Kubernetes: the Deployment's own revision follows on the next sync, which this
                # update triggers.
                existing.min_ready_seconds = min_ready_seconds(d)
                self._update(existing, existing.replicas)
                return existing
            self.set_revision(existing.annotations.get(REVISION, ""))
            if has_progress_deadline(d) and get_condition(self.status, PROGRESSING) is None:
                # Progress was not tracked before: count from the first time this ReplicaSet is seen.
                set_condition(self.status, new_condition(PROGRESSING, "True", FOUND_NEW_RS,
                                                         f'Found new replica set "{existing.name}"', self.now))
            return existing
        if not create:
            return None
        created = self._new_replica_set_view(olds, new_revision)
        self.actions.append(CreateReplicaSet(created.obj, created.replicas))
        self.replica_sets.append(created)
        self.set_revision(new_revision)
        if has_progress_deadline(d):
            set_condition(self.status, new_condition(PROGRESSING, "True", NEW_RS_CREATED,
                                                     f'Created new replica set "{created.name}"', self.now))
        return created

    def _new_replica_set_view(self, olds: list[RSView], new_revision: str) -> RSView:
        d = self.deployment
        template = copy.deepcopy(spec(d).get("template") or {})
        template_hash = compute_hash(template, status(d).get("collisionCount"))
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), HASH_LABEL: template_hash}
        selector = copy.deepcopy(spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: template_hash}
        body: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": replica_set_name(meta.name(d), template_hash), "namespace": meta.namespace(d),
                         "labels": dict(template["metadata"]["labels"]), "ownerReferences": [controller_ref(d)]},
            "spec": {"replicas": 0, "minReadySeconds": min_ready_seconds(d), "selector": selector,
                     "template": template},
        }
        view = RSView.of(body, planned=True, created=self.now)
        view.replicas = new_rs_new_replicas(d, [*olds, view], view)
        set_new_replica_set_annotations(d, view, new_revision, exists=False)
        view.obj = {**body, "metadata": {**body["metadata"], "annotations": dict(view.annotations)},
                    "spec": {**body["spec"], "replicas": view.replicas}}
        return view

    # --- scaling events and pauses -----------------------------------------------------------------

    def is_scaling_event(self) -> bool:
        """Whether ``spec.replicas`` changed since the active ReplicaSets were last sized for it (their
        desired-replicas annotation says otherwise)."""
        new, olds = self.get_all_replica_sets_and_sync_revision(create=False)
        want = replicas(self.deployment)
        for rs in filter_active([*olds, new]):
            desired = int_annotation(rs, DESIRED_REPLICAS)
            if desired is not None and desired != want:
                return True
        return False

    def check_paused_conditions(self) -> None:
        paused_condition(self.deployment, self.status, self.now)

    def sync(self) -> None:
        """A resize or a paused Deployment: scale proportionally, no rollout progress."""
        new, olds = self.get_all_replica_sets_and_sync_revision(create=False)
        self.scale(new, olds)
        if spec(self.deployment).get("paused"):
            self.cleanup(olds)
        self.sync_deployment_status([*olds, new], new)

    def sync_status_only(self) -> None:
        new, olds = self.get_all_replica_sets_and_sync_revision(create=False)
        self.sync_deployment_status([*olds, new], new)

    def scale(self, new: RSView | None, olds: list[RSView]) -> None:
        """Resize the ReplicaSets to a new ``spec.replicas`` (``scale``). One active ReplicaSet takes all; a
        saturated new one leaves nothing to the old ones; otherwise, in a rolling update, the replicas to
        add (or remove, up to ``spec.replicas + maxSurge`` in all) are shared in proportion to each
        ReplicaSet's size, so that a resize never hastens or reverses the rollout."""
        d = self.deployment
        want = replicas(d)
        only = find_active_or_latest(new, olds)
        if only is not None:
            if only.replicas != want:
                self.scale_replica_set_and_record_event(only, want)
            return
        if is_saturated(d, new):
            for old in filter_active(olds):
                self.scale_replica_set_and_record_event(old, 0)
            return
        if not is_rolling_update(d):
            return
        active = filter_active([*olds, new])
        allowed = want + max_surge(d) if want > 0 else 0
        to_add = allowed - replica_count(active)
        if to_add > 0:
            active = sorted_by_size_newer(active)  # equal sizes: the newer grows first
        elif to_add < 0:
            active = sorted_by_size_older(active)  # equal sizes: the older shrinks first
        added = 0
        sizes: list[int] = []
        for rs in active:
            share = proportion(rs, d, to_add, added)
            sizes.append(rs.replicas + share)
            added += share
        if active and to_add != 0:
            # What rounding left over goes to (or comes from) the largest.
            sizes[0] = max(sizes[0] + to_add - added, 0)
        for rs, size in zip(active, sizes, strict=True):
            self.scale_replica_set(rs, size)

    def cleanup(self, olds: list[RSView]) -> None:
        """Delete the oldest old ReplicaSets beyond ``revisionHistoryLimit`` (``cleanupDeployment``); only those
        fully scaled down, with no pods and their spec observed."""
        d = self.deployment
        if not has_revision_history_limit(d):
            return
        alive = [rs for rs in olds if not rs.deleting and not rs.planned]
        excess = len(alive) - int(spec(d)["revisionHistoryLimit"])
        if excess <= 0:
            return
        for rs in sorted_by_revision(alive)[:excess]:
            if rs.status_replicas != 0 or rs.replicas != 0 or replicas(rs.obj) != 0 \
                    or meta.generation(rs.obj) > rs.observed_generation:
                continue
            self.actions.append(DeleteReplicaSet(rs.name, rs.uid))

    # --- status ------------------------------------------------------------------------------------

    def sync_deployment_status(self, all_rss: Sequence[RSView | None], new: RSView | None) -> None:
        """The status the ReplicaSets describe, without judging progress (``syncDeploymentStatus``)."""
        present = [rs for rs in all_rss if rs is not None]
        self.final_status = calculate_status(self.deployment, self.status, present, new, self.now)

    def sync_rollout_status(self, all_rss: Sequence[RSView | None], new: RSView | None) -> None:
        """The status with the rollout's progress judged (``syncRolloutStatus``); when nothing changed, the
        time to check the progress deadline again."""
        present = [rs for rs in all_rss if rs is not None]
        new_status = rollout_status(self.deployment, self.status, present, new, self.now)
        self.final_status = new_status
        if normalized(new_status) == normalized(self.status):
            self.requeue_after = progress_check_after(self.deployment, self.status, new_status, self.now)
