"""The Node IPAM controller against the real API server (in-process): every node gets its own pod CIDR,
subnets already taken survive a restart, a full range says CIDRNotAvailable, and a deleted node frees its
subnet for the next."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kubelite.api.registry import resolve
from kubelite.client.events import EventBroadcaster
from kubelite.client.rest import Client
from kubelite.controllers import ControllerManager
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.nodeipam import NodeIpamController

NODES = resolve("nodes")
EVENTS = resolve("events")
WAIT_SECONDS = 10.0

Obj = dict[str, Any]


@asynccontextmanager
async def ipam(client: Client, cluster_cidr: str, mask: int = 24) -> AsyncIterator[None]:
    options = ControllerOptions(cluster_cidr=cluster_cidr, node_cidr_mask_size=mask)
    async with EventBroadcaster(client) as events:
        ctx = ControllerContext(client, events, options)
        async with ControllerManager(client, controllers=[NodeIpamController(ctx)], options=options):
            yield


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - a client sees the controller's work only by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def create_node(client: Client, name: str, *cidrs: str) -> Obj:
    spec: Obj = {"podCIDR": cidrs[0], "podCIDRs": list(cidrs)} if cidrs else {}
    return await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                       "spec": spec})


async def cidrs_of(client: Client) -> dict[str, list[str]]:
    listed = await client.list(NODES)
    return {n["metadata"]["name"]: n["spec"].get("podCIDRs") or [] for n in listed["items"]}


async def wait_all_assigned(client: Client, count: int) -> dict[str, list[str]]:
    async def assigned() -> bool:
        got = await cidrs_of(client)
        return len(got) == count and all(got.values())

    await eventually(assigned, f"{count} nodes have pod CIDRs")
    return await cidrs_of(client)


async def test_every_node_gets_its_own_cidr(kclient: Client) -> None:
    async with ipam(kclient, "10.244.0.0/16"):
        await asyncio.gather(*(create_node(kclient, f"n{i}") for i in range(20)))
        got = await wait_all_assigned(kclient, 20)
    flat = [c for cidrs in got.values() for c in cidrs]
    assert len(set(flat)) == 20 and all(c.startswith("10.244.") and c.endswith(".0/24") for c in flat)
    node = await kclient.get(NODES, "n0")
    assert node["spec"]["podCIDR"] == node["spec"]["podCIDRs"][0]


async def test_subnets_already_taken_are_never_handed_out_again(kclient: Client) -> None:
    # Nodes that got their subnets from an earlier run of the controller.
    await create_node(kclient, "old-a", "10.9.0.0/24")
    await create_node(kclient, "old-b", "10.9.2.0/24")
    await create_node(kclient, "new-a")
    await create_node(kclient, "new-b")
    async with ipam(kclient, "10.9.0.0/22"):
        got = await wait_all_assigned(kclient, 4)
    assert got["old-a"] == ["10.9.0.0/24"] and got["old-b"] == ["10.9.2.0/24"]
    assert sorted(got["new-a"] + got["new-b"]) == ["10.9.1.0/24", "10.9.3.0/24"]


async def test_a_full_range_reports_cidr_not_available_until_a_node_goes(kclient: Client) -> None:
    async with ipam(kclient, "10.7.0.0/23"):  # two /24 subnets only
        await create_node(kclient, "a")
        await create_node(kclient, "b")
        await wait_all_assigned(kclient, 2)
        await create_node(kclient, "c")

        async def reported() -> bool:
            listed = await kclient.list(EVENTS, "default", field_selector="involvedObject.name=c")
            return any(e["reason"] == "CIDRNotAvailable" for e in listed["items"])

        await eventually(reported, "the full range was reported on node c")
        listed = await kclient.list(EVENTS, "default", field_selector="involvedObject.name=c")
        event = next(e for e in listed["items"] if e["reason"] == "CIDRNotAvailable")
        assert event["message"] == "Node c status is now: CIDRNotAvailable"
        assert event["involvedObject"]["kind"] == "Node" and event["source"]["component"] == "cidrAllocator"
        assert (await kclient.get(NODES, "c"))["spec"].get("podCIDRs") is None

        freed = (await kclient.get(NODES, "a"))["spec"]["podCIDRs"]
        await kclient.delete(NODES, "a")
        got = await wait_all_assigned(kclient, 2)
    assert got["c"] == freed


async def test_dual_stack_nodes_get_one_cidr_per_family(kclient: Client) -> None:
    async with ipam(kclient, "10.244.0.0/16,fd00:10:244::/56"):
        await create_node(kclient, "ds")
        got = await wait_all_assigned(kclient, 1)
    assert got["ds"] == ["10.244.0.0/24", "fd00:10:244::/64"]
