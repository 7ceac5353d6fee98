"""The ReplicaSet controller's pure decisions: batches, the replica diff, the deletion ranking, claims, pods from
the template, and the status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.selectors import label_selector_from_dict
from kubelite.controllers.replicaset import (
    Claims,
    adoption_patch,
    calculate_status,
    deletion_order,
    next_availability_check,
    plan_claims,
    plan_replicas,
    pod_from_template,
    release_patch,
    slow_start_batches,
    status_changed,
)

Obj = dict[str, Any]
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
RS_UID = "rs-uid"


def ts(seconds_ago: float) -> str:
    return meta.format_rfc3339(NOW - timedelta(seconds=seconds_ago))


def rs(replicas: int = 3, *, deleting: bool = False, min_ready: int = 0, status: Obj | None = None,
       generation: int = 2) -> Obj:
    md: Obj = {"name": "web", "namespace": "default", "uid": RS_UID, "generation": generation,
               "resourceVersion": "10"}
    if deleting:
        md["deletionTimestamp"] = ts(1)
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": md,
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"},
                                               "annotations": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
            "status": status or {}}


def pod(name: str, *, node: str = "n1", phase: str = "Running", ready: bool | None = True, ready_ago: float = 600,
        created_ago: float = 3600, restarts: int = 0, cost: str | None = None, owner: str | None = RS_UID,
        labels: Obj | None = None, deleting: bool = False, uid: str | None = None) -> Obj:
    md: Obj = {"name": name, "namespace": "default", "uid": uid or f"uid-{name}", "resourceVersion": "7",
               "creationTimestamp": ts(created_ago),
               "labels": {"app": "web", "tier": "fe"} if labels is None else labels}
    if owner is not None:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": owner,
                                  "controller": True}]
    if cost is not None:
        md["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": cost}
    if deleting:
        md["deletionTimestamp"] = ts(0)
    status: Obj = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False",
                                 "lastTransitionTime": ts(ready_ago)}]
    return {"metadata": md, "spec": {"nodeName": node} if node else {}, "status": status}


def names(pods: list[Obj] | tuple[Obj, ...]) -> list[str]:
    return [meta.name(p) for p in pods]


# --- batches and the diff ---------------------------------------------------------------------------

@pytest.mark.parametrize(("count", "batches"), [
    pytest.param(0, [], id="none"),
    pytest.param(1, [1], id="one"),
    pytest.param(2, [1, 1], id="two"),
    pytest.param(3, [1, 2], id="three"),
    pytest.param(10, [1, 2, 4, 3], id="ten"),
    pytest.param(500, [1, 2, 4, 8, 16, 32, 64, 128, 245], id="burst"),
])
def test_slow_start_batches(count: int, batches: list[int]) -> None:
    assert slow_start_batches(count) == batches
    assert sum(batches) == count


def test_too_few_pods_creates_the_difference_up_to_the_burst() -> None:
    assert plan_replicas(rs(5), [pod("a")], [], now=NOW).create == 4
    assert plan_replicas(rs(1000), [], [], now=NOW, burst=500).create == 500
    diff = plan_replicas(rs(2), [pod("a"), pod("b")], [], now=NOW)
    assert diff.create == 0 and diff.delete == ()


def test_too_many_pods_deletes_the_least_valuable() -> None:
    pods = [pod("old-ready"), pod("pending", phase="Pending", ready=None), pod("unscheduled", node="", ready=None)]
    diff = plan_replicas(rs(1), pods, pods, now=NOW)
    assert diff.create == 0 and names(diff.delete) == ["unscheduled", "pending"]


def test_deleting_every_pod_needs_no_ranking() -> None:
    pods = [pod("a"), pod("b")]
    assert names(plan_replicas(rs(0), pods, [], now=NOW).delete) == ["a", "b"]
    assert len(plan_replicas(rs(0), pods * 300, [], now=NOW, burst=500).delete) == 500


# --- the deletion ranking ---------------------------------------------------------------------------

@pytest.mark.parametrize(("first", "second"), [
    pytest.param(pod("x", node=""), pod("y"), id="unscheduled-before-scheduled"),
    pytest.param(pod("x", phase="Pending"), pod("y", phase="Unknown"), id="pending-before-unknown"),
    pytest.param(pod("x", phase="Unknown"), pod("y", phase="Running"), id="unknown-before-running"),
    pytest.param(pod("x", ready=False), pod("y", ready=True), id="not-ready-before-ready"),
    pytest.param(pod("x", ready=None), pod("y", ready=True), id="no-condition-before-ready"),
    pytest.param(pod("x", cost="-5"), pod("y"), id="lower-deletion-cost-first"),
    pytest.param(pod("x", cost="10", ready=False), pod("y", cost="1"), id="readiness-beats-cost"),
    pytest.param(pod("x", ready_ago=10), pod("y", ready_ago=1000), id="ready-for-less-time-first"),
    pytest.param(pod("x", restarts=3), pod("y", restarts=1), id="more-restarts-first"),
    pytest.param(pod("x", created_ago=10), pod("y", created_ago=1000), id="newer-first"),
    pytest.param(pod("x", ready_ago=10, restarts=0), pod("y", ready_ago=1000, restarts=9),
                 id="ready-time-beats-restarts"),
])
def test_ranking_puts_the_first_pod_first(first: Obj, second: Obj) -> None:
    assert names(deletion_order([second, first], [], NOW)) == ["x", "y"]
    assert names(deletion_order([first, second], [], NOW)) == ["x", "y"]


def test_pods_on_crowded_nodes_go_first() -> None:
    crowded, alone = pod("x", node="busy"), pod("y", node="quiet")
    siblings = [pod(f"s{i}", node="busy", owner="other-rs") for i in range(2)]
    assert names(deletion_order([alone, crowded], [crowded, alone, *siblings], NOW)) == ["x", "y"]
    gone = [pod(f"s{i}", node="busy", owner="other-rs", phase="Succeeded") for i in range(2)]
    # Inactive siblings do not crowd a node: with equal ranks the newer pod goes first.
    assert names(deletion_order([pod("old", node="busy"), pod("new", node="quiet", created_ago=10)],
                                gone, NOW)) == ["new", "old"]


def test_ages_in_the_same_power_of_two_bucket_tie_and_order_by_uid() -> None:
    # 1000 s and 1010 s old are both in [2^39, 2^40) ns: the uid decides, not the exact age.
    a = pod("a", created_ago=1010, uid="uid-2", ready=False)
    b = pod("b", created_ago=1000, uid="uid-1", ready=False)
    assert names(deletion_order([a, b], [], NOW)) == ["b", "a"]
    assert names(deletion_order([a, b], [], None)) == ["b", "a"]  # exact comparison: newer first
    a_newer = pod("a", created_ago=10, uid="uid-2", ready=False)
    assert names(deletion_order([b, a_newer], [], NOW)) == ["a", "b"]


def test_an_invalid_deletion_cost_counts_as_zero() -> None:
    assert names(deletion_order([pod("x", cost="+5", created_ago=100),
                                 pod("y", cost="007", created_ago=5000)], [], None)) == ["x", "y"]
    assert names(deletion_order([pod("x", cost="0", created_ago=5000), pod("y", cost="-1")], [], None)) == ["y", "x"]


# --- claims -----------------------------------------------------------------------------------------

SELECTOR = label_selector_from_dict({"matchLabels": {"app": "web"}})


def test_claims_keep_adopt_release_and_ignore() -> None:
    mine = pod("mine")
    orphan = pod("orphan", owner=None)
    stray = pod("stray", owner=None, labels={"app": "other"})
    relabelled = pod("relabelled", labels={"app": "moved"})
    foreign = pod("foreign", owner="someone-else")
    claims = plan_claims(rs(), [mine, orphan, stray, relabelled, foreign], SELECTOR)
    assert claims == Claims((mine,), (orphan,), (relabelled,))


def test_a_replicaset_being_deleted_neither_adopts_nor_releases() -> None:
    claims = plan_claims(rs(deleting=True), [pod("mine"), pod("orphan", owner=None),
                                             pod("relabelled", labels={"app": "moved"})], SELECTOR)
    assert names(claims.owned) == ["mine"] and claims.adopt == () and claims.release == ()


def test_orphans_being_deleted_or_elsewhere_are_not_adopted() -> None:
    elsewhere = pod("elsewhere", owner=None)
    elsewhere["metadata"]["namespace"] = "other"
    claims = plan_claims(rs(), [pod("going", owner=None, deleting=True), elsewhere], SELECTOR)
    assert claims == Claims((), (), ())


def test_adoption_and_release_patches_name_the_pod_they_were_decided_on() -> None:
    orphan = pod("orphan", owner=None)
    assert adoption_patch(rs(), orphan) == {"metadata": {
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": RS_UID,
                             "controller": True, "blockOwnerDeletion": True}],
        "uid": "uid-orphan", "resourceVersion": "7"}}
    assert release_patch(rs(), pod("mine")) == {"metadata": {
        "ownerReferences": [{"$patch": "delete", "uid": RS_UID}], "uid": "uid-mine", "resourceVersion": "7"}}


def test_pod_from_template() -> None:
    new = pod_from_template(rs())
    assert new == {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"generateName": "web-", "namespace": "default",
                                "labels": {"app": "web", "tier": "fe"}, "annotations": {"a": "b"},
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                                     "uid": RS_UID, "controller": True, "blockOwnerDeletion": True}]},
                   "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    template = rs()["spec"]["template"]
    new["spec"]["containers"].append({})
    assert len(template["spec"]["containers"]) == 1  # a copy, never the cached template


# --- status -----------------------------------------------------------------------------------------

def test_status_counts_labelled_ready_and_available_pods() -> None:
    pods = [pod("a"), pod("b", ready=False), pod("c", labels={"app": "web"}), pod("d", ready_ago=2)]
    status = calculate_status(rs(4, min_ready=5), pods, 1, None, now=NOW)
    assert status == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 2,
                      "observedGeneration": 2, "terminatingReplicas": 1}


def test_status_omits_zero_counters_but_keeps_replicas() -> None:
    status = calculate_status(rs(0, status={"readyReplicas": 2, "replicas": 2}), [], 0, None, now=NOW)
    assert status == {"replicas": 0, "observedGeneration": 2, "terminatingReplicas": 0}


def test_a_manage_error_adds_the_replica_failure_condition_once() -> None:
    status = calculate_status(rs(3), [pod("a")], 0, "quota exceeded", now=NOW)
    assert status["conditions"] == [{"type": "ReplicaFailure", "status": "True",
                                     "lastTransitionTime": "2025-01-01T12:00:00Z", "reason": "FailedCreate",
                                     "message": "quota exceeded"}]
    later = calculate_status(rs(3, status=status), [pod("a")], 0, "another error", now=NOW + timedelta(hours=1))
    assert later["conditions"] == status["conditions"]  # kept as it was while the failure lasts
    deleting = calculate_status(rs(0), [pod("a")], 0, "cannot delete", now=NOW)
    assert deleting["conditions"][0]["reason"] == "FailedDelete"
    healed = calculate_status(rs(3, status=status), [pod("a")], 0, None, now=NOW)
    assert "conditions" not in healed


def test_status_keeps_conditions_it_does_not_own() -> None:
    other = {"type": "Example", "status": "True"}
    status = calculate_status(rs(1, status={"conditions": [other]}), [pod("a")], 0, None, now=NOW)
    assert status["conditions"] == [other]


def test_status_changed() -> None:
    current = calculate_status(rs(1), [pod("a")], 0, None, now=NOW)
    assert not status_changed(rs(1, status=current), current)
    assert status_changed(rs(1, status=current), {**current, "readyReplicas": 0})
    assert status_changed(rs(1, status=current, generation=3), calculate_status(rs(1, generation=3), [pod("a")], 0,
                                                                                None, now=NOW))
    assert status_changed(rs(1), current)


def test_next_availability_check() -> None:
    spec = rs(3, min_ready=30)
    pods = [pod("a", ready_ago=20), pod("b", ready_ago=5), pod("c", ready_ago=100), pod("d", ready=False)]
    wait = next_availability_check(spec, pods, NOW)
    assert wait is not None and 10 <= wait < 10.5
    assert next_availability_check(spec, [pod("c", ready_ago=100)], NOW) is None
    assert next_availability_check(rs(3), pods, NOW) is None  # no minReadySeconds: ready is available
