"""Message handling: header flags, error rcodes for what is not a plain question, and truncation."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from kubelite.client.informer import Indexer
from kubelite.proxy.dns.answer import Answer
from kubelite.proxy.dns.cache import AnswerCache
from kubelite.proxy.dns.handler import MessageHandler
from kubelite.proxy.dns.records import Zone
from kubelite.proxy.dns.resolver import Resolver
from kubelite.proxy.dns.upstream import Forwarder
from kubelite.proxy.dns.view import ClusterView
from tests.unit.dns.builders import Cluster, endpoint, endpoint_slice, service


@pytest.fixture
def handler() -> MessageHandler:
    cluster = Cluster(service("web", cluster_ip="10.96.0.20"))
    for count in (20, 50, 100):
        cluster.add(service(f"h{count}", cluster_ip="None"))
        cluster.add(endpoint_slice(f"h{count}", [endpoint(f"10.244.{i // 250}.{i % 250 + 1}") for i in range(count)]))
    return MessageHandler(Resolver(Zone(cluster.view), Forwarder([])))


def reply(handler: MessageHandler, query: dns.message.Message | bytes, *, udp: bool = True) -> dns.message.Message:
    wire = handler.handle_now(query if isinstance(query, bytes) else query.to_wire(), udp=udp)
    assert isinstance(wire, bytes)
    return dns.message.from_wire(wire)


def test_cluster_answer_flags(handler: MessageHandler) -> None:
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    response = reply(handler, query)
    assert response.id == query.id and response.question == query.question
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.QR and response.flags & dns.flags.AA and response.flags & dns.flags.RA
    assert response.flags & dns.flags.RD  # copied from the query
    assert [rd.to_text() for rd in response.answer[0]] == ["10.96.0.20"]


def test_nxdomain_carries_the_soa(handler: MessageHandler) -> None:
    response = reply(handler, dns.message.make_query("nope.default.svc.cluster.local", "A"))
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA


def test_edns_is_answered_with_edns(handler: MessageHandler) -> None:
    response = reply(handler, dns.message.make_query("web.default.svc.cluster.local", "A", use_edns=0, payload=4096))
    assert response.edns == 0 and response.payload == 1232


@pytest.mark.parametrize(("mutate", "rcode"), [
    pytest.param(lambda q: q.set_opcode(dns.opcode.NOTIFY), dns.rcode.NOTIMP, id="notify"),
    pytest.param(lambda q: setattr(q.question[0], "rdtype", dns.rdatatype.AXFR), dns.rcode.NOTIMP, id="axfr"),
    pytest.param(lambda q: q.question.append(dns.rrset.RRset(q.question[0].name, dns.rdataclass.IN,
                                                             dns.rdatatype.AAAA)), dns.rcode.FORMERR,
                 id="two-questions"),
    pytest.param(lambda q: q.use_edns(1), dns.rcode.BADVERS, id="edns-version-1"),
])
def test_what_is_not_a_plain_question_gets_an_error(handler: MessageHandler, mutate: object, rcode: int) -> None:
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    mutate(query)  # type: ignore[operator]
    assert reply(handler, query).rcode() == rcode


def test_other_classes_are_refused(handler: MessageHandler) -> None:
    query = dns.message.make_query("version.bind", "TXT", rdclass=dns.rdataclass.CH)
    assert reply(handler, query).rcode() == dns.rcode.REFUSED


def test_garbage_gets_formerr_with_its_id(handler: MessageHandler) -> None:
    wire = bytes.fromhex("beef0100000100000000000003")  # a header promising a question, then junk
    response = reply(handler, wire)
    assert response.id == 0xBEEF and response.rcode() == dns.rcode.FORMERR and response.flags & dns.flags.RD


@pytest.mark.parametrize("wire", [
    pytest.param(b"\x12\x34", id="short-header"),
    pytest.param(dns.message.make_response(dns.message.make_query("a.", "A")).to_wire(), id="a-response"),
    pytest.param(bytes.fromhex("beef8100000100000000000003"), id="garbage-response"),
])
def test_nothing_is_sent_back_to_non_queries(handler: MessageHandler, wire: bytes) -> None:
    assert handler.handle_now(wire, udp=True) is None


@pytest.mark.parametrize(("service_name", "edns_payload", "truncated"), [
    pytest.param("h20", None, False, id="fits-512"),
    pytest.param("h50", None, True, id="over-512-without-edns"),
    pytest.param("h50", 1232, False, id="fits-edns"),
    pytest.param("h50", 600, True, id="over-the-client-edns-size"),
    pytest.param("h100", 4096, True, id="over-our-udp-limit"),
])
def test_udp_answers_are_truncated_to_fit(handler: MessageHandler, service_name: str, edns_payload: int | None,
                                         truncated: bool) -> None:
    if edns_payload is None:
        query = dns.message.make_query(f"{service_name}.default.svc.cluster.local", "A")
    else:
        query = dns.message.make_query(f"{service_name}.default.svc.cluster.local", "A", use_edns=0,
                                       payload=edns_payload)
    wire = handler.handle_now(query.to_wire(), udp=True)
    assert isinstance(wire, bytes)
    limit = 512 if edns_payload is None else min(edns_payload, 1232)
    assert len(wire) <= limit
    response = dns.message.from_wire(wire)
    assert bool(response.flags & dns.flags.TC) == truncated
    if not truncated:
        assert len(response.answer[0]) == int(service_name[1:])


def test_tcp_answers_are_whole(handler: MessageHandler) -> None:
    response = reply(handler, dns.message.make_query("h100.default.svc.cluster.local", "A"), udp=False)
    assert not response.flags & dns.flags.TC and len(response.answer[0]) == 100


async def test_names_outside_the_cluster_without_an_upstream_are_servfail(handler: MessageHandler) -> None:
    wire = await handler.handle(dns.message.make_query("www.example.com", "A").to_wire(), udp=True)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.rcode() == dns.rcode.SERVFAIL and not response.flags & dns.flags.AA


def test_kept_replies_get_the_new_id_and_go_when_the_cluster_changes() -> None:
    cluster = Cluster(service("web", cluster_ip="10.96.0.20"))
    handler = MessageHandler(Resolver(Zone(cluster.view), Forwarder([])))
    first = dns.message.make_query("web.default.svc.cluster.local", "A")
    second = dns.message.make_query("web.default.svc.cluster.local", "A")
    second.id = (first.id + 1) % 65536
    assert reply(handler, first).id == first.id
    again = reply(handler, second)
    assert again.id == second.id and [rd.to_text() for rd in again.answer[0]] == ["10.96.0.20"]
    cluster.add(service("web", cluster_ip="10.96.0.21"))
    assert [rd.to_text() for rd in reply(handler, first).answer[0]] == ["10.96.0.21"]


def test_provisional_answers_are_not_kept() -> None:
    synced = False
    services = Indexer()
    services.put("default/web", service("web", cluster_ip="10.96.0.20"))
    view = ClusterView(services, Indexer(), synced=lambda: synced)
    handler = MessageHandler(Resolver(Zone(view, pods="insecure"), Forwarder([])))
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    assert reply(handler, query).rcode() == dns.rcode.SERVFAIL
    synced = True
    assert reply(handler, query).rcode() == dns.rcode.NOERROR


def test_answers_from_the_upstream_cache_are_answered_at_once_but_not_kept() -> None:
    now = [100.0]
    cache = AnswerCache(10, clock=lambda: now[0])
    cache.put(("www.example.com.", int(dns.rdatatype.A)),
              Answer(dns.rcode.NOERROR, [dns.rrset.from_text("www.example.com.", 60, "IN", "A", "192.0.2.1")]))
    cluster = Cluster(service("web", cluster_ip="10.96.0.20"))
    handler = MessageHandler(Resolver(Zone(cluster.view), Forwarder([], cache=cache)))
    query = dns.message.make_query("www.example.com", "A")
    assert reply(handler, query).answer[0].ttl == 60  # no upstream asked: answered from the cache at once
    now[0] += 10
    assert reply(handler, query).answer[0].ttl == 50  # not a kept rendering: the TTL runs down
