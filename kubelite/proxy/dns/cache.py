"""A small cache of upstream answers that honours their TTLs (RFC 1035 §7.4, RFC 2308 for negative answers).

- A positive answer lives for the smallest TTL among its records; a negative one (NXDOMAIN, or NOERROR with
  no answer) for the smaller of its SOA's TTL and SOA minimum, and is not cached without an SOA.
  Both are capped (``max_ttl``, ``max_negative_ttl``); failures (SERVFAIL, REFUSED, ...) are never cached.
- A hit returns copies of the records with their TTLs lowered by the time spent in the cache, so a client
  never caches an answer for longer than its owner allowed.
- At most ``size`` entries; the least recently used one goes first. Expired entries go when touched.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.rcode
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.SOA import SOA

from kubelite.proxy.dns.answer import Answer

Key = tuple[str, int]  # (lower-cased name, qtype)


@dataclass(slots=True)
class _Entry:
    answer: Answer
    stored: float
    expires: float


class AnswerCache:
    def __init__(self, size: int, *, max_ttl: int = 3600, max_negative_ttl: int = 1800,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Answer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        aged = int(now - entry.stored)
        a = entry.answer
        return Answer(a.rcode, _aged(a.answer, aged), _aged(a.authority, aged), _aged(a.additional, aged))

    def put(self, key: Key, answer: Answer) -> None:
        if self.size <= 0:
            return
        ttl = self.ttl_of(answer)
        if ttl <= 0:
            return
        now = self._clock()
        self._entries[key] = _Entry(answer, now, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def ttl_of(self, answer: Answer) -> int:
        """How long ``answer`` may be kept (0: not at all)."""
        if answer.rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return 0
        if answer.rcode == dns.rcode.NOERROR and answer.answer:
            return min(self.max_ttl, *(r.ttl for r in _records(answer)))
        soas = [r for r in answer.authority if r.rdtype == dns.rdatatype.SOA]
        if not soas:
            return 0
        soa = soas[0]
        minimum = min((rd.minimum for rd in soa if isinstance(rd, SOA)), default=0)
        return min(self.max_negative_ttl, soa.ttl, minimum)


def _records(answer: Answer) -> Iterable[dns.rrset.RRset]:
    yield from answer.answer
    yield from answer.authority
    yield from answer.additional


def _aged(rrsets: list[dns.rrset.RRset], seconds: int) -> list[dns.rrset.RRset]:
    return [dns.rrset.from_rdata_list(r.name, max(0, r.ttl - seconds), list(r)) for r in rrsets if len(r)]
