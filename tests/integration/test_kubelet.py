"""The kubelet against the in-process API server, with the fake runtime of tests/unit/kubelet/fake_runtime.py
(containers "run" instantly; the test decides exit codes and probe results). Seen through the REST API only:
Node and Lease, a pod from bound to Running and Ready, crash loops and back-off, restart policies, probes,
graceful deletion, ConfigMap volumes, and a restarted kubelet adopting its containers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.rest import Client, NotFound
from kubelite.kubelet.config import KubeletConfig
from kubelite.kubelet.kubelet import Kubelet
from kubelite.kubelet.node import Machine
from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.volumes import SystemMounter, read_mounts
from kubelite.proto import runtime_pb2 as pb
from tests.unit.kubelet.fake_runtime import FakeRuntime, serve

PODS = resolve("pods")
NODES = resolve("nodes")
LEASES = resolve("leases")
EVENTS = resolve("events")
CONFIGMAPS = resolve("configmaps")
NODE = "node-a"
WAIT_SECONDS = 10.0
IMAGE = "busybox:1.36"

Obj = dict[str, Any]

MACHINE = Machine(cpus=4, memory_total=8 * 2**30, memory_available=6 * 2**30, fs_total=100 * 2**30,
                  fs_available=60 * 2**30, machine_id="m1", boot_id="b1", kernel_version="6.1.0", os_image="Test OS")


@dataclass
class NodeUnderTest:
    client: Client
    fake: FakeRuntime
    config: KubeletConfig
    kubelet: Kubelet
    stop: asyncio.Event
    task: asyncio.Task[None]


def _config(root: Path, socket: Path, **overrides: Any) -> KubeletConfig:
    settings: dict[str, Any] = dict(
        node_name=NODE, paths=AgentPaths(root), runtime_socket=socket, node_ip="127.0.0.1", hostname="host-a",
        wait_for_pod_cidr=False, crashloop_backoff_initial=0.4, crashloop_backoff_max=1.6, backoff_reset=600,
        image_pull_backoff_initial=0.4, image_pull_backoff_max=1.6, pleg_period=0.05, sync_period=2,
        housekeeping_period=0.2, node_status_update_period=0.5, lease_duration_seconds=4,
    )
    settings.update(overrides)
    return KubeletConfig(**settings)


async def _start(client: Client, config: KubeletConfig) -> tuple[Kubelet, asyncio.Event, asyncio.Task[None]]:
    kubelet = Kubelet(client, config, machine=lambda: MACHINE)
    stop = asyncio.Event()
    task = asyncio.create_task(kubelet.run(stop))
    ready = asyncio.create_task(kubelet.ready.wait())
    await asyncio.wait([task, ready], timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()
    assert kubelet.ready.is_set(), "the kubelet did not get ready"
    return kubelet, stop, task


async def _stop(stop: asyncio.Event, task: asyncio.Task[None]) -> None:
    stop.set()
    async with asyncio.timeout(WAIT_SECONDS):
        await task


def _unmount_all(root: Path) -> None:
    mounter = SystemMounter()
    for point, _ in reversed(read_mounts()):
        if point.startswith(str(root)):
            with contextlib.suppress(OSError):
                mounter.unmount(Path(point))


@pytest.fixture
async def node(kclient: Client, tmp_path: Path) -> AsyncIterator[NodeUnderTest]:
    sockdir = Path(tempfile.mkdtemp(prefix="kl-", dir="/tmp"))
    fake = FakeRuntime()
    fake.add_image(IMAGE)
    await fake.start(sockdir / "runtime.sock")
    config = _config(tmp_path / "node", sockdir / "runtime.sock")
    try:
        kubelet, stop, task = await _start(kclient, config)
        try:
            yield NodeUnderTest(kclient, fake, config, kubelet, stop, task)
        finally:
            await _stop(stop, task)
    finally:
        await fake.stop()
        _unmount_all(tmp_path)
        shutil.rmtree(sockdir, ignore_errors=True)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll until ``check`` returns something truthy; return it."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                result = await check()
                if result:
                    return result
                await asyncio.sleep(0.03)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


def pod_manifest(name: str, *, containers: list[Obj] | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 5,
                 "containers": containers or [{"name": "app", "image": IMAGE}], **spec},
    }


async def get_pod(client: Client, name: str) -> Obj | None:
    try:
        return await client.get(PODS, name, "default")
    except NotFound:
        return None


def container_status(pod: Obj, name: str = "app") -> Obj:
    for st in (pod.get("status") or {}).get("containerStatuses") or []:
        if st["name"] == name:
            return dict(st)
    return {}


def condition(pod_or_node: Obj, kind: str) -> str:
    for c in (pod_or_node.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return ""


async def events_of(client: Client, name: str) -> list[Obj]:
    listed = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return list(listed["items"])


async def wait_phase(client: Client, name: str, phase: str) -> Obj:
    async def check() -> Obj | None:
        pod = await get_pod(client, name)
        return pod if pod and (pod.get("status") or {}).get("phase") == phase else None
    return await eventually(check, f"pod {name} is {phase}")  # type: ignore[no-any-return]


# --- node --------------------------------------------------------------------------------------------

async def test_node_registers_with_capacity_and_lease(node: NodeUnderTest) -> None:
    client = node.client

    async def ready_node() -> Obj | None:
        obj = await client.get(NODES, NODE)
        return obj if condition(obj, "Ready") == "True" else None

    obj = await eventually(ready_node, "the node is Ready")
    status = obj["status"]
    assert status["capacity"] == {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "100Gi",
                                  "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    assert status["allocatable"]["memory"] == "8092Mi"  # 8Gi less the 100Mi eviction threshold
    assert status["allocatable"]["ephemeral-storage"] == str(90 * 2**30)
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert {"type": "Hostname", "address": "host-a"} in status["addresses"]
    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"] == "kubelite-fake://0.0.1"
    assert info["osImage"] == "Test OS" and info["kernelVersion"] == "6.1.0" and info["operatingSystem"] == "linux"
    assert [c["type"] for c in status["conditions"]] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert meta.labels(obj)["kubernetes.io/hostname"] == NODE

    lease = await eventually(lambda: _lease(client), "the node has a lease")
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["spec"]["leaseDurationSeconds"] == 4
    assert lease["metadata"]["ownerReferences"][0]["uid"] == meta.uid(obj)
    first = lease["spec"]["renewTime"]

    async def renewed() -> bool:
        current = await _lease(client)
        return current is not None and current["spec"]["renewTime"] != first
    await eventually(renewed, "the lease is renewed")

    # Heartbeats are the Lease's job: an unchanged status is not written again (until the report period).
    before = meta.resource_version(await client.get(NODES, NODE))
    await asyncio.sleep(1.2)  # more than two status periods
    assert meta.resource_version(await client.get(NODES, NODE)) == before

    # Someone else's change to the conditions (the node lifecycle controller) is corrected at once.
    unknown = [{**c, "status": "Unknown", "reason": "NodeStatusUnknown"} for c in obj["status"]["conditions"]]
    await client.patch(NODES, NODE, {"status": {"conditions": unknown}}, subresource="status")
    await eventually(ready_node, "the kubelet posts its conditions again")


async def _lease(client: Client) -> Obj | None:
    try:
        return await client.get(LEASES, NODE, "kube-node-lease")
    except NotFound:
        return None


# --- pods --------------------------------------------------------------------------------------------

async def test_bound_pod_becomes_running_and_ready(node: NodeUnderTest) -> None:
    client = node.client
    await client.create(PODS, pod_manifest("web", containers=[
        {"name": "app", "image": IMAGE, "command": ["sh", "-c", "echo $(GREETING)"],
         "env": [{"name": "GREETING", "value": "hi $(POD_NAME)"},
                 {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]))

    async def ready() -> Obj | None:
        pod = await get_pod(client, "web")
        return pod if pod and condition(pod, "Ready") == "True" else None
    pod = await eventually(ready, "the pod is Ready")
    status = pod["status"]
    assert status["phase"] == "Running"
    assert status["podIP"].startswith("10.88.0.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["hostIP"] == "127.0.0.1"
    assert status["qosClass"] == "BestEffort"
    assert [c["type"] for c in status["conditions"]] == ["PodReadyToStartContainers", "Initialized", "Ready",
                                                          "ContainersReady", "PodScheduled"]
    cs = container_status(pod)
    assert cs["ready"] is True and cs["started"] is True and cs["restartCount"] == 0
    assert cs["containerID"].startswith("kubelite://") and "running" in cs["state"]
    assert cs["image"] == IMAGE and cs["imageID"] == node.fake.images[IMAGE]

    created = node.fake.by_name("app")[0].config
    # The command is expanded from the environment; POD_NAME is defined after GREETING, so it stays literal.
    assert list(created.command) == ["sh", "-c", "echo hi $(POD_NAME)"]
    assert {(e.key, e.value) for e in created.envs} >= {("POD_NAME", "web"), ("GREETING", "hi $(POD_NAME)")}
    reasons = [e["reason"] for e in await events_of(client, "web")]
    for reason in ("Pulled", "Created", "Started"):
        assert reason in reasons


async def test_status_is_written_only_when_it_changes(node: NodeUnderTest) -> None:
    client = node.client
    await client.create(PODS, pod_manifest("quiet"))

    async def ready() -> Obj | None:
        pod = await get_pod(client, "quiet")
        return pod if pod and condition(pod, "Ready") == "True" else None
    await eventually(ready, "the pod is Ready")
    # An annotation makes the worker sync (and the relists run meanwhile): the status it computes is the one
    # the pod already has, so nothing is written.
    pod = await client.patch(PODS, "quiet", {"metadata": {"annotations": {"touch": "1"}}}, namespace="default")
    await asyncio.sleep(0.5)
    again = await get_pod(client, "quiet")
    assert again is not None and meta.resource_version(again) == meta.resource_version(pod)


# --- restarts ----------------------------------------------------------------------------------------

async def test_crashing_container_goes_to_crash_loop_back_off(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.exit_on_start["app"] = 1
    await client.create(PODS, pod_manifest("crash"))

    async def looping() -> Obj | None:
        pod = await get_pod(client, "crash")
        st = container_status(pod or {})
        waiting = (st.get("state") or {}).get("waiting") or {}
        return pod if waiting.get("reason") == "CrashLoopBackOff" and st.get("restartCount", 0) >= 3 else None
    pod = await eventually(looping, "the container crash-loops")
    st = container_status(pod)
    assert st["lastState"]["terminated"]["exitCode"] == 1
    assert st["lastState"]["terminated"]["reason"] == "Error"
    assert st["ready"] is False
    waiting = st["state"]["waiting"]
    assert waiting["message"].startswith("back-off ") and "restarting failed container=app pod=crash_default(" \
        in waiting["message"]
    assert pod["status"]["phase"] == "Running"  # restartPolicy Always: the pod keeps running its restarts
    assert condition(pod, "Ready") == "False"

    # The runtime started the container at once, then after 0.4 s, 0.8 s, 1.6 s (capped): the gap between
    # starts never falls below the back-off (upper bounds would be a timing assertion).
    starts = [t for name, t in fake.starts if name == "app"]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 3
    for gap, delay in zip(gaps[1:], [0.4, 0.8, 1.6], strict=False):
        assert gap >= delay * 0.95
    reasons = {e["reason"] for e in await events_of(client, "crash")}
    assert "BackOff" in reasons
    # Only the newest two instances are kept (the current one and the one lastState shows).
    assert len(fake.by_name("app")) <= 3


@pytest.mark.parametrize(("policy", "code", "phase"), [
    pytest.param("Never", 0, "Succeeded", id="never-success"),
    pytest.param("Never", 3, "Failed", id="never-failure"),
    pytest.param("OnFailure", 0, "Succeeded", id="onfailure-success"),
])
async def test_restart_policy_decides_the_final_phase(node: NodeUnderTest, policy: str, code: int,
                                                      phase: str) -> None:
    client, fake = node.client, node.fake
    fake.exit_on_start["app"] = code
    await client.create(PODS, pod_manifest("job", restartPolicy=policy))
    pod = await wait_phase(client, "job", phase)
    st = container_status(pod)
    assert st["state"]["terminated"]["exitCode"] == code
    assert st["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
    assert st["restartCount"] == 0 and len(fake.by_name("app")) == 1
    assert condition(pod, "Ready") == "False"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == ("PodCompleted" if phase == "Succeeded" else "PodFailed")

    async def sandbox_stopped() -> bool:
        return all(sb.state == pb.SANDBOX_NOTREADY for sb in fake.sandboxes.values())
    await eventually(sandbox_stopped, "the finished pod's sandbox is stopped")


async def test_on_failure_restarts_a_failed_container(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.exit_on_start["app"] = 2
    await client.create(PODS, pod_manifest("retry", restartPolicy="OnFailure"))

    async def restarted() -> bool:
        return len(fake.by_name("app")) >= 2
    await eventually(restarted, "the failed container is started again")
    fake.exit_on_start["app"] = 0
    pod = await wait_phase(client, "retry", "Succeeded")
    assert container_status(pod)["restartCount"] >= 1


async def test_init_containers_run_in_order_before_the_app(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.exit_on_start.update({"init-a": 0, "init-b": 0})
    await client.create(PODS, pod_manifest("inits", initContainers=[{"name": "init-a", "image": IMAGE},
                                                                    {"name": "init-b", "image": IMAGE}]))
    pod = await wait_phase(client, "inits", "Running")
    created = sorted(fake.containers.values(), key=lambda c: c.created_at)
    assert [c.name for c in created] == ["init-a", "init-b", "app"]
    inits = pod["status"]["initContainerStatuses"]
    assert [s["name"] for s in inits] == ["init-a", "init-b"]
    assert all(s["state"]["terminated"]["reason"] == "Completed" and s["ready"] for s in inits)
    assert condition(pod, "Initialized") == "True"


async def test_failing_init_container_under_never_fails_the_pod(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.exit_on_start["init"] = 1
    await client.create(PODS, pod_manifest("badinit", restartPolicy="Never",
                                           initContainers=[{"name": "init", "image": IMAGE}]))
    pod = await wait_phase(client, "badinit", "Failed")
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    assert container_status(pod)["state"]["waiting"]["reason"] == "PodInitializing"
    assert not fake.by_name("app")


# --- images and configuration errors -----------------------------------------------------------------

async def test_image_pull_failure_backs_off_with_the_registry_message(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.pull_errors["registry.test/missing:1"] = "manifest unknown: manifest unknown"
    await client.create(PODS, pod_manifest("nopull", containers=[{"name": "app", "image": "registry.test/missing:1"}]))

    async def waiting(reason: str) -> Obj | None:
        pod = await get_pod(client, "nopull")
        state = container_status(pod or {}).get("state") or {}
        return state["waiting"] if (state.get("waiting") or {}).get("reason") == reason else None
    pulled = await eventually(lambda: waiting("ErrImagePull"), "the pull fails")
    assert pulled["message"] == "manifest unknown: manifest unknown"
    backoff = await eventually(lambda: waiting("ImagePullBackOff"), "the pull backs off")
    assert backoff["message"] == 'Back-off pulling image "registry.test/missing:1"'
    messages = [e["message"] for e in await events_of(client, "nopull")]
    assert 'Pulling image "registry.test/missing:1"' in messages
    assert 'Failed to pull image "registry.test/missing:1": manifest unknown: manifest unknown' in messages

    del fake.pull_errors["registry.test/missing:1"]
    await wait_phase(client, "nopull", "Running")
    messages = [e["message"] for e in await events_of(client, "nopull")]
    assert any(m.startswith('Successfully pulled image "registry.test/missing:1" in ') for m in messages)


async def test_missing_configmap_key_is_a_config_error(node: NodeUnderTest) -> None:
    client = node.client
    await client.create(PODS, pod_manifest("badenv", containers=[{"name": "app", "image": IMAGE, "env": [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}}]}]))

    async def config_error() -> Obj | None:
        pod = await get_pod(client, "badenv")
        waiting = (container_status(pod or {}).get("state") or {}).get("waiting") or {}
        return waiting if waiting.get("reason") == "CreateContainerConfigError" else None
    waiting = await eventually(config_error, "the container cannot be configured")
    assert waiting["message"] == 'configmap "settings" not found'
    await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "settings", "namespace": "default"}, "data": {"x": "42"}})
    await wait_phase(client, "badenv", "Running")
    assert ("X", "42") in {(e.key, e.value) for e in node.fake.by_name("app")[-1].config.envs}


# --- probes ------------------------------------------------------------------------------------------

def _exec_probe(command: list[str], **settings: Any) -> Obj:
    return {"exec": {"command": command}, "periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1,
            "timeoutSeconds": 1, **settings}


async def test_readiness_probe_failure_flips_ready(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("ready", containers=[
        {"name": "app", "image": IMAGE, "readinessProbe": _exec_probe(["cat", "/tmp/ready"])}]))

    async def ready_is(value: str) -> Obj | None:
        pod = await get_pod(client, "ready")
        return pod if pod and condition(pod, "Ready") == value else None
    await eventually(lambda: ready_is("True"), "the readiness probe succeeds")
    fake.exec_results[("app", "cat /tmp/ready")] = (1, "cat: can't open '/tmp/ready': No such file or directory")
    pod = await eventually(lambda: ready_is("False"), "the readiness probe fails")
    st = container_status(pod)
    assert st["ready"] is False and "running" in st["state"] and st["restartCount"] == 0
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady" and ready["message"] == "containers with unready status: [app]"
    messages = [e["message"] for e in await events_of(client, "ready")]
    assert "Readiness probe failed: cat: can't open '/tmp/ready': No such file or directory" in messages
    del fake.exec_results[("app", "cat /tmp/ready")]
    await eventually(lambda: ready_is("True"), "the readiness probe succeeds again")


async def test_liveness_probe_failure_restarts_the_container(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("alive", containers=[
        {"name": "app", "image": IMAGE, "livenessProbe": _exec_probe(["/bin/healthy"])}]))
    await wait_phase(client, "alive", "Running")
    fake.exec_results[("app", "/bin/healthy")] = (1, "unhealthy")

    async def restarted() -> Obj | None:
        pod = await get_pod(client, "alive")
        return pod if container_status(pod or {}).get("restartCount", 0) >= 1 else None
    await eventually(restarted, "the container is restarted")
    del fake.exec_results[("app", "/bin/healthy")]
    messages = [e["message"] for e in await events_of(client, "alive")]
    assert "Liveness probe failed: unhealthy" in messages
    assert "Container app failed liveness probe, will be restarted" in messages
    assert ("app", 5) in fake.stops  # stopped with the pod's grace period

    async def running_again() -> Obj | None:
        pod = await get_pod(client, "alive")
        st = container_status(pod or {})
        return pod if "running" in (st.get("state") or {}) and st.get("restartCount", 0) >= 1 else None
    pod = await eventually(running_again, "the restarted container runs")
    assert container_status(pod)["lastState"]["terminated"]["exitCode"] == 143


async def test_startup_probe_holds_readiness_until_it_succeeds(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.exec_results[("app", "started")] = (1, "not yet")
    await client.create(PODS, pod_manifest("slow", containers=[
        {"name": "app", "image": IMAGE, "startupProbe": _exec_probe(["started"], failureThreshold=30)}]))
    pod = await wait_phase(client, "slow", "Running")
    await asyncio.sleep(1.2)
    pod = await get_pod(client, "slow") or {}
    assert container_status(pod)["started"] is False and condition(pod, "Ready") == "False"
    del fake.exec_results[("app", "started")]

    async def started() -> Obj | None:
        current = await get_pod(client, "slow")
        return current if current and condition(current, "Ready") == "True" else None
    pod = await eventually(started, "the startup probe succeeds")
    assert container_status(pod)["started"] is True


# --- deletion ----------------------------------------------------------------------------------------

async def test_graceful_deletion_stops_containers_and_removes_the_pod(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("bye", containers=[
        {"name": "app", "image": IMAGE, "lifecycle": {"preStop": {"exec": {"command": ["nginx", "-s", "quit"]}}}}]))
    await wait_phase(client, "bye", "Running")
    assert list(node.config.paths.logs.glob("default_bye_*"))
    await client.delete(PODS, "bye", "default")
    marked = await get_pod(client, "bye")
    assert marked is not None and meta.is_being_deleted(marked)  # kept until the kubelet is done

    async def gone() -> bool:
        return await get_pod(client, "bye") is None
    await eventually(gone, "the pod object is removed")
    assert "ExecSync" in fake.calls  # the preStop hook ran before the stop
    assert fake.stops == [("app", 5)]
    assert fake.calls.index("ExecSync") < fake.calls.index("StopContainer")

    async def cleaned() -> bool:
        return not fake.containers and not fake.sandboxes and not list(node.config.paths.logs.glob("default_bye_*"))
    await eventually(cleaned, "the containers, the sandbox and the logs are removed")
    messages = [e["message"] for e in await events_of(client, "bye")]
    assert "Stopping container app" in messages


async def test_forced_deletion_still_stops_the_containers(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("forced"))
    await wait_phase(client, "forced", "Running")
    await client.delete(PODS, "forced", "default", grace_period_seconds=0)
    assert await get_pod(client, "forced") is None

    async def cleaned() -> bool:
        return not fake.containers and not fake.sandboxes
    await eventually(cleaned, "the containers of the force-deleted pod are removed")
    assert fake.stops and fake.stops[0][0] == "app"



async def _stopping(fake: FakeRuntime, timeout: int) -> bool:
    return ("app", timeout) in fake.stops


async def test_a_shortened_grace_period_kills_sooner(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.ignore_sigterm.add("app")  # only the final SIGKILL stops it
    await client.create(PODS, pod_manifest("stubborn", containers=[
        {"name": "app", "image": IMAGE, "lifecycle": {"preStop": {"exec": {"command": ["drain"]}}}}]))
    await wait_phase(client, "stubborn", "Running")
    await client.delete(PODS, "stubborn", "default", grace_period_seconds=30)
    await eventually(lambda: _stopping(fake, 30), "the container is being stopped with 30 s")
    await client.delete(PODS, "stubborn", "default", grace_period_seconds=1)  # kubectl delete --grace-period=1

    async def gone() -> bool:
        return await get_pod(client, "stubborn") is None
    await eventually(gone, "the pod object is removed within the shortened period", timeout=5)
    assert fake.stops == [("app", 30), ("app", 1)]
    assert fake.calls.count("ExecSync") == 1  # the preStop hook ran once


async def test_a_longer_grace_period_given_later_is_ignored(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.ignore_sigterm.add("app")
    await client.create(PODS, pod_manifest("patient"))
    await wait_phase(client, "patient", "Running")
    await client.delete(PODS, "patient", "default", grace_period_seconds=2)
    await eventually(lambda: _stopping(fake, 2), "the container is being stopped with 2 s")
    await client.delete(PODS, "patient", "default", grace_period_seconds=30)

    async def gone() -> bool:
        return await get_pod(client, "patient") is None
    await eventually(gone, "the pod object is removed after the first grace period", timeout=5)
    assert fake.stops == [("app", 2)]


async def test_shortening_cuts_a_running_prestop_hook_short(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("sleepy", terminationGracePeriodSeconds=30, containers=[
        {"name": "app", "image": IMAGE, "lifecycle": {"preStop": {"sleep": {"seconds": 30}}}}]))
    await wait_phase(client, "sleepy", "Running")
    await client.delete(PODS, "sleepy", "default")

    async def killing() -> bool:
        return "Stopping container app" in [e["message"] for e in await events_of(client, "sleepy")]
    await eventually(killing, "the preStop hook runs")
    await client.delete(PODS, "sleepy", "default", grace_period_seconds=1)

    async def gone() -> bool:
        return await get_pod(client, "sleepy") is None
    await eventually(gone, "the pod object is removed within the shortened period", timeout=5)
    assert fake.stops == [("app", 0)]  # the hook used up the shortened period
    messages = [e["message"] for e in await events_of(client, "sleepy")]
    assert "PreStopHook failed: the handler did not finish within 1s" in messages


async def test_forced_deletion_during_the_grace_period_kills_at_once(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.ignore_sigterm.add("app")
    await client.create(PODS, pod_manifest("doomed"))
    await wait_phase(client, "doomed", "Running")
    await client.delete(PODS, "doomed", "default", grace_period_seconds=30)
    await eventually(lambda: _stopping(fake, 30), "the container is being stopped with 30 s")
    await client.delete(PODS, "doomed", "default", grace_period_seconds=0)  # kubectl delete --force --grace-period=0
    assert await get_pod(client, "doomed") is None

    async def cleaned() -> bool:
        return not fake.containers and not fake.sandboxes
    await eventually(cleaned, "the containers of the force-deleted pod are killed and removed", timeout=5)
    assert fake.stops == [("app", 30), ("app", 0)]

# --- volumes -----------------------------------------------------------------------------------------

def _mount(fake: FakeRuntime, container: str, path: str) -> pb.Mount:
    config = fake.by_name(container)[-1].config
    mounts: list[pb.Mount] = [m for m in config.mounts if m.container_path == path]
    return mounts[0]


async def test_configmap_volume_files_appear_and_update(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("cfg", containers=[
        {"name": "app", "image": IMAGE, "volumeMounts": [{"name": "conf", "mountPath": "/etc/conf"},
                                                         {"name": "conf", "mountPath": "/etc/one", "subPath": "a"}]}],
        volumes=[{"name": "conf", "configMap": {"name": "settings"}}]))

    async def failed_mount() -> bool:
        return any(e["reason"] == "FailedMount" for e in await events_of(client, "cfg"))
    await eventually(failed_mount, "the missing ConfigMap is reported")
    pod = await get_pod(client, "cfg") or {}
    assert container_status(pod)["state"]["waiting"]["reason"] == "ContainerCreating"
    event = next(e for e in await events_of(client, "cfg") if e["reason"] == "FailedMount")
    assert event["message"] == 'MountVolume.SetUp failed for volume "conf" : configmap "settings" not found'

    cm = await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "settings", "namespace": "default"},
                                          "data": {"a": "1", "b": "two"}})
    await wait_phase(client, "cfg", "Running")
    mount = _mount(fake, "app", "/etc/conf")
    folder = Path(mount.host_path)
    assert mount.readonly
    assert (folder / "a").read_text() == "1" and (folder / "b").read_text() == "two"
    assert (folder / "..data").is_symlink() and (folder / "a").is_symlink()
    assert Path(_mount(fake, "app", "/etc/one").host_path) == folder / "a"

    cm["data"] = {"a": "updated"}
    await client.update(CONFIGMAPS, cm)

    async def updated() -> bool:
        return (folder / "a").exists() and (folder / "a").read_text() == "updated" and not (folder / "b").exists()
    await eventually(updated, "the projected files follow the ConfigMap")


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() != 0,
                    reason="mounting a tmpfs for secret volumes needs root")
async def test_secret_volume_lives_on_a_tmpfs(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(resolve("secrets"), {"apiVersion": "v1", "kind": "Secret",
                                             "metadata": {"name": "token", "namespace": "default"},
                                             "data": {"token": "czNjcjN0"}})
    await client.create(PODS, pod_manifest("sec", containers=[
        {"name": "app", "image": IMAGE, "volumeMounts": [{"name": "s", "mountPath": "/var/run/s"}]}],
        volumes=[{"name": "s", "secret": {"secretName": "token", "defaultMode": 0o400}}]))
    await wait_phase(client, "sec", "Running")
    folder = Path(_mount(fake, "app", "/var/run/s").host_path)
    assert SystemMounter().fs_type(folder) == "tmpfs"
    assert (folder / "token").read_bytes() == b"s3cr3t"
    assert (folder / "token").resolve().stat().st_mode & 0o777 == 0o400
    await client.delete(PODS, "sec", "default")

    async def unmounted() -> bool:
        return not folder.exists() and not any(p.startswith(str(folder)) for p, _ in read_mounts())
    await eventually(unmounted, "the secret volume is unmounted and removed")


# --- a restarted kubelet -----------------------------------------------------------------------------

async def test_restarted_kubelet_adopts_running_containers(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    await client.create(PODS, pod_manifest("keep"))
    await client.create(PODS, pod_manifest("drop", containers=[
        {"name": "app", "image": IMAGE, "lifecycle": {"preStop": {"exec": {"command": ["drain"]}}}}]))
    await wait_phase(client, "keep", "Running")
    await wait_phase(client, "drop", "Running")
    await _stop(node.stop, node.task)
    # While the kubelet is away, one pod is force-deleted: nobody stops its containers.
    await client.delete(PODS, "drop", "default", grace_period_seconds=0)
    assert len(fake.running("app")) == 2
    calls = len(fake.calls)

    _, stop, task = await _start(client, node.config)
    node.stop, node.task = stop, task  # the fixture stops this one

    async def orphan_removed() -> bool:
        return len(fake.by_name("app")) == 1 and len(fake.sandboxes) == 1 and \
            not list(node.config.paths.logs.glob("default_drop_*"))
    await eventually(orphan_removed, "the containers and logs of the deleted pod are removed")
    assert "ExecSync" in fake.calls[calls:]  # its preStop hook, from the container's annotations
    pod = await wait_phase(client, "keep", "Running")
    assert container_status(pod)["restartCount"] == 0
    later = fake.calls[calls:]
    assert "RunPodSandbox" not in later and "CreateContainer" not in later
    assert fake.running("app")[0].config.labels["io.kubernetes.pod.name"] == "keep"


async def test_pods_wait_for_the_pod_cidr(kclient: Client, tmp_path: Path) -> None:
    cidrs: list[str] = []
    async with serve() as fake:
        fake.add_image(IMAGE)
        assert fake.socket is not None
        config = _config(tmp_path / "node", fake.socket, wait_for_pod_cidr=True)
        kubelet = Kubelet(kclient, config, on_pod_cidr=cidrs.append, machine=lambda: MACHINE)
        stop = asyncio.Event()
        task = asyncio.create_task(kubelet.run(stop))
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await kubelet.ready.wait()

            async def not_ready() -> Obj | None:
                obj = await kclient.get(NODES, NODE)
                return obj if condition(obj, "Ready") == "False" else None
            obj = await eventually(not_ready, "the node reports its missing network")
            ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
            assert "NetworkReady=false" in ready["message"]
            await kclient.create(PODS, pod_manifest("net"))
            await kclient.create(PODS, pod_manifest("host", hostNetwork=True))
            await wait_phase(kclient, "host", "Running")  # the host's network needs no pod CIDR
            assert (await get_pod(kclient, "net") or {})["status"]["phase"] == "Pending"
            assert "NetworkNotReady" in [e["reason"] for e in await events_of(kclient, "net")]

            # The node IPAM controller's part.
            await kclient.patch(NODES, NODE, {"spec": {"podCIDR": "10.244.3.0/24", "podCIDRs": ["10.244.3.0/24"]}})
            await wait_phase(kclient, "net", "Running")
            assert cidrs == ["10.244.3.0/24"]

            async def node_ready() -> bool:
                return condition(await kclient.get(NODES, NODE), "Ready") == "True"
            await eventually(node_ready, "the node is Ready")
        finally:
            await _stop(stop, task)
            _unmount_all(tmp_path)


async def test_pods_beyond_max_pods_are_rejected(kclient: Client, tmp_path: Path) -> None:
    async with serve() as fake:
        fake.add_image(IMAGE)
        assert fake.socket is not None
        _, stop, task = await _start(kclient, _config(tmp_path / "node", fake.socket, max_pods=1))
        try:
            await kclient.create(PODS, pod_manifest("first"))
            await wait_phase(kclient, "first", "Running")
            await kclient.create(PODS, pod_manifest("second"))
            pod = await wait_phase(kclient, "second", "Failed")
            assert pod["status"]["reason"] == "OutOfpods"
            assert pod["status"]["message"] == ("Pod was rejected: Node didn't have enough resource: pods, "
                                                "requested: 1, used: 1, capacity: 1")
            await asyncio.sleep(0.3)
            assert len(fake.sandboxes) == 1  # the rejected pod never ran
        finally:
            await _stop(stop, task)


async def test_service_environment_variables(node: NodeUnderTest) -> None:
    client = node.client
    created = await client.create(resolve("services"), {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "default"},
        "spec": {"selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]}})
    ip = created["spec"]["clusterIP"]
    await asyncio.sleep(0.3)  # the kubelet's cache of Services follows a watch on loopback
    await client.create(PODS, pod_manifest("client", containers=[
        {"name": "app", "image": IMAGE, "env": [{"name": "DSN", "value": "pg://$(DB_SERVICE_HOST)"}]}]))
    await wait_phase(client, "client", "Running")
    env = {e.key: e.value for e in node.fake.by_name("app")[-1].config.envs}
    assert env["DB_SERVICE_HOST"] == ip and env["DB_SERVICE_PORT_PG"] == "5432" and env["DSN"] == f"pg://{ip}"
    await client.create(PODS, pod_manifest("nolinks", enableServiceLinks=False))
    await wait_phase(client, "nolinks", "Running")
    assert not any(e.key.startswith("DB_") for e in node.fake.by_name("app")[-1].config.envs)


async def test_a_container_that_cannot_start_backs_off(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.start_errors["app"] = 'exec: "nonexistent": executable file not found in $PATH'
    await client.create(PODS, pod_manifest("nostart"))

    async def failing() -> Obj | None:
        pod = await get_pod(client, "nostart")
        waiting = (container_status(pod or {}).get("state") or {}).get("waiting") or {}
        return waiting if waiting.get("reason") in ("RunContainerError", "CrashLoopBackOff") else None
    waiting = await eventually(failing, "the start failure is reported")
    assert "executable file not found" in waiting.get("message", "") or waiting["reason"] == "CrashLoopBackOff"
    await asyncio.sleep(1.0)
    attempts = fake.calls.count("StartContainer")
    assert attempts <= 4  # 0.4 s, 0.8 s apart at least: not one per relist
    messages = [e["message"] for e in await events_of(client, "nostart")]
    assert 'Error: exec: "nonexistent": executable file not found in $PATH' in messages


async def test_deletion_interrupts_a_long_image_pull(node: NodeUnderTest) -> None:
    client, fake = node.client, node.fake
    fake.pull_delay = 30
    await client.create(PODS, pod_manifest("slowpull", containers=[{"name": "app", "image": "registry.test/big:1"}]))

    async def pulling() -> bool:
        return "PullImage" in fake.calls
    await eventually(pulling, "the pull starts")
    await client.delete(PODS, "slowpull", "default")

    async def gone() -> bool:
        return await get_pod(client, "slowpull") is None and not fake.sandboxes
    await eventually(gone, "the pod is removed without waiting for the pull", timeout=5)
