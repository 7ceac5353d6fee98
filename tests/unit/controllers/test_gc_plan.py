"""The garbage collector's pure decisions, one per deletion mode."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api.registry import resolve
from kubelite.controllers.gc import (
    Delete,
    Node,
    OwnerState,
    RemoveFinalizer,
    Requeue,
    SetOwnerReferences,
    owner_state,
    plan_dependent,
    plan_foreground,
    plan_orphan,
)

DEPLOY = resolve("deployments")
RS = resolve("replicasets")
POD = resolve("pods")
NOW = "2025-01-01T00:00:00Z"


def ref(uid: str, *, block: bool = True, kind: str = "Deployment") -> dict[str, Any]:
    r: dict[str, Any] = {"apiVersion": "apps/v1", "kind": kind, "name": f"owner-{uid}", "uid": uid}
    if block:
        r["blockOwnerDeletion"] = True
    return r


def node(uid: str, *, owners: tuple[dict[str, Any], ...] = (), deleting: bool = False,
         finalizers: tuple[str, ...] = (), kind: Any = RS) -> Node:
    md: dict[str, Any] = {"name": f"obj-{uid}", "namespace": "default", "uid": uid, "resourceVersion": "5"}
    if owners:
        md["ownerReferences"] = list(owners)
    if deleting:
        md["deletionTimestamp"] = NOW
    if finalizers:
        md["finalizers"] = list(finalizers)
    return Node(kind, {"metadata": md})


# --- owner state -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("owner", "state"), [
    pytest.param(node("o").obj, OwnerState.PRESENT, id="alive"),
    pytest.param(node("o", deleting=True, finalizers=("foregroundDeletion",)).obj,
                 OwnerState.DELETING_DEPENDENTS, id="foreground"),
    pytest.param(node("o", deleting=True, finalizers=("orphan",)).obj, OwnerState.PRESENT, id="orphaning"),
    pytest.param(node("o", deleting=True, finalizers=("example.com/f",)).obj, OwnerState.PRESENT,
                 id="other-finalizer"),
])
def test_owner_state(owner: dict[str, Any], state: OwnerState) -> None:
    assert owner_state(owner) is state


# --- dependents (background and the dependent's side of foreground) ----------------------------------

def test_no_owner_references_nothing_to_do() -> None:
    assert plan_dependent(node("x"), {}, has_dependents=False) == []


def test_owner_present_nothing_to_do() -> None:
    rs = node("rs", owners=(ref("d"),))
    assert plan_dependent(rs, {"d": OwnerState.PRESENT}, has_dependents=False) == []


def test_all_owners_absent_deletes_in_background() -> None:
    rs = node("rs", owners=(ref("d1"), ref("d2")))
    plan = plan_dependent(rs, {"d1": OwnerState.ABSENT, "d2": OwnerState.ABSENT}, has_dependents=True)
    assert plan == [Delete(rs, "Background")]


@pytest.mark.parametrize(("finalizer", "policy"), [
    pytest.param("orphan", "Orphan", id="orphan"),
    pytest.param("foregroundDeletion", "Foreground", id="foreground"),
])
def test_garbage_is_deleted_with_the_policy_its_finalizers_ask(finalizer: str, policy: str) -> None:
    rs = node("rs", owners=(ref("d"),), finalizers=(finalizer,))
    assert plan_dependent(rs, {"d": OwnerState.ABSENT}, has_dependents=False) == [Delete(rs, policy)]


def test_dangling_reference_dropped_when_another_owner_remains() -> None:
    keep, gone = ref("keep"), ref("gone")
    rs = node("rs", owners=(keep, gone))
    plan = plan_dependent(rs, {"keep": OwnerState.PRESENT, "gone": OwnerState.ABSENT}, has_dependents=False)
    assert plan == [SetOwnerReferences(rs, (keep,))]


def test_unresolvable_owner_counts_as_present() -> None:
    odd, gone = ref("odd", kind="Gizmo"), ref("gone")
    rs = node("rs", owners=(odd, gone))
    plan = plan_dependent(rs, {"odd": OwnerState.UNRESOLVABLE, "gone": OwnerState.ABSENT}, has_dependents=False)
    assert plan == [SetOwnerReferences(rs, (odd,))]
    alone = node("rs2", owners=(odd,))
    assert plan_dependent(alone, {"odd": OwnerState.UNRESOLVABLE}, has_dependents=False) == []


def test_owner_waiting_for_dependents_and_a_solid_owner_drops_the_waiting_reference() -> None:
    solid, waiting = ref("solid"), ref("waiting")
    rs = node("rs", owners=(solid, waiting))
    plan = plan_dependent(rs, {"solid": OwnerState.PRESENT, "waiting": OwnerState.DELETING_DEPENDENTS},
                          has_dependents=False)
    assert plan == [SetOwnerReferences(rs, (solid,))]


def test_owner_waiting_deletes_a_leaf_in_background() -> None:
    rs = node("rs", owners=(ref("d"),))
    assert plan_dependent(rs, {"d": OwnerState.DELETING_DEPENDENTS}, has_dependents=False) == [
        Delete(rs, "Background")]


def test_owner_waiting_deletes_a_dependent_with_dependents_in_foreground() -> None:
    rs = node("rs", owners=(ref("d"),))
    assert plan_dependent(rs, {"d": OwnerState.DELETING_DEPENDENTS}, has_dependents=True) == [
        Delete(rs, "Foreground")]


def test_object_being_deleted_is_left_alone() -> None:
    rs = node("rs", owners=(ref("d"),), deleting=True)
    assert plan_dependent(rs, {"d": OwnerState.ABSENT}, has_dependents=False) == []


def test_unknown_owner_uid_counts_as_present() -> None:
    rs = node("rs", owners=(ref("d"),))
    assert plan_dependent(rs, {}, has_dependents=False) == []


# --- orphan ----------------------------------------------------------------------------------------

def test_orphan_frees_dependents_then_drops_the_finalizer() -> None:
    owner = node("d", deleting=True, finalizers=("orphan",), kind=DEPLOY)
    other = ref("other")
    only_child = node("rs1", owners=(ref("d"),))
    shared_child = node("rs2", owners=(other, ref("d")))
    plan = plan_orphan(owner, [only_child, shared_child])
    assert plan == [SetOwnerReferences(only_child, ()), SetOwnerReferences(shared_child, (other,)),
                    RemoveFinalizer(owner, "orphan")]


def test_orphan_without_dependents_just_drops_the_finalizer() -> None:
    owner = node("d", deleting=True, finalizers=("orphan", "example.com/keep"), kind=DEPLOY)
    assert plan_orphan(owner, []) == [RemoveFinalizer(owner, "orphan")]


def test_orphan_needs_the_owner_to_be_deleted_with_the_finalizer() -> None:
    assert plan_orphan(node("d", finalizers=("orphan",)), [node("rs", owners=(ref("d"),))]) == []
    assert plan_orphan(node("d", deleting=True), [node("rs", owners=(ref("d"),))]) == []


# --- foreground (the owner's side) ------------------------------------------------------------------

def test_foreground_waits_for_blocking_dependents_and_drives_them() -> None:
    owner = node("d", deleting=True, finalizers=("foregroundDeletion",), kind=DEPLOY)
    blocking = node("rs1", owners=(ref("d"),))
    loose = node("rs2", owners=(ref("d", block=False),))
    going = node("rs3", owners=(ref("d"),), deleting=True, finalizers=("example.com/keep",))
    assert plan_foreground(owner, [blocking, loose, going]) == [Requeue(("rs1", "rs2"))]


def test_foreground_waits_quietly_while_blocking_dependents_are_being_deleted() -> None:
    owner = node("d", deleting=True, finalizers=("foregroundDeletion",), kind=DEPLOY)
    going = node("rs", owners=(ref("d"),), deleting=True, finalizers=("foregroundDeletion",))
    assert plan_foreground(owner, [going]) == []


def test_foreground_releases_the_owner_when_nothing_blocks() -> None:
    owner = node("d", deleting=True, finalizers=("foregroundDeletion",), kind=DEPLOY)
    loose = node("rs", owners=(ref("d", block=False),))
    assert plan_foreground(owner, [loose]) == [RemoveFinalizer(owner, "foregroundDeletion")]
    assert plan_foreground(owner, []) == [RemoveFinalizer(owner, "foregroundDeletion")]


def test_foreground_needs_the_owner_to_be_deleted_with_the_finalizer() -> None:
    assert plan_foreground(node("d", finalizers=("foregroundDeletion",)), []) == []
