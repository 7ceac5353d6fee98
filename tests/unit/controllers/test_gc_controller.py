"""The garbage collector's I/O against the client tests' fake API server: how owners missing from the caches
are looked up, what the handlers queue, and the writes each action sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.informer import InformerFactory
from kubelite.client.rest import Client
from kubelite.controllers.gc import (
    Delete,
    GarbageCollector,
    Node,
    OwnerState,
    RemoveFinalizer,
    SetOwnerReferences,
)
from tests.unit.client.fake_apiserver import FakeApiServer

DEPLOY = resolve("deployments")
RS = resolve("replicasets")
NODE = resolve("nodes")
NOW = "2025-01-01T00:00:00Z"


@pytest.fixture
def gc(client: Client) -> GarbageCollector:
    """A collector set up on a factory that never starts: its caches stay empty, so every owner is looked up
    live and handlers can be called by hand."""
    collector = GarbageCollector(client, absent_cache_size=2)
    collector.setup(InformerFactory(client))
    return collector


@pytest.fixture
async def synced_gc(client: Client) -> AsyncIterator[GarbageCollector]:
    collector = GarbageCollector(client)
    factory = InformerFactory(client)
    collector.setup(factory)
    async with factory:
        await factory.wait_for_cache_sync()
        yield collector


def ref(owner: dict[str, Any], *, api_version: str = "apps/v1", kind: str = "Deployment") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": meta.name(owner), "uid": meta.uid(owner),
            "blockOwnerDeletion": True}


def rs(*owners: dict[str, Any], uid: str = "rs-uid") -> Node:
    return Node(RS, {"metadata": {"name": "rs", "namespace": "default", "uid": uid, "resourceVersion": "3",
                                  "ownerReferences": list(owners)}})


def gets(fake: FakeApiServer) -> list[str]:
    return [r.path for r in fake.requests if r.method == "GET"]


async def test_owner_missing_from_cache_is_looked_up_live(gc: GarbageCollector, fake: FakeApiServer) -> None:
    owner = fake.create(DEPLOY, {"metadata": {"name": "d", "namespace": "default"}})
    assert await gc._owner_state(rs(), ref(owner)) is OwnerState.PRESENT
    assert gets(fake) == ["/apis/apps/v1/namespaces/default/deployments/d"]

    marked = fake.create(DEPLOY, {"metadata": {"name": "fg", "namespace": "default", "deletionTimestamp": NOW,
                                               "finalizers": ["foregroundDeletion"]}})
    assert await gc._owner_state(rs(), ref(marked)) is OwnerState.DELETING_DEPENDENTS


async def test_absent_owner_is_confirmed_once(gc: GarbageCollector, fake: FakeApiServer) -> None:
    ghost = {"metadata": {"name": "ghost", "uid": "ghost-uid"}}
    assert await gc._owner_state(rs(), ref(ghost)) is OwnerState.ABSENT
    assert await gc._owner_state(rs(), ref(ghost)) is OwnerState.ABSENT
    assert len(gets(fake)) == 1  # remembered: a uid never comes back


async def test_owner_name_reused_by_another_object_is_absent(gc: GarbageCollector, fake: FakeApiServer) -> None:
    fake.create(DEPLOY, {"metadata": {"name": "d", "namespace": "default"}})
    old = {"metadata": {"name": "d", "uid": "the-old-uid"}}
    assert await gc._owner_state(rs(), ref(old)) is OwnerState.ABSENT


async def test_absent_memory_is_bounded(gc: GarbageCollector, fake: FakeApiServer) -> None:
    ghosts = [{"metadata": {"name": f"g{i}", "uid": f"g{i}"}} for i in range(3)]
    for g in ghosts:
        await gc._owner_state(rs(), ref(g))
    await gc._owner_state(rs(), ref(ghosts[0]))  # forgotten (size 2): asked again
    await gc._owner_state(rs(), ref(ghosts[2]))  # still remembered
    assert len(gets(fake)) == 4


@pytest.mark.parametrize(("dependent", "reference"), [
    pytest.param(rs(), {"apiVersion": "example.com/v1", "kind": "Gizmo", "name": "g", "uid": "g"},
                 id="unknown-kind"),
    pytest.param(Node(NODE, {"metadata": {"name": "n", "uid": "n"}}),
                 {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "d"},
                 id="namespaced-owner-of-cluster-scoped"),
    pytest.param(rs(), {"apiVersion": "apps/v1", "kind": "Deployment", "uid": "d"}, id="no-name"),
])
async def test_unresolvable_owners_are_never_looked_up(gc: GarbageCollector, fake: FakeApiServer,
                                                       dependent: Node, reference: dict[str, Any]) -> None:
    assert await gc._owner_state(dependent, reference) is OwnerState.UNRESOLVABLE
    assert gets(fake) == []


def test_handlers_queue_what_may_need_work(gc: GarbageCollector) -> None:
    owner = {"metadata": {"name": "d", "uid": "d-uid"}}
    plain = {"metadata": {"name": "x", "uid": "x-uid"}}
    child = {"metadata": {"name": "c", "uid": "c-uid", "ownerReferences": [ref(owner)]}}
    gc._added(plain)
    assert len(gc.queue) == 0
    gc._added(child)
    assert len(gc.queue) == 1
    orphaning = {"metadata": {"name": "o", "uid": "o-uid", "deletionTimestamp": NOW, "finalizers": ["orphan"]}}
    gc._updated(plain, orphaning)
    assert len(gc.queue) == 2
    # A dependent dropping its reference re-queues the owner (which may wait for it in the foreground).
    freed = {"metadata": {"name": "c", "uid": "c-uid"}}
    gc._updated(child, freed)
    assert len(gc.queue) == 3
    gc._deleted(child)  # its owners may have waited for it
    assert len(gc.queue) == 3  # d-uid already queued


async def test_actions_send_guarded_writes(synced_gc: GarbageCollector, fake: FakeApiServer) -> None:
    owner = fake.create(DEPLOY, {"metadata": {"name": "d", "namespace": "default", "finalizers": ["orphan"]}})
    child = fake.create(RS, {"metadata": {"name": "rs", "namespace": "default", "ownerReferences": [ref(owner)]}})
    await synced_gc._apply(SetOwnerReferences(Node(RS, child), ()))
    await synced_gc._apply(RemoveFinalizer(Node(DEPLOY, owner), "orphan"))
    await synced_gc._apply(Delete(Node(RS, child), "Background"))
    sent = [(r.method, r.path, json.loads(r.body)) for r in fake.requests if r.method in ("PATCH", "DELETE")]
    assert sent[0][:2] == ("PATCH", "/apis/apps/v1/namespaces/default/replicasets/rs")
    assert sent[0][2] == {"metadata": {"resourceVersion": meta.resource_version(child), "ownerReferences": None}}
    assert sent[1][:2] == ("PATCH", "/apis/apps/v1/namespaces/default/deployments/d")
    assert sent[1][2] == {"metadata": {"resourceVersion": meta.resource_version(owner), "finalizers": None}}
    assert sent[2][:2] == ("DELETE", "/apis/apps/v1/namespaces/default/replicasets/rs")
    assert sent[2][2]["propagationPolicy"] == "Background"
    assert sent[2][2]["preconditions"] == {"uid": meta.uid(child), "resourceVersion": meta.resource_version(child)}
    await synced_gc._apply(Delete(Node(RS, child), "Background"))  # already gone: not an error
