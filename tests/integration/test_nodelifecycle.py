"""The node lifecycle controller against the real API server (in-process), with a test-driven "kubelet" that
renews node Leases: a silent node goes Unknown and is tainted, its pods are marked not ready and evicted after
their toleration; NoExecute taints evict pods that do not tolerate them at once; a node that comes back loses
its taints and planned evictions are cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.events import EventBroadcaster
from kubelite.client.leaderelection import micro_time
from kubelite.client.rest import Client, NotFound
from kubelite.controllers import ControllerManager
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.nodelifecycle import NodeLifecycleController

NODES = resolve("nodes")
PODS = resolve("pods")
LEASES = resolve("leases")
EVENTS = resolve("events")
WAIT_SECONDS = 10.0
OPTIONS = ControllerOptions(node_monitor_grace_period=1.0, node_monitor_period=0.1)

Obj = dict[str, Any]


@asynccontextmanager
async def lifecycle(client: Client) -> AsyncIterator[None]:
    async with EventBroadcaster(client) as events:
        ctx = ControllerContext(client, events, OPTIONS)
        async with ControllerManager(client, controllers=[NodeLifecycleController(ctx)], options=OPTIONS):
            yield


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - a client sees the controller's work only by asking
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


def now() -> str:
    return meta.now_rfc3339()


def ready_conditions(status: str = "True") -> list[Obj]:
    t = now()
    kinds = [("Ready", status, "KubeletReady"), ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
             ("DiskPressure", "False", "KubeletHasNoDiskPressure"), ("PIDPressure", "False", "KubeletHasSufficientPID")]
    return [{"type": c, "status": s, "reason": r, "message": "", "lastHeartbeatTime": t, "lastTransitionTime": t}
            for c, s, r in kinds]


class FakeKubelet:
    """Registers one node and renews its Lease every 0.1 s until stopped."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        await self.client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name},
                                         "status": {"conditions": ready_conditions()}})
        await self.client.create(LEASES, {"metadata": {"name": self.name, "namespace": "kube-node-lease"},
                                          "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40,
                                                   "renewTime": self._renew_time()}})
        self.resume()

    @staticmethod
    def _renew_time() -> str:
        return micro_time(datetime.now(UTC))

    async def _renew_forever(self) -> None:
        while True:
            lease = await self.client.get(LEASES, self.name, "kube-node-lease")
            lease["spec"]["renewTime"] = self._renew_time()
            await self.client.update(LEASES, lease)
            await asyncio.sleep(0.1)

    def resume(self) -> None:
        self._task = asyncio.create_task(self._renew_forever())

    async def die(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def post_ready(self) -> None:
        node = await self.client.get(NODES, self.name)
        node["status"]["conditions"] = ready_conditions()
        await self.client.update_status(NODES, node)


@asynccontextmanager
async def kubelets(client: Client, *names: str) -> AsyncIterator[list[FakeKubelet]]:
    started = [FakeKubelet(client, n) for n in names]
    try:
        for k in started:
            await k.register()
        yield started
    finally:
        for k in started:
            await k.die()


async def running_pod(client: Client, name: str, node: str, *tolerations: Obj) -> Obj:
    spec: Obj = {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    if tolerations:
        spec["tolerations"] = list(tolerations)
    pod = await client.create(PODS, {"metadata": {"name": name, "namespace": "default"}, "spec": spec})
    pod["status"] = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}]}
    return await client.update_status(PODS, pod)


async def taints_of(client: Client, node: str) -> set[tuple[str, str]]:
    n = await client.get(NODES, node)
    return {(t["key"], t["effect"]) for t in (n.get("spec") or {}).get("taints") or []}


async def evicted(client: Client, name: str) -> bool:
    try:
        pod = await client.get(PODS, name, "default")
    except NotFound:
        return True
    return meta.is_being_deleted(pod)


async def events_for(client: Client, name: str) -> list[Obj]:
    listed = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return list(listed["items"])


UNREACHABLE = {("node.kubernetes.io/unreachable", "NoExecute"), ("node.kubernetes.io/unreachable", "NoSchedule")}


async def test_a_silent_node_goes_unknown_and_its_pods_are_evicted_after_their_toleration(kclient: Client) -> None:
    async with lifecycle(kclient), kubelets(kclient, "alive", "dead") as (_alive, dead):
        quick = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 1}
        await running_pod(kclient, "quick", "dead", quick)
        await running_pod(kclient, "patient", "dead")  # the API server's 300 s toleration
        await running_pod(kclient, "elsewhere", "alive")
        await dead.die()

        async def tainted() -> bool:
            return await taints_of(kclient, "dead") == UNREACHABLE

        await eventually(tainted, "the silent node is tainted unreachable")
        node = await kclient.get(NODES, "dead")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"], ready["message"]) == \
            ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            assert next(c for c in node["status"]["conditions"] if c["type"] == ctype)["status"] == "Unknown"

        async def pods_not_ready() -> bool:
            pod = await kclient.get(PODS, "patient", "default")
            return any(c["type"] == "Ready" and c["status"] == "False" for c in pod["status"]["conditions"])

        await eventually(pods_not_ready, "the pods of the silent node are not ready")

        async def quick_gone() -> bool:
            return await evicted(kclient, "quick")

        await eventually(quick_gone, "the pod tolerating 1 s is evicted")
        quick_pod = await kclient.get(PODS, "quick", "default")  # the dead kubelet never confirms
        assert any(c["type"] == "DisruptionTarget" and c["reason"] == "DeletionByTaintManager"
                   for c in quick_pod["status"]["conditions"])
        assert not await evicted(kclient, "patient")
        assert not await evicted(kclient, "elsewhere")
        assert await taints_of(kclient, "alive") == set()

        async def recorded() -> bool:
            reasons = {(e["reason"], e["message"]) for e in await events_for(kclient, "quick")}
            node_reasons = {(e["reason"], e["message"]) for e in await events_for(kclient, "dead")}
            return ("TaintManagerEviction", "Marking for deletion Pod default/quick") in reasons \
                and ("NodeNotReady", "Node is not ready") in reasons \
                and ("NodeNotReady", "Node dead status is now: NodeNotReady") in node_reasons

        await eventually(recorded, "the events are recorded")


async def test_a_node_coming_back_loses_its_taints_and_evictions_are_cancelled(kclient: Client) -> None:
    async with lifecycle(kclient), kubelets(kclient, "flaky") as (flaky,):
        await running_pod(kclient, "stays", "flaky")
        await flaky.die()

        async def tainted() -> bool:
            return await taints_of(kclient, "flaky") == UNREACHABLE

        await eventually(tainted, "the silent node is tainted")
        flaky.resume()
        await flaky.post_ready()

        async def untainted() -> bool:
            return await taints_of(kclient, "flaky") == set()

        await eventually(untainted, "the node that came back is untainted")

        async def cancelled() -> bool:
            wanted = ("TaintManagerEviction", "Cancelling deletion of Pod default/stays")
            return any((e["reason"], e["message"]) == wanted for e in await events_for(kclient, "stays"))

        await eventually(cancelled, "the planned eviction is cancelled")
        assert not await evicted(kclient, "stays")


async def test_an_untolerated_no_execute_taint_evicts_at_once(kclient: Client) -> None:
    async with lifecycle(kclient), kubelets(kclient, "n1"):
        await running_pod(kclient, "plain", "n1")
        await running_pod(kclient, "tolerant", "n1", {"key": "maintenance", "operator": "Exists"})
        node = await kclient.get(NODES, "n1")
        node.setdefault("spec", {})["taints"] = [{"key": "maintenance", "value": "now", "effect": "NoExecute"}]
        await kclient.update(NODES, node)

        async def plain_gone() -> bool:
            return await evicted(kclient, "plain")

        await eventually(plain_gone, "the pod without a toleration is evicted")
        await asyncio.sleep(0.3)
        assert not await evicted(kclient, "tolerant")
        # The user's taint is not the controller's: it stays.
        assert ("maintenance", "NoExecute") in await taints_of(kclient, "n1")


async def test_a_cordoned_node_is_tainted_unschedulable(kclient: Client) -> None:
    async with lifecycle(kclient), kubelets(kclient, "n1"):
        node = await kclient.get(NODES, "n1")
        node.setdefault("spec", {})["unschedulable"] = True
        await kclient.update(NODES, node)

        async def tainted() -> bool:
            return await taints_of(kclient, "n1") == {("node.kubernetes.io/unschedulable", "NoSchedule")}

        await eventually(tainted, "the cordoned node carries the unschedulable taint")
