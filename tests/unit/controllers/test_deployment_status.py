"""The Deployment's status and conditions (deployment_status): counts, the Available and Progressing
conditions, the progress deadline, pausing, and when to check the deadline again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.controllers.deployment_status import (
    AVAILABLE,
    FOUND_NEW_RS,
    MIN_AVAILABLE,
    MIN_UNAVAILABLE,
    NEW_RS_AVAILABLE,
    PAUSED,
    PROGRESSING,
    REPLICA_FAILURE,
    REQUEUE_SOON_SECONDS,
    RESUMED,
    RS_UPDATED,
    TIMED_OUT,
    calculate_status,
    deployment_timed_out,
    get_condition,
    new_condition,
    normalized,
    paused_condition,
    progress_check_after,
    remove_condition,
    rollout_status,
    set_condition,
)
from kubelite.controllers.deployment_util import RSView
from tests.unit.controllers.deployment_builders import T0, deployment, replica_set, views

Obj = dict[str, Any]


def at(seconds: float) -> str:
    return meta.format_rfc3339(T0 + timedelta(seconds=seconds))


def cond(type_: str, status: str, reason: str, updated: float = 0, transitioned: float = 0) -> Obj:
    return {"type": type_, "status": status, "lastUpdateTime": at(updated), "lastTransitionTime": at(transitioned),
            "reason": reason, "message": "m"}


# --- conditions -----------------------------------------------------------------------------------

def test_set_condition_adds_overwrites_and_keeps_transition_time_while_status_holds() -> None:
    status: Obj = {}
    set_condition(status, new_condition(AVAILABLE, "True", "A", "m", T0))
    assert [c["type"] for c in status["conditions"]] == [AVAILABLE]
    set_condition(status, cond(PROGRESSING, "False", "X", 5, 5))
    set_condition(status, cond(PROGRESSING, "False", "Y", 9, 9))  # same status, other reason
    progressing = get_condition(status, PROGRESSING)
    assert progressing is not None and progressing["reason"] == "Y"
    assert progressing["lastTransitionTime"] == at(5) and progressing["lastUpdateTime"] == at(9)
    set_condition(status, cond(PROGRESSING, "False", "Y", 20, 20))  # same status and reason: unchanged
    assert get_condition(status, PROGRESSING) == progressing
    remove_condition(status, AVAILABLE)
    remove_condition(status, PROGRESSING)
    assert "conditions" not in status


def test_normalized_drops_what_go_would_omit() -> None:
    assert normalized({"replicas": 0, "updatedReplicas": 2, "conditions": [], "collisionCount": 0,
                       "terminatingReplicas": 0, "observedGeneration": 3}) == \
        {"updatedReplicas": 2, "collisionCount": 0, "terminatingReplicas": 0, "observedGeneration": 3}


# --- counts and Available -------------------------------------------------------------------------

def test_calculate_status_counts_pods_of_all_and_of_the_new_replica_set() -> None:
    d = deployment(4, max_surge=1, max_unavailable=1, generation=7, status={"collisionCount": 2})
    old = RSView.of(replica_set(d, 1, image="old", actual=2, available=2))
    new = RSView.of(replica_set(d, 4, actual=3, ready=2, available=1))
    st = calculate_status(d, d["status"], [old, new], new, T0)
    assert {k: v for k, v in st.items() if k != "conditions"} == {
        "observedGeneration": 7, "replicas": 5, "updatedReplicas": 3, "readyReplicas": 4, "availableReplicas": 3,
        "unavailableReplicas": 2, "collisionCount": 2}
    available = get_condition(st, AVAILABLE)
    assert available is not None and available["status"] == "True" and available["reason"] == MIN_AVAILABLE
    assert available["message"] == "Deployment has minimum availability."


def test_available_condition_false_below_the_minimum_and_unavailable_never_negative() -> None:
    d = deployment(4, max_surge=1, max_unavailable=1)
    st = calculate_status(d, {}, views(replica_set(d, 4, available=2)), None, T0)
    available = get_condition(st, AVAILABLE)
    assert available is not None and (available["status"], available["reason"]) == ("False", MIN_UNAVAILABLE)
    assert available["message"] == "Deployment does not have minimum availability."
    assert st["updatedReplicas"] == 0
    shrinking = calculate_status(deployment(1), {}, views(replica_set(d, 1, actual=3, available=3)), None, T0)
    assert shrinking["unavailableReplicas"] == 0


# --- Progressing ----------------------------------------------------------------------------------

def test_rollout_status_reports_completion() -> None:
    d = deployment(3)
    new = RSView.of(replica_set(d, 3))
    current = {"conditions": [cond(PROGRESSING, "True", RS_UPDATED, 0, 0)]}
    st = rollout_status(d, current, [new], new, T0 + timedelta(seconds=30))
    progressing = get_condition(st, PROGRESSING)
    assert progressing is not None and progressing["reason"] == NEW_RS_AVAILABLE
    assert progressing["message"] == f'ReplicaSet "{new.name}" has successfully progressed.'


def test_progress_moves_last_update_time_but_keeps_transition_time() -> None:
    d = deployment(3)
    old = RSView.of(replica_set(d, 2, image="old"))
    new = RSView.of(replica_set(d, 2, available=0))
    current = {"replicas": 4, "updatedReplicas": 1, "conditions": [cond(PROGRESSING, "True", RS_UPDATED, 5, 1)]}
    st = rollout_status(d, current, [old, new], new, T0 + timedelta(seconds=60))
    progressing = get_condition(st, PROGRESSING)
    assert progressing is not None and progressing["reason"] == RS_UPDATED
    assert progressing["message"] == f'ReplicaSet "{new.name}" is progressing.'
    assert progressing["lastUpdateTime"] == at(60) and progressing["lastTransitionTime"] == at(1)


def test_no_progress_past_the_deadline_times_out() -> None:
    d = deployment(3, deadline=10)
    new = RSView.of(replica_set(d, 3, available=0))
    found = cond(PROGRESSING, "True", FOUND_NEW_RS, 0, 0)
    current = {"replicas": 3, "updatedReplicas": 3, "conditions": [found]}
    within = rollout_status(d, current, [new], new, T0 + timedelta(seconds=10))
    assert get_condition(within, PROGRESSING) == found
    late = rollout_status(d, current, [new], new, T0 + timedelta(seconds=11))
    progressing = get_condition(late, PROGRESSING)
    assert progressing is not None and (progressing["status"], progressing["reason"]) == ("False", TIMED_OUT)
    assert progressing["message"] == f'ReplicaSet "{new.name}" has timed out progressing.'


def test_without_a_deadline_there_is_no_progressing_condition() -> None:
    d = deployment(3, deadline=None)
    new = RSView.of(replica_set(d, 3))
    st = rollout_status(d, {"conditions": [cond(PROGRESSING, "True", RS_UPDATED)]}, [new], new, T0)
    assert get_condition(st, PROGRESSING) is None


def test_a_completed_rollout_is_not_judged_again() -> None:
    d = deployment(3, deadline=1)
    new = RSView.of(replica_set(d, 3, available=1))  # a pod went unavailable long after the rollout
    done = cond(PROGRESSING, "True", NEW_RS_AVAILABLE, 0, 0)
    st = rollout_status(d, {"conditions": [done]}, [new], new, T0 + timedelta(hours=1))
    assert get_condition(st, PROGRESSING) == done


def test_replica_failures_of_the_new_replica_set_come_first() -> None:
    d = deployment(3)
    failure = {"type": REPLICA_FAILURE, "status": "True", "reason": "FailedCreate", "message": "quota",
               "lastTransitionTime": at(3)}
    old_obj, new_obj = replica_set(d, 1, image="old"), replica_set(d, 2, available=0)
    old_obj["status"]["conditions"] = [{**failure, "message": "old"}]
    new_obj["status"]["conditions"] = [failure]
    old, new = views(old_obj, new_obj)
    st = rollout_status(d, {}, [old, new], new, T0)
    promoted = get_condition(st, REPLICA_FAILURE)
    assert promoted is not None and promoted["message"] == "quota" and promoted["lastUpdateTime"] == at(3)
    cleared = rollout_status(d, st, views(replica_set(d, 3)), None, T0)
    assert get_condition(cleared, REPLICA_FAILURE) is None


@pytest.mark.parametrize(("deadline", "reason", "updated", "now", "expected"), [
    (None, "", 69, 80, False),
    (2**31 - 1, "", 69, 80, False),
    (10, "", 69, 80, True),
    (10, "", 71, 80, False),
    (10, NEW_RS_AVAILABLE, 0, 10_000, False),
    (10, TIMED_OUT, 79, 80, True),
])
def test_deployment_timed_out(deadline: int | None, reason: str, updated: int, now: int, expected: bool) -> None:
    d = deployment(1, deadline=deadline)
    status = {"conditions": [cond(PROGRESSING, "True", reason, updated)]}
    assert deployment_timed_out(d, status, T0 + timedelta(seconds=now)) is expected


# --- pausing --------------------------------------------------------------------------------------

def test_pausing_and_resuming_are_marked_but_never_over_a_timeout() -> None:
    status: Obj = {"conditions": [cond(PROGRESSING, "True", RS_UPDATED)]}
    assert paused_condition(deployment(3, paused=True), status, T0)
    progressing = get_condition(status, PROGRESSING)
    assert progressing is not None and (progressing["status"], progressing["reason"]) == ("Unknown", PAUSED)
    assert progressing["message"] == "Deployment is paused"
    assert not paused_condition(deployment(3, paused=True), status, T0)
    assert paused_condition(deployment(3), status, T0)
    progressing = get_condition(status, PROGRESSING)
    assert progressing is not None and (progressing["reason"], progressing["message"]) == \
        (RESUMED, "Deployment is resumed")
    timed_out: Obj = {"conditions": [cond(PROGRESSING, "False", TIMED_OUT)]}
    assert not paused_condition(deployment(3, paused=True), timed_out, T0)
    assert not paused_condition(deployment(3, paused=True, deadline=None), {}, T0)


# --- when to look again ---------------------------------------------------------------------------

def test_progress_check_after_the_deadline_from_the_last_progress() -> None:
    d = deployment(3, deadline=600)
    stuck = {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 0, "observedGeneration": 1}
    current = {"conditions": [cond(PROGRESSING, "True", RS_UPDATED, 0)]}
    assert progress_check_after(d, current, stuck, T0 + timedelta(seconds=180)) == pytest.approx(421.0)
    assert progress_check_after(d, current, stuck, T0 + timedelta(seconds=599.5)) == REQUEUE_SOON_SECONDS
    done = {**stuck, "availableReplicas": 3}
    assert progress_check_after(d, current, done, T0) is None
    assert progress_check_after(d, {"conditions": [cond(PROGRESSING, "False", TIMED_OUT)]}, stuck, T0) is None
    assert progress_check_after(deployment(3, deadline=None), current, stuck, T0) is None
    assert progress_check_after(d, {}, stuck, T0) is None
