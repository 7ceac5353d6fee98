"""The controller manager against the real API server (in-process, in-memory store): namespace deletion and
garbage collection in the Background, Foreground and Orphan modes, seen only through the REST API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from kubelite.api import meta
from kubelite.api.registry import Kind, resolve
from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client, NotFound
from kubelite.controllers import ControllerManager, GarbageCollector, NamespaceController

NS = resolve("namespaces")
CM = resolve("configmaps")
SECRET = resolve("secrets")
DEPLOY = resolve("deployments")
RS = resolve("replicasets")
POD = resolve("pods")
WAIT_SECONDS = 10.0

Obj = dict[str, Any]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A kubelite Client to a real API server, with the controller manager running against it."""
    server = TestServer(build_app(MemoryStore()))
    await server.start_server()
    try:
        async with Client(config_for_server(str(server.make_url("")))) as c:
            # Only the controllers under test: a ReplicaSet controller would add pods of its own.
            async with ControllerManager(c, controllers=lambda ctx: [NamespaceController(c), GarbageCollector(c)]):
                yield c
    finally:
        await server.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll the API until ``check`` holds (the controllers act asynchronously); fail after WAIT_SECONDS."""
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - a client sees the controllers' work only by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def exists(client: Client, kind: Kind, name: str, namespace: str | None = "default") -> bool:
    try:
        await client.get(kind, name, namespace)
    except NotFound:
        return False
    return True


async def wait_gone(client: Client, kind: Kind, name: str, namespace: str | None = "default") -> None:
    async def gone() -> bool:
        return not await exists(client, kind, name, namespace)

    await eventually(gone, f"{kind.plural} {name} is gone")


def labels_spec(name: str) -> Obj:
    labels = {"app": name}
    return {"replicas": 0, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}}


async def create_deployment(client: Client, name: str, namespace: str = "default") -> Obj:
    return await client.create(DEPLOY, {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "metadata": {"name": name, "namespace": namespace},
                                        "spec": labels_spec(name)})


async def create_owned_rs(client: Client, owner: Obj, name: str) -> Obj:
    """A ReplicaSet controlled by ``owner``, as the Deployment controller would stamp it."""
    return await client.create(RS, {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "metadata": {"name": name, "namespace": meta.namespace(owner),
                                                 "ownerReferences": [meta.new_controller_ref(owner)]},
                                    "spec": labels_spec(meta.name(owner))})


async def create_cm(client: Client, name: str, *owners: Obj, namespace: str = "default",
                    finalizers: tuple[str, ...] = ()) -> Obj:
    md: Obj = {"name": name, "namespace": namespace}
    if owners:
        md["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": meta.name(o), "uid": meta.uid(o)}
                                 for o in owners]
    if finalizers:
        md["finalizers"] = list(finalizers)
    return await client.create(CM, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"k": name}})


class Deletions:
    """Records DELETED events of some kinds in one namespace, from a resourceVersion on, with the store
    revision each happened at: the order in which objects really went."""

    def __init__(self, client: Client, kinds: list[Kind], since: str, namespace: str = "default") -> None:
        self.seen: dict[tuple[str, str], int] = {}
        self._changed = asyncio.Event()
        self._tasks = [asyncio.create_task(self._watch(client, k, since, namespace)) for k in kinds]

    async def _watch(self, client: Client, kind: Kind, since: str, namespace: str) -> None:
        async with aclosing(client.watch_raw(kind, namespace, since)) as events:
            async for ev in events:
                if ev["type"] == "DELETED":
                    obj = ev["object"]
                    self.seen[(kind.kind, meta.name(obj))] = int(meta.resource_version(obj))
                    self._changed.set()

    async def wait_for(self, *keys: tuple[str, str]) -> dict[tuple[str, str], int]:
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                while not all(k in self.seen for k in keys):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"timed out waiting for the deletion of {keys}; saw {self.seen}")
        return self.seen

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.wait(self._tasks)


# --- namespaces -------------------------------------------------------------------------------------

async def test_deleting_a_namespace_removes_its_content_then_the_namespace(client: Client) -> None:
    ns = await client.create(NS, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    await create_cm(client, "one", namespace="doomed")
    await create_cm(client, "two", namespace="doomed")
    await client.create(SECRET, {"metadata": {"name": "s", "namespace": "doomed"}, "data": {}})
    deploy = await create_deployment(client, "web", "doomed")
    await create_owned_rs(client, deploy, "web-1")

    marked = await client.delete(NS, "doomed")
    assert marked["status"]["phase"] == "Terminating"
    await wait_gone(client, NS, "doomed", None)
    for kind in (CM, SECRET, DEPLOY, RS):
        listed = await client.list(kind, "doomed")
        assert listed["items"] == [], kind.plural
    assert await exists(client, NS, "default", None)  # nothing else touched


async def test_namespace_waits_for_content_with_finalizers(client: Client) -> None:
    await client.create(NS, {"metadata": {"name": "slow"}})
    await create_cm(client, "held", namespace="slow", finalizers=("example.com/hold",))
    await client.delete(NS, "slow")

    async def held_marked() -> bool:
        return meta.is_being_deleted(await client.get(CM, "held", "slow"))

    await eventually(held_marked, "the namespace controller deleted the held configmap")
    ns = await client.get(NS, "slow")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]

    await client.patch(CM, "held", {"metadata": {"finalizers": None}}, "merge", "slow")
    await wait_gone(client, NS, "slow", None)  # woken by the configmap's deletion, not by a timer


# --- garbage collection -----------------------------------------------------------------------------

async def test_background_deletion_collects_the_dependent(client: Client) -> None:
    deploy = await create_deployment(client, "bg")
    await create_owned_rs(client, deploy, "bg-1")
    await client.delete(DEPLOY, "bg", propagation_policy="Background")
    assert not await exists(client, DEPLOY, "bg")  # the owner goes at once
    await wait_gone(client, RS, "bg-1")


async def test_foreground_deletion_removes_dependents_first(client: Client) -> None:
    deploy = await create_deployment(client, "fg")
    rs = await create_owned_rs(client, deploy, "fg-1")
    pod = await client.create(POD, {"metadata": {"name": "fg-1-a", "namespace": "default",
                                                 "ownerReferences": [meta.new_controller_ref(rs)]},
                                    "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}})
    deletions = Deletions(client, [DEPLOY, RS, POD], meta.resource_version(pod))
    try:
        marked = await client.delete(DEPLOY, "fg", propagation_policy="Foreground")
        assert meta.is_being_deleted(marked) and "foregroundDeletion" in meta.finalizers(marked)
        seen = await deletions.wait_for(("Deployment", "fg"), ("ReplicaSet", "fg-1"), ("Pod", "fg-1-a"))
    finally:
        await deletions.close()
    assert seen[("Pod", "fg-1-a")] < seen[("ReplicaSet", "fg-1")] < seen[("Deployment", "fg")]


async def test_orphan_deletion_keeps_the_dependent_without_the_reference(client: Client) -> None:
    deploy = await create_deployment(client, "orph")
    await create_owned_rs(client, deploy, "orph-1")
    marked = await client.delete(DEPLOY, "orph", propagation_policy="Orphan")
    assert "orphan" in meta.finalizers(marked)
    await wait_gone(client, DEPLOY, "orph")
    rs = await client.get(RS, "orph-1")
    assert meta.owner_references(rs) == []
    assert not meta.is_being_deleted(rs)


async def test_dangling_reference_is_dropped_while_another_owner_remains(client: Client) -> None:
    first, second = await create_cm(client, "owner-1"), await create_cm(client, "owner-2")
    await create_cm(client, "shared", first, second)
    await client.delete(CM, "owner-1")

    async def only_second() -> bool:
        refs = meta.owner_references(await client.get(CM, "shared"))
        return [r["uid"] for r in refs] == [meta.uid(second)]

    await eventually(only_second, "the reference to the deleted owner is dropped")
    await client.delete(CM, "owner-2")
    await wait_gone(client, CM, "shared")


async def test_dependent_of_an_owner_that_never_existed_is_collected(client: Client) -> None:
    ghost = {"metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}}
    await create_cm(client, "haunted", ghost)
    await wait_gone(client, CM, "haunted")

