"""What a pod asks of a node and what a node offers, as kube-scheduler counts them (pure functions).

`pod_requests(pod)` follows k8s.io/component-helpers' ``PodRequests``: app containers add up; sidecars
(init containers with ``restartPolicy: Always``) run beside them and add up too; every other init container
runs alone, after the sidecars declared before it started, so the pod needs the larger of the steady state
and its largest init step; ``spec.overhead`` comes on top. CPU is in millicores, memory and
ephemeral-storage in bytes.

The *non-zero* variant (``schedutil.GetNonzeroRequests``) counts a container that requests no cpu as
100m and no memory as 200 MiB: scoring uses it so that best-effort pods still spread.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelite.api.quantity import to_int, to_millis

Obj = dict[str, Any]

DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resources:
    """Amounts of the resources the scheduler checks; ``pods`` is a pod count (allocatable only)."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory,
                         self.ephemeral_storage + other.ephemeral_storage, self.pods + other.pods)

    def max(self, other: Resources) -> Resources:
        return Resources(max(self.milli_cpu, other.milli_cpu), max(self.memory, other.memory),
                         max(self.ephemeral_storage, other.ephemeral_storage), max(self.pods, other.pods))

    @property
    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage)


ZERO = Resources()


@dataclass(frozen=True, slots=True)
class PodRequests:
    """A pod's requests, as filtered on (``actual``) and as scored on (``non_zero``)."""

    actual: Resources
    non_zero: Resources


def resource_list(values: Mapping[str, Any] | None) -> Resources:
    """A ``ResourceList`` (``{"cpu": "500m", "memory": "1Gi", ...}``) as `Resources`; unknown names and
    unparsable quantities count as zero (validation rejects them before they get here)."""
    if not values:
        return ZERO
    return Resources(_millis(values.get("cpu")), _whole(values.get("memory")),
                     _whole(values.get("ephemeral-storage")), _whole(values.get("pods")))


def _millis(raw: Any) -> int:
    if raw is None:
        return 0
    return _cached_millis(raw) if isinstance(raw, str | int | float) else 0


def _whole(raw: Any) -> int:
    if raw is None:
        return 0
    return _cached_whole(raw) if isinstance(raw, str | int | float) else 0


# A cluster's pods spell their requests with a handful of strings ("100m", "500Mi"): parsing each once
# keeps exact Decimal parsing off the per-pod path.
@functools.lru_cache(maxsize=4096)
def _cached_millis(raw: str | int | float) -> int:
    try:
        return to_millis(raw)
    except (ValueError, ArithmeticError):
        return 0


@functools.lru_cache(maxsize=4096)
def _cached_whole(raw: str | int | float) -> int:
    try:
        return to_int(raw)
    except (ValueError, ArithmeticError):
        return 0


def _container_requests(container: Mapping[str, Any], non_zero: bool) -> Resources:
    requests = (container.get("resources") or {}).get("requests") or {}
    r = resource_list(requests)
    if non_zero:
        cpu = r.milli_cpu if "cpu" in requests else DEFAULT_MILLI_CPU_REQUEST
        memory = r.memory if "memory" in requests else DEFAULT_MEMORY_REQUEST
        r = Resources(cpu, memory, r.ephemeral_storage, 0)
    return Resources(r.milli_cpu, r.memory, r.ephemeral_storage, 0)


def _sum_requests(spec: Mapping[str, Any], non_zero: bool) -> Resources:
    total = ZERO
    for c in spec.get("containers") or []:
        total = total + _container_requests(c, non_zero)
    sidecars = ZERO
    init_peak = ZERO
    for c in spec.get("initContainers") or []:
        own = _container_requests(c, non_zero)
        if c.get("restartPolicy") == "Always":
            total = total + own
            sidecars = sidecars + own
            step = sidecars
        else:
            step = own + sidecars
        init_peak = init_peak.max(step)
    total = total.max(init_peak)
    overhead = resource_list(spec.get("overhead"))
    return total + Resources(overhead.milli_cpu, overhead.memory, overhead.ephemeral_storage, 0)


def pod_requests(pod: Obj) -> PodRequests:
    spec = pod.get("spec") or {}
    return PodRequests(_sum_requests(spec, False), _sum_requests(spec, True))


def node_allocatable(node: Obj) -> Resources:
    """``status.allocatable``, falling back to ``status.capacity`` per resource (as the kubelet reports
    allocatable = capacity minus reservations; a node that reports only capacity offers all of it)."""
    status = node.get("status") or {}
    allocatable: dict[str, Any] = dict(status.get("capacity") or {})
    allocatable.update(status.get("allocatable") or {})
    return resource_list(allocatable)


# --- host ports --------------------------------------------------------------------------------------

HostPort = tuple[str, str, int]  # (hostIP, protocol, hostPort)
WILDCARD_IP = "0.0.0.0"


def host_ports(pod: Obj) -> list[HostPort]:
    """The host ports a pod's containers (and sidecars) bind, as ``schedutil.GetHostPorts`` reads them:
    ``hostIP`` defaults to 0.0.0.0 and ``protocol`` to TCP; ports without a hostPort are ignored."""
    spec = pod.get("spec") or {}
    containers: Iterable[Mapping[str, Any]] = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    out: list[HostPort] = []
    for c in containers:
        for p in c.get("ports") or []:
            port = int(p.get("hostPort") or 0)
            if port <= 0:
                continue
            out.append((str(p.get("hostIP") or WILDCARD_IP), str(p.get("protocol") or "TCP"), port))
    return out


def ports_conflict(wanted: HostPort, used: HostPort) -> bool:
    """Two host ports clash when protocol and port match and either IP is the wildcard or both are equal."""
    ip_w, proto_w, port_w = wanted
    ip_u, proto_u, port_u = used
    if proto_w != proto_u or port_w != port_u:
        return False
    return ip_w == ip_u or WILDCARD_IP in (ip_w, ip_u)
