"""The RollingUpdate strategy, one step per sync (Kubernetes' pkg/controller/deployment/rolling.go).

A step first tries to grow the new ReplicaSet, up to ``spec.replicas + maxSurge`` pods in all; if it
cannot, it shrinks old ReplicaSets, never below ``spec.replicas - maxUnavailable`` available pods. Old
pods that are not available go first: removing them costs no availability. The step ends with the
status; the write it makes wakes the controller for the next step, which starts from fresh state.

Invariants (for every step, given ReplicaSet statuses that are true):
- the ReplicaSets' sizes add up to at most ``spec.replicas + maxSurge`` once the new one is growing;
- no scale-down takes the available pods below ``spec.replicas - maxUnavailable``.
"""

from __future__ import annotations

from .deployment_sync import Sync
from .deployment_util import (
    RSView,
    available_replica_count,
    by_creation,
    deployment_complete,
    filter_active,
    max_unavailable,
    new_rs_new_replicas,
    replica_count,
    replicas,
    status,
)


def rollout_rolling(sync: Sync) -> None:
    """One step of a rolling update (``rolloutRolling``)."""
    d = sync.deployment
    new, olds = sync.get_all_replica_sets_and_sync_revision(create=True)
    assert new is not None  # create=True always yields one
    all_rss = [*olds, new]
    if reconcile_new_replica_set(sync, all_rss, new) \
            or reconcile_old_replica_sets(sync, all_rss, filter_active(olds), new):
        sync.sync_rollout_status(all_rss, new)
        return
    if deployment_complete(d, status(d)):
        sync.cleanup(olds)
    sync.sync_rollout_status(all_rss, new)


def reconcile_new_replica_set(sync: Sync, all_rss: list[RSView], new: RSView) -> bool:
    """Grow the new ReplicaSet as far as the surge allows (or shrink it to ``spec.replicas``); True if it
    changed size."""
    want = replicas(sync.deployment)
    if new.replicas == want:
        return False
    if new.replicas > want:
        return sync.scale_replica_set_and_record_event(new, want)
    return sync.scale_replica_set_and_record_event(new, new_rs_new_replicas(sync.deployment, all_rss, new))


def reconcile_old_replica_sets(sync: Sync, all_rss: list[RSView], old_rss: list[RSView], new: RSView) -> bool:
    """Shrink old ReplicaSets as far as availability allows (``reconcileOldReplicaSets``); True if any shrank.

    At most ``all pods - minAvailable - unavailable new pods`` may go: the new ReplicaSet's pods that are
    not available yet are counted as already missing, so that a broken new version cannot take the old
    one down with it. Unhealthy old pods go first, then available ones, oldest ReplicaSet first.
    """
    if replica_count(old_rss) == 0:
        return False
    d = sync.deployment
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = new.replicas - new.available_replicas
    max_scaled_down = replica_count(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    cleaned = cleanup_unhealthy_replicas(sync, old_rss, max_scaled_down)
    if cleaned is None:
        return False
    scaled = scale_down_old_replica_sets(sync, [*old_rss, new], old_rss)
    return cleaned + scaled > 0


def cleanup_unhealthy_replicas(sync: Sync, old_rss: list[RSView], max_cleanup: int) -> int | None:
    """Remove up to ``max_cleanup`` old pods that are not available (the ReplicaSet controller deletes
    not-ready pods first); returns how many. None when a ReplicaSet reports more available pods than it
    wants (it is still shrinking): as in Kubernetes, old ReplicaSets then wait for the next sync."""
    total = 0
    for rs in sorted(old_rss, key=by_creation):
        if total >= max_cleanup:
            break
        if rs.replicas == 0 or rs.replicas == rs.available_replicas:
            continue
        count = min(max_cleanup - total, rs.replicas - rs.available_replicas)
        if count < 0:
            return None
        sync.scale_replica_set_and_record_event(rs, rs.replicas - count)
        total += count
    return total


def scale_down_old_replica_sets(sync: Sync, all_rss: list[RSView], old_rss: list[RSView]) -> int:
    """Remove available old pods while more than ``minAvailable`` pods are available, oldest ReplicaSet
    first (``scaleDownOldReplicaSetsForRollingUpdate``); returns how many."""
    d = sync.deployment
    min_available = replicas(d) - max_unavailable(d)
    available = available_replica_count(all_rss)
    if available <= min_available:
        return 0
    budget = available - min_available
    total = 0
    for rs in sorted(old_rss, key=by_creation):
        if total >= budget:
            break
        if rs.replicas == 0:
            continue
        count = min(rs.replicas, budget - total)
        sync.scale_replica_set_and_record_event(rs, rs.replicas - count)
        total += count
    return total
