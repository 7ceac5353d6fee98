"""Forwarding names outside the cluster to the node's resolvers (CoreDNS's ``forward`` and ``cache``).

`Forwarder.forward(qname, qtype)` asks the upstreams one at a time, each for at most ``timeout`` seconds:
over UDP advertising an EDNS payload of ``payload`` bytes, again over TCP when the UDP answer is truncated
(dnspython's ``udp_with_fallback``). An upstream that times out, cannot be reached, answers garbage or
answers SERVFAIL/REFUSED makes way for the next; the one that answered last is asked first next time, so a
dead first nameserver costs one timeout, not one per query. When none answers, the result is SERVFAIL (or
the last SERVFAIL/REFUSED heard).

Answers go through an `AnswerCache`, and concurrent questions for the same name and type share one upstream
query (a burst of identical questions from the pods of a Deployment costs one round trip).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import dns.asyncquery
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kubelite.proxy.dns.answer import Answer, servfail
from kubelite.proxy.dns.cache import AnswerCache, Key
from kubelite.proxy.dns.config import DEFAULT_MAX_UDP_SIZE, Upstream

log = logging.getLogger(__name__)

_RETRY_NEXT = (dns.rcode.SERVFAIL, dns.rcode.REFUSED)


class Forwarder:
    def __init__(self, upstreams: Sequence[Upstream], *, timeout: float = 2.0, cache: AnswerCache | None = None,
                 payload: int = DEFAULT_MAX_UDP_SIZE) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.cache = cache
        self.payload = payload
        self._first = 0  # index of the upstream to ask first
        self._inflight: dict[Key, asyncio.Task[Answer]] = {}

    def cached(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer | None:
        """The cached answer for ``qname``/``qtype``, if there is one still valid."""
        return self.cache.get(_key(qname, qtype)) if self.cache is not None else None

    async def forward(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer:
        """The upstreams' answer for ``qname``/``qtype`` (class IN); never raises for a DNS failure."""
        cached = self.cached(qname, qtype)
        if cached is not None:
            return cached
        key = _key(qname, qtype)
        task = self._inflight.get(key)
        if task is None:
            # Its own task, so that the first asker giving up (a client's TCP connection closing) does not
            # cancel the query for the others, and the answer still reaches the cache.
            task = asyncio.create_task(self._ask_and_cache(key, qname, qtype), name=f"dns-forward {qname}")
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel the queries in flight."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _ask_and_cache(self, key: Key, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer:
        answer = await self._ask(qname, qtype)
        if self.cache is not None:
            self.cache.put(key, answer)
        return answer

    async def _ask(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer:
        if not self.upstreams:
            return servfail()
        result = servfail()
        count = len(self.upstreams)
        for step in range(count):
            index = (self._first + step) % count
            host, port = self.upstreams[index]
            query = dns.message.make_query(qname, qtype, dns.rdataclass.IN, use_edns=0, payload=self.payload)
            try:
                async with asyncio.timeout(self.timeout):
                    response, _ = await dns.asyncquery.udp_with_fallback(
                        query, host, port=port, ignore_unexpected=True)
            except (TimeoutError, OSError, EOFError, dns.exception.DNSException) as e:
                log.debug("dns: upstream %s port %d failed for %s: %r", host, port, qname, e)
                continue
            result = Answer(response.rcode(), list(response.answer), list(response.authority),
                            list(response.additional))
            if result.rcode in _RETRY_NEXT:
                continue
            self._first = index
            return result
        log.debug("dns: no upstream answered %s %s", qname, dns.rdatatype.to_text(qtype))
        return result


def _key(qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Key:
    return qname.to_text().lower(), int(qtype)
