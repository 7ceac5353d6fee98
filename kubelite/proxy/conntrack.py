"""Clearing stale UDP conntrack entries after a sync (kube-proxy's ``conntrack.CleanStaleEntries``).

UDP has no connection to end: conntrack keeps a flow's NAT binding as long as datagrams keep coming, so a
client sending from one port (a resolver, a metrics agent) stays with the endpoint chosen for its first
datagram even after that endpoint is gone, and a flow that began before its Service had endpoints is
never DNATed at all. So after a sync that changed UDP Services, the flows to their addresses whose
endpoint (the source of the reply direction) is no longer one of the port's endpoints are deleted, and
the next datagram meets the current rules. TCP needs none of this: a connection to a dead endpoint fails
and the client connects again.

`udp_ports` and `stale_flows` are pure; `ConntrackCleaner` asks the kernel (over netlink, pyroute2, in the
proxy's network namespace) for the UDP flows to each address concerned, and deletes the stale ones.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from kubelite.proxy.netns import NetnsThread
from kubelite.proxy.services import ServicePlan

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class UdpPort:
    """A UDP Service port: the addresses it is reached at, its NodePort, and where its traffic may go."""

    addresses: frozenset[Address]
    node_port: int
    endpoints: frozenset[Address]

    def emptied(self) -> UdpPort:
        """The same addresses with no endpoint left (the port is gone)."""
        return UdpPort(self.addresses, self.node_port, frozenset())


@dataclass(frozen=True, slots=True)
class Flow:
    """One UDP conntrack entry: its original tuple, and the source of its reply direction (the endpoint
    it was DNATed to, or the original destination when it was not)."""

    family: int
    source: Address
    destination: Address
    reply_source: Address

    @property
    def dnatted(self) -> bool:
        return self.reply_source != self.destination


def udp_ports(plan: ServicePlan) -> tuple[UdpPort, ...]:
    out = []
    for port_plan in plan.ports:
        sp = port_plan.port
        if sp.name.protocol != "udp":
            continue
        addresses = frozenset((ip, sp.port) for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips))
        endpoints = frozenset((e.ip, e.port) for e in port_plan.endpoints.reachable)
        out.append(UdpPort(addresses, sp.node_port, endpoints))
    return tuple(out)


def to_check(before: Iterable[UdpPort], after: Iterable[UdpPort]) -> list[UdpPort]:
    """What to clean after a Service's UDP ports went from ``before`` to ``after``: its ports now, and
    those of its addresses no longer served, with no endpoints."""
    after = list(after)
    served = {a for p in after for a in p.addresses}
    node_ports = {p.node_port for p in after if p.node_port}
    gone = [p.emptied() for p in before
            if not p.addresses <= served or (p.node_port and p.node_port not in node_ports)]
    return [*after, *gone]


def stale_flows(flows: Iterable[Flow], ports: Iterable[UdpPort]) -> list[Flow]:
    """The flows of ``ports`` going to an endpoint the port no longer has (or not DNATed at all)."""
    by_address: dict[Address, frozenset[Address]] = {}
    by_node_port: dict[int, frozenset[Address]] = {}
    for p in ports:
        for address in p.addresses:
            by_address[address] = by_address.get(address, frozenset()) | p.endpoints
        if p.node_port:
            by_node_port[p.node_port] = by_node_port.get(p.node_port, frozenset()) | p.endpoints
    out = []
    for flow in flows:
        allowed = by_address.get(flow.destination)
        if allowed is not None:
            if flow.reply_source not in allowed:
                out.append(flow)
        elif flow.dnatted and flow.destination[1] in by_node_port:
            # A NodePort flow (to any local address): only DNATed ones are the proxy's.
            if flow.reply_source not in by_node_port[flow.destination[1]]:
                out.append(flow)
    return out


class ConntrackCleaner:
    """Deletes stale UDP flows in the namespace of ``netns`` (None: this process's)."""

    def __init__(self, netns: str | None) -> None:
        self.thread = NetnsThread(netns, name="conntrack")

    async def clean(self, ports: list[UdpPort]) -> int:
        """Delete the stale flows of ``ports``; how many were deleted."""
        if not ports:
            return 0
        return await self.thread.run(_clean, ports)

    def close(self) -> None:
        self.thread.close()


def _clean(ports: list[UdpPort]) -> int:
    from pyroute2.conntrack import Conntrack, NFCTAttrTuple

    wanted = sorted({a for p in ports for a in p.addresses})
    node_ports = sorted({p.node_port for p in ports if p.node_port})
    flows: dict[tuple[int, Address, Address], Flow] = {}
    with Conntrack() as ct:
        # One dump per address, filtered by the kernel: the cost follows the flows concerned, not the table.
        queries: list[tuple[int, str | None, int]] = [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, ip, port) for ip, port in wanted]
        queries += [(family, None, port) for port in node_ports for family in (socket.AF_INET, socket.AF_INET6)]
        for family, ip, port in queries:
            match = NFCTAttrTuple(family=family, proto=socket.IPPROTO_UDP, daddr=ip, dport=port)
            for entry in ct.dump_entries(tuple_orig=match):
                o, r = entry.tuple_orig, entry.tuple_reply
                if o.proto != socket.IPPROTO_UDP or o.dport != port or (ip is not None and o.daddr != ip):
                    continue  # a kernel too old to filter dumps sends them all
                flow = Flow(family, (o.saddr, o.sport), (o.daddr, o.dport), (r.saddr, r.sport))
                flows[(family, flow.source, flow.destination)] = flow
        deleted = 0
        for flow in stale_flows(flows.values(), ports):
            try:
                ct.entry("del", tuple_orig=NFCTAttrTuple(
                    family=flow.family, proto=socket.IPPROTO_UDP, saddr=flow.source[0], sport=flow.source[1],
                    daddr=flow.destination[0], dport=flow.destination[1]))
                deleted += 1
            except Exception as e:  # gone meanwhile (ENOENT)
                log.debug("conntrack: could not delete %s: %s", flow, e)
        return deleted
