"""Which UDP conntrack flows go stale when a Service's endpoints change (kube-proxy's CleanStaleEntries)."""

from __future__ import annotations

import socket

from kubelite.proxy.conntrack import Flow, UdpPort, stale_flows, to_check, udp_ports
from kubelite.proxy.services import IPV4, plan_service
from tests.unit.proxy.builders import endpoint, endpoint_slice, service

VIP = ("10.96.0.10", 53)
A, B = ("10.244.0.2", 5353), ("10.244.0.3", 5353)


def flow(destination: tuple[str, int], reply_source: tuple[str, int], sport: int = 40000) -> Flow:
    return Flow(socket.AF_INET, ("10.244.1.9", sport), destination, reply_source)


def test_udp_ports_come_from_the_plan() -> None:
    svc = service("dns", type="NodePort", externalIPs=["192.0.2.7"],
                  ports=[{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
                         {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    slices = [endpoint_slice("dns", [endpoint("10.244.0.2")], ports=[
        {"name": "dns", "port": 5353, "protocol": "UDP"}, {"name": "dns-tcp", "port": 5353, "protocol": "TCP"}])]
    [port] = udp_ports(plan_service(svc, slices, family=IPV4, node_name="node-a"))
    assert port == UdpPort(frozenset({VIP, ("192.0.2.7", 53)}), 30053, frozenset({A}))


def test_flows_to_endpoints_the_port_no_longer_has_are_stale() -> None:
    port = UdpPort(frozenset({VIP}), 0, frozenset({B}))
    flows = [flow(VIP, A), flow(VIP, B, 40001), flow(VIP, VIP, 40002), flow(("10.96.0.99", 53), A, 40003)]
    assert stale_flows(flows, [port]) == [flow(VIP, A), flow(VIP, VIP, 40002)]


def test_node_port_flows_are_stale_only_when_dnatted_elsewhere() -> None:
    port = UdpPort(frozenset({VIP}), 30053, frozenset({B}))
    flows = [flow(("192.168.1.5", 30053), A), flow(("192.168.1.5", 30053), B, 40001),
             flow(("192.168.1.5", 30053), ("192.168.1.5", 30053), 40002)]
    assert stale_flows(flows, [port]) == [flow(("192.168.1.5", 30053), A)]


def test_addresses_a_service_lost_are_checked_with_no_endpoints() -> None:
    before = (UdpPort(frozenset({VIP}), 30053, frozenset({A})),)
    after = (UdpPort(frozenset({("10.96.0.11", 53)}), 0, frozenset({A})),)
    assert to_check(before, after) == [after[0], before[0].emptied()]
    assert to_check(before, ()) == [before[0].emptied()]
    assert to_check(before, before) == [before[0]]
