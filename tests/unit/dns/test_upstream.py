"""Forwarding to upstream resolvers (fake ones on loopback): answers, TCP after truncation, failover,
caching and coalescing of identical questions."""

from __future__ import annotations

import asyncio
import time

import dns.name
import dns.rcode
import dns.rdatatype

from kubelite.proxy.dns.cache import AnswerCache
from kubelite.proxy.dns.config import parse_upstream
from kubelite.proxy.dns.upstream import Forwarder
from tests.support.fakedns import FakeUpstream

WWW = dns.name.from_text("www.example.com")
A = dns.rdatatype.A
RECORDS = {"www.example.com": ["A 192.0.2.10"]}


def addresses(answer: object) -> list[str]:
    return [rd.to_text() for rrset in answer.answer for rd in rrset]  # type: ignore[attr-defined]


async def test_forwards_and_passes_answers_through() -> None:
    async with FakeUpstream(RECORDS) as up:
        forwarder = Forwarder([parse_upstream(up.address)], timeout=1.0)
        answer = await forwarder.forward(WWW, A)
        assert answer.rcode == dns.rcode.NOERROR and addresses(answer) == ["192.0.2.10"]
        assert not answer.authoritative
        missing = await forwarder.forward(dns.name.from_text("nope.example.com"), A)
        assert missing.rcode == dns.rcode.NXDOMAIN and missing.authority[0].rdtype == dns.rdatatype.SOA


async def test_truncated_udp_answers_are_asked_again_over_tcp() -> None:
    async with FakeUpstream(RECORDS, truncate_udp=True) as up:
        answer = await Forwarder([parse_upstream(up.address)], timeout=1.0).forward(WWW, A)
        assert addresses(answer) == ["192.0.2.10"]
        assert up.udp_queries["www.example.com."] == 1 and up.tcp_queries["www.example.com."] == 1


async def test_a_dead_upstream_costs_one_timeout_then_the_live_one_is_asked_first() -> None:
    async with FakeUpstream(silent=True) as dead, FakeUpstream(RECORDS) as live:
        forwarder = Forwarder([parse_upstream(dead.address), parse_upstream(live.address)], timeout=0.2)
        started = time.monotonic()
        assert addresses(await forwarder.forward(WWW, A)) == ["192.0.2.10"]
        assert time.monotonic() - started >= 0.2
        assert addresses(await forwarder.forward(dns.name.from_text("WWW.example.com"), dns.rdatatype.A)) == [
            "192.0.2.10"]
        assert dead.queries("www.example.com") == 1 and live.queries("www.example.com") == 2


async def test_servfail_makes_way_for_the_next_upstream() -> None:
    async with FakeUpstream(rcode=dns.rcode.SERVFAIL) as failing, FakeUpstream(RECORDS) as live:
        forwarder = Forwarder([parse_upstream(failing.address), parse_upstream(live.address)], timeout=1.0)
        assert addresses(await forwarder.forward(WWW, A)) == ["192.0.2.10"]


async def test_no_answer_anywhere_is_servfail() -> None:
    async with FakeUpstream(silent=True) as dead, FakeUpstream(rcode=dns.rcode.REFUSED) as refusing:
        forwarder = Forwarder([parse_upstream(dead.address), parse_upstream(refusing.address)], timeout=0.1)
        assert (await forwarder.forward(WWW, A)).rcode == dns.rcode.REFUSED
    assert (await Forwarder([]).forward(WWW, A)).rcode == dns.rcode.SERVFAIL


async def test_answers_are_cached_per_name_and_type() -> None:
    async with FakeUpstream(RECORDS) as up:
        forwarder = Forwarder([parse_upstream(up.address)], timeout=1.0, cache=AnswerCache(100))
        for _ in range(3):
            assert addresses(await forwarder.forward(WWW, A)) == ["192.0.2.10"]
        await forwarder.forward(WWW, dns.rdatatype.AAAA)
        assert up.udp_queries["www.example.com."] == 2


async def test_identical_questions_in_flight_share_one_upstream_query() -> None:
    async with FakeUpstream(RECORDS, delay=0.1) as up:
        forwarder = Forwarder([parse_upstream(up.address)], timeout=1.0)
        answers = await asyncio.gather(*(forwarder.forward(WWW, A) for _ in range(5)))
        assert all(addresses(a) == ["192.0.2.10"] for a in answers)
        assert up.udp_queries["www.example.com."] == 1


async def test_an_asker_giving_up_does_not_cancel_the_query_for_the_others() -> None:
    async with FakeUpstream(RECORDS, delay=0.1) as up:
        forwarder = Forwarder([parse_upstream(up.address)], timeout=1.0, cache=AnswerCache(10))
        first = asyncio.create_task(forwarder.forward(WWW, A))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(forwarder.forward(WWW, A))
        first.cancel()
        assert addresses(await second) == ["192.0.2.10"]
        await forwarder.close()
