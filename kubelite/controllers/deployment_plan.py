"""What one sync of a Deployment does, decided from a snapshot without I/O (Kubernetes' syncDeployment in
pkg/controller/deployment/deployment_controller.go, and the ReplicaSet claiming of controller_ref_manager.go).

1. `claim_replica_sets`: the Deployment owns the ReplicaSets whose controller reference names it and that its
   selector still matches; it adopts orphans its selector matches and releases those it owns that no
   longer match (not while it is being deleted).
2. `plan_deployment`, given the owned ReplicaSets (and, for Recreate, their pods):
   - a selector that selects everything: a ``SelectingAll`` warning, nothing else;
   - a Deployment being deleted: the status only;
   - paused, or resized (``spec.replicas`` differs from what the ReplicaSets were sized for): proportional
     scaling, no rollout progress;
   - otherwise one step of its strategy, RollingUpdate (rolling.py) or Recreate (recreate.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubelite.api import meta
from kubelite.api.selectors import LabelSelector, label_selector_from_dict

from .deployment_sync import Action, Plan, RecordEvent, Sync, WriteStatus
from .deployment_util import RSView, canonical, spec, status, strategy_type
from .recreate import rollout_recreate
from .rolling import rollout_rolling

Obj = dict[str, Any]

SELECTING_ALL = "SelectingAll"
SELECTING_ALL_MESSAGE = "This deployment is selecting all pods. A non-empty selector is required."
INVALID_SELECTOR = "InvalidSelector"


@dataclass(frozen=True, slots=True)
class Claims:
    """``owned``: the ReplicaSets the Deployment controls once ``adopt`` and ``release`` are done (adopted ones
    included); ``adopt``: orphans to take; ``release``: owned ReplicaSets its selector no longer matches."""

    owned: tuple[Obj, ...]
    adopt: tuple[Obj, ...]
    release: tuple[Obj, ...]


def selector_of(deployment: Obj) -> LabelSelector:
    """The Deployment's selector; ValueError when it cannot be parsed."""
    return label_selector_from_dict(spec(deployment).get("selector"))


def claim_replica_sets(deployment: Obj, selector: LabelSelector, candidates: Sequence[Obj]) -> Claims:
    """Sort the ReplicaSets of the Deployment's namespace into owned, to adopt and to release
    (``ClaimReplicaSets``). A ReplicaSet another controller owns is never touched; one being deleted is
    never adopted."""
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    uid = meta.uid(deployment)
    deleting = meta.is_being_deleted(deployment)
    for rs in candidates:
        if meta.namespace(rs) != meta.namespace(deployment):
            continue
        matches = selector.matches(meta.labels(rs))
        ref = meta.controller_ref(rs)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                owned.append(rs)
            elif not deleting:
                release.append(rs)
            continue
        if deleting or not matches or meta.is_being_deleted(rs):
            continue
        adopt.append(rs)
        owned.append(rs)
    return Claims(tuple(owned), tuple(adopt), tuple(release))


def selects_everything(deployment: Obj) -> bool:
    selector = spec(deployment).get("selector")
    return selector is not None and canonical(selector) == {}


def plan_deployment(deployment: Obj, owned: Sequence[Obj], pods_by_replica_set: Mapping[str, Sequence[Obj]],
                    *, now: datetime) -> Plan:
    """The writes one sync of ``deployment`` makes, given the ReplicaSets it owns (after claiming) and, by
    ReplicaSet uid, the pods they control."""
    if selects_everything(deployment):
        actions: list[Action] = [RecordEvent("Warning", SELECTING_ALL, SELECTING_ALL_MESSAGE)]
        current = status(deployment)
        if int(current.get("observedGeneration") or 0) < meta.generation(deployment):
            actions.append(WriteStatus({**current, "observedGeneration": meta.generation(deployment)}))
        return Plan(tuple(actions))
    sync = Sync(deployment, [RSView.of(rs) for rs in owned], now=now)
    if meta.is_being_deleted(deployment):
        sync.sync_status_only()
        return sync.plan()
    # Pausing and resuming are marked first, so that time spent paused never counts against the deadline.
    sync.check_paused_conditions()
    if spec(deployment).get("paused") or sync.is_scaling_event():
        sync.sync()
    elif strategy_type(deployment) == "Recreate":
        rollout_recreate(sync, pods_by_replica_set)
    elif strategy_type(deployment) == "RollingUpdate":
        rollout_rolling(sync)
    else:
        # Validation refuses other strategies; one that got through is reported, not retried.
        return Plan((RecordEvent("Warning", "UnsupportedStrategy",
                                 f"unexpected deployment strategy type: {strategy_type(deployment)}"),))
    return sync.plan()
