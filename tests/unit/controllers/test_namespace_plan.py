"""The Namespace controller's pure decisions: what to delete, when to finalize, which conditions to show."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api.registry import Kind, resolve
from kubelite.controllers.namespace import (
    CONDITION_TYPES,
    DeleteCollection,
    DeleteObject,
    content_kinds,
    finalized,
    needs_cleanup,
    plan_deletions,
    plan_outcome,
    updated_conditions,
)

CM = resolve("configmaps")
DEPLOY = resolve("deployments")
POD = resolve("pods")
# A kind without deletecollection (as Services were in Kubernetes for a long time).
NO_COLLECTION = Kind("example.com", "v1", "Widget", "widgets", True,
                     verbs=("create", "delete", "get", "list", "watch"))
NOW = "2025-01-01T00:00:00Z"
LATER = "2025-01-01T00:01:00Z"


def ns(*, deleting: bool = True, spec_finalizers: tuple[str, ...] = ("kubernetes",),
       conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": "doomed", "uid": "ns-uid", "resourceVersion": "7"}
    if deleting:
        md["deletionTimestamp"] = NOW
    status: dict[str, Any] = {"phase": "Terminating" if deleting else "Active"}
    if conditions is not None:
        status["conditions"] = conditions
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md,
            "spec": {"finalizers": list(spec_finalizers)}, "status": status}


def obj(name: str, *, deleting: bool = False, finalizers: tuple[str, ...] = (),
        grace: int | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": "doomed", "uid": f"uid-{name}"}
    if deleting:
        md["deletionTimestamp"] = NOW
    if finalizers:
        md["finalizers"] = list(finalizers)
    if grace is not None:
        md["deletionGracePeriodSeconds"] = grace
    return {"metadata": md}


def by_type(conditions: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    assert conditions is not None
    return {c["type"]: c for c in conditions}


@pytest.mark.parametrize(("namespace", "expected"), [
    pytest.param(ns(), True, id="terminating-with-finalizer"),
    pytest.param(ns(deleting=False), False, id="active"),
    pytest.param(ns(spec_finalizers=()), False, id="already-finalized"),
    pytest.param(ns(spec_finalizers=("example.com/other",)), False, id="only-other-finalizers"),
])
def test_needs_cleanup(namespace: dict[str, Any], expected: bool) -> None:
    assert needs_cleanup(namespace) is expected


def test_content_kinds_are_the_namespaced_deletable_ones() -> None:
    kinds = content_kinds()
    assert CM in kinds and DEPLOY in kinds and POD in kinds
    assert all(k.namespaced for k in kinds)
    assert resolve("namespaces") not in kinds and resolve("nodes") not in kinds


def test_deletions_one_collection_per_kind_with_live_objects() -> None:
    contents = {CM: [obj("a"), obj("b")], DEPLOY: [], POD: [obj("p", deleting=True, grace=30)]}
    assert plan_deletions(contents) == [DeleteCollection(CM)]


def test_deletions_per_object_without_deletecollection() -> None:
    contents = {NO_COLLECTION: [obj("w1"), obj("w2", deleting=True), obj("w3")]}
    assert plan_deletions(contents) == [DeleteObject(NO_COLLECTION, "w1", "uid-w1"),
                                        DeleteObject(NO_COLLECTION, "w3", "uid-w3")]


def test_nothing_to_delete_when_everything_is_going() -> None:
    assert plan_deletions({CM: [obj("a", deleting=True, finalizers=("x.io/f",))], DEPLOY: []}) == []


def test_empty_namespace_is_finalized_with_all_clear_conditions() -> None:
    out = plan_outcome(ns(), {CM: [], DEPLOY: []}, [], now=NOW)
    assert out.finalize and out.requeue_after is None
    conditions = by_type(out.conditions)
    assert list(conditions) == list(CONDITION_TYPES)
    assert all(c["status"] == "False" and c["lastTransitionTime"] == NOW for c in conditions.values())
    assert conditions["NamespaceContentRemaining"]["reason"] == "ContentRemoved"
    assert conditions["NamespaceFinalizersRemaining"]["message"] == "All content-preserving finalizers finished"


def test_remaining_content_waits_as_kubernetes_estimates() -> None:
    remaining = {CM: [obj("a", deleting=True, finalizers=("example.com/keep",))],
                 DEPLOY: [obj("d", deleting=True, finalizers=("example.com/keep", "foregroundDeletion"))]}
    out = plan_outcome(ns(), remaining, [], now=NOW)
    assert not out.finalize
    assert out.requeue_after == 15 / 2 + 1
    conditions = by_type(out.conditions)
    content = conditions["NamespaceContentRemaining"]
    assert (content["status"], content["reason"]) == ("True", "SomeResourcesRemain")
    assert content["message"] == ("Some resources are remaining: configmaps. has 1 resource instances, "
                                  "deployments.apps has 1 resource instances")
    fins = conditions["NamespaceFinalizersRemaining"]
    assert (fins["status"], fins["reason"]) == ("True", "SomeFinalizersRemain")
    assert fins["message"] == ("Some content in the namespace has finalizers remaining: example.com/keep in 2 "
                               "resource instances, foregroundDeletion in 1 resource instances")


def test_terminating_pods_wait_for_their_grace_period() -> None:
    out = plan_outcome(ns(), {POD: [obj("p", deleting=True, grace=30)]}, [], now=NOW)
    assert out.requeue_after == 30 / 2 + 1
    assert by_type(out.conditions)["NamespaceFinalizersRemaining"]["status"] == "False"


def test_content_seen_but_not_yet_marked_is_looked_at_again_soon() -> None:
    out = plan_outcome(ns(), {CM: [obj("late")]}, [], now=NOW)
    assert not out.finalize and out.requeue_after == 1


def test_failed_deletions_block_finalizing_and_show() -> None:
    failures = ["unexpected error deleting /v1, Resource=configmaps in doomed: boom"]
    out = plan_outcome(ns(), {CM: []}, failures, now=NOW)
    assert not out.finalize and out.requeue_after is None
    failed = by_type(out.conditions)["NamespaceDeletionContentFailure"]
    assert (failed["status"], failed["reason"]) == ("True", "ContentDeletionFailed")
    assert failed["message"] == f"Failed to delete all resource types, 1 remaining: {failures[0]}"


def test_conditions_unchanged_means_no_write() -> None:
    first = plan_outcome(ns(), {CM: [obj("a", deleting=True, finalizers=("x.io/f",))]}, [], now=NOW)
    again = plan_outcome(ns(conditions=first.conditions), {CM: [obj("a", deleting=True, finalizers=("x.io/f",))]},
                         [], now=LATER)
    assert again.conditions is None


def test_transition_time_moves_only_when_status_changes() -> None:
    remaining = {CM: [obj("a", deleting=True, finalizers=("x.io/f",)), obj("b", deleting=True,
                                                                           finalizers=("x.io/f",))]}
    first = by_type(plan_outcome(ns(), remaining, [], now=NOW).conditions)
    current = list(first.values())
    # Fewer objects: same status, new message, same transition time.
    fewer = by_type(plan_outcome(ns(conditions=current), {CM: [obj("a", deleting=True, finalizers=("x.io/f",))]},
                                 [], now=LATER).conditions)
    assert fewer["NamespaceContentRemaining"]["message"].endswith("configmaps. has 1 resource instances")
    assert fewer["NamespaceContentRemaining"]["lastTransitionTime"] == NOW
    # Everything gone: status flips, the time moves.
    cleared = by_type(plan_outcome(ns(conditions=current), {CM: []}, [], now=LATER).conditions)
    assert cleared["NamespaceContentRemaining"]["status"] == "False"
    assert cleared["NamespaceContentRemaining"]["lastTransitionTime"] == LATER
    assert cleared["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == NOW


def test_conditions_of_other_types_are_kept() -> None:
    foreign = {"type": "example.com/Ready", "status": "True", "reason": "Fine", "message": "",
               "lastTransitionTime": NOW}
    out = updated_conditions([foreign], [], now=NOW)
    assert out is not None and out[0] == foreign and len(out) == 1 + len(CONDITION_TYPES)


def test_finalized_removes_only_our_finalizer_and_copies() -> None:
    original = ns(spec_finalizers=("kubernetes", "example.com/other"))
    out = finalized(original)
    assert out["spec"]["finalizers"] == ["example.com/other"]
    assert original["spec"]["finalizers"] == ["kubernetes", "example.com/other"]
    assert out["metadata"]["resourceVersion"] == "7"
