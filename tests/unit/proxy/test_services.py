"""The proxy's model of Services and endpoints (kube-proxy's ServicePort, EndpointSliceCache, CategorizeEndpoints)."""

from __future__ import annotations

import pytest

from kubelite.proxy.services import (
    INCORRECT_IP_VERSION,
    IPV4,
    IPV6,
    Endpoint,
    ServicePort,
    ServicePortName,
    categorize,
    plan_service,
    service_ports,
    slice_endpoints,
)
from tests.unit.proxy.builders import endpoint, endpoint_slice, service

NAME = ServicePortName("ns", "web", "http", "tcp")


def port(**kw: object) -> ServicePort:
    return ServicePort(NAME, "10.96.0.10", 80, **kw)  # type: ignore[arg-type]


# --- Services ---------------------------------------------------------------------------------------------

def test_a_cluster_ip_service_has_one_port_per_service_port() -> None:
    svc = service("web", ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}])
    ports, problems = service_ports(svc, IPV4)
    assert problems == []
    assert ports == [ServicePort(NAME, "10.96.0.10", 80),
                     ServicePort(ServicePortName("ns", "web", "dns", "udp"), "10.96.0.10", 53)]


@pytest.mark.parametrize("svc", [
    pytest.param(service("web", "None"), id="headless"),
    pytest.param(service("web", "", type="ExternalName", externalName="example.com"), id="external-name"),
    pytest.param({**service("web"), "metadata": {"namespace": "ns", "name": "web", "labels": {
        "service.kubernetes.io/service-proxy-name": "other"}}}, id="someone-else-proxies-it"),
])
def test_services_the_proxy_leaves_alone(svc: dict[str, object]) -> None:
    assert service_ports(svc, IPV4) == ([], [])


def test_a_service_of_the_other_family_has_no_ports_here() -> None:
    assert service_ports(service("web", "fd00::10"), IPV4) == ([], [])
    ports, _ = service_ports(service("web", "fd00::10"), IPV6)
    assert ports[0].cluster_ip == "fd00::10"


def test_node_ports_affinity_and_traffic_policies() -> None:
    svc = service("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}],
                  sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
                  externalTrafficPolicy="Local", internalTrafficPolicy="Local", externalIPs=["192.0.2.7"])
    [p], _ = service_ports(svc, IPV4)
    assert (p.node_port, p.affinity_seconds, p.external_local, p.internal_local) == (30080, 60, True, True)
    assert p.external_ips == ("192.0.2.7",)
    assert p.externally_accessible and p.external_policy_local


def test_a_node_port_on_a_cluster_ip_service_is_ignored_and_affinity_defaults_to_three_hours() -> None:
    svc = service("web", ports=[{"name": "http", "port": 80, "nodePort": 30080}], sessionAffinity="ClientIP")
    [p], _ = service_ports(svc, IPV4)
    assert p.node_port == 0
    assert p.affinity_seconds == 10800


def test_bad_ports_are_reported_and_the_others_kept() -> None:
    svc = service("web", ports=[{"name": "a", "port": 0}, {"name": "b", "port": 81, "protocol": "ICMP"},
                                {"name": "c", "port": 82}, {"name": "d", "port": 82}])
    svc["spec"]["ports"].append("junk")
    ports, problems = service_ports(svc, IPV4)
    assert [p.port for p in ports] == [82]
    assert len(problems) == 3
    assert all(p.reason == "" for p in problems)


def test_external_ips_of_the_wrong_family_get_kube_proxys_event_on_a_single_stack_node() -> None:
    svc = service("web", externalIPs=["fd00::7", "192.0.2.7", "not-an-ip"])
    [p], problems = service_ports(svc, IPV4)
    assert p.external_ips == ("192.0.2.7",)
    assert [(x.reason, x.message) for x in problems] == [
        (INCORRECT_IP_VERSION, "fd00::7 in spec.externalIPs has incorrect IP version"),
        ("", "spec.externalIPs: ignoring 'not-an-ip', not an IP address")]
    _, problems = service_ports(svc, IPV4, dual_stack=True)
    assert [x.reason for x in problems] == [""]


def test_load_balancer_ingress_ips_are_captured() -> None:
    svc = {**service("web", type="LoadBalancer"), "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"},
                                                                                         {"hostname": "lb"}]}}}
    [p], problems = service_ports(svc, IPV4)
    assert p.load_balancer_ips == ("203.0.113.9",)
    assert problems == []


# --- EndpointSlices ---------------------------------------------------------------------------------------

def test_endpoints_come_from_the_slice_port_with_the_same_name_and_protocol() -> None:
    slices = [
        endpoint_slice("web", [endpoint("10.244.0.2")]),
        endpoint_slice("web", [endpoint("10.244.0.3")], name="web-udp",
                       ports=[{"name": "http", "port": 9999, "protocol": "UDP"}]),
        # a pod without the named target port: the controller gives it a slice without that port
        endpoint_slice("web", [endpoint("10.244.0.4")], name="web-other", ports=[{"name": "metrics", "port": 9}]),
        endpoint_slice("web", [endpoint("fd00::5")], name="web-v6", address_type="IPv6"),
    ]
    assert slice_endpoints(slices, NAME, IPV4, "node-a") == [Endpoint("10.244.0.2", 8080, local=True)]


def test_unset_conditions_default_as_in_kubernetes_and_duplicates_prefer_the_local_copy() -> None:
    slices = [
        endpoint_slice("web", [endpoint("10.244.0.2", ready=None, node="node-b"),
                               endpoint("10.244.0.3", ready=False, serving=True, terminating=True, node="node-b")]),
        endpoint_slice("web", [endpoint("10.244.0.2", ready=None, node="node-a"), {"addresses": ["bogus"]},
                               {"addresses": []}], name="web-2"),
    ]
    assert slice_endpoints(slices, NAME, IPV4, "node-a") == [
        Endpoint("10.244.0.2", 8080, ready=True, serving=True, terminating=False, local=True),
        Endpoint("10.244.0.3", 8080, ready=False, serving=True, terminating=True, local=False),
    ]


# --- categorizing ------------------------------------------------------------------------------------------

READY_HERE = Endpoint("10.244.0.2", 8080, local=True)
READY_THERE = Endpoint("10.244.1.2", 8080)
NOT_READY = Endpoint("10.244.0.9", 8080, ready=False, serving=False, local=True)
TERMINATING_HERE = Endpoint("10.244.0.7", 8080, ready=False, serving=True, terminating=True, local=True)
TERMINATING_THERE = Endpoint("10.244.1.7", 8080, ready=False, serving=True, terminating=True)


def test_cluster_policy_uses_ready_endpoints_only() -> None:
    c = categorize([READY_HERE, READY_THERE, NOT_READY, TERMINATING_THERE], port())
    assert (c.cluster, c.local, c.reachable, c.has_any) == ((READY_HERE, READY_THERE), (), (READY_HERE, READY_THERE),
                                                            True)


def test_terminating_but_serving_endpoints_are_used_only_when_none_is_ready() -> None:
    c = categorize([NOT_READY, TERMINATING_THERE], port())
    assert c.cluster == (TERMINATING_THERE,) and c.has_any
    assert categorize([NOT_READY], port()).has_any is False


def test_local_internal_policy_uses_this_nodes_endpoints() -> None:
    c = categorize([READY_HERE, READY_THERE], port(internal_local=True))
    assert (c.cluster, c.local, c.reachable) == ((), (READY_HERE,), (READY_HERE,))
    c = categorize([READY_THERE], port(internal_local=True))
    assert (c.local, c.has_any) == ((), True)
    c = categorize([TERMINATING_HERE, READY_THERE], port(internal_local=True))
    assert c.local == (TERMINATING_HERE,)


def test_local_external_policy_keeps_cluster_endpoints_for_the_short_circuits() -> None:
    c = categorize([READY_HERE, READY_THERE], port(node_port=30080, external_local=True, internal_local=True))
    assert (c.cluster, c.local) == ((READY_HERE, READY_THERE), (READY_HERE,))
    assert c.reachable == (READY_HERE, READY_THERE)


def test_plan_service_puts_it_together() -> None:
    svc = service("web")
    plan = plan_service(svc, [endpoint_slice("web", [endpoint("10.244.0.2")])], family=IPV4, node_name="node-a")
    [p] = plan.ports
    assert p.port.cluster_ip == "10.96.0.10"
    assert p.endpoints.cluster == (Endpoint("10.244.0.2", 8080, local=True),)
    assert plan_service(None, [], family=IPV4, node_name="node-a").ports == ()
