"""The kubelet's Node: registration, status, heartbeats (the Lease) and the pod CIDR.

Registration creates the Node (or, when it exists — a restarted kubelet —, brings its labels up to date):
labels ``kubernetes.io/hostname``, ``kubernetes.io/os``, ``kubernetes.io/arch`` (and their ``beta.`` twins) plus
the configured ones, and the configured taints.

Status (`node_status`, pure given the `Machine` facts), posted through ``nodes/status`` every
``node_status_update_period`` when it changed, and at least every ``node_status_report_period`` otherwise:
- ``capacity``: cpu (usable cores), memory (MemTotal), pods (``max_pods``), ephemeral-storage (the size of the
  filesystem holding the node's data directory), hugepages; ``allocatable``: the same minus the hard
  eviction thresholds (memory.available 100Mi, nodefs.available 10%);
- conditions MemoryPressure, DiskPressure, PIDPressure and Ready with Kubernetes' reasons and messages; a
  condition keeps ``lastTransitionTime`` while unchanged, ``lastHeartbeatTime`` is the last post. Ready is
  False while the runtime does not answer, or while the node waits for its ``spec.podCIDR``;
- ``addresses`` (InternalIP, Hostname), ``daemonEndpoints``, ``nodeInfo`` (machine and boot ids, kernel, OS
  image from /etc/os-release, ``containerRuntimeVersion`` = ``<runtime name>://<version>`` so that a node
  running the ``process`` runtime says so, kubelet version, architecture, OS), and the node's images.
Condition changes are recorded as events (``NodeHasSufficientMemory``, ``NodeReady``, ...).

The Lease ``kube-node-lease/<node>`` is renewed every quarter of its 40 s duration, as Kubernetes' node
lease controller does: the first renewal gets or creates it (owned by the Node), later ones update the copy
last written, and a conflict re-reads it.

The pod CIDR comes from the node IPAM controller through ``spec.podCIDR``; `attach` follows the Node and
calls ``on_pod_cidr`` when the node gets one (or another one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelite.api import meta
from kubelite.api.quantity import canonicalize
from kubelite.api.registry import by_resource
from kubelite.client.events import EventRecorder
from kubelite.client.informer import SharedInformer
from kubelite.client.rest import ApiException, Client, TransportError, is_already_exists, is_conflict, is_not_found
from kubelite.kubelet.config import KUBELET_VERSION, KubeletConfig
from kubelite.kubelet.runtime_client import RuntimeClient, RuntimeServiceError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = by_resource("", "v1", "nodes")
LEASES = by_resource("coordination.k8s.io", "v1", "leases")
LEASE_NAMESPACE = "kube-node-lease"
MAX_IMAGES = 50
LEASE_JITTER = 0.04
_GOARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def goarch() -> str:
    machine = platform.machine().lower()
    return _GOARCH.get(machine, machine)


# --- machine facts ---------------------------------------------------------------------------------

def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes (the file says kB, meaning KiB)."""
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[name.strip()] = int(fields[0]) * (1024 if len(fields) > 1 and fields[1] == "kB" else 1)
    return out


def parse_os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return default


def detect_node_ip() -> str:
    """The address this host would use to reach the outside; no packet is sent (a UDP socket only picks a
    route). 127.0.0.1 on a host without a default route."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: routed like any outside address, never answered
        return str(s.getsockname()[0])
    return "127.0.0.1"


@dataclass(frozen=True)
class Machine:
    """What the node is made of; `Machine.read` takes it from the running host."""

    cpus: int
    memory_total: int
    memory_available: int
    fs_total: int
    fs_available: int
    pid_max: int = 4_194_304
    pids_used: int = 0
    machine_id: str = ""
    system_uuid: str = ""
    boot_id: str = ""
    kernel_version: str = ""
    os_image: str = ""

    @classmethod
    def read(cls, data_dir: Path) -> Machine:
        meminfo = parse_meminfo(_read("/proc/meminfo"))
        target = data_dir
        while not target.exists() and target != target.parent:
            target = target.parent
        vfs = os.statvfs(target)
        os_release = parse_os_release(_read("/etc/os-release") or _read("/usr/lib/os-release"))
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:
            cpus = os.cpu_count() or 1
        pid_max = int(_read("/proc/sys/kernel/pid_max", "4194304").strip() or 4194304)
        try:
            pids_used = sum(1 for entry in os.scandir("/proc") if entry.name.isdigit())
        except OSError:
            pids_used = 0
        return cls(
            cpus=cpus,
            memory_total=meminfo.get("MemTotal", 0),
            memory_available=meminfo.get("MemAvailable", meminfo.get("MemFree", 0)),
            fs_total=vfs.f_blocks * vfs.f_frsize,
            fs_available=vfs.f_bavail * vfs.f_frsize,
            pid_max=pid_max,
            pids_used=pids_used,
            machine_id=_read("/etc/machine-id").strip(),
            system_uuid=_read("/sys/class/dmi/id/product_uuid").strip(),
            boot_id=_read("/proc/sys/kernel/random/boot_id").strip(),
            kernel_version=platform.release(),
            os_image=os_release.get("PRETTY_NAME", "Linux"),
        )


# --- the Node object (pure) ------------------------------------------------------------------------

def node_labels(config: KubeletConfig) -> dict[str, str]:
    arch = goarch()
    return {
        "kubernetes.io/hostname": config.node_name.lower(),
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
        **config.node_labels,
    }


def new_node(config: KubeletConfig) -> Obj:
    node: Obj = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": config.node_name, "labels": node_labels(config),
                     "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": {},
    }
    if config.register_with_taints:
        node["spec"]["taints"] = [dict(t) for t in config.register_with_taints]
    return node


def capacity(config: KubeletConfig, machine: Machine) -> dict[str, str]:
    """Quantities in their canonical form, as the API server stores them."""
    return {
        "cpu": str(machine.cpus),
        "memory": canonicalize(f"{machine.memory_total // 1024}Ki"),
        "pods": str(config.max_pods),
        "ephemeral-storage": canonicalize(f"{machine.fs_total // 1024}Ki"),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }


def allocatable(config: KubeletConfig, machine: Machine) -> dict[str, str]:
    memory = max(machine.memory_total - config.eviction_memory_available, 0)
    storage = int(machine.fs_total * (1 - config.eviction_nodefs_available_percent / 100))
    return {**capacity(config, machine), "memory": canonicalize(f"{memory // 1024}Ki"),
            "ephemeral-storage": canonicalize(storage)}


@dataclass(frozen=True)
class Health:
    """What the Ready condition depends on."""

    runtime_error: str = ""
    network_ready: bool = True


_CONDITIONS = (
    ("MemoryPressure", "KubeletHasInsufficientMemory", "kubelet has insufficient memory available",
     "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasDiskPressure", "kubelet has disk pressure",
     "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasInsufficientPID", "kubelet has insufficient PID available",
     "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def conditions(config: KubeletConfig, machine: Machine, health: Health) -> list[Obj]:
    """The node's conditions without times (see `with_times`)."""
    disk_free = 100.0 * machine.fs_available / machine.fs_total if machine.fs_total else 100.0
    pid_free = 100.0 * (machine.pid_max - machine.pids_used) / machine.pid_max if machine.pid_max else 100.0
    pressure = {
        "MemoryPressure": machine.memory_available < config.eviction_memory_available,
        "DiskPressure": disk_free < config.eviction_nodefs_available_percent,
        "PIDPressure": pid_free < config.eviction_pid_available_percent,
    }
    out = []
    for kind, bad_reason, bad_message, good_reason, good_message in _CONDITIONS:
        bad = pressure[kind]
        out.append({"type": kind, "status": "True" if bad else "False",
                    "reason": bad_reason if bad else good_reason, "message": bad_message if bad else good_message})
    problems = []
    if health.runtime_error:
        problems.append(f"container runtime is down: {health.runtime_error}")
    if not health.network_ready:
        problems.append("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                        "message:the node has no spec.podCIDR yet")
    if problems:
        out.append({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": ", ".join(problems)})
    else:
        out.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status"})
    return out


def with_times(new: list[Obj], old: list[Obj], now: str) -> list[Obj]:
    before = {c.get("type"): c for c in old}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"] and prev.get("lastTransitionTime")
        out.append({**cond, "lastHeartbeatTime": now,
                    "lastTransitionTime": prev["lastTransitionTime"] if same and prev else now})
    return out


def node_status(config: KubeletConfig, machine: Machine, *, health: Health, host_ip: str, runtime_name: str,
                runtime_version: str, images: list[Obj], old_conditions: list[Obj], now: str) -> Obj:
    return {
        "capacity": capacity(config, machine),
        "allocatable": allocatable(config, machine),
        "conditions": with_times(conditions(config, machine, health), old_conditions, now),
        "addresses": [{"type": "InternalIP", "address": host_ip}, {"type": "Hostname", "address": config.hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": machine.machine_id, "systemUUID": machine.system_uuid, "bootID": machine.boot_id,
            "kernelVersion": machine.kernel_version, "osImage": machine.os_image,
            "containerRuntimeVersion": f"{runtime_name}://{runtime_version}" if runtime_name else "",
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": goarch(),
        },
        "images": images,
    }


def _without_heartbeats(status: Obj) -> Obj:
    conds = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in status.get("conditions") or []]
    return {**status, "conditions": conds}


def new_lease(node_name: str, node_uid: str, duration: int, now: str) -> Obj:
    lease: Obj = {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node_name, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration, "renewTime": now},
    }
    if node_uid:
        lease["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name,
                                                 "uid": node_uid}]
    return lease


# --- the agent -------------------------------------------------------------------------------------

@dataclass
class _Runtime:
    name: str = ""
    version: str = ""
    error: str = ""


class NodeAgent:
    """Registers and maintains the Node; also answers the pod workers' questions about it (`NodeView`)."""

    def __init__(self, client: Client, config: KubeletConfig, runtime: RuntimeClient, recorder: EventRecorder, *,
                 on_pod_cidr: Callable[[str], None] = lambda cidr: None,
                 machine: Callable[[], Machine] | None = None) -> None:
        self.client = client
        self.config = config
        self.runtime = runtime
        self.recorder = recorder
        self._on_pod_cidr = on_pod_cidr
        self._read_machine = machine or (lambda: Machine.read(config.paths.root))
        self._machine = self._read_machine()
        self._host_ip = config.node_ip or detect_node_ip()
        self._node: Obj = {}
        self._pod_cidr = ""
        self._posted_at = 0.0
        self._lease: Obj | None = None
        self._runtime = _Runtime()
        self._dirty = asyncio.Event()
        self.registered = asyncio.Event()

    # --- NodeView ----------------------------------------------------------------------------------

    def host_ips(self) -> list[str]:
        return [self._host_ip]

    def network_ready(self) -> bool:
        return bool(self._pod_cidr) or not self.config.wait_for_pod_cidr

    def allocatable(self) -> dict[str, str]:
        return allocatable(self.config, self._machine)

    def memory_capacity(self) -> int:
        return self._machine.memory_total

    @property
    def pod_cidr(self) -> str:
        return self._pod_cidr

    @property
    def node(self) -> Obj:
        return self._node

    # --- registration ------------------------------------------------------------------------------

    async def register(self) -> Obj:
        """Create the Node, or update the labels of the one that exists; retried until it works."""
        delay = 0.1
        while True:
            try:
                self._node = await self._register_once()
                self._learn_pod_cidr(self._node)
                self.registered.set()
                return self._node
            except (ApiException, TransportError) as e:
                log.warning("registering node %s failed (retrying in %.1fs): %s", self.config.node_name, delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def _register_once(self) -> Obj:
        await self._refresh_runtime()
        node = new_node(self.config)
        node["status"] = await self._status([])
        try:
            created = await self.client.create(NODES, node)
            self.recorder.normal(self._ref(created), "Starting", "Starting kubelet.")
            self._record_transitions([], created.get("status", {}).get("conditions") or [], created)
            return created
        except ApiException as e:
            if not is_already_exists(e):
                raise
        existing = await self.client.get(NODES, self.config.node_name)
        self.recorder.normal(self._ref(existing), "Starting", "Starting kubelet.")
        labels = meta.labels(existing)
        wanted = {**labels, **node_labels(self.config)}
        if wanted != labels:
            existing["metadata"]["labels"] = wanted
            existing = await self.client.update(NODES, existing)
        return existing

    def _ref(self, node: Obj) -> Obj:
        """Kubernetes records node events against a reference whose uid is the node's name."""
        return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": self.config.node_name,
                                                                  "uid": self.config.node_name}}

    # --- pod CIDR ----------------------------------------------------------------------------------

    def attach(self, informer: SharedInformer) -> None:
        """Follow our own Node (an informer with ``metadata.name=<node>``) for its podCIDR."""
        informer.add_handler(on_add=self._learn_pod_cidr, on_update=lambda _old, new: self._learn_pod_cidr(new))

    def _learn_pod_cidr(self, node: Obj) -> None:
        if meta.name(node) != self.config.node_name:
            return
        self._node = node
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if cidr and cidr != self._pod_cidr:
            self._pod_cidr = cidr
            log.info("node %s has pod CIDR %s", self.config.node_name, cidr)
            self._dirty.set()
            self._on_pod_cidr(cidr)

    # --- status ------------------------------------------------------------------------------------

    async def _refresh_runtime(self) -> None:
        try:
            version = await self.runtime.version()
        except RuntimeServiceError as e:
            self._runtime.error = e.message
            return
        self._runtime = _Runtime(version.runtime_name, version.runtime_version)

    async def _images(self) -> list[Obj]:
        try:
            images = await self.runtime.list_images()
        except RuntimeServiceError:
            return list((self._node.get("status") or {}).get("images") or [])
        images.sort(key=lambda i: -int(i.size))
        return [{"names": [*i.repo_digests, *i.repo_tags] or [i.id], "sizeBytes": int(i.size)}
                for i in images[:MAX_IMAGES]]

    async def _status(self, old_conditions: list[Obj]) -> Obj:
        self._machine = await asyncio.to_thread(self._read_machine)
        health = Health(runtime_error=self._runtime.error, network_ready=self.network_ready())
        return node_status(self.config, self._machine, health=health, host_ip=self._host_ip,
                           runtime_name=self._runtime.name, runtime_version=self._runtime.version,
                           images=await self._images(), old_conditions=old_conditions, now=meta.now_rfc3339())

    async def update_status(self, *, force: bool = False) -> bool:
        """Post the node's status if it differs from what the Node says (someone else, such as the node
        lifecycle controller marking it Unknown, may have changed it), or ``force``, or the report period
        passed."""
        await self._refresh_runtime()
        current = self._node.get("status") or {}
        old = current.get("conditions") or []
        status = await self._status(old)
        due = time.monotonic() - self._posted_at >= self.config.node_status_report_period
        seen = {key: current.get(key) for key in status}
        if not force and not due and _without_heartbeats(status) == _without_heartbeats(seen):
            return False
        node = await self.client.patch(NODES, self.config.node_name, {"status": status}, "merge",
                                       subresource="status")
        self._record_transitions(old, status["conditions"], node)
        self._learn_pod_cidr(node)
        self._node = node
        self._posted_at = time.monotonic()
        return True

    def _record_transitions(self, old: list[Obj], new: list[Obj], node: Obj) -> None:
        before = {c.get("type"): c.get("status") for c in old}
        for cond in new:
            if before.get(cond.get("type")) == cond.get("status"):
                continue
            reason = {"KubeletReady": "NodeReady", "KubeletNotReady": "NodeNotReady"}.get(
                cond.get("reason", ""), "Node" + str(cond.get("reason", "")).removeprefix("Kubelet"))
            self.recorder.normal(self._ref(node), reason, f"Node {self.config.node_name} status is now: {reason}")

    async def run_status(self) -> None:
        while True:
            try:
                await self.update_status()
            except (ApiException, TransportError) as e:
                log.warning("updating the status of node %s failed: %s", self.config.node_name, e)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.node_status_update_period):
                    await self._dirty.wait()
            self._dirty.clear()

    # --- the lease ---------------------------------------------------------------------------------

    async def renew_lease(self) -> Obj:
        """One heartbeat (the nodelease controller's sync)."""
        now = meta.now_rfc3339_micro()
        if self._lease is not None:
            lease = {**self._lease, "spec": {**self._lease["spec"], "renewTime": now}}
            try:
                self._lease = await self.client.update(LEASES, lease, namespace=LEASE_NAMESPACE)
                return self._lease
            except ApiException as e:
                if not (is_conflict(e) or is_not_found(e)):
                    raise
                self._lease = None
        try:
            current = await self.client.get(LEASES, self.config.node_name, LEASE_NAMESPACE)
        except ApiException as e:
            if not is_not_found(e):
                raise
            lease = new_lease(self.config.node_name, meta.uid(self._node), self.config.lease_duration_seconds, now)
            self._lease = await self.client.create(LEASES, lease, namespace=LEASE_NAMESPACE)
            return self._lease
        spec = {**(current.get("spec") or {}), "holderIdentity": self.config.node_name,
                "leaseDurationSeconds": self.config.lease_duration_seconds, "renewTime": now}
        current = {**current, "spec": spec}
        if meta.uid(self._node) and not meta.owner_references(current):
            current["metadata"] = {**current["metadata"], "ownerReferences": new_lease(
                self.config.node_name, meta.uid(self._node), 0, now)["metadata"]["ownerReferences"]}
        self._lease = await self.client.update(LEASES, current, namespace=LEASE_NAMESPACE)
        return self._lease

    async def run_lease(self) -> None:
        interval = self.config.lease_renew_interval
        while True:
            try:
                await self.renew_lease()
            except (ApiException, TransportError) as e:
                log.warning("renewing the lease of node %s failed: %s", self.config.node_name, e)
            await asyncio.sleep(interval * (1 + random.uniform(0, LEASE_JITTER)))

