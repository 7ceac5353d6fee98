"""The ReplicaSet controller against the real API server (in-process, in-memory store), with the manager running
only that controller: scale up and down, a deleted pod replaced, orphans adopted, pods released when their labels
change, status and events, all seen through the REST API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from kubelite.api import meta
from kubelite.api.registry import Kind, resolve
from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.client.events import EventBroadcaster
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client
from kubelite.controllers import ControllerManager
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.replicaset import ReplicaSetController

RS = resolve("replicasets")
POD = resolve("pods")
EVENTS = resolve("events")
WAIT_SECONDS = 10.0

Obj = dict[str, Any]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A kubelite Client to a real API server, with only the ReplicaSet controller running against it."""
    server = TestServer(build_app(MemoryStore()))
    await server.start_server()
    try:
        async with Client(config_for_server(str(server.make_url("")))) as c, EventBroadcaster(c) as events:
            ctx = ControllerContext(c, events, ControllerOptions())
            async with ControllerManager(c, controllers=[ReplicaSetController(ctx)], options=ctx.options):
                yield c
    finally:
        await server.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - a client sees the controller's work only by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


def rs_body(name: str, replicas: int, **spec: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": {**labels, "tier": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}}, **spec}}


async def pods_of(client: Client, app: str) -> list[Obj]:
    listed = await client.list(POD, "default", label_selector=f"app={app}")
    return [p for p in listed["items"] if not meta.is_being_deleted(p)]


async def owned_pods(client: Client, rs: Obj) -> list[Obj]:
    listed = await client.list(POD, "default")
    return [p for p in listed["items"] if meta.is_controlled_by(p, rs) and not meta.is_being_deleted(p)]


async def wait_replicas(client: Client, rs: Obj, n: int) -> list[Obj]:
    async def settled() -> bool:
        return len(await owned_pods(client, rs)) == n

    await eventually(settled, f"{meta.name(rs)} has {n} pods")
    return await owned_pods(client, rs)


async def wait_status(client: Client, name: str, check: Callable[[Obj], bool], what: str) -> Obj:
    async def ok() -> bool:
        return check((await client.get(RS, name, "default")).get("status") or {})

    await eventually(ok, what)
    return await client.get(RS, name, "default")


async def event_reasons(client: Client, name: str) -> list[tuple[str, str]]:
    listed = await client.list(EVENTS, "default")
    return [(e["reason"], e["message"]) for e in listed["items"] if e["involvedObject"]["name"] == name]


async def set_ready(client: Client, pod: Obj, ready: bool = True) -> Obj:
    status = "True" if ready else "False"
    return await client.patch(POD, meta.name(pod), {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": status,
                                            "lastTransitionTime": meta.now_rfc3339()}]}},
        "merge", "default", subresource="status")


async def test_creates_pods_from_the_template_with_a_controller_reference(client: Client) -> None:
    rs = await client.create(RS, rs_body("web", 3))
    pods = await wait_replicas(client, rs, 3)
    for pod in pods:
        assert meta.name(pod).startswith("web-") and len(meta.name(pod)) == len("web-") + 5
        assert pod["metadata"]["generateName"] == "web-"
        assert meta.labels(pod) == {"app": "web", "tier": "web"}
        (ref,) = meta.owner_references(pod)
        assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": meta.uid(rs),
                       "controller": True, "blockOwnerDeletion": True}
    status = (await wait_status(client, "web", lambda s: s.get("replicas") == 3, "status.replicas is 3"))["status"]
    assert status["fullyLabeledReplicas"] == 3 and status["observedGeneration"] == 1
    assert "readyReplicas" not in status and "availableReplicas" not in status

    async def three_events() -> bool:
        return sum(1 for r, _ in await event_reasons(client, "web") if r == "SuccessfulCreate") == 3

    await eventually(three_events, "three SuccessfulCreate events")
    messages = {m for r, m in await event_reasons(client, "web") if r == "SuccessfulCreate"}
    assert messages == {f"Created pod: {meta.name(p)}" for p in pods}


async def test_scales_up_and_down_deleting_the_least_valuable_pods(client: Client) -> None:
    rs = await client.create(RS, rs_body("scale", 2))
    first = await wait_replicas(client, rs, 2)
    for pod in first:
        await set_ready(client, pod)
    await wait_status(client, "scale", lambda s: s.get("readyReplicas") == 2, "2 ready")

    await client.patch(RS, "scale", {"spec": {"replicas": 5}}, "merge", "default")
    pods = await wait_replicas(client, rs, 5)
    await wait_status(client, "scale", lambda s: s.get("replicas") == 5 and s.get("observedGeneration") == 2,
                      "5 replicas observed")

    await client.patch(RS, "scale", {"spec": {"replicas": 2}}, "merge", "default")
    kept = await wait_replicas(client, rs, 2)
    assert {meta.name(p) for p in kept} == {meta.name(p) for p in first}  # the not-ready new ones went
    status = (await wait_status(client, "scale", lambda s: s.get("replicas") == 2, "2 replicas"))["status"]
    assert status["readyReplicas"] == 2 and status["availableReplicas"] == 2
    deleted = {m for r, m in await event_reasons(client, "scale") if r == "SuccessfulDelete"}
    assert deleted == {f"Deleted pod: {meta.name(p)}" for p in pods if meta.name(p) not in
                       {meta.name(k) for k in kept}}

    await client.patch(RS, "scale", {"spec": {"replicas": 0}}, "merge", "default")
    await wait_replicas(client, rs, 0)
    await wait_status(client, "scale", lambda s: s.get("replicas") == 0 and "readyReplicas" not in s, "0 replicas")


async def test_a_deleted_pod_is_replaced(client: Client) -> None:
    rs = await client.create(RS, rs_body("heal", 2))
    pods = await wait_replicas(client, rs, 2)
    await client.delete(POD, meta.name(pods[0]), "default")

    async def replaced() -> bool:
        names = {meta.name(p) for p in await owned_pods(client, rs)}
        return len(names) == 2 and meta.name(pods[0]) not in names

    await eventually(replaced, "the deleted pod is replaced")


async def test_an_orphan_matching_the_selector_is_adopted(client: Client) -> None:
    orphan = await client.create(POD, {"metadata": {"name": "stray", "namespace": "default",
                                                    "labels": {"app": "adopt"}},
                                       "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]}})
    rs = await client.create(RS, rs_body("adopt", 2))
    pods = await wait_replicas(client, rs, 2)
    assert "stray" in {meta.name(p) for p in pods}  # adopted, and only one more pod was created
    adopted = await client.get(POD, "stray", "default")
    assert meta.uid(adopted) == meta.uid(orphan)
    assert meta.controller_ref(adopted) == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "adopt",
                                            "uid": meta.uid(rs), "controller": True, "blockOwnerDeletion": True}
    await wait_status(client, "adopt", lambda s: s.get("replicas") == 2 and s.get("fullyLabeledReplicas") == 1,
                      "2 replicas, 1 with the template's labels")


async def test_a_pod_whose_labels_change_is_released_and_replaced(client: Client) -> None:
    rs = await client.create(RS, rs_body("rel", 2))
    pods = await wait_replicas(client, rs, 2)
    moved = meta.name(pods[0])
    await client.patch(POD, moved, {"metadata": {"labels": {"app": "elsewhere"}}}, "merge", "default")

    async def released() -> bool:
        return not meta.owner_references(await client.get(POD, moved, "default"))

    await eventually(released, "the relabelled pod is released")
    after = await wait_replicas(client, rs, 2)
    assert moved not in {meta.name(p) for p in after}
    assert await client.get(POD, moved, "default")  # released, not deleted


async def test_terminal_pods_do_not_count(client: Client) -> None:
    rs = await client.create(RS, rs_body("done", 1))
    (pod,) = await wait_replicas(client, rs, 1)
    await client.patch(POD, meta.name(pod), {"status": {"phase": "Failed"}}, "merge", "default",
                       subresource="status")

    async def replaced() -> bool:
        active = [p for p in await owned_pods(client, rs) if (p.get("status") or {}).get("phase") != "Failed"]
        return len(active) == 1 and meta.name(active[0]) != meta.name(pod)

    await eventually(replaced, "a failed pod is replaced")


async def test_min_ready_seconds_delays_availability(client: Client) -> None:
    rs = await client.create(RS, rs_body("slow", 1, minReadySeconds=1))
    (pod,) = await wait_replicas(client, rs, 1)
    await set_ready(client, pod)
    status = (await wait_status(client, "slow", lambda s: s.get("readyReplicas") == 1, "ready"))["status"]
    assert status.get("availableReplicas", 0) == 0
    await wait_status(client, "slow", lambda s: s.get("availableReplicas") == 1, "available after minReadySeconds")


async def test_create_failures_set_the_replica_failure_condition(client: Client) -> None:
    body = rs_body("bad", 1)
    # Surrounding whitespace in an image name is refused in a Pod but not in a template: the ReplicaSet is
    # valid and every pod it makes is not.
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25 "
    await client.create(RS, body)

    def failing(status: Obj) -> bool:
        return any(c.get("type") == "ReplicaFailure" for c in status.get("conditions") or [])

    rs = await wait_status(client, "bad", failing, "the ReplicaFailure condition")
    (cond,) = rs["status"]["conditions"]
    assert cond["status"] == "True" and cond["reason"] == "FailedCreate"
    assert cond["message"].startswith('Pod "') and "is invalid" in cond["message"], cond
    assert rs["status"]["replicas"] == 0
    failures = [m for r, m in await event_reasons(client, "bad") if r == "FailedCreate"]
    assert failures and failures[0].startswith('Error creating: Pod "'), failures

    # Fixed, the pods come and the condition goes.
    await client.patch(RS, "bad", {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "nginx:1.25"}]}}}}, "strategic", "default")
    await wait_replicas(client, rs, 1)
    await wait_status(client, "bad", lambda s: not failing(s) and s.get("replicas") == 1, "the condition cleared")



class LaggingPodWatch(Client):
    """A Client whose pod watch events arrive ``lag`` seconds late: the controller's pod cache trails its own
    writes, as it does under load."""

    lag = 0.3

    async def watch_raw(self, kind: Kind, *args: Any, **kwargs: Any) -> AsyncGenerator[dict[str, Any], None]:
        events = super().watch_raw(kind, *args, **kwargs)
        if kind is not POD:
            async with aclosing(events):
                async for ev in events:
                    yield ev
            return
        arrived: asyncio.Queue[tuple[float, dict[str, Any] | None]] = asyncio.Queue()

        async def pump() -> None:
            try:
                async with aclosing(events):
                    async for event in events:
                        arrived.put_nowait((asyncio.get_running_loop().time(), event))
            finally:
                arrived.put_nowait((asyncio.get_running_loop().time(), None))

        task = asyncio.create_task(pump())
        try:
            while True:
                at, late = await arrived.get()
                await asyncio.sleep(max(0.0, at + self.lag - asyncio.get_running_loop().time()))
                if late is None:
                    break
                yield late
        finally:
            task.cancel()
            await asyncio.wait({task})
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure


async def test_a_lagging_cache_never_creates_twice() -> None:
    server = TestServer(build_app(MemoryStore()))
    await server.start_server()
    try:
        config = config_for_server(str(server.make_url("")))
        async with Client(config) as c, LaggingPodWatch(config) as lagging, EventBroadcaster(c) as events:
            ctx = ControllerContext(lagging, events, ControllerOptions())
            async with ControllerManager(lagging, controllers=[ReplicaSetController(ctx)], options=ctx.options):
                rs = await c.create(RS, rs_body("burst", 20))
                await wait_replicas(c, rs, 20)
                await wait_status(c, "burst", lambda s: s.get("replicas") == 20, "20 replicas")
                await asyncio.sleep(2 * LaggingPodWatch.lag)  # a duplicate creation would land by now
                await events.flush()
                reasons = [r for r, _ in await event_reasons(c, "burst")]
                assert reasons.count("SuccessfulCreate") == 20 and "SuccessfulDelete" not in reasons
    finally:
        await server.close()


async def test_a_terminating_pod_is_replaced_at_once_and_counted_as_terminating(client: Client) -> None:
    rs = await client.create(RS, rs_body("grace", 1))
    (pod,) = await wait_replicas(client, rs, 1)
    name = meta.name(pod)
    await client.request("POST", client.item_path(POD, name, "default", "binding"),
                         body={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}})
    marked = await client.delete(POD, name, "default")  # bound: it waits for its kubelet
    assert meta.is_being_deleted(marked)

    (replacement,) = await wait_replicas(client, rs, 1)
    assert meta.name(replacement) != name
    await wait_status(client, "grace", lambda s: s.get("replicas") == 1 and s.get("terminatingReplicas") == 1,
                      "one replica and one terminating")
    await client.delete(POD, name, "default", grace_period_seconds=0)
    await wait_status(client, "grace", lambda s: s.get("terminatingReplicas") == 0, "nothing terminating")
