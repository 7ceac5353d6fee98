"""What one cluster DNS server is told: where it listens, the zone it serves and where other names go.

Defaults are CoreDNS's as Kubernetes deploys it: port 53, zone ``cluster.local``, TTL 5 s for cluster
records, pod records only for pods that exist (``pods verified``), everything else forwarded to the node's
resolvers from ``/etc/resolv.conf`` (CoreDNS's ``forward . /etc/resolv.conf``), answers from upstream cached
for at most an hour (``cache``'s default).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubelite.proxy.dns.clients import DEFAULT_ALLOWED_CLIENTS

log = logging.getLogger(__name__)

DEFAULT_PORT = 53
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_TTL = 5
# The EDNS UDP payload we advertise and the most we ever send over UDP (DNS Flag Day 2020's value, which
# keeps answers below the IPv6 minimum MTU and so out of IP fragmentation).
DEFAULT_MAX_UDP_SIZE = 1232

# `verified`: a-b-c-d.<ns>.pod.<zone> answers only when a pod in <ns> has that IP (a Pod informer);
# `insecure`: any such name answers with the IP it spells (the DNS spec's deprecated records, kubeadm's default);
# `disabled`: no pod records at all.
PodMode = Literal["verified", "insecure", "disabled"]
POD_MODES: tuple[PodMode, ...] = ("verified", "insecure", "disabled")

Upstream = tuple[str, int]


@dataclass(frozen=True, slots=True)
class DNSConfig:
    """The configuration of one DNS server. Every field has a default; tests use a loopback port."""

    # Addresses to listen on, UDP and TCP each; "0.0.0.0" / "::" listen everywhere (replies still leave from
    # the address the query came to, see `server`). Port 0 picks one free port shared by every socket.
    listen: tuple[str, ...] = ("0.0.0.0",)
    port: int = DEFAULT_PORT
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    # Upstream resolvers as "ip", "ip:port" or "[ipv6]:port"; None reads the nameservers of `resolv_conf`.
    upstreams: tuple[str, ...] | None = None
    resolv_conf: Path = Path("/etc/resolv.conf")
    ttl: int = DEFAULT_TTL
    pods: PodMode = "verified"
    # How long one upstream gets to answer one query before the next one is tried.
    upstream_timeout: float = 2.0
    # Entries in the cache of upstream answers (0 turns it off), and caps on how long they are kept.
    cache_size: int = 10_000
    cache_max_ttl: int = 3600
    cache_max_negative_ttl: int = 1800
    max_udp_size: int = DEFAULT_MAX_UDP_SIZE
    # A TCP client silent this long is disconnected (RFC 7766 suggests seconds, not minutes).
    tcp_idle_timeout: float = 10.0
    # Networks whose clients are answered (CIDRs); others get no reply, see `clients`.
    allowed_clients: tuple[str, ...] = DEFAULT_ALLOWED_CLIENTS
    # How long to wait for the first list of Services/EndpointSlices/Pods before serving anyway (cluster
    # names then get SERVFAIL, never a false NXDOMAIN, until the caches are filled).
    sync_timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.pods not in POD_MODES:
            raise ValueError(f"pods must be one of {', '.join(POD_MODES)}, not {self.pods!r}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")
        if self.ttl < 0:
            raise ValueError("ttl must not be negative")
        if not self.listen:
            raise ValueError("at least one listen address is required")
        for address in self.listen:
            ipaddress.ip_address(address)
        for spec in self.upstreams or ():
            parse_upstream(spec)
        for network in self.allowed_clients:
            ipaddress.ip_network(network, strict=False)

    def resolve_upstreams(self) -> list[Upstream]:
        """The upstream resolvers to forward to, minus any that is this server itself (a forwarding loop)."""
        if self.upstreams is not None:
            found = [parse_upstream(u) for u in self.upstreams]
        else:
            found = [(ip, DEFAULT_PORT) for ip in nameservers(self.resolv_conf)]
        # Only an exact match is certain: a wildcard listener does not receive what a more specific socket
        # (systemd-resolved on 127.0.0.53, dnsmasq on 127.0.0.1) is bound to.
        ours = {(ipaddress.ip_address(a), self.port) for a in self.listen}
        kept = []
        for host, port in found:
            if (ipaddress.ip_address(host.partition("%")[0]), port) in ours:
                log.warning("dns: not forwarding to %s port %d: that is this server (a forwarding loop)", host, port)
                continue
            kept.append((host, port))
        return kept


def parse_upstream(spec: str) -> Upstream:
    """``"10.0.0.2"`` → (10.0.0.2, 53); ``"10.0.0.2:5353"``, ``"[fd00::1]:5353"``, ``"fd00::1"`` likewise."""
    text = spec.strip()
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"upstream {spec!r} is not [ipv6]:port")
        if rest:
            port = _port(rest[1:], spec)
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _port(port_text, spec)
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        raise ValueError(f"upstream {spec!r} is not an IP address (with an optional port)") from None
    return host, port


def _port(text: str, spec: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"upstream {spec!r} has no valid port") from None
    if not 0 < port < 65536:
        raise ValueError(f"upstream {spec!r} has a port out of range")
    return port


def nameservers(path: Path) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf, in order; none when the file is missing."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        log.warning("dns: %s does not exist: names outside the cluster will not resolve", path)
        return []
    return parse_resolv_conf(text.splitlines())


def parse_resolv_conf(lines: Iterable[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                ipaddress.ip_address(words[1].partition("%")[0])
            except ValueError:
                continue
            out.append(words[1])
    return out

