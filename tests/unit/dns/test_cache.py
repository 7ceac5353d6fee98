"""The cache of upstream answers: TTLs honoured and aged, negative caching from the SOA, LRU bound."""

from __future__ import annotations

import dns.rcode
import dns.rrset

from kubelite.proxy.dns.answer import Answer
from kubelite.proxy.dns.cache import AnswerCache

SOA = "ns.example. hostmaster.example. 1 3600 600 86400 {minimum}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def a(name: str, ttl: int, ip: str = "192.0.2.1") -> dns.rrset.RRset:
    return dns.rrset.from_text(name, ttl, "IN", "A", ip)


def soa(ttl: int, minimum: int) -> dns.rrset.RRset:
    return dns.rrset.from_text("example.", ttl, "IN", "SOA", SOA.format(minimum=minimum))


def test_positive_answers_live_for_their_smallest_ttl_and_age() -> None:
    clock = Clock()
    cache = AnswerCache(10, clock=clock)
    cache.put(("www.example.", 1), Answer(dns.rcode.NOERROR, [a("www.example.", 60)], [], [a("ns.example.", 30)]))
    clock.now += 10.5
    hit = cache.get(("www.example.", 1))
    assert hit is not None
    assert hit.answer[0].ttl == 50 and hit.additional[0].ttl == 20
    assert not hit.authoritative
    clock.now += 20
    assert cache.get(("www.example.", 1)) is None  # the additional record's 30 s bound the entry
    assert len(cache) == 0


def test_ttls_are_capped() -> None:
    cache = AnswerCache(10, max_ttl=100, max_negative_ttl=7)
    assert cache.ttl_of(Answer(dns.rcode.NOERROR, [a("x.", 86400)])) == 100
    assert cache.ttl_of(Answer(dns.rcode.NXDOMAIN, authority=[soa(3600, 3600)])) == 7


def test_negative_answers_use_the_soa() -> None:
    cache = AnswerCache(10)
    assert cache.ttl_of(Answer(dns.rcode.NXDOMAIN, authority=[soa(300, 60)])) == 60
    assert cache.ttl_of(Answer(dns.rcode.NOERROR, authority=[soa(30, 60)])) == 30
    assert cache.ttl_of(Answer(dns.rcode.NXDOMAIN)) == 0  # no SOA: not cached


def test_failures_and_zero_ttls_are_not_cached() -> None:
    cache = AnswerCache(10)
    cache.put(("x.", 1), Answer(dns.rcode.SERVFAIL))
    cache.put(("y.", 1), Answer(dns.rcode.REFUSED))
    cache.put(("z.", 1), Answer(dns.rcode.NOERROR, [a("z.", 0)]))
    assert len(cache) == 0


def test_least_recently_used_goes_first() -> None:
    cache = AnswerCache(2)
    for name in ("a.", "b."):
        cache.put((name, 1), Answer(dns.rcode.NOERROR, [a(name, 60)]))
    assert cache.get(("a.", 1)) is not None
    cache.put(("c.", 1), Answer(dns.rcode.NOERROR, [a("c.", 60)]))
    assert cache.get(("b.", 1)) is None
    assert cache.get(("a.", 1)) is not None and cache.get(("c.", 1)) is not None


def test_size_zero_disables_the_cache() -> None:
    cache = AnswerCache(0)
    cache.put(("a.", 1), Answer(dns.rcode.NOERROR, [a("a.", 60)]))
    assert cache.get(("a.", 1)) is None
