"""Simulated nodes (like kwok): Node objects, their heartbeats, and a kubelet that plays the pods bound to them
through their lifecycle without running anything. For scale tests, benchmarks, and every test that needs
nodes but not containers.

What `NodeSimulator` does, as a real kubelet would (all through the API, optimistic concurrency everywhere):

- **registers** ``config.nodes`` Nodes named ``<prefix>0`` … ``<prefix>N-1`` (`build_node`: hostname/os/arch/
  ``node.kubernetes.io/instance-type=simulated`` labels, capacity and allocatable, ``nodeInfo`` with
  ``containerRuntimeVersion: simulated://0.1``, a fake InternalIP from 10.200.0.0/16 that nothing ever
  contacts, healthy conditions). Creation runs ``create_concurrency`` requests at a time; a Node left by an
  earlier run is adopted;
- **heartbeats**: one Lease per node in ``kube-node-lease`` (owned by the Node, 40 s, renewed every
  ``lease_renew_interval``, the renewals of all nodes spread evenly over the interval by one scheduler
  task), and the node status (conditions' ``lastHeartbeatTime``) written again every
  ``status_report_interval`` or at once when someone else changed the conditions (the node lifecycle
  controller marking it Unknown);
- **pods**: one informer over every bound pod (``fieldSelector=spec.nodeName!=``; the API cannot select a set
  of node names, so pods of other nodes are filtered out here), one work queue keyed by pod. A pending pod
  becomes Running (`running_status`): ``podIP`` from the node's ``spec.podCIDR`` once the IPAM controller
  gave it one (else from a fake per-node /24 in 100.64.0.0/10), hostIP, startTime, ready and started
  containers with ``simulated://`` IDs, the five pod conditions True. A pod being deleted is removed with
  ``gracePeriodSeconds=0`` after ``termination_delay``, as a kubelet does once its containers are gone.
  The annotation ``kubelite.io/simulate-exit-code: "N"`` makes the containers exit with N after
  ``kubelite.io/simulate-run-seconds`` (default 0): with restartPolicy Never, or OnFailure and N = 0, the
  pod ends Succeeded (N = 0) or Failed; otherwise the containers restart after the kubelet's
  CrashLoopBackOff delay (10 s doubling up to 300 s);
- **failures**: `fail(name)` (and ``config.failures``: node → seconds after start) turns a node into a dead
  kubelet: no more Lease renewals, status writes or pod handling, so the node lifecycle controller sees it
  go silent.

The decisions are pure functions of the objects and the time (`plan_pod`, `node_status_update`, the
builders); `NodeSimulator` only keeps the books (pod addresses, failed nodes) and does the I/O.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import heapq
import ipaddress
import logging
import random
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelite.api import meta
from kubelite.api.quantity import canonicalize
from kubelite.api.registry import by_resource
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import AlreadyExists, ApiException, Client, Conflict, NotFound, TransportError
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.kubelet.config import KUBELET_VERSION

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = by_resource("", "v1", "nodes")
PODS = by_resource("", "v1", "pods")
LEASES = by_resource("coordination.k8s.io", "v1", "leases")

NODE_LEASE_NAMESPACE = "kube-node-lease"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
INSTANCE_TYPE = "simulated"
RUNTIME_VERSION = "simulated://0.1"
EXIT_CODE_ANNOTATION = "kubelite.io/simulate-exit-code"
RUN_SECONDS_ANNOTATION = "kubelite.io/simulate-run-seconds"
KUBELET_PORT = 10250
# Fake addresses, never contacted: node InternalIPs, and per-node pod ranges until the IPAM gives real ones.
NODE_IP_NETWORK = ipaddress.IPv4Network("10.200.0.0/16")
FAKE_POD_NETWORK = ipaddress.IPv4Network("100.64.0.0/10")
# The kubelet's CrashLoopBackOff: 10 s, doubling, at most 5 minutes.
BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
# Conditions a healthy kubelet reports: (type, status, reason, message).
HEALTHY_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)
POD_CONDITION_ORDER = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Quantities are Kubernetes quantities (``"4"``, ``"16Gi"``)."""

    nodes: int
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    name_prefix: str = "sim-"
    arch: str = "amd64"
    # Node name -> seconds after the nodes are up when its kubelet dies.
    failures: Mapping[str, float] = field(default_factory=dict)
    lease_duration_seconds: int = 40
    lease_renew_interval: float = 10.0
    status_report_interval: float = 300.0
    termination_delay: float = 0.0
    create_concurrency: int = 64
    pod_workers: int = 16

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError("at least one node is needed")
        if self.nodes >= NODE_IP_NETWORK.num_addresses - 2:
            raise ValueError(f"at most {NODE_IP_NETWORK.num_addresses - 3} nodes can be simulated")
        for value in (self.cpu, self.memory, self.ephemeral_storage):
            canonicalize(value)  # ValueError with the quantity's own message
        if self.pods < 0:
            raise ValueError("pods must not be negative")
        unknown = sorted(set(self.failures) - set(self.node_names()))
        if unknown:
            raise ValueError(f"cannot fail {', '.join(unknown)}: not a simulated node "
                             f"({self.name_prefix}0 to {self.name_prefix}{self.nodes - 1})")
        if self.lease_renew_interval <= 0 or self.status_report_interval <= 0 or self.create_concurrency < 1:
            raise ValueError("intervals and concurrency must be positive")

    def node_names(self) -> list[str]:
        return [f"{self.name_prefix}{i}" for i in range(self.nodes)]


# --- nodes and leases (pure) ------------------------------------------------------------------------

def node_ip(index: int) -> str:
    """The fake InternalIP of node ``index`` (10.200.0.1, 10.200.0.2, ...)."""
    return str(NODE_IP_NETWORK.network_address + index + 1)


def fake_pod_cidr(index: int) -> str:
    """The /24 pod range node ``index`` uses until its ``spec.podCIDR`` is set."""
    return str(ipaddress.IPv4Network((int(FAKE_POD_NETWORK.network_address) + (index << 8), 24)))


def healthy_conditions(previous: Sequence[Obj], *, now: str) -> list[Obj]:
    """The conditions a healthy kubelet posts, heartbeat ``now``; a transition time moves only with the
    status."""
    by_type = {c.get("type"): c for c in previous if isinstance(c, dict)}
    out = []
    for ctype, status, reason, message in HEALTHY_CONDITIONS:
        old = by_type.get(ctype)
        since = old.get("lastTransitionTime") if old is not None and old.get("status") == status else None
        out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": since or now})
    return out


def build_node(config: SimulationConfig, index: int, *, now: str) -> Obj:
    name = f"{config.name_prefix}{index}"
    capacity = {"cpu": canonicalize(config.cpu), "memory": canonicalize(config.memory),
                "pods": str(config.pods), "ephemeral-storage": canonicalize(config.ephemeral_storage)}
    digest = hashlib.sha256(name.encode()).hexdigest()
    machine_id = digest[:32]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": config.arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": config.arch,
            INSTANCE_TYPE_LABEL: INSTANCE_TYPE}},
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": healthy_conditions([], now=now),
            "addresses": [{"type": "InternalIP", "address": node_ip(index)}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
            "nodeInfo": {
                "machineID": machine_id, "systemUUID": f"{machine_id[:8]}-{machine_id[8:12]}-{machine_id[12:16]}-"
                                                      f"{machine_id[16:20]}-{machine_id[20:32]}",
                "bootID": digest[32:64], "kernelVersion": "simulated", "osImage": "simulated",
                "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": config.arch,
            },
            "images": [],
        },
    }


def node_status_update(node: Obj, *, now: datetime, report_interval: float) -> Obj | None:
    """The status to post: healthy conditions with a fresh heartbeat when someone else changed them or the
    last heartbeat is ``report_interval`` old; None when nothing needs posting."""
    status = node.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    by_type = {c.get("type"): c for c in conditions}
    healthy = all((by_type.get(t) or {}).get("status") == s for t, s, _, _ in HEALTHY_CONDITIONS)
    heartbeat = _parse_time((by_type.get("Ready") or {}).get("lastHeartbeatTime"))
    if healthy and heartbeat is not None and (now - heartbeat).total_seconds() < report_interval:
        return None
    out = copy.deepcopy(status)
    kept = [c for c in conditions if c.get("type") not in {t for t, _, _, _ in HEALTHY_CONDITIONS}]
    out["conditions"] = healthy_conditions(conditions, now=meta.format_rfc3339(now)) + kept
    return out


def build_lease(node: Obj, *, now: str, duration_seconds: int) -> Obj:
    """The node's Lease in kube-node-lease, owned by the Node (so it goes with it), held by the node."""
    name = meta.name(node)
    return {"apiVersion": LEASES.api_version, "kind": LEASES.kind,
            "metadata": {"name": name, "namespace": NODE_LEASE_NAMESPACE,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                              "uid": meta.uid(node)}]},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration_seconds, "renewTime": now}}


def micro_now(now: datetime) -> str:
    """`metav1.MicroTime`, as Leases carry it."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def renewal_offsets(count: int, interval: float) -> list[float]:
    """When, within the first interval, each of ``count`` nodes renews: spread evenly."""
    return [interval * i / count for i in range(count)]


# --- pod addresses ----------------------------------------------------------------------------------

class PodAddresses:
    """Pod IPs per node: host addresses of the node's pod range from the third on (the first is the
    network, the second the bridge's gateway, as the host-local IPAM plugin leaves them)."""

    def __init__(self) -> None:
        self._by_key: dict[str, tuple[str, str]] = {}  # pod key -> (node, ip)
        self._used: dict[str, set[str]] = {}  # node -> ips

    def get(self, key: str) -> str | None:
        found = self._by_key.get(key)
        return found[1] if found else None

    def claim(self, key: str, node: str, ip: str) -> None:
        """Record an address a pod already has (seen in its status)."""
        self.release(key)
        self._by_key[key] = (node, ip)
        self._used.setdefault(node, set()).add(ip)

    def assign(self, key: str, node: str, cidr: str) -> str:
        """The pod's address, assigning the next free one of ``cidr``; ValueError when the range is full."""
        known = self._by_key.get(key)
        if known is not None and known[0] == node:
            return known[1]
        used = self._used.setdefault(node, set())
        network = ipaddress.ip_network(cidr, strict=False)
        for offset in range(2, network.num_addresses - 1):
            ip = str(network.network_address + offset)
            if ip not in used:
                self.claim(key, node, ip)
                return ip
        raise ValueError(f"node {node}: no free pod address left in {cidr}")

    def release(self, key: str) -> None:
        found = self._by_key.pop(key, None)
        if found is not None:
            self._used.get(found[0], set()).discard(found[1])


# --- pods (pure) ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PodStep:
    """What the simulated kubelet does about a pod now: write ``status`` (if any), and look again after
    ``requeue_after`` seconds (if set)."""

    status: Obj | None = None
    requeue_after: float | None = None


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return meta.parse_rfc3339(str(value))
    except ValueError:
        return None


def _spec(pod: Obj) -> Obj:
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def _status(pod: Obj) -> Obj:
    status = pod.get("status")
    return status if isinstance(status, dict) else {}


def is_terminal(pod: Obj) -> bool:
    return _status(pod).get("phase") in ("Succeeded", "Failed")


def needs_start(pod: Obj) -> bool:
    """Not started yet: no container statuses, and not finished."""
    return not is_terminal(pod) and not _status(pod).get("containerStatuses")


def exit_code_of(pod: Obj) -> int | None:
    """The exit code the pod's annotation asks for; None without (or with a malformed) annotation."""
    raw = meta.annotations(pod).get(EXIT_CODE_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def run_seconds_of(pod: Obj) -> float:
    raw = meta.annotations(pod).get(RUN_SECONDS_ANNOTATION)
    try:
        return max(float(raw), 0.0) if raw is not None else 0.0
    except ValueError:
        return 0.0


def backoff_seconds(restarts: int) -> float:
    """CrashLoopBackOff before restart number ``restarts`` (1-based)."""
    return min(BACKOFF_INITIAL_SECONDS * 2.0 ** max(restarts - 1, 0), BACKOFF_MAX_SECONDS)


def container_id(pod: Obj, container: str, restarts: int = 0) -> str:
    digest = hashlib.sha256(f"{meta.uid(pod)}/{container}/{restarts}".encode()).hexdigest()
    return f"simulated://{digest}"


def image_id(image: str) -> str:
    """A digest reference for ``image``, as the kubelet reports the image it ran (fake, deterministic)."""
    repository = image.split("@", 1)[0]
    slash, colon = repository.rfind("/"), repository.rfind(":")
    if colon > slash:
        repository = repository[:colon]
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def _conditions(pod: Obj, wanted: Mapping[str, tuple[str, str | None]], now: str) -> list[Obj]:
    """The pod's conditions with ``wanted`` (type -> (status, reason)) set in the kubelet's order; a
    transition time moves only with the status; other conditions are kept after them."""
    old = {c.get("type"): c for c in _status(pod).get("conditions") or [] if isinstance(c, dict)}
    out = []
    for ctype in POD_CONDITION_ORDER:
        if ctype not in wanted:
            if ctype in old:
                out.append(old[ctype])
            continue
        status, reason = wanted[ctype]
        prev = old.get(ctype)
        since = prev.get("lastTransitionTime") if prev is not None and prev.get("status") == status else None
        cond: Obj = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": since or now}
        if reason:
            cond["reason"] = reason
        out.append(cond)
    out.extend(c for t, c in old.items() if t not in POD_CONDITION_ORDER)
    return out


def _container_names(pod: Obj, key: str = "containers") -> list[Obj]:
    return [c for c in _spec(pod).get(key) or [] if isinstance(c, dict)]


def _base_status(pod: Obj, container: Obj, restarts: int) -> Obj:
    image = str(container.get("image") or "")
    return {"name": container.get("name"), "image": image, "imageID": image_id(image),
            "containerID": container_id(pod, str(container.get("name")), restarts), "restartCount": restarts}


def running_status(pod: Obj, *, host_ip: str, pod_ip: str, now: str, restarts: int = 0,
                   last_state: Obj | None = None) -> Obj:
    """The status of a pod whose containers all run and are ready."""
    status = copy.deepcopy(_status(pod))
    status.update(phase="Running", hostIP=host_ip, hostIPs=[{"ip": host_ip}], podIP=pod_ip,
                  podIPs=[{"ip": pod_ip}], startTime=status.get("startTime") or now)
    status["conditions"] = _conditions(pod, {t: ("True", None) for t in POD_CONDITION_ORDER}, now)
    status["containerStatuses"] = [
        {**_base_status(pod, c, restarts), "state": {"running": {"startedAt": now}},
         "lastState": copy.deepcopy(last_state or {}), "ready": True, "started": True}
        for c in _container_names(pod)]
    inits = _container_names(pod, "initContainers")
    if inits:
        status["initContainerStatuses"] = [
            {**_base_status(pod, c, 0), "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now,
                "containerID": container_id(pod, str(c.get("name")))}},
             "lastState": {}, "ready": True, "started": False}
            for c in inits]
    return status


def _terminated(pod: Obj, container: Obj, exit_code: int, started_at: str, now: str, restarts: int) -> Obj:
    return {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                           "startedAt": started_at, "finishedAt": now,
                           "containerID": container_id(pod, str(container.get("name")), restarts)}}


def exited_status(pod: Obj, *, exit_code: int, now: str, restart: bool) -> Obj:
    """The containers exited with ``exit_code``: the pod ends (Succeeded/Failed), or, when they will
    restart, waits in CrashLoopBackOff with the exit as ``lastState``."""
    status = copy.deepcopy(_status(pod))
    old = {cs.get("name"): cs for cs in status.get("containerStatuses") or [] if isinstance(cs, dict)}
    statuses = []
    for c in _container_names(pod):
        prev = old.get(c.get("name")) or {}
        restarts = int(prev.get("restartCount") or 0)
        started_at = str(((prev.get("state") or {}).get("running") or {}).get("startedAt") or now)
        exit_state = _terminated(pod, c, exit_code, started_at, now, restarts)
        if restart:
            message = (f"back-off {int(backoff_seconds(restarts + 1))}s restarting failed container={c.get('name')} "
                       f"pod={meta.name(pod)}_{meta.namespace(pod)}({meta.uid(pod)})")
            statuses.append({**_base_status(pod, c, restarts + 1), "ready": False, "started": False,
                             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": message}},
                             "lastState": exit_state})
        else:
            statuses.append({**_base_status(pod, c, restarts), "ready": False, "started": False,
                             "state": exit_state, "lastState": prev.get("lastState") or {}})
    status["containerStatuses"] = statuses
    if restart:
        reason = "ContainersNotReady"
        status["phase"] = "Running"
    else:
        reason = "PodCompleted"
        status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
    wanted = {"Ready": ("False", reason), "ContainersReady": ("False", reason)}
    status["conditions"] = _conditions(pod, wanted, now)
    return status


def plan_pod(pod: Obj, *, now: datetime, host_ip: str, pod_ip: str | None) -> PodStep:
    """The simulated kubelet's next move for a pod bound to a live node (not being deleted). ``pod_ip`` is
    the address to give a pod that `needs_start`."""
    if is_terminal(pod):
        return PodStep()
    now_text = meta.format_rfc3339(now)
    exit_code = exit_code_of(pod)
    run_for = run_seconds_of(pod)
    if needs_start(pod):
        if pod_ip is None:
            raise ValueError("a pod that starts needs an address")
        return PodStep(running_status(pod, host_ip=host_ip, pod_ip=pod_ip, now=now_text),
                       None if exit_code is None else run_for)
    if exit_code is None:
        return PodStep()
    first = next(iter(_status(pod).get("containerStatuses") or []), None) or {}
    state = first.get("state") or {}
    restarts = int(first.get("restartCount") or 0)
    policy = _spec(pod).get("restartPolicy") or "Always"
    if "running" in state:
        started = _parse_time(state["running"].get("startedAt")) or now
        left = (started + timedelta(seconds=run_for) - now).total_seconds()
        if left > 0:
            return PodStep(requeue_after=left)
        restart = policy == "Always" or (policy == "OnFailure" and exit_code != 0)
        status = exited_status(pod, exit_code=exit_code, now=now_text, restart=restart)
        return PodStep(status, backoff_seconds(restarts + 1) if restart else None)
    if "waiting" in state:
        finished = _parse_time(((first.get("lastState") or {}).get("terminated") or {}).get("finishedAt")) or now
        left = (finished + timedelta(seconds=backoff_seconds(restarts)) - now).total_seconds()
        if left > 0:
            return PodStep(requeue_after=left)
        ip = str(_status(pod).get("podIP") or pod_ip or "")
        return PodStep(running_status(pod, host_ip=host_ip, pod_ip=ip, now=now_text, restarts=restarts,
                                      last_state=first.get("lastState")), run_for)
    return PodStep()


def host_network(pod: Obj) -> bool:
    return bool(_spec(pod).get("hostNetwork"))


# --- the simulator (I/O) ----------------------------------------------------------------------------

class NodeSimulator:
    """Runs the simulated nodes of ``config`` against ``client``; see the module docstring.

    ``await run(stop)`` returns once ``stop`` is set (the nodes stay, unless ``cleanup``); ``ready`` is set
    once every node is registered and the simulator follows its pods.
    """

    def __init__(self, client: Client, config: SimulationConfig, *, cleanup: bool = False) -> None:
        self.client = client
        self.config = config
        self.cleanup = cleanup
        self.names = config.node_names()
        self.index = {name: i for i, name in enumerate(self.names)}
        self.ready = asyncio.Event()
        self.failed: set[str] = set()
        self.pod_queue: RateLimitingQueue[str] = RateLimitingQueue("simulated-pods")
        self.node_queue: RateLimitingQueue[str] = RateLimitingQueue("simulated-nodes")
        self._addresses = PodAddresses()
        self._leases: dict[str, Obj] = {}  # as last written: the resourceVersion guards the next renewal
        self._renew_failures = 0
        self._renew_error = ""
        self._deleting_since: dict[str, float] = {}
        # Key -> resourceVersion a write was decided from: until the cache moves past it, it is stale.
        self._stale: dict[str, str] = {}
        self._nodes: SharedInformer | None = None
        self._pods: SharedInformer | None = None

    def fail(self, name: str) -> None:
        """Kill the kubelet of node ``name``: it stops renewing, posting status and handling pods."""
        if name not in self.index:
            raise ValueError(f"{name} is not a simulated node")
        if name not in self.failed:
            log.warning("simulate: node %s stops (its kubelet is dead from now on)", name)
            self.failed.add(name)

    async def run(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        if not await self._register_unless(stop):
            if self.cleanup:
                await self._delete_nodes()
            return
        log.info("simulate: %d nodes registered in %.1fs", len(self.names), time.monotonic() - started)
        factory = InformerFactory(self.client)
        self._nodes = factory.informer(NODES, label_selector=f"{INSTANCE_TYPE_LABEL}={INSTANCE_TYPE}")
        self._nodes.add_handler(on_add=self._node_changed, on_update=lambda _old, new: self._node_changed(new))
        self._pods = factory.informer(PODS, field_selector="spec.nodeName!=")
        self._pods.add_handler(on_add=self._pod_changed, on_update=lambda _old, new: self._pod_changed(new),
                               on_delete=self._pod_deleted)
        try:
            async with factory, asyncio.TaskGroup() as tg:
                await factory.wait_for_cache_sync()
                self._claim_addresses()
                tg.create_task(self._renew_leases(), name="simulate-leases")
                tg.create_task(run_workers(self.node_queue, self.reconcile_node, 4), name="simulate-nodes")
                tg.create_task(run_workers(self.pod_queue, self.reconcile_pod, self.config.pod_workers),
                               name="simulate-pods")
                for name, after in self.config.failures.items():
                    tg.create_task(self._fail_after(name, after), name=f"simulate-fail-{name}")
                self.ready.set()
                await stop.wait()
                self.pod_queue.shutdown()
                self.node_queue.shutdown()
                raise _Stopped
        except* _Stopped:
            pass
        finally:
            self.pod_queue.shutdown()
            self.node_queue.shutdown()
        if self.cleanup:
            await self._delete_nodes()

    # --- registration ------------------------------------------------------------------------------

    async def _register_unless(self, stop: asyncio.Event) -> bool:
        """Register every node; False when ``stop`` came first (thousands of nodes take a while)."""
        registering = asyncio.create_task(self._register(), name="simulate-register")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({registering, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not registering.done():
                registering.cancel()
            await asyncio.wait({registering, stopping})
        if registering.cancelled():
            return False
        registering.result()  # a refused registration ends the simulation here
        return True

    async def _register(self) -> None:
        limit = asyncio.Semaphore(self.config.create_concurrency)

        async def one(index: int) -> None:
            async with limit:
                node = await self._create_node(index)
                await self._create_lease(node)

        async with asyncio.TaskGroup() as tg:
            for i in range(len(self.names)):
                tg.create_task(one(i))

    async def _create_node(self, index: int) -> Obj:
        body = build_node(self.config, index, now=meta.now_rfc3339())
        try:
            return await self.client.create(NODES, body)
        except AlreadyExists:
            # Left by an earlier run: adopt it (its status is brought up to date by the node worker).
            return await self.client.get(NODES, meta.name(body))

    async def _create_lease(self, node: Obj) -> None:
        name = meta.name(node)
        body = build_lease(node, now=micro_now(datetime.now(UTC)),
                           duration_seconds=self.config.lease_duration_seconds)
        try:
            self._leases[name] = await self.client.create(LEASES, body)
        except AlreadyExists:
            current = await self.client.get(LEASES, name, NODE_LEASE_NAMESPACE)
            current["metadata"]["ownerReferences"] = body["metadata"]["ownerReferences"]
            current["spec"] = body["spec"]
            self._leases[name] = await self.client.update(LEASES, current)

    async def _delete_nodes(self) -> None:
        limit = asyncio.Semaphore(self.config.create_concurrency)

        async def one(name: str) -> None:
            async with limit:
                for kind, namespace in ((LEASES, NODE_LEASE_NAMESPACE), (NODES, None)):
                    with suppress(NotFound):
                        await self.client.delete(kind, name, namespace)

        await asyncio.gather(*(one(n) for n in self.names))
        log.info("simulate: %d nodes deleted", len(self.names))

    # --- leases ------------------------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        """One scheduler for every node's renewals, spread evenly over the interval."""
        interval = self.config.lease_renew_interval
        start = time.monotonic()
        due = [(start + offset, name) for offset, name in
               zip(renewal_offsets(len(self.names), interval), self.names, strict=True)]
        heapq.heapify(due)
        report_at = start + interval
        limit = asyncio.Semaphore(self.config.create_concurrency)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                now = time.monotonic()
                while due and due[0][0] <= now:
                    at, name = heapq.heappop(due)
                    heapq.heappush(due, (at + interval, name))
                    if name in self.failed:
                        continue
                    task = asyncio.create_task(self._renew(name, limit))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if now >= report_at:
                    report_at = now + interval
                    if self._renew_failures:
                        log.warning("simulate: %d lease renewals failed in the last %.0fs (last: %s)",
                                    self._renew_failures, interval, self._renew_error)
                        self._renew_failures = 0
                await asyncio.sleep(max(due[0][0] - time.monotonic(), 0.0))
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running)

    async def _renew(self, name: str, limit: asyncio.Semaphore) -> None:
        async with limit:
            lease = copy.deepcopy(self._leases[name])
            lease["spec"]["renewTime"] = micro_now(datetime.now(UTC))
            try:
                try:
                    self._leases[name] = await self.client.update(LEASES, lease)
                except Conflict:
                    current = await self.client.get(LEASES, name, NODE_LEASE_NAMESPACE)
                    current["spec"].update(holderIdentity=name, renewTime=lease["spec"]["renewTime"],
                                           leaseDurationSeconds=self.config.lease_duration_seconds)
                    self._leases[name] = await self.client.update(LEASES, current)
                except NotFound:
                    node = await self.client.get(NODES, name)
                    await self._create_lease(node)
            except (ApiException, TransportError) as e:
                # Thousands of nodes fail together when the server is away: counted, reported once per round.
                self._renew_failures += 1
                self._renew_error = f"{name}: {e}"

    async def _fail_after(self, name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.fail(name)

    # --- node status -------------------------------------------------------------------------------

    def _node_changed(self, node: Obj) -> None:
        if meta.name(node) in self.index:
            self.node_queue.add(meta.name(node))

    async def reconcile_node(self, name: str) -> float | None:
        node = self._informers()[0].get(name)
        if node is None or name in self.failed or self._is_stale(name, node):
            return None
        interval = self.config.status_report_interval
        status = node_status_update(node, now=datetime.now(UTC), report_interval=interval)
        if status is not None:
            try:
                await self.client.update_status(NODES, {**node, "status": status})
            except NotFound:
                return None
            self._stale[name] = meta.resource_version(node)
        # Spread the next reports so that thousands of nodes do not post all at once.
        return interval * random.uniform(0.9, 1.0)

    # --- pods --------------------------------------------------------------------------------------

    def _informers(self) -> tuple[SharedInformer, SharedInformer]:
        if self._nodes is None or self._pods is None:
            raise RuntimeError("the simulator is not running")
        return self._nodes, self._pods

    def _pod_changed(self, pod: Obj) -> None:
        if _spec(pod).get("nodeName") in self.index:
            self.pod_queue.add(meta.key(pod))

    def _pod_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        pod = object_of(gone)
        if _spec(pod).get("nodeName") in self.index:
            self.pod_queue.add(meta.key(pod))

    def _claim_addresses(self) -> None:
        """Addresses our live pods already have stay theirs (a restarted simulator hands out no duplicate)."""
        for pod in self._informers()[1].list():
            node, ip = _spec(pod).get("nodeName"), _status(pod).get("podIP")
            if node in self.index and ip and not host_network(pod) and not is_terminal(pod):
                self._addresses.claim(meta.key(pod), str(node), str(ip))

    def _is_stale(self, key: str, obj: Obj) -> bool:
        """The cache still shows the state a write of ours was decided from; its update will come."""
        if self._stale.get(key) == meta.resource_version(obj):
            return True
        self._stale.pop(key, None)
        return False

    async def reconcile_pod(self, key: str) -> float | None:
        nodes, pods = self._informers()
        pod = pods.get(key)
        if pod is None:
            self._addresses.release(key)
            self._deleting_since.pop(key, None)
            self._stale.pop(key, None)
            return None
        node_name = str(_spec(pod).get("nodeName") or "")
        if node_name not in self.index or node_name in self.failed or self._is_stale(key, pod):
            return None
        if meta.is_being_deleted(pod):
            return await self._finish_deletion(key, pod)
        node = nodes.get(node_name)
        host_ip = node_ip(self.index[node_name])
        pod_ip = None
        if needs_start(pod):
            pod_ip = host_ip if host_network(pod) else self._address(key, node_name, node)
        step = plan_pod(pod, now=datetime.now(UTC), host_ip=host_ip, pod_ip=pod_ip)
        if step.status is not None:
            try:
                await self.client.update_status(PODS, {**pod, "status": step.status})
            except NotFound:
                return None
            self._stale[key] = meta.resource_version(pod)
            if is_terminal({"status": step.status}):
                self._addresses.release(key)
        return step.requeue_after

    def _address(self, key: str, node_name: str, node: Obj | None) -> str:
        cidr = str(((node or {}).get("spec") or {}).get("podCIDR") or "") or fake_pod_cidr(self.index[node_name])
        return self._addresses.assign(key, node_name, cidr)

    async def _finish_deletion(self, key: str, pod: Obj) -> float | None:
        """The containers are "stopped": after the termination delay, remove the pod for good."""
        since = self._deleting_since.setdefault(key, time.monotonic())
        left = self.config.termination_delay - (time.monotonic() - since)
        if left > 0:
            return left
        namespace, name = meta.split_key(key)
        try:
            await self.client.delete(PODS, name, namespace, grace_period_seconds=0,
                                     preconditions={"uid": meta.uid(pod)})
        except NotFound:
            pass
        self._addresses.release(key)
        self._stale[key] = meta.resource_version(pod)
        return None


class _Stopped(Exception):
    """Ends the simulator's task group when ``stop`` is set."""


async def simulate(client: Client, config: SimulationConfig, stop: asyncio.Event, *, cleanup: bool = False) -> None:
    """Run ``config``'s simulated nodes until ``stop`` is set."""
    await NodeSimulator(client, config, cleanup=cleanup).run(stop)
