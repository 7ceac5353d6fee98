"""The cluster as the DNS server sees it: Services, their ready endpoints, and pods, looked up by name or IP.

`ClusterView` reads three object stores (anything shaped like `kubelite.client.Indexer`: in production the
informers' caches themselves, in unit tests plain Indexers filled by hand) through indexes it registers on
them, so every query reads the current cache with no copy to keep in step, and an EndpointSlice change is
visible to the next query. Reading never mutates the stores' objects.

Endpoints come from EndpointSlices labelled ``kubernetes.io/service-name`` (whoever wrote them: the
EndpointSlice controller, a mirroring controller, or by hand for a Service without a selector). An endpoint
counts when its ``ready`` condition is not false (the API says an unset one means ready), or always when its
Service has ``publishNotReadyAddresses``. FQDN slices carry no addresses DNS could answer and are skipped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], Iterable[str]]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NAMESPACE_INDEX = "namespace"  # every kubelite Indexer has it
CLUSTER_IP_INDEX = "dns/cluster-ip"
SLICE_SERVICE_INDEX = "dns/service"
SLICE_ADDRESS_INDEX = "dns/endpoint-address"
POD_IP_INDEX = "dns/pod-ip"
ADDRESS_TYPES = ("IPv4", "IPv6")


class Store(Protocol):
    """The read side of an informer cache (`kubelite.client.Indexer` and `SharedInformer` both fit)."""

    def get(self, key: str) -> Obj | None: ...

    def by_index(self, index_name: str, value: str) -> list[Obj]: ...

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None: ...


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint of a Service that DNS may answer with."""

    addresses: tuple[str, ...]  # canonical text (ipaddress's), all of `family`
    family: str  # "IPv4" or "IPv6"
    hostname: str  # the endpoint's hostname, "" when it has none
    # The slice's ports as (name, protocol, port number).
    ports: tuple[tuple[str, str, int], ...]

    @property
    def dns_label(self) -> str:
        """The endpoint's name under its Service: its hostname, else its first address with dashes
        (CoreDNS's choice of the spec's "unique, system-assigned identifier")."""
        return self.hostname or dashed(self.addresses[0])


def dashed(address: str) -> str:
    """``10.1.2.3`` → ``10-1-2-3``; ``fd00::1`` → ``fd00--1`` (the DNS label that spells an IP)."""
    return address.replace(".", "-").replace(":", "-")


def canonical_ip(text: Any) -> str | None:
    """The canonical text of an IP address, or None when ``text`` is not one."""
    if not isinstance(text, str):
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


class ClusterView:
    """Services, endpoints and (optionally) pods by DNS-relevant keys; see the module docstring.

    ``synced`` says whether the stores hold a complete first list: until then the zone answers SERVFAIL
    rather than claim a name does not exist. ``serial`` is the SOA serial: whoever feeds the stores bumps it
    (`touch`) on every change.
    """

    def __init__(self, services: Store, slices: Store, pods: Store | None = None,
                 *, synced: Callable[[], bool] = lambda: True, serial: int = 1) -> None:
        self._services = services
        self._slices = slices
        self._pods = pods
        self._synced = synced
        self.serial = serial
        services.add_indexers({CLUSTER_IP_INDEX: service_ips})
        slices.add_indexers({SLICE_SERVICE_INDEX: _slice_service, SLICE_ADDRESS_INDEX: _slice_addresses})
        if pods is not None:
            pods.add_indexers({POD_IP_INDEX: pod_ips})

    @property
    def synced(self) -> bool:
        return self._synced()

    @property
    def has_pods(self) -> bool:
        return self._pods is not None

    def touch(self, serial: int) -> None:
        """Record a change; serials only grow (RFC 1982 would allow wrapping, a clock never needs it)."""
        self.serial = max(self.serial + 1, serial)

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._services.get(f"{namespace}/{name}")

    def has_namespace(self, namespace: str) -> bool:
        """Whether DNS knows the namespace: it holds a Service (or a pod, when pods are watched)."""
        if self._services.by_index(NAMESPACE_INDEX, namespace):
            return True
        return self._pods is not None and bool(self._pods.by_index(NAMESPACE_INDEX, namespace))

    def endpoints(self, svc: Obj) -> list[Endpoint]:
        """The Service's endpoints DNS answers with, in slice order (duplicates across slices included)."""
        namespace, name = _namespace_name(svc)
        include_unready = bool(_spec(svc).get("publishNotReadyAddresses"))
        out: list[Endpoint] = []
        for eps in self._slices.by_index(SLICE_SERVICE_INDEX, f"{namespace}/{name}"):
            out.extend(slice_endpoints(eps, include_unready=include_unready))
        return out

    def services_with_ip(self, ip: str) -> list[Obj]:
        return self._services.by_index(CLUSTER_IP_INDEX, ip)

    def endpoints_with_ip(self, ip: str) -> list[tuple[Obj, Endpoint]]:
        """(Service, endpoint) pairs whose endpoint has address ``ip``, for PTR answers."""
        out: list[tuple[Obj, Endpoint]] = []
        for eps in self._slices.by_index(SLICE_ADDRESS_INDEX, ip):
            svc = self._services.get(_slice_service_key(eps) or "")
            if svc is None:
                continue
            include_unready = bool(_spec(svc).get("publishNotReadyAddresses"))
            out.extend((svc, ep) for ep in slice_endpoints(eps, include_unready=include_unready)
                       if ip in ep.addresses)
        return out

    def pods_with_ip(self, ip: str) -> list[Obj]:
        """Pods (not yet terminal) whose status lists ``ip``; empty when pods are not watched."""
        if self._pods is None:
            return []
        return [p for p in self._pods.by_index(POD_IP_INDEX, ip)
                if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


# --- reading the objects -------------------------------------------------------------------------------

def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _namespace_name(obj: Obj) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def service_ips(svc: Obj) -> list[str]:
    """The Service's cluster IPs (``spec.clusterIPs``, else ``spec.clusterIP``), canonical, "None" left out."""
    spec = _spec(svc)
    raw = spec.get("clusterIPs")
    if not isinstance(raw, list) or not raw:
        raw = [spec.get("clusterIP")]
    return [ip for ip in (canonical_ip(r) for r in raw) if ip is not None]


def slice_endpoints(eps: Obj, *, include_unready: bool) -> list[Endpoint]:
    family = eps.get("addressType")
    if family not in ADDRESS_TYPES:
        return []
    ports = tuple((str(p.get("name") or ""), str(p.get("protocol") or "TCP"), int(p["port"]))
                  for p in eps.get("ports") or [] if isinstance(p, dict) and isinstance(p.get("port"), int))
    out: list[Endpoint] = []
    for ep in eps.get("endpoints") or []:
        if not isinstance(ep, dict):
            continue
        if not include_unready and (ep.get("conditions") or {}).get("ready") is False:
            continue
        addresses = tuple(a for a in (canonical_ip(x) for x in ep.get("addresses") or []) if a is not None)
        if addresses:
            out.append(Endpoint(addresses, str(family), str(ep.get("hostname") or ""), ports))
    return out


def _slice_service_key(eps: Obj) -> str | None:
    name = ((eps.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not name:
        return None
    return f"{_namespace_name(eps)[0]}/{name}"


# --- index functions (with service_ips and pod_ips): they see every object of the store, so never raise --

def _slice_service(eps: Obj) -> list[str]:
    key = _slice_service_key(eps)
    return [key] if key else []


def _slice_addresses(eps: Obj) -> list[str]:
    if eps.get("addressType") not in ADDRESS_TYPES:
        return []
    found = {canonical_ip(a) for ep in eps.get("endpoints") or [] if isinstance(ep, dict)
             for a in ep.get("addresses") or []}
    return [a for a in found if a is not None]


def pod_ips(pod: Obj) -> list[str]:
    """``status.podIPs`` (else ``status.podIP``), canonical."""
    status = pod.get("status") or {}
    raw = [e.get("ip") for e in status.get("podIPs") or [] if isinstance(e, dict)] or [status.get("podIP")]
    return list(dict.fromkeys(ip for ip in (canonical_ip(r) for r in raw) if ip is not None))
