"""The service proxy's desired state, computed from one Service and its EndpointSlices (pure, no I/O).

This is kube-proxy's ``pkg/proxy`` model (``serviceport.go``, ``endpointslicecache.go``, ``topology.go``)
for one IP family at a time:

- `service_ports(svc, family)`: one `ServicePort` per port of a Service that has a cluster IP of that
  family. Skipped as kube-proxy skips them: ExternalName and headless Services, Services labelled
  ``service.kubernetes.io/service-proxy-name`` (someone else proxies them), Services with no cluster IP.
- `slice_endpoints(slices, port, ...)`: the endpoints of one port, read the way kube-proxy's
  EndpointSliceCache reads them: only slices of the family's address type; the slice port with the same
  name and protocol; the first address of each endpoint; ``ready``/``serving`` default to true and
  ``terminating`` to false when unset; one endpoint per ``ip:port`` (a local copy wins).
- `categorize(endpoints, port)`: CategorizeEndpoints without topology: the endpoints for "Cluster" policy
  are the ready ones, or, only when none is ready, the serving-and-terminating ones; "Local" policy uses
  this node's, with the same fallback.
- `plan_service(svc, slices, ...)` puts it together: a `ServicePlan` per Service with the `Problem`s found
  in bad input, so that one broken Service is reported and skipped while every other one still works.

Every value that leaves this module has been validated (IP addresses parsed and normalised, ports in
range, protocols known), so the renderer can put them into nft text without further checks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]

IPV4 = "IPv4"
IPV6 = "IPv6"
FAMILIES = (IPV4, IPV6)
# The protocols a Service port may carry, with the name nftables uses for them.
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
HEADLESS_LABEL = "service.kubernetes.io/headless"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# core/v1 DefaultClientIPServiceAffinitySeconds and MaxClientIPServiceAffinitySeconds.
DEFAULT_AFFINITY_SECONDS = 10800
MAX_AFFINITY_SECONDS = 86400
INCORRECT_IP_VERSION = "KubeProxyIncorrectIPVersion"


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """Which port of which Service (kube-proxy's ServicePortName); ``protocol`` is nftables' lower case."""

    namespace: str
    name: str
    port: str
    protocol: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service in one IP family, with what decides how its traffic is handled."""

    name: ServicePortName
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    # ClientIP session affinity: how long a client sticks to its endpoint; None without affinity.
    affinity_seconds: int | None = None
    internal_local: bool = False
    # externalTrafficPolicy: Local (only meaningful when the port is externally accessible).
    external_local: bool = False

    @property
    def externally_accessible(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)

    @property
    def external_policy_local(self) -> bool:
        return self.externally_accessible and self.external_local

    @property
    def uses_cluster_endpoints(self) -> bool:
        return not self.internal_local or (self.externally_accessible and not self.external_local)

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_local or self.external_policy_local


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One backend of one ServicePort, as this node sees it."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    local: bool = False

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Categorized:
    """The endpoints each traffic policy uses (CategorizeEndpoints).

    ``cluster``: for "Cluster" policy; ``local``: this node's, for "Local" policy; ``reachable``: every
    endpoint some chain of this port sends to; ``has_any``: whether the port has a usable endpoint anywhere
    in the cluster (not only on this node).
    """

    cluster: tuple[Endpoint, ...] = ()
    local: tuple[Endpoint, ...] = ()
    reachable: tuple[Endpoint, ...] = ()
    has_any: bool = False


@dataclass(frozen=True, slots=True)
class Problem:
    """Bad input found in a Service or its slices. ``reason`` is the Event reason where Kubernetes records
    one for it (empty: logged only)."""

    message: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PortPlan:
    port: ServicePort
    endpoints: Categorized


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """Everything the proxy does for one Service in one family (no ports: nothing to do)."""

    ports: tuple[PortPlan, ...] = ()
    problems: tuple[Problem, ...] = ()


# --- addresses ------------------------------------------------------------------------------------------

def ip_family(text: str) -> str | None:
    """IPv4 or IPv6 for a valid address, None otherwise."""
    try:
        return IPV4 if ipaddress.ip_address(text).version == 4 else IPV6
    except ValueError:
        return None


def normalize_ip(text: Any, family: str) -> str | None:
    """The canonical text of ``text`` when it is a valid address of ``family``, else None."""
    if not isinstance(text, str):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if (address.version == 4) != (family == IPV4):
        return None
    return str(address)


def normalize_cidr(text: str) -> tuple[str, str]:
    """``(family, canonical CIDR)`` of a network; ValueError for anything else."""
    network = ipaddress.ip_network(text.strip(), strict=False)
    return (IPV4 if network.version == 4 else IPV6), str(network)


# --- Services -------------------------------------------------------------------------------------------

def _spec(svc: Obj) -> Mapping[str, Any]:
    spec = svc.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _metadata(obj: Obj) -> Mapping[str, Any]:
    md = obj.get("metadata")
    return md if isinstance(md, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _labels(obj: Obj) -> Mapping[str, Any]:
    labels = _metadata(obj).get("labels")
    return labels if isinstance(labels, Mapping) else {}


def service_key(svc: Obj) -> str:
    md = _metadata(svc)
    return f"{md.get('namespace') or 'default'}/{md.get('name') or ''}"


def slice_service_key(slice_: Obj) -> str | None:
    """``namespace/service`` of the Service an EndpointSlice belongs to (its service-name label)."""
    service = _labels(slice_).get(SERVICE_NAME_LABEL)
    if not isinstance(service, str) or not service:
        return None
    return f"{_metadata(slice_).get('namespace') or 'default'}/{service}"


def is_proxied(svc: Obj) -> bool:
    """Whether this proxy handles the Service at all (kube-proxy's ShouldSkipService, inverted)."""
    spec = _spec(svc)
    if spec.get("type") == "ExternalName" or SERVICE_PROXY_NAME_LABEL in _labels(svc):
        return False
    cluster_ip = spec.get("clusterIP")
    return bool(cluster_ip) and cluster_ip != "None"


def _cluster_ip(spec: Mapping[str, Any], family: str) -> str | None:
    candidates = spec.get("clusterIPs")
    if not isinstance(candidates, list) or not candidates:
        candidates = [spec.get("clusterIP")]
    for candidate in candidates:
        ip = normalize_ip(candidate, family)
        if ip is not None:
            return ip
    return None


def _affinity_seconds(spec: Mapping[str, Any]) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = spec.get("sessionAffinityConfig")
    client_ip = config.get("clientIP") if isinstance(config, Mapping) else None
    timeout = client_ip.get("timeoutSeconds") if isinstance(client_ip, Mapping) else None
    if isinstance(timeout, int) and not isinstance(timeout, bool) and 0 < timeout <= MAX_AFFINITY_SECONDS:
        return timeout
    return DEFAULT_AFFINITY_SECONDS


def _port_number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    return None


def _addresses(values: Any, family: str, field: str, problems: list[Problem], *, dual_stack: bool) -> tuple[str, ...]:
    """The valid addresses of ``family`` in a list field; others are reported (a wrong family only when
    this proxy serves a single family, as kube-proxy used to: with both, each family takes its own)."""
    out: list[str] = []
    for value in _list(values):
        ip = normalize_ip(value, family)
        if ip is not None:
            out.append(ip)
        elif isinstance(value, str) and ip_family(value) is not None:
            if not dual_stack:
                problems.append(Problem(f"{value} in {field} has incorrect IP version", INCORRECT_IP_VERSION))
        else:
            problems.append(Problem(f"{field}: ignoring {value!r}, not an IP address"))
    return tuple(dict.fromkeys(out))


def service_ports(svc: Obj, family: str, *, dual_stack: bool = False) -> tuple[list[ServicePort], list[Problem]]:
    """The ServicePorts of ``svc`` in ``family`` and the problems found (see the module docstring)."""
    problems: list[Problem] = []
    if not is_proxied(svc):
        return [], problems
    spec = _spec(svc)
    cluster_ip = _cluster_ip(spec, family)
    if cluster_ip is None:
        if not any(ip_family(str(ip)) for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]):
            problems.append(Problem(f"spec.clusterIP: ignoring {spec.get('clusterIP')!r}, not an IP address"))
        return [], problems
    md = _metadata(svc)
    namespace, name = str(md.get("namespace") or "default"), str(md.get("name") or "")
    external_ips = _addresses(spec.get("externalIPs"), family, "spec.externalIPs", problems, dual_stack=dual_stack)
    status = svc.get("status")
    lb = status.get("loadBalancer") if isinstance(status, Mapping) else None
    ingress = lb.get("ingress") if isinstance(lb, Mapping) else None
    lb_ips = _addresses([i.get("ip") for i in ingress if isinstance(i, Mapping) and i.get("ip")]
                        if isinstance(ingress, list) else [], family, "status.loadBalancer.ingress", problems,
                        dual_stack=dual_stack)
    kind = spec.get("type") or "ClusterIP"
    ports: list[ServicePort] = []
    seen: set[tuple[str, int]] = set()
    for i, raw in enumerate(_list(spec.get("ports"))):
        if not isinstance(raw, Mapping):
            continue
        at = f"spec.ports[{i}]"
        protocol = PROTOCOLS.get(str(raw.get("protocol") or "TCP"))
        number = _port_number(raw.get("port"))
        if protocol is None:
            problems.append(Problem(f"{at}.protocol: ignoring unsupported protocol {raw.get('protocol')!r}"))
            continue
        if number is None or (protocol, number) in seen:
            problems.append(Problem(f"{at}.port: ignoring {raw.get('port')!r}, not a valid or unique port"))
            continue
        seen.add((protocol, number))
        node_port = _port_number(raw.get("nodePort")) if kind in ("NodePort", "LoadBalancer") else None
        ports.append(ServicePort(
            name=ServicePortName(namespace, name, str(raw.get("name") or ""), protocol),
            cluster_ip=cluster_ip, port=number, node_port=node_port or 0,
            external_ips=external_ips, load_balancer_ips=lb_ips,
            affinity_seconds=_affinity_seconds(spec),
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            external_local=spec.get("externalTrafficPolicy") == "Local",
        ))
    return ports, problems


# --- EndpointSlices -------------------------------------------------------------------------------------

def _condition(conditions: Mapping[str, Any], name: str, default: bool) -> bool:
    value = conditions.get(name)
    return value if isinstance(value, bool) else default


def slice_endpoints(slices: Iterable[Obj], port: ServicePortName, family: str, node_name: str) -> list[Endpoint]:
    """The endpoints of ``port`` in ``slices`` (kube-proxy's EndpointSliceCache), sorted by address."""
    found: dict[tuple[str, int], Endpoint] = {}
    for slice_ in slices:
        if slice_.get("addressType") != family or HEADLESS_LABEL in _labels(slice_):
            continue
        number = None
        for p in _list(slice_.get("ports")):
            if (isinstance(p, Mapping) and str(p.get("name") or "") == port.port
                    and PROTOCOLS.get(str(p.get("protocol") or "TCP")) == port.protocol):
                number = _port_number(p.get("port"))
                break
        if number is None:
            continue
        for endpoint in _list(slice_.get("endpoints")):
            if not isinstance(endpoint, Mapping):
                continue
            addresses = endpoint.get("addresses")
            ip = normalize_ip(addresses[0], family) if isinstance(addresses, list) and addresses else None
            if ip is None:
                continue
            conditions = endpoint.get("conditions")
            conditions = conditions if isinstance(conditions, Mapping) else {}
            local = bool(node_name) and endpoint.get("nodeName") == node_name
            ep = Endpoint(ip, number, ready=_condition(conditions, "ready", True),
                          serving=_condition(conditions, "serving", True),
                          terminating=_condition(conditions, "terminating", False), local=local)
            if (ip, number) not in found or local:
                found[(ip, number)] = ep
    return sorted(found.values())


def categorize(endpoints: Sequence[Endpoint], port: ServicePort) -> Categorized:
    """CategorizeEndpoints (see `Categorized`); terminating endpoints still serving are used only when no
    endpoint of the same kind is ready."""
    usable = tuple(e for e in endpoints if e.ready) or tuple(e for e in endpoints if e.serving and e.terminating)
    # The cluster endpoints are also needed under externalTrafficPolicy: Local, where traffic from pods and
    # from the node itself to a NodePort short-circuits to them (see nftables.render_port).
    cluster = usable if port.uses_cluster_endpoints or port.external_policy_local else ()
    local: tuple[Endpoint, ...] = ()
    if port.uses_local_endpoints:
        local = (tuple(e for e in endpoints if e.local and e.ready)
                 or tuple(e for e in endpoints if e.local and e.serving and e.terminating))
    reachable = tuple(sorted(set(cluster) | set(local))) if cluster and local else cluster or local
    return Categorized(cluster=cluster, local=local, reachable=reachable, has_any=bool(usable))


def plan_service(svc: Obj | None, slices: Iterable[Obj], *, family: str, node_name: str,
                 dual_stack: bool = False) -> ServicePlan:
    """The plan for one Service (None: deleted) in ``family``; see the module docstring."""
    if svc is None:
        return ServicePlan()
    ports, problems = service_ports(svc, family, dual_stack=dual_stack)
    if not ports:
        return ServicePlan((), tuple(problems))
    slices = list(slices)
    plans = tuple(PortPlan(p, categorize(slice_endpoints(slices, p.name, family, node_name), p)) for p in ports)
    return ServicePlan(plans, tuple(problems))
