"""The cluster zone's records (Kubernetes' DNS specification): names → answers over an in-memory view."""

from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdatatype
import dns.reversename
import dns.rrset
import pytest

from kubelite.client.informer import Indexer
from kubelite.proxy.dns.answer import Answer
from kubelite.proxy.dns.config import PodMode
from kubelite.proxy.dns.records import Zone
from kubelite.proxy.dns.resolver import Pending, Resolver
from kubelite.proxy.dns.upstream import Forwarder
from kubelite.proxy.dns.view import ClusterView
from tests.unit.dns.builders import Cluster, endpoint, endpoint_slice, pod, service


def ask(zone: Zone, name: str, qtype: str = "A") -> Answer:
    answer = zone.lookup(dns.name.from_text(name), dns.rdatatype.from_text(qtype))
    assert answer is not None, f"{name} should be the zone's"
    return answer


def records(answer: Answer) -> list[str]:
    """The answer section as sorted zone-file lines."""
    return sorted(line for rrset in answer.answer for line in rrset.to_text().splitlines())


def section(rrsets: list[dns.rrset.RRset]) -> list[str]:
    return sorted(line for rrset in rrsets for line in rrset.to_text().splitlines())


def assert_negative(answer: Answer, rcode: dns.rcode.Rcode) -> None:
    assert answer.rcode == rcode
    assert answer.answer == []
    assert [r.rdtype for r in answer.authority] == [dns.rdatatype.SOA]
    assert answer.authoritative


@pytest.fixture
def cluster() -> Cluster:
    return Cluster(
        service("web", cluster_ip="10.96.0.20", ports=[
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "syslog", "port": 514, "protocol": "UDP"},
            {"port": 9000, "protocol": "TCP"}]),
        service("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]),
        endpoint_slice("db", [endpoint("10.244.1.5", hostname="db-0"), endpoint("10.244.1.6"),
                              endpoint("10.244.1.7", ready=False)],
                       ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}]),
        service("kube-dns", "kube-system", cluster_ip="10.96.0.10"),
        pod("db-0", "10.244.1.5"),
    )


@pytest.fixture
def zone(cluster: Cluster) -> Zone:
    return Zone(cluster.view, domain="cluster.local", ttl=5)


# --- Services with a cluster IP ----------------------------------------------------------------------------

def test_cluster_ip_service_has_an_a_record(zone: Zone) -> None:
    answer = ask(zone, "web.default.svc.cluster.local")
    assert answer.rcode == dns.rcode.NOERROR and answer.authoritative
    assert records(answer) == ["web.default.svc.cluster.local. 5 IN A 10.96.0.20"]


def test_names_are_case_insensitive_and_the_answer_keeps_the_question_spelling(zone: Zone) -> None:
    answer = ask(zone, "Web.DEFAULT.svc.Cluster.Local")
    assert records(answer) == ["Web.DEFAULT.svc.Cluster.Local. 5 IN A 10.96.0.20"]


def test_ttl_is_configurable(cluster: Cluster) -> None:
    answer = ask(Zone(cluster.view, ttl=30), "web.default.svc.cluster.local")
    assert answer.answer[0].ttl == 30


def test_another_type_at_an_existing_name_is_nodata_with_the_soa(zone: Zone) -> None:
    answer = ask(zone, "web.default.svc.cluster.local", "AAAA")
    assert_negative(answer, dns.rcode.NOERROR)
    soa = answer.authority[0]
    assert soa.to_text().startswith("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local.")
    assert soa[0].minimum == 5


def test_dual_stack_service_answers_aaaa(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("v6", cluster_ip="10.96.0.30", clusterIPs=["10.96.0.30", "fd00:10:96::30"]))
    assert records(ask(zone, "v6.default.svc.cluster.local", "AAAA")) == [
        "v6.default.svc.cluster.local. 5 IN AAAA fd00:10:96::30"]
    assert records(ask(zone, "v6.default.svc.cluster.local", "A")) == [
        "v6.default.svc.cluster.local. 5 IN A 10.96.0.30"]


@pytest.mark.parametrize("name", [
    pytest.param("nope.default.svc.cluster.local", id="no-such-service"),
    pytest.param("web.other.svc.cluster.local", id="service-in-another-namespace"),
    pytest.param("other.svc.cluster.local", id="unknown-namespace"),
    pytest.param("x.web.default.svc.cluster.local", id="no-such-endpoint"),
    pytest.param("a.b.web.default.svc.cluster.local", id="too-deep"),
    pytest.param("web.default.cluster.local", id="no-svc-label"),
    pytest.param("_http.web.default.svc.cluster.local", id="proto-label-missing"),
])
def test_names_that_do_not_exist_are_nxdomain_with_the_soa(zone: Zone, name: str) -> None:
    assert_negative(ask(zone, name), dns.rcode.NXDOMAIN)


@pytest.mark.parametrize("name", [
    pytest.param("svc.cluster.local", id="svc"),
    pytest.param("default.svc.cluster.local", id="namespace-with-services"),
    pytest.param("pod.cluster.local", id="pod"),
    pytest.param("_tcp.web.default.svc.cluster.local", id="proto-of-named-ports"),
])
def test_empty_non_terminals_exist_without_data(zone: Zone, name: str) -> None:
    assert_negative(ask(zone, name), dns.rcode.NOERROR)


def test_any_returns_every_record_at_the_name(zone: Zone) -> None:
    assert records(ask(zone, "web.default.svc.cluster.local", "ANY")) == [
        "web.default.svc.cluster.local. 5 IN A 10.96.0.20"]


# --- headless Services -------------------------------------------------------------------------------------

def test_headless_service_answers_its_ready_endpoints(zone: Zone) -> None:
    assert records(ask(zone, "db.default.svc.cluster.local")) == [
        "db.default.svc.cluster.local. 5 IN A 10.244.1.5",
        "db.default.svc.cluster.local. 5 IN A 10.244.1.6",
    ]


def test_headless_endpoints_follow_the_slices(cluster: Cluster, zone: Zone) -> None:
    second = endpoint_slice("db", [endpoint("10.244.2.9"), endpoint("10.244.1.5")], name="db-def",
                            ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}])
    cluster.add(second)
    assert sorted(rd.to_text() for rd in ask(zone, "db.default.svc.cluster.local").answer[0]) == [
        "10.244.1.5", "10.244.1.6", "10.244.2.9"]  # the duplicate across slices answered once
    cluster.remove(second)
    assert len(ask(zone, "db.default.svc.cluster.local").answer[0]) == 2


def test_unset_ready_counts_as_ready(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("h", cluster_ip="None"))
    cluster.add(endpoint_slice("h", [endpoint("10.244.3.1", ready=None)]))
    assert records(ask(zone, "h.default.svc.cluster.local")) == ["h.default.svc.cluster.local. 5 IN A 10.244.3.1"]


def test_headless_service_without_ready_endpoints_does_not_exist(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("empty", cluster_ip="None"))
    cluster.add(endpoint_slice("empty", [endpoint("10.244.3.1", ready=False)]))
    assert_negative(ask(zone, "empty.default.svc.cluster.local"), dns.rcode.NXDOMAIN)


def test_publish_not_ready_addresses_answers_unready_endpoints(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("peers", cluster_ip="None", publishNotReadyAddresses=True))
    cluster.add(endpoint_slice("peers", [endpoint("10.244.3.1", ready=False)]))
    assert records(ask(zone, "peers.default.svc.cluster.local")) == [
        "peers.default.svc.cluster.local. 5 IN A 10.244.3.1"]


def test_ipv6_endpoints_answer_aaaa_and_ipv4_only_headless_gives_nodata(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("six", cluster_ip="None"))
    cluster.add(endpoint_slice("six", [endpoint("fd00::5")], address_type="IPv6"))
    assert records(ask(zone, "six.default.svc.cluster.local", "AAAA")) == [
        "six.default.svc.cluster.local. 5 IN AAAA fd00::5"]
    assert_negative(ask(zone, "db.default.svc.cluster.local", "AAAA"), dns.rcode.NOERROR)


def test_fqdn_slices_are_ignored(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("fq", cluster_ip="None"))
    cluster.add(endpoint_slice("fq", [{"addresses": ["example.com"]}], address_type="FQDN"))
    assert_negative(ask(zone, "fq.default.svc.cluster.local"), dns.rcode.NXDOMAIN)


def test_endpoint_names_by_hostname_or_dashed_address(zone: Zone) -> None:
    assert records(ask(zone, "db-0.db.default.svc.cluster.local")) == [
        "db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5"]
    assert records(ask(zone, "10-244-1-6.db.default.svc.cluster.local")) == [
        "10-244-1-6.db.default.svc.cluster.local. 5 IN A 10.244.1.6"]
    # Not ready: no name.
    assert_negative(ask(zone, "10-244-1-7.db.default.svc.cluster.local"), dns.rcode.NXDOMAIN)


# --- SRV -----------------------------------------------------------------------------------------------------

def test_srv_for_a_named_port_points_at_the_service(zone: Zone) -> None:
    answer = ask(zone, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert records(answer) == [
        "_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 100 80 web.default.svc.cluster.local."]
    assert section(answer.additional) == ["web.default.svc.cluster.local. 5 IN A 10.96.0.20"]


def test_srv_protocol_and_name_must_match(zone: Zone) -> None:
    assert records(ask(zone, "_syslog._udp.web.default.svc.cluster.local", "SRV")) == [
        "_syslog._udp.web.default.svc.cluster.local. 5 IN SRV 0 100 514 web.default.svc.cluster.local."]
    assert_negative(ask(zone, "_syslog._tcp.web.default.svc.cluster.local", "SRV"), dns.rcode.NXDOMAIN)
    assert_negative(ask(zone, "_https._tcp.web.default.svc.cluster.local", "SRV"), dns.rcode.NXDOMAIN)


def test_srv_name_asked_for_a_records_is_nodata(zone: Zone) -> None:
    assert_negative(ask(zone, "_http._tcp.web.default.svc.cluster.local", "A"), dns.rcode.NOERROR)


def test_headless_srv_has_one_record_per_ready_endpoint_with_its_port(zone: Zone) -> None:
    answer = ask(zone, "_pg._tcp.db.default.svc.cluster.local", "SRV")
    assert records(answer) == [
        "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 15432 10-244-1-6.db.default.svc.cluster.local.",
        "_pg._tcp.db.default.svc.cluster.local. 5 IN SRV 0 50 15432 db-0.db.default.svc.cluster.local.",
    ]
    assert section(answer.additional) == [
        "10-244-1-6.db.default.svc.cluster.local. 5 IN A 10.244.1.6",
        "db-0.db.default.svc.cluster.local. 5 IN A 10.244.1.5",
    ]


# --- ExternalName --------------------------------------------------------------------------------------------

def test_external_name_is_a_cname_to_be_chased(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("ext", cluster_ip=None, type="ExternalName", externalName="www.example.com"))
    answer = ask(zone, "ext.default.svc.cluster.local")
    assert records(answer) == ["ext.default.svc.cluster.local. 5 IN CNAME www.example.com."]
    assert answer.chase == dns.name.from_text("www.example.com")
    cname = ask(zone, "ext.default.svc.cluster.local", "CNAME")
    assert cname.chase is None and len(cname.answer) == 1


def test_cname_into_the_cluster_is_resolved_locally(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("alias", cluster_ip=None, type="ExternalName",
                        externalName="web.default.svc.cluster.local"))
    resolver = Resolver(zone, Forwarder([]))
    answer = resolver.local(dns.name.from_text("alias.default.svc.cluster.local"), dns.rdatatype.A)
    assert isinstance(answer, Answer)
    assert records(answer) == ["alias.default.svc.cluster.local. 5 IN CNAME web.default.svc.cluster.local.",
                               "web.default.svc.cluster.local. 5 IN A 10.96.0.20"]


def test_cname_out_of_the_cluster_is_left_for_the_upstream(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("ext", cluster_ip=None, type="ExternalName", externalName="www.example.com"))
    pending = Resolver(zone, Forwarder([])).local(dns.name.from_text("ext.default.svc.cluster.local"),
                                                  dns.rdatatype.A)
    assert isinstance(pending, Pending)
    assert pending.name == dns.name.from_text("www.example.com") and pending.authoritative
    assert section(pending.chain) == ["ext.default.svc.cluster.local. 5 IN CNAME www.example.com."]


def test_a_cname_loop_is_servfail(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("a", cluster_ip=None, type="ExternalName", externalName="b.default.svc.cluster.local"))
    cluster.add(service("b", cluster_ip=None, type="ExternalName", externalName="a.default.svc.cluster.local"))
    answer = Resolver(zone, Forwarder([])).local(dns.name.from_text("a.default.svc.cluster.local"), dns.rdatatype.A)
    assert isinstance(answer, Answer) and answer.rcode == dns.rcode.SERVFAIL


# --- pods ------------------------------------------------------------------------------------------------------

def test_verified_pod_records_need_a_pod_with_that_ip_in_that_namespace(cluster: Cluster, zone: Zone) -> None:
    assert records(ask(zone, "10-244-1-5.default.pod.cluster.local")) == [
        "10-244-1-5.default.pod.cluster.local. 5 IN A 10.244.1.5"]
    assert_negative(ask(zone, "10-244-1-5.other.pod.cluster.local"), dns.rcode.NXDOMAIN)
    assert_negative(ask(zone, "10-244-9-9.default.pod.cluster.local"), dns.rcode.NXDOMAIN)
    cluster.add(pod("done", "10.244.1.8", phase="Succeeded"))
    assert_negative(ask(zone, "10-244-1-8.default.pod.cluster.local"), dns.rcode.NXDOMAIN)


@pytest.mark.parametrize(("name", "qtype", "expected"), [
    pytest.param("1-2-3-4.anything.pod.cluster.local", "A", "1.2.3.4", id="ipv4"),
    pytest.param("fd00--1.anything.pod.cluster.local", "AAAA", "fd00::1", id="ipv6"),
])
def test_insecure_pod_records_answer_any_ip(cluster: Cluster, name: str, qtype: str, expected: str) -> None:
    answer = ask(Zone(cluster.view, pods="insecure"), name, qtype)
    assert [rd.to_text() for rd in answer.answer[0]] == [expected]


@pytest.mark.parametrize(("mode", "name"), [
    pytest.param("insecure", "1-2-3.default.pod.cluster.local", id="not-an-ip"),
    pytest.param("insecure", "300-2-3-4.default.pod.cluster.local", id="octet-out-of-range"),
    pytest.param("disabled", "10-244-1-5.default.pod.cluster.local", id="disabled"),
])
def test_pod_names_that_spell_no_allowed_ip_do_not_exist(cluster: Cluster, mode: PodMode, name: str) -> None:
    assert_negative(ask(Zone(cluster.view, pods=mode), name), dns.rcode.NXDOMAIN)


def test_verified_mode_needs_a_pod_store() -> None:
    with pytest.raises(ValueError, match="pod store"):
        Zone(ClusterView(Indexer(), Indexer()), pods="verified")


# --- reverse names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "target"), [
    pytest.param("20.0.96.10.in-addr.arpa", "web.default.svc.cluster.local.", id="cluster-ip"),
    pytest.param("6.1.244.10.in-addr.arpa", "10-244-1-6.db.default.svc.cluster.local.", id="headless-endpoint"),
])
def test_ptr_of_cluster_addresses(zone: Zone, name: str, target: str) -> None:
    answer = ask(zone, name, "PTR")
    assert [rd.to_text() for rd in answer.answer[0]] == [target]
    assert not answer.authoritative


def test_ptr_of_a_pod_with_a_hostname_names_both(zone: Zone) -> None:
    assert sorted(rd.to_text() for rd in ask(zone, "5.1.244.10.in-addr.arpa", "PTR").answer[0]) == [
        "10-244-1-5.default.pod.cluster.local.", "db-0.db.default.svc.cluster.local."]


def test_ptr_of_an_ipv6_cluster_ip(cluster: Cluster, zone: Zone) -> None:
    cluster.add(service("v6", cluster_ip="fd00::30"))
    name = dns.reversename.from_address("fd00::30")
    answer = zone.lookup(name, dns.rdatatype.PTR)
    assert answer is not None and [rd.to_text() for rd in answer.answer[0]] == ["v6.default.svc.cluster.local."]


@pytest.mark.parametrize("name", [
    pytest.param("9.9.9.9.in-addr.arpa", id="unknown-ip"),
    pytest.param("10.in-addr.arpa", id="partial"),
    pytest.param("example.com", id="outside"),
])
def test_names_outside_the_zone_are_left_to_the_upstream(zone: Zone, name: str) -> None:
    assert zone.lookup(dns.name.from_text(name), dns.rdatatype.PTR) is None


# --- the zone itself -------------------------------------------------------------------------------------------

def test_apex_soa_and_ns_with_the_dns_service_address(zone: Zone) -> None:
    assert records(ask(zone, "cluster.local", "NS")) == ["cluster.local. 5 IN NS ns.dns.cluster.local."]
    assert section(ask(zone, "cluster.local", "NS").additional) == ["ns.dns.cluster.local. 5 IN A 10.96.0.10"]
    assert ask(zone, "cluster.local", "SOA").answer[0].rdtype == dns.rdatatype.SOA
    assert records(ask(zone, "ns.dns.cluster.local")) == ["ns.dns.cluster.local. 5 IN A 10.96.0.10"]


def test_dns_version_record(zone: Zone) -> None:
    assert records(ask(zone, "dns-version.cluster.local", "TXT")) == [
        'dns-version.cluster.local. 28800 IN TXT "1.1.0"']


def test_soa_serial_follows_the_view(cluster: Cluster, zone: Zone) -> None:
    before = zone.soa()[0].serial
    cluster.view.touch(0)
    assert zone.soa()[0].serial == before + 1


def test_other_cluster_domain(cluster: Cluster) -> None:
    zone = Zone(cluster.view, domain="Corp.Example")
    assert records(ask(zone, "web.default.svc.corp.example")) == ["web.default.svc.corp.example. 5 IN A 10.96.0.20"]
    assert zone.lookup(dns.name.from_text("web.default.svc.cluster.local"), dns.rdatatype.A) is None


def test_before_the_caches_are_filled_cluster_names_are_servfail() -> None:
    view = ClusterView(Indexer(), Indexer(), synced=lambda: False)
    answer = Zone(view, pods="insecure").lookup(dns.name.from_text("web.default.svc.cluster.local"),
                                                dns.rdatatype.A)
    assert answer is not None and answer.rcode == dns.rcode.SERVFAIL

