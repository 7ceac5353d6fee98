"""Simulated nodes against the real API server (in-process): registration, leases renewed, pods played through
their lifecycle (with the IPAM controller's pod CIDRs), deletion honoured, exit codes, a node that dies seen by
the node lifecycle controller, adoption by a restarted simulator, and cleanup."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.events import EventBroadcaster
from kubelite.client.rest import Client, NotFound
from kubelite.controllers import ControllerManager
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.manager import Controller
from kubelite.controllers.nodeipam import NodeIpamController
from kubelite.controllers.nodelifecycle import NodeLifecycleController
from kubelite.kubelet.simulated import (
    EXIT_CODE_ANNOTATION,
    RUN_SECONDS_ANNOTATION,
    NodeSimulator,
    SimulationConfig,
)

NODES = resolve("nodes")
PODS = resolve("pods")
LEASES = resolve("leases")
WAIT_SECONDS = 10.0
OPTIONS = ControllerOptions(node_monitor_grace_period=1.0, node_monitor_period=0.1, cluster_cidr="10.244.0.0/16")

Obj = dict[str, Any]


@asynccontextmanager
async def simulator(client: Client, nodes: int = 3, *, cleanup: bool = False,
                    **config: Any) -> AsyncIterator[NodeSimulator]:
    config.setdefault("lease_renew_interval", 0.2)
    sim = NodeSimulator(client, SimulationConfig(nodes=nodes, **config), cleanup=cleanup)
    stop = asyncio.Event()
    task = asyncio.create_task(sim.run(stop))
    ready = asyncio.create_task(sim.ready.wait())
    try:
        await asyncio.wait({task, ready}, timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what stopped it
        assert sim.ready.is_set(), "the simulator did not become ready"
        yield sim
    finally:
        ready.cancel()
        stop.set()
        await asyncio.wait_for(task, WAIT_SECONDS)


@asynccontextmanager
async def controllers(client: Client, *make: Callable[[ControllerContext], Controller]) -> AsyncIterator[None]:
    async with EventBroadcaster(client) as events:
        ctx = ControllerContext(client, events, OPTIONS)
        async with ControllerManager(client, controllers=[m(ctx) for m in make], options=OPTIONS):
            yield


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - a client sees the simulator's work only by asking
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def create_pod(client: Client, name: str, node: str, *, annotations: dict[str, str] | None = None,
                     restart_policy: str | None = None, tolerations: Sequence[Obj] = ()) -> Obj:
    spec: Obj = {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.25"},
                                                  {"name": "side", "image": "busybox"}]}
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    if tolerations:
        spec["tolerations"] = list(tolerations)
    md: Obj = {"name": name, "namespace": "default"}
    if annotations:
        md["annotations"] = annotations
    return await client.create(PODS, {"metadata": md, "spec": spec})


async def wait_phase(client: Client, name: str, phase: str) -> Obj:
    async def reached() -> bool:
        pod = await client.get(PODS, name, "default")
        return (pod.get("status") or {}).get("phase") == phase

    await eventually(reached, f"pod {name} is {phase}")
    return await client.get(PODS, name, "default")


async def gone(client: Client, kind: Any, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get(kind, name, namespace)
    except NotFound:
        return True
    return False


async def test_nodes_are_registered_with_leases(kclient: Client) -> None:
    async with simulator(kclient, 3, cpu="8", memory="32Gi", pods=50):
        listed = await kclient.list(NODES, label_selector="node.kubernetes.io/instance-type=simulated")
        nodes = {meta.name(n): n for n in listed["items"]}
        assert sorted(nodes) == ["sim-0", "sim-1", "sim-2"]
        node = nodes["sim-1"]
        assert meta.labels(node)["kubernetes.io/hostname"] == "sim-1"
        assert meta.labels(node)["kubernetes.io/os"] == "linux"
        assert node["status"]["capacity"] == {"cpu": "8", "memory": "32Gi", "pods": "50",
                                              "ephemeral-storage": "100Gi"}
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"] == "simulated://0.1"
        assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "10.200.0.2"}
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["reason"] == "KubeletReady"

        lease = await kclient.get(LEASES, "sim-1", "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == "sim-1" and lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["uid"] == meta.uid(node)
        first = lease["spec"]["renewTime"]

        async def renewed() -> bool:
            return bool((await kclient.get(LEASES, "sim-1", "kube-node-lease"))["spec"]["renewTime"] > first)

        await eventually(renewed, "the lease is renewed")


async def test_pods_run_with_addresses_from_the_node_cidr(kclient: Client) -> None:
    async with controllers(kclient, NodeIpamController), simulator(kclient, 2):
        async def has_cidr() -> bool:
            return bool(((await kclient.get(NODES, "sim-0")).get("spec") or {}).get("podCIDR"))

        await eventually(has_cidr, "sim-0 has a pod CIDR")
        node = await kclient.get(NODES, "sim-0")
        await asyncio.gather(*(create_pod(kclient, f"web-{i}", "sim-0") for i in range(3)))
        pods = [await wait_phase(kclient, f"web-{i}", "Running") for i in range(3)]
    cidr = ipaddress.ip_network(node["spec"]["podCIDR"])
    ips = [p["status"]["podIP"] for p in pods]
    assert len(set(ips)) == 3 and all(ipaddress.ip_address(ip) in cidr for ip in ips)
    status = pods[0]["status"]
    assert status["hostIP"] == "10.200.0.1" and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["startTime"]
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("PodReadyToStartContainers", "True"), ("Initialized", "True"), ("Ready", "True"),
        ("ContainersReady", "True"), ("PodScheduled", "True")]
    app = status["containerStatuses"][0]
    assert app["name"] == "app" and app["ready"] and app["started"] and app["restartCount"] == 0
    assert "running" in app["state"] and app["image"] == "nginx:1.25"
    assert app["containerID"].startswith("simulated://") and "@sha256:" in app["imageID"]


async def test_pods_of_nodes_without_a_cidr_get_fake_addresses(kclient: Client) -> None:
    async with simulator(kclient, 2):
        await create_pod(kclient, "p", "sim-1")
        pod = await wait_phase(kclient, "p", "Running")
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network("100.64.1.0/24")


async def test_deleted_pods_are_finished_by_the_kubelet(kclient: Client) -> None:
    async with simulator(kclient, 1, termination_delay=0.2):
        await create_pod(kclient, "doomed", "sim-0")
        await wait_phase(kclient, "doomed", "Running")
        marked = await kclient.delete(PODS, "doomed", "default")
        assert meta.is_being_deleted(marked)  # graceful: the kubelet must confirm

        async def finished() -> bool:
            return await gone(kclient, PODS, "doomed", "default")

        await eventually(finished, "the simulated kubelet removed the deleted pod")


async def test_exit_codes_end_or_restart_pods(kclient: Client) -> None:
    async with simulator(kclient, 1):
        await create_pod(kclient, "ok", "sim-0", annotations={EXIT_CODE_ANNOTATION: "0"}, restart_policy="Never")
        await create_pod(kclient, "bad", "sim-0", annotations={EXIT_CODE_ANNOTATION: "3",
                                                                RUN_SECONDS_ANNOTATION: "0.2"},
                         restart_policy="Never")
        await create_pod(kclient, "loop", "sim-0", annotations={EXIT_CODE_ANNOTATION: "1"},
                         restart_policy="OnFailure")
        ok = await wait_phase(kclient, "ok", "Succeeded")
        bad = await wait_phase(kclient, "bad", "Failed")

        async def crashing() -> bool:
            pod = await kclient.get(PODS, "loop", "default")
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            return bool(statuses) and statuses[0]["restartCount"] == 1

        await eventually(crashing, "the OnFailure pod waits in CrashLoopBackOff")
        loop = await kclient.get(PODS, "loop", "default")
    assert ok["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    terminated = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    ready = next(c for c in bad["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    app = loop["status"]["containerStatuses"][0]
    assert loop["status"]["phase"] == "Running"
    assert app["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert app["lastState"]["terminated"]["exitCode"] == 1


async def test_a_failed_node_goes_unknown_and_its_pods_are_evicted(kclient: Client) -> None:
    quick = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 1}
    async with controllers(kclient, NodeLifecycleController), \
            simulator(kclient, 3, failures={"sim-1": 0.3}) as sim:
        await create_pod(kclient, "on-dead", "sim-1", tolerations=[quick])
        await create_pod(kclient, "on-live", "sim-2", tolerations=[quick])
        await wait_phase(kclient, "on-live", "Running")

        async def unknown() -> bool:
            node = await kclient.get(NODES, "sim-1")
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            taints = {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []}
            return ready["status"] == "Unknown" and ("node.kubernetes.io/unreachable", "NoExecute") in taints

        await eventually(unknown, "the failed node is Unknown and tainted")
        assert sim.failed == {"sim-1"}

        async def evicted() -> bool:
            return meta.is_being_deleted(await kclient.get(PODS, "on-dead", "default"))

        await eventually(evicted, "the pod on the failed node is evicted")
        await asyncio.sleep(0.3)
        assert not await gone(kclient, PODS, "on-dead", "default")  # a dead kubelet never confirms
        for name in ("sim-0", "sim-2"):
            node = await kclient.get(NODES, name)
            assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
        assert not meta.is_being_deleted(await kclient.get(PODS, "on-live", "default"))


async def test_a_node_marked_unknown_while_alive_reports_ready_again(kclient: Client) -> None:
    async with simulator(kclient, 1):
        node = await kclient.get(NODES, "sim-0")
        for c in node["status"]["conditions"]:
            c["status"] = "Unknown"
        await kclient.update_status(NODES, node)

        async def ready_again() -> bool:
            n = await kclient.get(NODES, "sim-0")
            return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])

        await eventually(ready_again, "the live node posts Ready again")


async def test_a_restarted_simulator_adopts_its_nodes_and_cleanup_removes_them(kclient: Client) -> None:
    async with simulator(kclient, 2):
        await create_pod(kclient, "first", "sim-0")
        first = await wait_phase(kclient, "first", "Running")
    async with simulator(kclient, 2, cleanup=True):
        await create_pod(kclient, "second", "sim-0")
        second = await wait_phase(kclient, "second", "Running")
        assert second["status"]["podIP"] != first["status"]["podIP"]
        listed = await kclient.list(NODES)
        assert len(listed["items"]) == 2
    assert await gone(kclient, NODES, "sim-0") and await gone(kclient, NODES, "sim-1")
    assert await gone(kclient, LEASES, "sim-0", "kube-node-lease")


async def test_a_stop_during_registration_ends_at_once_and_cleans_up(kclient: Client) -> None:
    stop = asyncio.Event()
    sim = NodeSimulator(kclient, SimulationConfig(nodes=200), cleanup=True)
    task = asyncio.create_task(sim.run(stop))
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, WAIT_SECONDS)
    assert not sim.ready.is_set()
    assert (await kclient.list(NODES))["items"] == []
