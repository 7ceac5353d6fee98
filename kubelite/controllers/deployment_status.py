"""A Deployment's status and conditions, as pure functions (Kubernetes' calculateStatus in
pkg/controller/deployment/sync.go, progress.go, and the condition helpers of util/deployment_util.go).

Statuses are the wire dicts. ``now`` is passed in, so that every time-dependent decision (the progress
deadline, the time to look again) is testable without a clock.

What ``kubectl rollout status`` reads is computed here: ``observedGeneration`` (the generation the status
describes), ``replicas`` (pods of every ReplicaSet), ``updatedReplicas`` (pods of the new one),
``availableReplicas``; a Progressing condition with reason ``ProgressDeadlineExceeded`` makes it fail.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from kubelite.api import meta

from .deployment_util import (
    RSView,
    actual_replica_count,
    available_replica_count,
    deployment_complete,
    deployment_progressing,
    has_progress_deadline,
    max_unavailable,
    ready_replica_count,
    replica_count,
    replicas,
    spec,
    terminating_replica_count,
)

Obj = dict[str, Any]

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"

# Reasons of the Progressing condition.
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
FAILED_RS_CREATE = "ReplicaSetCreateError"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
# Reasons of the Available condition.
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

# Status counters Go writes with omitempty: zero means absent.
_COUNTERS = ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
             "unavailableReplicas")
# A second before the deadline is close enough to look again at once (Kubernetes' rule).
_REQUEUE_NOW_WITHIN = 1.0
# How soon "at once" is: the time for the status of a just-timed-out rollout to be written.
REQUEUE_SOON_SECONDS = 0.5


# --- conditions -----------------------------------------------------------------------------------

def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = meta.format_rfc3339(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def get_condition(status: Mapping[str, Any], type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == type_:
            return cond
    return None


def set_condition(status: Obj, condition: Obj) -> None:
    """Put ``condition`` into ``status`` (``SetDeploymentCondition``): nothing changes when a condition of its
    type already has its status and reason; a transition time is kept while the status stays the same."""
    current = get_condition(status, condition["type"])
    if current is not None and current.get("status") == condition["status"] \
            and current.get("reason") == condition["reason"]:
        return
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status.setdefault("conditions", []).append(condition)


def remove_condition(status: Obj, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def replica_failures(all_rss: Sequence[RSView], new: RSView | None) -> list[Obj]:
    """The ReplicaFailure conditions of the ReplicaSets as Deployment conditions, the new one's first."""
    def promoted(rss: Sequence[RSView]) -> list[Obj]:
        return [{"type": c.get("type"), "status": c.get("status"),
                 "lastUpdateTime": c.get("lastTransitionTime"), "lastTransitionTime": c.get("lastTransitionTime"),
                 "reason": c.get("reason"), "message": c.get("message")}
                for rs in rss for c in rs.conditions if c.get("type") == REPLICA_FAILURE]

    if new is not None:
        found = promoted([new])
        if found:
            return found
    return promoted(all_rss)


# --- the status -----------------------------------------------------------------------------------

def calculate_status(deployment: Obj, current: Mapping[str, Any], all_rss: Sequence[RSView],
                     new: RSView | None, now: datetime) -> Obj:
    """The status the ReplicaSets describe (``calculateStatus``), with the conditions of ``current`` (the
    Deployment's status as this sync has it so far) and an up-to-date Available condition."""
    available = available_replica_count(all_rss)
    out: Obj = {
        "observedGeneration": meta.generation(deployment),
        "replicas": actual_replica_count(all_rss),
        "updatedReplicas": actual_replica_count([new]),
        "readyReplicas": ready_replica_count(all_rss),
        "availableReplicas": available,
        # Negative when scaling down with more available pods than wanted: then none is missing.
        "unavailableReplicas": max(replica_count(all_rss) - available, 0),
    }
    terminating = terminating_replica_count(all_rss)
    if terminating is not None:
        out["terminatingReplicas"] = terminating
    out["conditions"] = copy.deepcopy(list(current.get("conditions") or []))
    if current.get("collisionCount") is not None:
        out["collisionCount"] = current["collisionCount"]
    if available >= replicas(deployment) - max_unavailable(deployment):
        set_condition(out, new_condition(AVAILABLE, "True", MIN_AVAILABLE, "Deployment has minimum availability.",
                                         now))
    else:
        set_condition(out, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE,
                                         "Deployment does not have minimum availability.", now))
    return out


def normalized(status: Mapping[str, Any]) -> Obj:
    """``status`` as Go would serialise it: zero counters and empty conditions left out. Two statuses are
    the same status when their normalized forms are equal."""
    out: Obj = {}
    for key, value in status.items():
        if key in _COUNTERS and not value:
            continue
        if key == "conditions" and not value:
            continue
        if value is None:
            continue
        out[key] = value
    return out


def deployment_timed_out(deployment: Obj, new_status: Mapping[str, Any], now: datetime) -> bool:
    """Whether the rollout has made no progress for ``progressDeadlineSeconds`` since the Progressing
    condition last changed (``DeploymentTimedOut``). A finished rollout never times out; a timed-out one
    stays timed out."""
    if not has_progress_deadline(deployment):
        return False
    condition = get_condition(new_status, PROGRESSING)
    if condition is None:
        return False
    if condition.get("reason") == NEW_RS_AVAILABLE:
        return False
    if condition.get("reason") == TIMED_OUT:
        return True
    since = _time(condition.get("lastUpdateTime"))
    if since is None:
        return False
    return since + timedelta(seconds=int(spec(deployment)["progressDeadlineSeconds"])) < now


def rollout_status(deployment: Obj, current: Mapping[str, Any], all_rss: Sequence[RSView], new: RSView | None,
                   now: datetime) -> Obj:
    """The status after a rollout step (``syncRolloutStatus``): `calculate_status` plus the Progressing
    condition (complete, progressing, or past its deadline) and the ReplicaSets' failures."""
    out = calculate_status(deployment, current, all_rss, new, now)
    deadline = has_progress_deadline(deployment)
    if not deadline:
        remove_condition(out, PROGRESSING)
    current_cond = get_condition(current, PROGRESSING)
    complete_before = (int(out.get("replicas") or 0) == int(out.get("updatedReplicas") or 0)
                       and current_cond is not None and current_cond.get("reason") == NEW_RS_AVAILABLE)
    if deadline and not complete_before:
        subject = f'ReplicaSet "{new.name}"' if new is not None else f'Deployment "{meta.name(deployment)}"'
        if deployment_complete(deployment, out):
            set_condition(out, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE,
                                             f"{subject} has successfully progressed.", now))
        elif deployment_progressing(current, out):
            condition = new_condition(PROGRESSING, "True", RS_UPDATED, f"{subject} is progressing.", now)
            # Progress moves lastUpdateTime even when the reason stays (set_condition alone would not).
            if current_cond is not None:
                if current_cond.get("status") == "True":
                    condition["lastTransitionTime"] = current_cond.get("lastTransitionTime")
                remove_condition(out, PROGRESSING)
            set_condition(out, condition)
        elif deployment_timed_out(deployment, out, now):
            set_condition(out, new_condition(PROGRESSING, "False", TIMED_OUT, f"{subject} has timed out progressing.",
                                             now))
    failures = replica_failures(all_rss, new)
    if failures:
        set_condition(out, failures[0])
    else:
        remove_condition(out, REPLICA_FAILURE)
    return out


def paused_condition(deployment: Obj, current: Obj, now: datetime) -> bool:
    """Mark pausing and resuming in the Progressing condition (``checkPausedConditions``), so that time spent
    paused never counts against the progress deadline. Changes ``current``; True when it did."""
    if not has_progress_deadline(deployment):
        return False
    cond = get_condition(current, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT:
        return False  # a reported lack of progress is not overwritten
    paused_before = cond is not None and cond.get("reason") == PAUSED
    paused = bool(spec(deployment).get("paused"))
    if paused and not paused_before:
        set_condition(current, new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", now))
        return True
    if not paused and paused_before:
        set_condition(current, new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", now))
        return True
    return False


def progress_check_after(deployment: Obj, current: Mapping[str, Any], new_status: Mapping[str, Any],
                         now: datetime) -> float | None:
    """Seconds until the progress deadline should be checked again (``requeueStuckDeployment``), or None
    when there is nothing to watch: no deadline, no Progressing condition, a finished or timed-out
    rollout."""
    cond = get_condition(current, PROGRESSING)
    if not has_progress_deadline(deployment) or cond is None:
        return None
    if deployment_complete(deployment, new_status) or cond.get("reason") == TIMED_OUT:
        return None
    since = _time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    after = (since + timedelta(seconds=int(spec(deployment)["progressDeadlineSeconds"])) - now).total_seconds()
    if after < _REQUEUE_NOW_WITHIN:
        return REQUEUE_SOON_SECONDS
    # A second more, so that the check lands after the deadline rather than on it.
    return after + 1.0


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return meta.parse_rfc3339(str(value))
    except ValueError:
        return None
