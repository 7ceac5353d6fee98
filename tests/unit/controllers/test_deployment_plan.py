"""The Deployment controller's plans (deployment_plan, deployment_sync, rolling, recreate), without I/O: one
sync at a time, carried out on an in-memory cluster (`World`) that also plays the ReplicaSet controller."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.controllers.deployment_plan import claim_replica_sets, plan_deployment, selector_of
from kubelite.controllers.deployment_status import (
    AVAILABLE,
    NEW_RS_AVAILABLE,
    NEW_RS_CREATED,
    PAUSED,
    PROGRESSING,
    RS_UPDATED,
    get_condition,
)
from kubelite.controllers.deployment_sync import (
    CreateReplicaSet,
    DeleteReplicaSet,
    Plan,
    RecordEvent,
    SetRevision,
    UpdateReplicaSet,
    WriteStatus,
)
from kubelite.controllers.deployment_util import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    compute_hash,
    max_surge,
    max_unavailable,
)
from tests.unit.controllers.deployment_builders import T0, UID, World, deployment, replica_set, template

Obj = dict[str, Any]


def creates(plan: Plan) -> list[CreateReplicaSet]:
    return [a for a in plan.actions if isinstance(a, CreateReplicaSet)]


def updates(plan: Plan) -> list[UpdateReplicaSet]:
    return [a for a in plan.actions if isinstance(a, UpdateReplicaSet)]


def written_status(plan: Plan) -> Obj | None:
    found = [a.status for a in plan.actions if isinstance(a, WriteStatus)]
    return found[-1] if found else None


def run(world: World, steps: int = 60) -> None:
    """Sync and let pods become available until nothing changes any more."""
    for _ in range(steps):
        world.settle()
        plan = world.sync()
        if not plan.actions:
            return
    pytest.fail("the rollout did not settle")


def rolled_out(d: Obj, image: str = "nginx:1.25", **kwargs: Any) -> World:
    world = World(deployment(d["spec"]["replicas"], image=image, **kwargs) if not kwargs else d)
    run(world)
    return world


# --- a new Deployment ------------------------------------------------------------------------------

def test_a_new_deployment_creates_its_replica_set_owned_labelled_and_annotated() -> None:
    world = World(deployment(3))
    plan = world.sync()
    [create] = creates(plan)
    rs = create.body
    template_hash = compute_hash(template(), None)
    assert meta.name(rs) == f"web-{template_hash}" and create.replicas == 3
    assert rs["metadata"]["labels"] == {"app": "web", HASH_LABEL: template_hash}
    assert rs["spec"]["selector"] == {"matchLabels": {"app": "web", HASH_LABEL: template_hash}}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: template_hash}
    assert rs["spec"]["template"]["spec"] == template()["spec"]
    assert rs["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                  "uid": UID, "controller": True, "blockOwnerDeletion": True}]
    assert rs["metadata"]["annotations"] == {REVISION: "1", DESIRED_REPLICAS: "3", MAX_REPLICAS: "4"}
    assert rs["spec"]["replicas"] == 3 and rs["spec"]["minReadySeconds"] == 0
    assert SetRevision("1") in plan.actions
    status = written_status(plan)
    assert status is not None and status["observedGeneration"] == 1
    progressing = get_condition(status, PROGRESSING)
    assert progressing is not None and progressing["reason"] == NEW_RS_CREATED
    assert progressing["message"] == f'Created new replica set "web-{template_hash}"'
    assert world.events == [("Normal", "ScalingReplicaSet", f"Scaled up replica set web-{template_hash} from 0 to 3")]


def test_a_rolled_out_deployment_reports_what_kubectl_rollout_status_waits_for() -> None:
    world = World(deployment(3))
    run(world)
    st = world.d["status"]
    assert (st["observedGeneration"], st["replicas"], st["updatedReplicas"], st["availableReplicas"],
            st["readyReplicas"]) == (1, 3, 3, 3, 3)
    assert "unavailableReplicas" not in st  # zero, left out as Go's omitempty does
    progressing, available = get_condition(st, PROGRESSING), get_condition(st, AVAILABLE)
    assert progressing is not None and progressing["reason"] == NEW_RS_AVAILABLE
    assert available is not None and available["status"] == "True"
    assert world.d["metadata"]["annotations"][REVISION] == "1"
    assert world.sync().actions == ()  # nothing left to do


def test_deployment_annotations_and_min_ready_seconds_reach_the_replica_set() -> None:
    world = World(deployment(2, min_ready=5, annotations={"kubernetes.io/change-cause": "first"}))
    [create] = creates(world.sync())
    assert create.body["spec"]["minReadySeconds"] == 5
    assert create.body["metadata"]["annotations"]["kubernetes.io/change-cause"] == "first"
    world.settle()
    world.d["spec"]["minReadySeconds"] = 9
    world.d["metadata"]["annotations"]["kubernetes.io/change-cause"] = "second"
    [update] = updates(world.sync())
    assert update.min_ready_seconds == 9 and update.annotations["kubernetes.io/change-cause"] == "second"
    assert update.replicas == update.scaled_from == 2


# --- rolling updates ------------------------------------------------------------------------------

@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [
    (10, "25%", "25%"), (10, 3, 2), (5, 0, 1), (5, 1, 0), (3, "0%", "1%"), (4, "50%", "50%"), (1, 1, 0), (1, 0, 1),
    (7, "30%", "10%"), (2, "100%", 0),
])
def test_rolling_update_never_exceeds_max_surge_or_max_unavailable(replicas: int, surge: int | str,
                                                                    unavailable: int | str) -> None:
    world = World(deployment(replicas, max_surge=surge, max_unavailable=unavailable))
    run(world)
    most = replicas + max_surge(world.d)
    least = replicas - max_unavailable(world.d)
    world.change(image="nginx:1.26")
    for _ in range(100):
        plan = world.sync()
        assert world.total() <= most, world.by_image()
        assert world.total("availableReplicas") >= least, world.rss
        world.settle()
        if not plan.actions:
            break
    else:
        pytest.fail("the rolling update did not finish")
    assert world.by_image() == {"nginx:1.25": 0, "nginx:1.26": replicas}
    st = world.d["status"]
    assert (st["observedGeneration"], st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == \
        (2, replicas, replicas, replicas)
    revisions = {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][REVISION]
                 for rs in world.rss.values()}
    assert revisions == {"nginx:1.25": "1", "nginx:1.26": "2"}
    assert world.d["metadata"]["annotations"][REVISION] == "2"


def test_rolling_update_steps_and_events() -> None:
    world = World(deployment(4, max_surge=1, max_unavailable=1))
    run(world)
    old_name = next(iter(world.rss))
    world.change(image="nginx:1.26")
    world.events.clear()
    # One sync creates the new ReplicaSet as big as the surge allows (1) and takes the old one down to the
    # availability floor (3): the new pod is not available yet, so only one old pod may go.
    first = world.sync()
    [create] = creates(first)
    new_name = meta.name(create.body)
    assert create.replicas == 1
    assert [(u.name, u.scaled_from, u.replicas) for u in updates(first)] == [(old_name, 4, 3)]
    second = world.sync()  # room again under the surge: the new one grows
    assert [(u.name, u.scaled_from, u.replicas) for u in updates(second)] == [(new_name, 1, 2)]
    assert world.sync().actions == ()  # nothing may move until new pods are available
    assert world.events == [
        ("Normal", "ScalingReplicaSet", f"Scaled up replica set {new_name} from 0 to 1"),
        ("Normal", "ScalingReplicaSet", f"Scaled down replica set {old_name} from 4 to 3"),
        ("Normal", "ScalingReplicaSet", f"Scaled up replica set {new_name} from 1 to 2"),
    ]
    progressing = get_condition(world.d["status"], PROGRESSING)
    assert progressing is not None and progressing["reason"] == RS_UPDATED


def test_unhealthy_old_pods_go_first_without_costing_availability() -> None:
    d = deployment(4, max_surge=0, max_unavailable=1, image="nginx:1.26")
    old_a = replica_set(d, 2, image="a", available=0, revision=1, created=1)
    old_b = replica_set(d, 2, image="b", available=2, revision=2, created=2)
    new = replica_set(d, 0, revision=3, created=3)
    plan = plan_deployment(d, [old_a, new, old_b], {}, now=T0)
    # 4 pods, 3 must stay available, 2 are: one pod may go, and it is an unavailable one.
    assert [(u.name, u.replicas) for u in updates(plan)] == [(meta.name(old_a), 1)]


def test_a_broken_new_version_does_not_take_the_old_one_down() -> None:
    world = World(deployment(10, max_surge=3, max_unavailable=2))
    run(world)
    world.broken.add("broken:1")
    world.change(image="broken:1")
    run(world)
    assert world.by_image() == {"nginx:1.25": 8, "broken:1": 5}
    assert world.total("availableReplicas") == 8


def test_scaling_mid_rollout_shares_new_replicas_in_proportion() -> None:
    # Kubernetes' documentation example: 10 replicas, maxSurge 3, maxUnavailable 2, a stuck rollout at 8 old
    # and 5 new; scaled to 15, the old ReplicaSet gets 3 more and the new one 2.
    world = World(deployment(10, max_surge=3, max_unavailable=2))
    run(world)
    world.broken.add("broken:1")
    world.change(image="broken:1")
    run(world)
    world.change(replicas=15)
    plan = world.sync()
    assert not creates(plan)
    assert world.by_image() == {"nginx:1.25": 11, "broken:1": 7}
    for rs in world.rss.values():
        assert rs["metadata"]["annotations"][DESIRED_REPLICAS] == "15"
        assert rs["metadata"]["annotations"][MAX_REPLICAS] == "18"
    world.change(replicas=5)
    world.sync()
    assert world.by_image() == {"nginx:1.25": 5, "broken:1": 3}  # 5 + maxSurge, in proportion


def test_scaling_a_finished_deployment_resizes_its_only_replica_set() -> None:
    world = World(deployment(3))
    run(world)
    world.change(replicas=6)
    [update] = updates(world.sync())
    assert (update.scaled_from, update.replicas) == (3, 6)
    assert update.annotations[DESIRED_REPLICAS] == "6" and update.annotations[MAX_REPLICAS] == "8"
    assert world.events[-1] == ("Normal", "ScalingReplicaSet", f"Scaled up replica set {update.name} from 3 to 6")


def test_undo_makes_the_old_replica_set_new_again_with_the_next_revision() -> None:
    world = World(deployment(3))
    run(world)
    world.change(image="nginx:1.26")
    run(world)
    first = next(rs for rs in world.rss.values() if rs["metadata"]["annotations"][REVISION] == "1")
    world.change(image="nginx:1.25")  # what kubectl rollout undo patches in
    plan = world.sync()
    assert not creates(plan)
    run(world)
    assert first["metadata"]["annotations"][REVISION] == "3"
    assert first["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert world.by_image() == {"nginx:1.25": 3, "nginx:1.26": 0}
    assert world.d["metadata"]["annotations"][REVISION] == "3"


def test_collision_count_changes_the_hash_and_the_name() -> None:
    plan = plan_deployment(deployment(1, status={"collisionCount": 1}), [], {}, now=T0)
    [create] = creates(plan)
    assert meta.name(create.body) == f"web-{compute_hash(template(), 1)}"
    assert meta.name(create.body) != f"web-{compute_hash(template(), None)}"


def test_progress_deadline_requeue_when_nothing_moves() -> None:
    world = World(deployment(3, deadline=600))
    world.broken.add("broken:1")
    world.change(image="broken:1")
    run(world)
    world.now = T0 + timedelta(seconds=100)
    plan = world.sync()
    assert plan.actions == ()
    updated = get_condition(world.d["status"], PROGRESSING)
    assert updated is not None
    since = meta.parse_rfc3339(updated["lastUpdateTime"])
    assert plan.requeue_after == pytest.approx((since + timedelta(seconds=601) - world.now).total_seconds())
    world.now = T0 + timedelta(seconds=700)
    timed_out = written_status(world.sync())
    assert timed_out is not None
    progressing = get_condition(timed_out, PROGRESSING)
    assert progressing is not None and progressing["reason"] == "ProgressDeadlineExceeded"
    assert world.sync().requeue_after is None  # timed out: nothing more to wait for


# --- Recreate -------------------------------------------------------------------------------------

def test_recreate_scales_old_down_then_waits_for_old_pods_then_creates_the_new_replica_set() -> None:
    d = deployment(3, strategy="Recreate", image="nginx:1.26")
    old = replica_set(d, 3, image="nginx:1.25", revision=1)
    first = plan_deployment(d, [old], {}, now=T0)
    assert [(u.name, u.replicas) for u in updates(first)] == [(meta.name(old), 0)] and not creates(first)
    stopping = copy.deepcopy(old)
    stopping["spec"]["replicas"] = 0  # its pods are still shutting down
    assert not creates(plan_deployment(d, [stopping], {}, now=T0))
    stopping["status"].update(replicas=0, availableReplicas=0, readyReplicas=0)
    pod = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    assert not creates(plan_deployment(d, [stopping], {meta.uid(old): [pod]}, now=T0))
    pod["status"]["phase"] = "Succeeded"
    [create] = creates(plan_deployment(d, [stopping], {meta.uid(old): [pod]}, now=T0))
    assert create.replicas == 3 and create.body["metadata"]["annotations"][REVISION] == "2"


def test_recreate_rollout_end_to_end() -> None:
    world = World(deployment(4, strategy="Recreate"))
    run(world)
    world.change(image="nginx:1.26")
    for _ in range(20):
        plan = world.sync()
        images = {img for img, n in world.by_image().items() if n > 0}
        assert len(images) <= 1  # old and new pods never run side by side
        world.settle()
        if not plan.actions:
            break
    assert world.by_image() == {"nginx:1.25": 0, "nginx:1.26": 4}


# --- cleanup --------------------------------------------------------------------------------------

def test_old_replica_sets_beyond_the_history_limit_are_deleted_oldest_first() -> None:
    complete = {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}
    d = deployment(3, history=2, status=complete)
    new = replica_set(d, 3, revision=6, created=6, annotations={DESIRED_REPLICAS: "3"})
    with_pods = replica_set(d, 0, image="v1", revision=1, created=1, actual=1)
    unobserved = replica_set(d, 0, image="v2", revision=2, created=2)
    unobserved["metadata"]["generation"] = 2
    olds = [replica_set(d, 0, image=f"v{n}", revision=n, created=n) for n in (3, 4, 5)]
    plan = plan_deployment(d, [new, with_pods, unobserved, *olds], {}, now=T0)
    deleted = [a.name for a in plan.actions if isinstance(a, DeleteReplicaSet)]
    assert deleted == [meta.name(olds[0])]  # revisions 1-3 are beyond the limit; 1 and 2 are not done yet


def test_no_cleanup_without_a_history_limit_or_before_the_rollout_completes() -> None:
    d = deployment(3, history=None, status={"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3,
                                            "availableReplicas": 3})
    rss = [replica_set(d, 3, revision=3)] + [replica_set(d, 0, image=f"v{n}", revision=n) for n in (1, 2)]
    assert not [a for a in plan_deployment(d, rss, {}, now=T0).actions if isinstance(a, DeleteReplicaSet)]
    d = deployment(3, history=0)
    assert not [a for a in plan_deployment(d, rss, {}, now=T0).actions if isinstance(a, DeleteReplicaSet)]


# --- paused ---------------------------------------------------------------------------------------

def test_a_paused_deployment_does_not_roll_out_but_still_scales() -> None:
    world = World(deployment(3))
    run(world)
    world.d["spec"]["paused"] = True
    world.change(image="nginx:1.26")
    plan = world.sync()
    assert not creates(plan)
    progressing = get_condition(world.d["status"], PROGRESSING)
    assert progressing is not None and (progressing["status"], progressing["reason"]) == ("Unknown", PAUSED)
    world.change(replicas=5)
    world.sync()
    assert world.by_image() == {"nginx:1.25": 5}
    world.d["spec"]["paused"] = False
    world.change()
    run(world)
    assert world.by_image() == {"nginx:1.25": 0, "nginx:1.26": 5}


def test_a_paused_deployment_scales_mid_rollout_in_proportion() -> None:
    world = World(deployment(10, max_surge=3, max_unavailable=2))
    run(world)
    world.broken.add("broken:1")
    world.change(image="broken:1")
    run(world)
    world.d["spec"]["paused"] = True
    world.change(replicas=15)
    world.sync()
    assert world.by_image() == {"nginx:1.25": 11, "broken:1": 7}


# --- special cases --------------------------------------------------------------------------------

def test_a_selector_that_selects_everything_is_reported_not_acted_on() -> None:
    d = deployment(3, generation=4)
    d["spec"]["selector"] = {"matchLabels": {}}
    plan = plan_deployment(d, [], {}, now=T0)
    assert plan.actions == (
        RecordEvent("Warning", "SelectingAll", "This deployment is selecting all pods. A non-empty selector is "
                                               "required."),
        WriteStatus({"observedGeneration": 4}))


def test_a_deployment_being_deleted_only_updates_its_status() -> None:
    d = deployment(3, deleting=True, image="nginx:1.26")
    plan = plan_deployment(d, [replica_set(d, 3, image="nginx:1.25", revision=1)], {}, now=T0)
    assert [type(a) for a in plan.actions] == [WriteStatus]


# --- claiming -------------------------------------------------------------------------------------

def test_claims_adopt_matching_orphans_and_release_what_no_longer_matches() -> None:
    d = deployment(3)
    owned = replica_set(d, 1, image="a")
    orphan = replica_set(d, 1, image="b", owned=False)
    stranger = replica_set(d, 1, image="c", owned=False)
    stranger["metadata"]["labels"] = {"app": "other"}
    mismatched = replica_set(d, 1, image="d")
    mismatched["metadata"]["labels"] = {"app": "other"}
    foreign = replica_set(d, 1, image="e", owned=False)
    foreign["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "x", "uid": "other", "controller": True}]
    dying_orphan = replica_set(d, 1, image="f", owned=False)
    dying_orphan["metadata"]["deletionTimestamp"] = meta.format_rfc3339(T0)
    elsewhere = replica_set(d, 1, image="g", owned=False)
    elsewhere["metadata"]["namespace"] = "other"
    claims = claim_replica_sets(d, selector_of(d),
                                [owned, orphan, stranger, mismatched, foreign, dying_orphan, elsewhere])
    assert claims.owned == (owned, orphan)
    assert claims.adopt == (orphan,)
    assert claims.release == (mismatched,)
    deleting = deployment(3, deleting=True)
    claims = claim_replica_sets(deleting, selector_of(deleting), [owned, orphan, mismatched])
    assert (claims.owned, claims.adopt, claims.release) == ((owned,), (), ())
