"""Rendering the service proxy's nftables objects (pure): the table's fixed skeleton and, per Service, its
chains, load-balancing maps, affinity sets and the elements it puts into the shared maps.

The layout is kube-proxy's nftables mode (``pkg/proxy/nftables/proxier.go``), in one table per IP family
(``table ip kubelite``, ``table ip6 kubelite``) that nothing else touches:

- base chains ``filter-input/forward/output`` (priority dstnat-10, before DNAT), ``filter-output-post-dnat``
  (dstnat+10), ``nat-prerouting``/``nat-output`` (dstnat) and ``nat-postrouting`` (srcnat);
- ``services``: ``daddr . l4proto . dport vmap @service-ips`` for ClusterIPs, external and load-balancer
  IPs, and ``fib daddr type local ... vmap @service-nodeports`` for NodePorts on every local address but
  loopback;
- per Service port: ``service-<hash>-ns/name/proto/port`` (endpoints for "Cluster" policy), ``local-...``
  (this node's endpoints, "Local" policy), ``external-...`` (NodePort and external IPs: masquerading and
  the Local-policy short-circuits), and per endpoint ``endpoint-<hash>-ns/name/proto/port__ip/port``
  (hairpin masquerade, affinity update, DNAT);
- a policy chain picks an endpoint with ``numgen random mod N vmap @lb-<chain>``: one small named verdict
  map per policy chain rather than kube-proxy's anonymous one, because the kernel looks anonymous sets up
  by walking the whole transaction, which makes loading thousands of them quadratic (5,000 Services:
  22 s instead of 4 s);
- ClientIP affinity: a dynamic set with a timeout per endpoint, ``affinity-...``, filled with the client
  address by the endpoint chain and checked first by the policy chain;
- masquerading by mark: ``mark-for-masquerade`` sets a bit, ``masquerading`` (postrouting) masquerades
  marked packets: hairpin (a pod reaching itself through its Service), traffic to a ClusterIP from outside
  the cluster CIDRs (``masquerade_all``: all of it), NodePort traffic under "Cluster" policy (it may leave
  the node), and node-originated traffic under "Local" policy;
- no usable endpoint: ``@no-endpoint-services`` / ``@no-endpoint-nodeports`` send new connections to
  ``reject-chain`` (TCP reset, ICMP port unreachable otherwise) from the filter chains before DNAT, or drop
  them (a Local policy without local endpoints while other nodes have some); ``cluster-ips-check`` rejects
  a ClusterIP on a port no Service has.

`render_service` returns a `ServiceObjects`: plain text keyed by object name, so that the transaction
builder (``transaction.py``) can compare what a Service had with what it has now and touch only that.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubelite.proxy.services import IPV4, Endpoint, PortPlan, ServicePlan, ServicePortName

DEFAULT_TABLE = "kubelite"
DEFAULT_MASQUERADE_BIT = 14

# Fixed chains.
SERVICES_CHAIN = "services"
MASQUERADING_CHAIN = "masquerading"
MARK_MASQ_CHAIN = "mark-for-masquerade"
SERVICE_ENDPOINTS_CHECK_CHAIN = "service-endpoints-check"
NODEPORT_ENDPOINTS_CHECK_CHAIN = "nodeport-endpoints-check"
CLUSTER_IPS_CHECK_CHAIN = "cluster-ips-check"
REJECT_CHAIN = "reject-chain"
# Shared maps and sets (filled by every Service).
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
CLUSTER_IPS = "cluster-ips"
SHARED_MAPS = (SERVICE_IPS, SERVICE_NODEPORTS, NO_ENDPOINT_SERVICES, NO_ENDPOINT_NODEPORTS)
SHARED_SETS = (CLUSTER_IPS,)
SHARED_CONTAINERS = SHARED_MAPS + SHARED_SETS

# Per-Service object name prefixes (each at most 16 characters, as kube-proxy's).
CLUSTER_PREFIX = "service-"
LOCAL_PREFIX = "local-"
EXTERNAL_PREFIX = "external-"
ENDPOINT_PREFIX = "endpoint-"
AFFINITY_PREFIX = "affinity-"
LB_MAP_PREFIX = "lb-"
# nftables names are at most 256 bytes; the readable part after a prefix is cut to fit.
NAME_MAX = 256
PREFIX_MAX = 16 + len(LB_MAP_PREFIX)
BASE_MAX = NAME_MAX - PREFIX_MAX
# Elements per `add element` command: long enough to be fast, short enough for readable errors.
ELEMENTS_PER_COMMAND = 512

_UNSAFE = re.compile(r"[^A-Za-z0-9_./-]")


@dataclass(frozen=True, slots=True)
class RenderConfig:
    """What rendering depends on besides the Services: the family, the node's cluster CIDRs (to tell pod
    traffic from the rest) and the masquerading choices."""

    family: str = IPV4
    table: str = DEFAULT_TABLE
    cluster_cidrs: tuple[str, ...] = ()
    masquerade_all: bool = False
    masquerade_bit: int = DEFAULT_MASQUERADE_BIT

    @property
    def nft_family(self) -> str:
        return "ip" if self.family == IPV4 else "ip6"

    @property
    def addr_type(self) -> str:
        return "ipv4_addr" if self.family == IPV4 else "ipv6_addr"

    @property
    def mark(self) -> str:
        return f"{1 << self.masquerade_bit:#010x}"

    @property
    def no_localhost(self) -> str:
        return "ip daddr != 127.0.0.0/8" if self.family == IPV4 else "ip6 daddr != ::1"

    @property
    def prefix(self) -> str:
        """What every command on this table starts with after its verb: ``ip kubelite``."""
        return f"{self.nft_family} {self.table}"

    def cidrs(self) -> str:
        if len(self.cluster_cidrs) == 1:
            return self.cluster_cidrs[0]
        return "{ " + ", ".join(self.cluster_cidrs) + " }"


@dataclass(frozen=True, slots=True)
class ServiceObjects:
    """The nftables objects of one Service in one family.

    ``chains``: chain name → its rules (rule text only); ``maps``: load-balancing map name → its elements
    (``index → verdict``); ``sets``: affinity set name → timeout in seconds; ``elements``: shared container
    name → the elements this Service puts there (``key text → value text``, ``""`` for a set).
    """

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    sets: Mapping[str, int] = field(default_factory=dict)
    elements: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


EMPTY = ServiceObjects()


# --- names ----------------------------------------------------------------------------------------------

def hash_and_truncate(name: str) -> str:
    """``HASH8-name``, cut to fit a name: the hash keeps names unique when cut and tells apart names that
    differ in one character. Characters nftables does not allow in a name become ``_``."""
    digest = base64.b32encode(hashlib.sha256(name.encode()).digest()).decode()[:8]
    out = f"{digest}-{_UNSAFE.sub('_', name)}"
    return out if len(out) <= BASE_MAX else out[:BASE_MAX - 3] + "..."


def port_base(name: ServicePortName) -> str:
    return hash_and_truncate(f"{name.namespace}/{name.name}/{name.protocol}/{name.port}")


def endpoint_base(name: ServicePortName, endpoint: Endpoint) -> str:
    ip = endpoint.ip.replace(":", ".")
    return hash_and_truncate(f"{name.namespace}/{name.name}/{name.protocol}/{name.port}__{ip}/{endpoint.port}")


def affinity_set_name(name: ServicePortName, endpoint: Endpoint, seconds: int) -> str:
    # The timeout is part of the name: a set's timeout cannot be changed in place, so a new timeout makes
    # a new set and the old one goes.
    ip = endpoint.ip.replace(":", ".")
    return AFFINITY_PREFIX + hash_and_truncate(
        f"{name.namespace}/{name.name}/{name.protocol}/{name.port}__{ip}/{endpoint.port}/{seconds}s")


def lb_map_name(chain: str) -> str:
    return LB_MAP_PREFIX + chain


def is_service_chain(chain: str) -> bool:
    """Per-Service chains have a ``/`` in their names; the fixed chains never do."""
    return "/" in chain


# --- the skeleton ---------------------------------------------------------------------------------------

# (name, type, hook, priority): filters run before DNAT so that they see the Service address.
BASE_CHAINS = (
    ("filter-input", "filter", "input", -110),
    ("filter-forward", "filter", "forward", -110),
    ("filter-output", "filter", "output", -110),
    ("filter-output-post-dnat", "filter", "output", -90),
    ("nat-prerouting", "nat", "prerouting", -100),
    ("nat-output", "nat", "output", -100),
    ("nat-postrouting", "nat", "postrouting", 100),
)
# (chain jumped to, from base chain, condition)
JUMPS = (
    (NODEPORT_ENDPOINTS_CHECK_CHAIN, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, "filter-input", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, "filter-forward", "ct state new"),
    (SERVICE_ENDPOINTS_CHECK_CHAIN, "filter-output", "ct state new"),
    (SERVICES_CHAIN, "nat-output", ""),
    (SERVICES_CHAIN, "nat-prerouting", ""),
    (MASQUERADING_CHAIN, "nat-postrouting", ""),
    (CLUSTER_IPS_CHECK_CHAIN, "filter-forward", "ct state new"),
    (CLUSTER_IPS_CHECK_CHAIN, "filter-output-post-dnat", "ct state new"),
)


def skeleton(cfg: RenderConfig) -> list[str]:
    """Commands that (re)create the fixed part of the table: every fixed chain is flushed and refilled; the
    shared maps and sets are declared (their elements are left alone)."""
    t, ip = cfg.prefix, cfg.nft_family
    out = [f'add table {t} {{ comment "rules for the kubelite service proxy" ; }}']
    for name, kind, hook, priority in BASE_CHAINS:
        out.append(f"add chain {t} {name} {{ type {kind} hook {hook} priority {priority} ; }}")
        out.append(f"flush chain {t} {name}")
    fixed = (SERVICES_CHAIN, MASQUERADING_CHAIN, MARK_MASQ_CHAIN, SERVICE_ENDPOINTS_CHECK_CHAIN,
             NODEPORT_ENDPOINTS_CHECK_CHAIN, CLUSTER_IPS_CHECK_CHAIN, REJECT_CHAIN)
    for name in fixed:
        out.append(f"add chain {t} {name}")
        out.append(f"flush chain {t} {name}")
    for target, source, condition in JUMPS:
        out.append(f"add rule {t} {source} {condition + ' ' if condition else ''}jump {target}")
    out += [
        f"add rule {t} {MARK_MASQ_CHAIN} mark set mark or {cfg.mark}",
        f"add rule {t} {MASQUERADING_CHAIN} mark and {cfg.mark} == 0 return",
        f"add rule {t} {MASQUERADING_CHAIN} mark set mark xor {cfg.mark}",
        f"add rule {t} {MASQUERADING_CHAIN} masquerade fully-random",
        f'add set {t} {CLUSTER_IPS} {{ type {cfg.addr_type} ; comment "Active ClusterIPs" ; }}',
        f"add rule {t} {CLUSTER_IPS_CHECK_CHAIN} {ip} daddr @{CLUSTER_IPS} goto {REJECT_CHAIN}",
        f"add map {t} {NO_ENDPOINT_SERVICES} {{ type {cfg.addr_type} . inet_proto . inet_service : verdict ; "
        f'comment "Services with no usable endpoints" ; }}',
        f"add map {t} {NO_ENDPOINT_NODEPORTS} {{ type inet_proto . inet_service : verdict ; "
        f'comment "NodePorts with no usable endpoints" ; }}',
        f"add rule {t} {REJECT_CHAIN} meta l4proto tcp reject with tcp reset",
        f"add rule {t} {REJECT_CHAIN} reject",
        f"add rule {t} {SERVICE_ENDPOINTS_CHECK_CHAIN} {ip} daddr . meta l4proto . th dport "
        f"vmap @{NO_ENDPOINT_SERVICES}",
        f"add rule {t} {NODEPORT_ENDPOINTS_CHECK_CHAIN} {cfg.no_localhost} meta l4proto . th dport "
        f"vmap @{NO_ENDPOINT_NODEPORTS}",
        f"add map {t} {SERVICE_IPS} {{ type {cfg.addr_type} . inet_proto . inet_service : verdict ; "
        f'comment "ClusterIP, external IP and load-balancer IP traffic" ; }}',
        f"add map {t} {SERVICE_NODEPORTS} {{ type inet_proto . inet_service : verdict ; "
        f'comment "NodePort traffic" ; }}',
        f"add rule {t} {SERVICES_CHAIN} {ip} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
        f"add rule {t} {SERVICES_CHAIN} fib daddr type local {cfg.no_localhost} meta l4proto . th dport "
        f"vmap @{SERVICE_NODEPORTS}",
    ]
    return out


def container_declaration(cfg: RenderConfig, name: str) -> str:
    """The ``add`` command of a shared map or set (to flush one it must be known to exist)."""
    kind = "set" if name in SHARED_SETS else "map"
    key = {SERVICE_IPS: f"{cfg.addr_type} . inet_proto . inet_service : verdict",
           NO_ENDPOINT_SERVICES: f"{cfg.addr_type} . inet_proto . inet_service : verdict",
           SERVICE_NODEPORTS: "inet_proto . inet_service : verdict",
           NO_ENDPOINT_NODEPORTS: "inet_proto . inet_service : verdict",
           CLUSTER_IPS: cfg.addr_type}[name]
    return f"add {kind} {cfg.prefix} {name} {{ type {key} ; }}"


def lb_map_declaration(cfg: RenderConfig, name: str) -> str:
    return f"add map {cfg.prefix} {name} {{ typeof numgen random mod 1 : verdict ; }}"


def affinity_set_declaration(cfg: RenderConfig, name: str, seconds: int) -> str:
    return f"add set {cfg.prefix} {name} {{ type {cfg.addr_type} ; flags dynamic,timeout ; timeout {seconds}s ; }}"


def element_commands(cfg: RenderConfig, verb: str, container: str, elements: Sequence[tuple[str, str]]) -> list[str]:
    """``add``/``delete element`` commands for ``(key, value)`` pairs (the value is ignored for delete and
    empty for sets), several elements per command."""
    out = []
    for i in range(0, len(elements), ELEMENTS_PER_COMMAND):
        chunk = elements[i:i + ELEMENTS_PER_COMMAND]
        if verb == "delete":
            items = ", ".join(k for k, _ in chunk)
        else:
            items = ", ".join(f"{k} : {v}" if v else k for k, v in chunk)
        out.append(f"{verb} element {cfg.prefix} {container} {{ {items} }}")
    return out


# --- one Service ----------------------------------------------------------------------------------------

class _Builder:
    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {}
        self.maps: dict[str, dict[str, str]] = {}
        self.sets: dict[str, int] = {}
        self.elements: dict[str, dict[str, str]] = {}

    def rule(self, chain: str, rule: str) -> None:
        self.chains.setdefault(chain, []).append(rule)

    def element(self, container: str, key: str, value: str = "") -> None:
        self.elements.setdefault(container, {})[key] = value

    def build(self) -> ServiceObjects:
        if not (self.chains or self.elements):
            return EMPTY
        return ServiceObjects({k: tuple(v) for k, v in self.chains.items()}, self.maps, self.sets, self.elements)


def render_service(plan: ServicePlan, cfg: RenderConfig) -> ServiceObjects:
    """The objects of one Service (see the module docstring); `EMPTY` when it has no port to proxy."""
    b = _Builder()
    for port_plan in plan.ports:
        render_port(b, port_plan, cfg)
    return b.build()


def render_port(b: _Builder, plan: PortPlan, cfg: RenderConfig) -> None:
    """One Service port, following kube-proxy's syncProxyRules for a ServicePort."""
    sp, eps = plan.port, plan.endpoints
    ip, proto, mark = cfg.nft_family, sp.name.protocol, MARK_MASQ_CHAIN
    base = port_base(sp.name)
    cluster_chain, local_chain = CLUSTER_PREFIX + base, LOCAL_PREFIX + base
    external_chain = EXTERNAL_PREFIX + base
    uses_cluster_chain = bool(eps.cluster)
    uses_local_chain = bool(eps.local) and sp.uses_local_endpoints

    internal_chain, has_internal = cluster_chain, eps.has_any
    if sp.internal_local:
        internal_chain, has_internal = local_chain, bool(eps.local)
    external_policy_chain, has_external = cluster_chain, eps.has_any
    if sp.external_policy_local:
        external_policy_chain, has_external = local_chain, bool(eps.local)
    # The external chain exists whenever there are endpoints anywhere: the Local-policy short-circuits
    # for pod and node traffic need it even without local endpoints.
    uses_external_chain = eps.has_any and sp.externally_accessible
    # No endpoint anywhere: reject. Endpoints elsewhere but none here for a Local policy: drop.
    no_endpoint = f"goto {REJECT_CHAIN}" if not eps.has_any else "drop"

    # Capture the cluster IP, external IPs, load-balancer IPs and the NodePort.
    b.element(CLUSTER_IPS, sp.cluster_ip)
    key = f"{sp.cluster_ip} . {proto} . {sp.port}"
    if has_internal:
        b.element(SERVICE_IPS, key, f"goto {internal_chain}")
    else:
        b.element(NO_ENDPOINT_SERVICES, key, no_endpoint)
    for address in (*sp.external_ips, *sp.load_balancer_ips):
        key = f"{address} . {proto} . {sp.port}"
        if eps.has_any:
            b.element(SERVICE_IPS, key, f"goto {external_chain}")
        if not has_external:
            b.element(NO_ENDPOINT_SERVICES, key, no_endpoint)
    if sp.node_port:
        key = f"{proto} . {sp.node_port}"
        if eps.has_any:
            b.element(SERVICE_NODEPORTS, key, f"goto {external_chain}")
        if not has_external:
            b.element(NO_ENDPOINT_NODEPORTS, key, no_endpoint)

    # Internal (ClusterIP) traffic: masquerade what does not come from a pod, whose reply could otherwise
    # bypass this node (or everything, with masquerade_all).
    if has_internal:
        match = f"{ip} daddr {sp.cluster_ip} {proto} dport {sp.port}"
        if cfg.masquerade_all:
            b.rule(internal_chain, f"{match} jump {mark}")
        elif cfg.cluster_cidrs:
            b.rule(internal_chain, f"{match} {ip} saddr != {cfg.cidrs()} jump {mark}")

    # External traffic (NodePort, external and load-balancer IPs).
    if uses_external_chain:
        if not sp.external_policy_local:
            # Cluster policy: the endpoint may be on another node, whose reply must come back here.
            b.rule(external_chain, f"jump {mark}")
        else:
            # Local policy keeps the client address. Pods are subject to no policy (as if they went out to
            # a load balancer and came back); the node's own traffic has a local source, so it is
            # masqueraded, and also goes to any endpoint.
            if cfg.cluster_cidrs:
                b.rule(external_chain, f"{ip} saddr {cfg.cidrs()} goto {cluster_chain}")
            b.rule(external_chain, f"fib saddr type local jump {mark}")
            b.rule(external_chain, f"fib saddr type local goto {cluster_chain}")
        if has_external:
            b.rule(external_chain, f"goto {external_policy_chain}")

    affinity = sp.affinity_seconds
    if affinity is not None:
        for ep in eps.reachable:
            b.sets[affinity_set_name(sp.name, ep, affinity)] = affinity
    if uses_cluster_chain:
        _policy_chain(b, cfg, plan, cluster_chain, eps.cluster)
    if uses_local_chain:
        _policy_chain(b, cfg, plan, local_chain, eps.local)

    for ep in eps.reachable:
        chain = ENDPOINT_PREFIX + endpoint_base(sp.name, ep)
        # Hairpin: a pod reaching itself through the Service must not see its own address as the source.
        b.rule(chain, f"{ip} saddr {ep.ip} jump {mark}")
        if affinity is not None:
            b.rule(chain, f"update @{affinity_set_name(sp.name, ep, affinity)} {{ {ip} saddr }}")
        b.rule(chain, f"meta l4proto {proto} dnat to {ep}")


def _policy_chain(b: _Builder, cfg: RenderConfig, plan: PortPlan, chain: str, endpoints: Sequence[Endpoint]) -> None:
    """Rules sending to one of ``endpoints``: a client with affinity goes back to its endpoint, anyone else
    to a random one."""
    sp = plan.port
    targets = [ENDPOINT_PREFIX + endpoint_base(sp.name, ep) for ep in endpoints]
    if sp.affinity_seconds is not None:
        for ep, target in zip(endpoints, targets, strict=True):
            aff = affinity_set_name(sp.name, ep, sp.affinity_seconds)
            b.rule(chain, f"{cfg.nft_family} saddr @{aff} goto {target}")
    lb = lb_map_name(chain)
    b.maps[lb] = {str(i): f"goto {target}" for i, target in enumerate(targets)}
    b.rule(chain, f"numgen random mod {len(targets)} vmap @{lb}")
