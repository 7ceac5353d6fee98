"""The Deployment controller's I/O against the client tests' fake API server: what its handlers queue, and how
its writer handles a ReplicaSet name that is taken and a ReplicaSet that cannot be created."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.events import EventBroadcaster
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory
from kubelite.client.rest import ApiException, Client
from kubelite.controllers.context import ControllerContext
from kubelite.controllers.deployment import DeploymentController, HashCollision, _Writer
from kubelite.controllers.deployment_sync import CreateReplicaSet, Plan, WriteStatus, controller_ref
from tests.unit.client.fake_apiserver import FakeApiServer
from tests.unit.controllers.deployment_builders import template

DEPLOY = resolve("deployments")
RS = resolve("replicasets")
POD = resolve("pods")
EVENTS = resolve("events")

Obj = dict[str, Any]


def deployment(name: str, *, strategy: str = "RollingUpdate", deadline: int | None = 600) -> Obj:
    spec: Obj = {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                 "strategy": {"type": strategy}}
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


def replica_set(name: str, labels: dict[str, str], owner: Obj | None = None) -> Obj:
    md: Obj = {"name": name, "namespace": "default", "labels": labels}
    if owner is not None:
        md["ownerReferences"] = [controller_ref(owner)]
    return {"metadata": md, "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                                     "template": {"metadata": {"labels": labels}}}}


def queued(controller: DeploymentController) -> set[str]:
    keys = set(controller.queue._queue)
    controller.queue._queue.clear()
    controller.queue._dirty.clear()
    return keys


@pytest.fixture
async def events(client: Client) -> AsyncIterator[EventBroadcaster]:
    async with EventBroadcaster(client) as broadcaster:
        yield broadcaster


@pytest.fixture
async def synced(client: Client, fake: FakeApiServer,
                 events: EventBroadcaster) -> AsyncIterator[tuple[DeploymentController, dict[str, Obj]]]:
    """A controller whose caches hold two Deployments (web: RollingUpdate, db: Recreate), a ReplicaSet and a
    pod of each, and an orphan ReplicaSet matching web; handlers are called by hand."""
    web = fake.create(DEPLOY, deployment("web"))
    db = fake.create(DEPLOY, deployment("db", strategy="Recreate"))
    objs = {
        "web": web, "db": db,
        "web-rs": fake.create(RS, replica_set("web-1", {"app": "web"}, web)),
        "db-rs": fake.create(RS, replica_set("db-1", {"app": "db"}, db)),
        "orphan": fake.create(RS, replica_set("stray", {"app": "web"})),
    }
    for name, rs_key in (("web-pod", "web-rs"), ("db-pod", "db-rs")):
        objs[name] = fake.create(POD, {"metadata": {"name": name, "namespace": "default",
                                                    "ownerReferences": [meta.new_controller_ref(objs[rs_key])]},
                                       "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    controller = DeploymentController(ControllerContext(client, events))
    factory = InformerFactory(client)
    controller.setup(factory)
    async with factory:
        await factory.wait_for_cache_sync()
        queued(controller)  # the initial adds
        yield controller, objs


async def test_replica_set_events_queue_their_deployment(
        synced: tuple[DeploymentController, dict[str, Obj]]) -> None:
    controller, objs = synced
    controller._add_replica_set(objs["web-rs"])
    assert queued(controller) == {"default/web"}
    controller._add_replica_set(objs["orphan"])  # web may adopt it
    assert queued(controller) == {"default/web"}
    controller._delete_replica_set(DeletedFinalStateUnknown("default/db-1", objs["db-rs"]))
    assert queued(controller) == {"default/db"}
    impostor = replica_set("web-1", {"app": "web"}, {**objs["web"], "metadata": {**objs["web"]["metadata"],
                                                                                   "uid": "another"}})
    controller._add_replica_set(impostor)  # names web, but not this web
    assert queued(controller) == set()


async def test_replica_set_updates_queue_old_and_new_controllers(
        synced: tuple[DeploymentController, dict[str, Obj]]) -> None:
    controller, objs = synced
    controller._update_replica_set(objs["web-rs"], objs["web-rs"])
    assert queued(controller) == set()  # a resync
    released = {**objs["web-rs"], "metadata": {**objs["web-rs"]["metadata"], "ownerReferences": [],
                                               "resourceVersion": "999"}}
    controller._update_replica_set(objs["web-rs"], released)
    assert queued(controller) == {"default/web"}
    moved = {**objs["db-rs"], "metadata": {**objs["db-rs"]["metadata"], "labels": {"app": "web"},
                                           "ownerReferences": [], "resourceVersion": "1000"}}
    controller._update_replica_set(objs["db-rs"], moved)
    assert queued(controller) == {"default/db", "default/web"}


async def test_a_recreate_deployment_is_synced_when_its_last_pod_goes(
        synced: tuple[DeploymentController, dict[str, Obj]], fake: FakeApiServer) -> None:
    controller, objs = synced
    controller._delete_pod(objs["web-pod"])
    assert queued(controller) == set()  # RollingUpdate does not wait for pods
    controller._delete_pod(objs["db-pod"])
    assert queued(controller) == set()  # still in the cache: not the last one yet
    gone = fake.delete(POD, "default", "db-pod")
    async with asyncio.timeout(5):
        while controller._pods.get("default/db-pod") is not None:  # noqa: ASYNC110 - the informer delivers
            await asyncio.sleep(0.01)
    queued(controller)  # the informer's own delete handler may have queued it already
    controller._delete_pod(gone)
    assert queued(controller) == {"default/db"}


# --- the writer -----------------------------------------------------------------------------------

def new_replica_set_body(d: Obj, name: str, tmpl: Obj) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                         "ownerReferences": [controller_ref(d)]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": tmpl}}


async def test_our_own_replica_set_already_there_ends_the_plan_quietly(
        client: Client, fake: FakeApiServer, events: EventBroadcaster) -> None:
    d = fake.create(DEPLOY, deployment("web"))
    body = new_replica_set_body(d, "web-abc", d["spec"]["template"])
    fake.create(RS, body)
    controller = DeploymentController(ControllerContext(client, events))
    plan = Plan((CreateReplicaSet(body, 1), WriteStatus({"observedGeneration": 1})))
    await _Writer(controller, d, []).run(plan)
    assert not [r for r in fake.requests if r.method == "PUT"]  # the rest waits for the next sync


async def test_a_name_taken_by_another_template_raises_the_collision_count(
        client: Client, fake: FakeApiServer, events: EventBroadcaster) -> None:
    d = fake.create(DEPLOY, deployment("web"))
    fake.create(RS, new_replica_set_body(d, "web-abc", template("busybox")))
    controller = DeploymentController(ControllerContext(client, events))
    body = new_replica_set_body(d, "web-abc", d["spec"]["template"])
    with pytest.raises(HashCollision):
        await _Writer(controller, d, []).run(Plan((CreateReplicaSet(body, 1),)))
    stored = fake.get(DEPLOY, "default", "web")
    assert stored is not None and stored["status"]["collisionCount"] == 1


async def test_a_failed_create_is_reported_in_the_progressing_condition_and_an_event(
        client: Client, fake: FakeApiServer, events: EventBroadcaster) -> None:
    d = fake.create(DEPLOY, deployment("web"))
    fake.fail_next(403, method="POST", path_contains="replicasets", reason="Forbidden")
    controller = DeploymentController(ControllerContext(client, events))
    body = new_replica_set_body(d, "web-abc", d["spec"]["template"])
    with pytest.raises(ApiException):
        await _Writer(controller, d, []).run(Plan((CreateReplicaSet(body, 1),)))
    stored = fake.get(DEPLOY, "default", "web")
    assert stored is not None
    [cond] = stored["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Progressing", "False", "ReplicaSetCreateError")
    assert cond["message"] == 'Failed to create new replica set "web-abc": injected 403'
    await events.flush()
    [event] = [o for k, o in fake.objects.items() if k.startswith(EVENTS.resource_prefix)]
    assert (event["type"], event["reason"], event["message"]) == ("Warning", "ReplicaSetCreateError", cond["message"])
