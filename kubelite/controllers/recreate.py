"""The Recreate strategy (Kubernetes' pkg/controller/deployment/recreate.go): scale every old ReplicaSet to
zero, wait until no old pod is left running, then create (or scale up) the new ReplicaSet to
``spec.replicas`` at once. Old and new pods never run side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .deployment_sync import Sync
from .deployment_util import RSView, actual_replica_count, deployment_complete, filter_active, replicas, status

Obj = dict[str, Any]
_TERMINAL_PHASES = ("Failed", "Succeeded")


def rollout_recreate(sync: Sync, pods_by_replica_set: Mapping[str, Sequence[Obj]]) -> None:
    """One step of a Recreate rollout (``rolloutRecreate``). ``pods_by_replica_set`` maps the uid of each of the
    Deployment's ReplicaSets to the pods it controls (terminal and terminating ones included)."""
    d = sync.deployment
    # The new ReplicaSet is not created before the old ones are gone: no scaling up before scaling down.
    new, olds = sync.get_all_replica_sets_and_sync_revision(create=False)
    all_rss: list[RSView | None] = [*olds, new]
    if scale_down_old_replica_sets(sync, filter_active(olds)) or old_pods_running(new, olds, pods_by_replica_set):
        sync.sync_rollout_status(all_rss, new)
        return
    if new is None:
        new, olds = sync.get_all_replica_sets_and_sync_revision(create=True)
        all_rss = [*olds, new]
    assert new is not None  # create=True always yields one
    sync.scale_replica_set_and_record_event(new, replicas(d))
    if deployment_complete(d, status(d)):
        sync.cleanup(olds)
    sync.sync_rollout_status(all_rss, new)


def scale_down_old_replica_sets(sync: Sync, active_olds: list[RSView]) -> bool:
    """Scale every active old ReplicaSet to zero; True if any was scaled."""
    scaled = False
    for rs in active_olds:
        if sync.scale_replica_set_and_record_event(rs, 0):
            scaled = True
    return scaled


def old_pods_running(new: RSView | None, olds: Sequence[RSView],
                     pods_by_replica_set: Mapping[str, Sequence[Obj]]) -> bool:
    """Whether an old ReplicaSet still reports pods, or any pod not of the new ReplicaSet is not terminal
    (``Unknown`` counts as running: it cannot be known not to run)."""
    if actual_replica_count(olds) > 0:
        return True
    for uid, pods in pods_by_replica_set.items():
        if new is not None and uid == new.uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in _TERMINAL_PHASES:
                return True
    return False
