"""The EndpointSlice and Endpoints controllers against the real API server (in-process, in-memory store), with the
manager running only those two: endpoints follow pods' IPs and readiness (written here through ``pods/status``,
as a kubelet would), named target ports resolve per pod, ``publishNotReadyAddresses``, terminating pods, slices
split at their size limit, and a deleted slice comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.client.events import EventBroadcaster
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client, NotFound
from kubelite.controllers import Controller, ControllerManager
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.endpoints import EndpointsController
from kubelite.controllers.endpointslice import EndpointSliceController

SVC = resolve("services")
POD = resolve("pods")
NODE = resolve("nodes")
EP = resolve("endpoints")
SLICES = resolve("endpointslices.discovery.k8s.io")
WAIT_SECONDS = 10.0
# Small, so that a handful of pods shows how slices split.
MAX_PER_SLICE = 3

Obj = dict[str, Any]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """A kubelite Client to a real API server running the two endpoint controllers, with one Node in zone-a."""
    server = TestServer(build_app(MemoryStore()))
    await server.start_server()
    try:
        async with Client(config_for_server(str(server.make_url("")))) as c, EventBroadcaster(c) as events:
            await c.create(NODE, {"metadata": {"name": "node-1", "labels": {"topology.kubernetes.io/zone": "zone-a"}}})
            ctx = ControllerContext(c, events, ControllerOptions())
            controllers: list[Controller] = [EndpointSliceController(ctx, max_endpoints_per_slice=MAX_PER_SLICE),
                                             EndpointsController(ctx)]
            async with ControllerManager(c, controllers=controllers, options=ctx.options):
                yield c
    finally:
        await server.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - a client sees the controllers' work only by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def create_service(client: Client, name: str = "web", *, target_port: int | str = "http",
                         without_selector: bool = False, **spec: Any) -> Obj:
    # The cluster IP is given: nothing allocates one here, and a Service without one counts as headless.
    body: Obj = {"metadata": {"name": name, "namespace": "default", "labels": {"team": "blue"}},
                 "spec": {"ports": [{"name": "http", "port": 80, "targetPort": target_port}],
                          "clusterIP": "10.96.0.10", **spec}}
    if not without_selector:
        body["spec"]["selector"] = {"app": name}
    return await client.create(SVC, body)


async def create_pod(client: Client, name: str, *, app: str = "web", port: int = 8080, node: str = "node-1") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "nginx:1.25",
                                 "ports": [{"name": "http", "containerPort": port}]}]}
    if node:
        spec["nodeName"] = node
    return await client.create(POD, {"metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
                                     "spec": spec})


async def set_status(client: Client, name: str, *, ip: str, ready: bool) -> Obj:
    """What a kubelet would write: the pod's IP and its Ready condition, through pods/status."""
    return await client.patch(POD, name, {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                        "lastTransitionTime": meta.now_rfc3339()}]}}, "merge", "default", subresource="status")


async def slices_of(client: Client, service: str) -> list[Obj]:
    listed = await client.list(SLICES, "default", label_selector=f"kubernetes.io/service-name={service}")
    items: list[Obj] = listed["items"]
    return items


def endpoints_by_pod(slices: list[Obj]) -> dict[str, Obj]:
    return {ep["targetRef"]["name"]: ep for s in slices for ep in s.get("endpoints") or []}


async def wait_slices(client: Client, service: str, check: Callable[[list[Obj]], bool], what: str) -> list[Obj]:
    async def ok() -> bool:
        return check(await slices_of(client, service))

    await eventually(ok, what)
    return await slices_of(client, service)


async def get_endpoints(client: Client, name: str) -> Obj | None:
    try:
        return await client.get(EP, name, "default")
    except NotFound:
        return None


async def wait_endpoints(client: Client, name: str, check: Callable[[Obj | None], bool], what: str) -> Obj | None:
    async def ok() -> bool:
        return check(await get_endpoints(client, name))

    await eventually(ok, what)
    return await get_endpoints(client, name)


def addresses(ep: Obj | None, field: str = "addresses") -> set[str]:
    return {a["targetRef"]["name"] for s in (ep or {}).get("subsets") or [] for a in s.get(field) or []}


async def test_slices_and_endpoints_list_pods_with_their_ips_and_named_ports(client: Client) -> None:
    svc = await create_service(client)
    await create_pod(client, "a", port=8080)
    await create_pod(client, "b", port=9090)  # the same port name, another number: another slice
    await create_pod(client, "no-ip")  # never gets an IP: not an endpoint
    await create_pod(client, "other", app="db")  # not selected
    await set_status(client, "a", ip="10.244.0.5", ready=True)
    await set_status(client, "b", ip="10.244.0.6", ready=True)

    slices = await wait_slices(client, "web", lambda ss: set(endpoints_by_pod(ss)) == {"a", "b"}, "a and b listed")
    assert len(slices) == 2
    by_port = {s["ports"][0]["port"]: s for s in slices}
    assert set(by_port) == {8080, 9090}
    s = by_port[8080]
    assert s["addressType"] == "IPv4"
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert meta.labels(s) == {"team": "blue", "kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s["metadata"]["generateName"] == "web-" and len(meta.name(s)) == len("web-") + 5
    assert meta.owner_references(s) == [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": meta.uid(svc),
                                         "controller": True, "blockOwnerDeletion": True}]
    pod_a = await client.get(POD, "a", "default")
    assert s["endpoints"] == [{"addresses": ["10.244.0.5"],
                               "conditions": {"ready": True, "serving": True, "terminating": False},
                               "nodeName": "node-1", "zone": "zone-a",
                               "targetRef": {"kind": "Pod", "namespace": "default", "name": "a",
                                             "uid": meta.uid(pod_a)}}]

    ep = await wait_endpoints(client, "web", lambda e: addresses(e) == {"a", "b"}, "Endpoints lists a and b")
    assert ep is not None and meta.labels(ep) == {"team": "blue"}
    subsets = sorted(ep["subsets"], key=lambda x: x["ports"][0]["port"])
    assert [x["ports"] for x in subsets] == [[{"name": "http", "port": 8080, "protocol": "TCP"}],
                                             [{"name": "http", "port": 9090, "protocol": "TCP"}]]
    assert subsets[0]["addresses"] == [{"ip": "10.244.0.5", "nodeName": "node-1",
                                        "targetRef": {"kind": "Pod", "namespace": "default", "name": "a",
                                                      "uid": meta.uid(pod_a)}}]

    # Settled: nothing is written again (what the server stores compares equal to what was planned).
    versions = {meta.name(x): meta.resource_version(x) for x in await slices_of(client, "web")}
    versions["endpoints"] = meta.resource_version(ep)
    await client.patch(POD, "other", {"metadata": {"labels": {"app": "db", "touched": "yes"}}}, "merge", "default")
    await client.patch(POD, "a", {"metadata": {"annotations": {"touched": "yes"}}}, "merge", "default")
    await asyncio.sleep(0.3)
    after = {meta.name(x): meta.resource_version(x) for x in await slices_of(client, "web")}
    after["endpoints"] = meta.resource_version(await client.get(EP, "web", "default"))
    assert after == versions


async def test_endpoints_follow_pod_readiness(client: Client) -> None:
    await create_service(client, target_port=8080)
    await create_pod(client, "a")
    await set_status(client, "a", ip="10.244.0.5", ready=False)
    slices = await wait_slices(client, "web", lambda ss: "a" in endpoints_by_pod(ss), "a listed")
    assert endpoints_by_pod(slices)["a"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    await wait_endpoints(client, "web", lambda e: addresses(e, "notReadyAddresses") == {"a"}, "a not ready")

    await set_status(client, "a", ip="10.244.0.5", ready=True)
    await wait_slices(client, "web", lambda ss: endpoints_by_pod(ss).get("a", {}).get("conditions", {}).get("ready")
                      is True, "a ready in its slice")
    ep = await wait_endpoints(client, "web", lambda e: addresses(e) == {"a"}, "a ready in Endpoints")
    assert ep is not None and not addresses(ep, "notReadyAddresses")

    await set_status(client, "a", ip="10.244.0.5", ready=False)
    await wait_slices(client, "web", lambda ss: endpoints_by_pod(ss).get("a", {}).get("conditions", {}).get("ready")
                      is False, "a not ready again")
    await wait_endpoints(client, "web", lambda e: addresses(e, "notReadyAddresses") == {"a"} and not addresses(e),
                         "a back among notReadyAddresses")


async def test_publish_not_ready_addresses_makes_every_endpoint_ready(client: Client) -> None:
    await create_service(client, target_port=8080, publishNotReadyAddresses=True)
    await create_pod(client, "a")
    await set_status(client, "a", ip="10.244.0.5", ready=False)
    slices = await wait_slices(client, "web", lambda ss: "a" in endpoints_by_pod(ss), "a listed")
    assert endpoints_by_pod(slices)["a"]["conditions"] == {"ready": True, "serving": False, "terminating": False}
    await wait_endpoints(client, "web", lambda e: addresses(e) == {"a"}, "a published although not ready")


async def test_a_terminating_pod_stays_in_slices_but_leaves_endpoints(client: Client) -> None:
    await create_service(client, target_port=8080)
    await create_pod(client, "a")
    await set_status(client, "a", ip="10.244.0.5", ready=True)
    await wait_endpoints(client, "web", lambda e: addresses(e) == {"a"}, "a listed")
    await client.delete(POD, "a", "default")  # bound to a node: it stays until its kubelet is done

    def terminating(ss: list[Obj]) -> bool:
        return endpoints_by_pod(ss).get("a", {}).get("conditions", {}).get("terminating") is True

    slices = await wait_slices(client, "web", terminating, "a terminating in its slice")
    assert endpoints_by_pod(slices)["a"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    await wait_endpoints(client, "web", lambda e: not addresses(e) and not addresses(e, "notReadyAddresses"),
                         "a gone from Endpoints")

    await client.delete(POD, "a", "default", grace_period_seconds=0)  # what the kubelet does at the end
    slices = await wait_slices(client, "web", lambda ss: not endpoints_by_pod(ss), "a gone from slices")
    assert len(slices) == 1 and slices[0]["endpoints"] == [] and slices[0]["ports"] == []  # the placeholder


async def test_a_service_without_pods_gets_one_placeholder_slice_and_empty_endpoints(client: Client) -> None:
    await create_service(client)
    slices = await wait_slices(client, "web", lambda ss: len(ss) == 1, "a placeholder slice")
    assert slices[0]["endpoints"] == [] and slices[0]["ports"] == [] and slices[0]["addressType"] == "IPv4"
    ep = await wait_endpoints(client, "web", lambda e: e is not None, "the Endpoints object")
    assert ep is not None and "subsets" not in ep


async def test_services_without_a_selector_are_left_alone(client: Client) -> None:
    await create_service(client, "manual", without_selector=True, clusterIP="None")
    await create_service(client, "watched")  # a Service the controllers do handle, to know they have run
    await wait_endpoints(client, "watched", lambda e: e is not None, "the other Service's Endpoints")
    await wait_slices(client, "watched", lambda ss: len(ss) == 1, "the other Service's slice")
    assert await slices_of(client, "manual") == []
    assert await get_endpoints(client, "manual") is None


async def test_slices_split_at_their_size_and_are_updated_in_place(client: Client) -> None:
    await create_service(client, target_port=8080)
    for i in range(5):
        await create_pod(client, f"p{i}")
        await set_status(client, f"p{i}", ip=f"10.244.0.{10 + i}", ready=True)
    slices = await wait_slices(client, "web", lambda ss: len(endpoints_by_pod(ss)) == 5, "five endpoints")
    assert sorted(len(s["endpoints"]) for s in slices) == [2, 3]
    names = {meta.name(s) for s in slices}

    await client.delete(POD, "p0", "default", grace_period_seconds=0)
    slices = await wait_slices(client, "web", lambda ss: len(endpoints_by_pod(ss)) == 4, "four endpoints")
    assert {meta.name(s) for s in slices} <= names  # updated in place, no slice made anew


async def test_a_deleted_slice_is_made_again_and_service_deletion_removes_endpoints(client: Client) -> None:
    await create_service(client, target_port=8080)
    await create_pod(client, "a")
    await set_status(client, "a", ip="10.244.0.5", ready=True)
    (slice_,) = await wait_slices(client, "web", lambda ss: "a" in endpoints_by_pod(ss), "a listed")
    await client.delete(SLICES, meta.name(slice_), "default")
    await wait_slices(client, "web", lambda ss: "a" in endpoints_by_pod(ss) and meta.name(ss[0]) != meta.name(slice_),
                      "a slice made again")

    await wait_endpoints(client, "web", lambda e: addresses(e) == {"a"}, "a in Endpoints")
    await client.delete(SVC, "web", "default")
    await wait_endpoints(client, "web", lambda e: e is None, "the Endpoints deleted with the Service")


async def test_a_pod_on_an_unknown_node_waits_for_the_node(client: Client) -> None:
    await create_service(client, target_port=8080)
    await create_pod(client, "a", node="node-2")
    await set_status(client, "a", ip="10.244.1.5", ready=True)
    await create_pod(client, "b")
    await set_status(client, "b", ip="10.244.0.6", ready=True)
    slices = await wait_slices(client, "web", lambda ss: "b" in endpoints_by_pod(ss), "b listed")
    assert "a" not in endpoints_by_pod(slices)
    await client.create(NODE, {"metadata": {"name": "node-2", "labels": {"topology.kubernetes.io/zone": "zone-b"}}})
    slices = await wait_slices(client, "web", lambda ss: "a" in endpoints_by_pod(ss), "a listed once its node exists")
    assert endpoints_by_pod(slices)["a"]["zone"] == "zone-b"
