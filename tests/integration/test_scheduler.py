"""The scheduler against the real API server (in-process, in-memory store): pods get bound without
overcommitting any node, a pod that fits nowhere gets PodScheduled=False and a FailedScheduling event with
Kubernetes' message, and is scheduled once a node that fits appears."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from kubelite.api.quantity import to_millis
from kubelite.api.registry import resolve
from kubelite.client.rest import Client
from kubelite.scheduler import Scheduler

NODES = resolve("nodes")
PODS = resolve("pods")
EVENTS = resolve("events")
WAIT_SECONDS = 10.0
# The node lifecycle controller taints an unreachable node NoSchedule (and NoExecute, which admission's default
# tolerations cover for 300 s): the NoSchedule one keeps new pods away.
UNREACHABLE = [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
               {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]

Obj = dict[str, Any]


@pytest.fixture
async def scheduler(kclient: Client) -> AsyncIterator[Scheduler]:
    sched = Scheduler(kclient)
    stop = asyncio.Event()
    task = asyncio.create_task(sched.run(stop))
    try:
        yield sched
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - the scheduler's work is seen only by asking the API
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def make_node(client: Client, name: str, *, cpu: str = "2", taints: list[Obj] | None = None) -> Obj:
    status = {"capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
              "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
              "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}
    created = await client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                                          "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                                          "spec": {"taints": taints or []}, "status": status})
    if created.get("status", {}).get("allocatable") != status["allocatable"]:
        created["status"] = status
        created = await client.update_status(NODES, created)
    return created


async def make_pod(client: Client, name: str, cpu: str) -> Obj:
    return await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                      "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": {
                                          "requests": {"cpu": cpu, "memory": "64Mi"}}}]}}, namespace="default")


async def pods_by_node(client: Client) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for p in (await client.list(PODS, "default"))["items"]:
        out.setdefault(p["spec"].get("nodeName") or "", []).append(p)
    return out


async def events_for(client: Client, name: str) -> list[Obj]:
    listed = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return list(listed["items"])


def condition(pod: Obj) -> Obj | None:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)


async def test_a_burst_is_bound_without_overcommitting(kclient: Client, scheduler: Scheduler) -> None:
    for i in range(3):
        await make_node(kclient, f"n{i}", cpu="2")
    await asyncio.gather(*(make_pod(kclient, f"p{i}", "500m") for i in range(12)))

    async def all_bound() -> bool:
        return "" not in await pods_by_node(kclient)

    await eventually(all_bound, "all 12 pods are bound")
    placed = await pods_by_node(kclient)
    for node, pods in placed.items():
        assert sum(to_millis(p["spec"]["containers"][0]["resources"]["requests"]["cpu"]) for p in pods) <= 2000, node
    assert sorted(len(p) for p in placed.values()) == [4, 4, 4]
    bound = placed["n0"][0]
    assert condition(bound) is not None and condition(bound)["status"] == "True"  # type: ignore[index]

    async def scheduled_event() -> bool:
        return any(e["reason"] == "Scheduled" for e in await events_for(kclient, bound["metadata"]["name"]))

    await eventually(scheduled_event, "the Scheduled event is recorded")
    event = next(e for e in await events_for(kclient, bound["metadata"]["name"]) if e["reason"] == "Scheduled")
    assert event["message"] == f"Successfully assigned default/{bound['metadata']['name']} to n0"
    assert event["type"] == "Normal" and event["source"]["component"] == "default-scheduler"


async def test_a_pod_that_fits_nowhere_waits_and_says_why(kclient: Client, scheduler: Scheduler) -> None:
    await make_node(kclient, "small-1", cpu="1")
    await make_node(kclient, "small-2", cpu="1")
    await make_node(kclient, "gone", cpu="8", taints=UNREACHABLE)
    await make_pod(kclient, "big", "2")
    message = ("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
               "2 Insufficient cpu.")

    async def says_why() -> bool:
        pod = await kclient.get(PODS, "big", "default")
        cond = condition(pod)
        return cond is not None and cond.get("message") == message

    await eventually(says_why, "the pod has PodScheduled=False")
    cond = condition(await kclient.get(PODS, "big", "default"))
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "Unschedulable")

    async def failed_event() -> bool:
        return any(e["reason"] == "FailedScheduling" for e in await events_for(kclient, "big"))

    await eventually(failed_event, "a FailedScheduling event is recorded")
    event = next(e for e in await events_for(kclient, "big") if e["reason"] == "FailedScheduling")
    assert (event["type"], event["message"]) == ("Warning", message)

    await make_node(kclient, "large", cpu="4")

    async def bound() -> bool:
        return bool((await kclient.get(PODS, "big", "default"))["spec"].get("nodeName"))

    await eventually(bound, "the pod is scheduled on the new node")
    assert (await kclient.get(PODS, "big", "default"))["spec"]["nodeName"] == "large"


async def test_a_deleted_pod_frees_room_for_a_waiting_one(kclient: Client, scheduler: Scheduler) -> None:
    await make_node(kclient, "only", cpu="1")
    await make_pod(kclient, "first", "800m")

    async def first_bound() -> bool:
        return bool((await kclient.get(PODS, "first", "default"))["spec"].get("nodeName"))

    await eventually(first_bound, "the first pod is bound")
    await make_pod(kclient, "second", "800m")

    async def second_refused() -> bool:
        return condition(await kclient.get(PODS, "second", "default")) is not None

    await eventually(second_refused, "the second pod is refused")
    await kclient.delete(PODS, "first", "default", grace_period_seconds=0)

    async def second_bound() -> bool:
        return bool((await kclient.get(PODS, "second", "default"))["spec"].get("nodeName") == "only")

    await eventually(second_bound, "the second pod takes the freed room")


async def test_pods_for_another_scheduler_are_left_alone(kclient: Client, scheduler: Scheduler) -> None:
    await make_node(kclient, "n", cpu="2")
    await kclient.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "theirs"},
                                "spec": {"schedulerName": "other", "containers": [{"name": "c", "image": "x"}]}},
                         namespace="default")
    await make_pod(kclient, "ours", "100m")

    async def ours_bound() -> bool:
        return bool((await kclient.get(PODS, "ours", "default"))["spec"].get("nodeName"))

    await eventually(ours_bound, "our pod is bound")
    theirs = await kclient.get(PODS, "theirs", "default")
    assert not theirs["spec"].get("nodeName") and condition(theirs) is None
