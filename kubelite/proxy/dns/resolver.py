"""One question → one `Answer`: the cluster zone first, then the upstreams, following CNAMEs.

A name the zone owns is answered from it; any other goes to the `Forwarder`. A zone answer that is a CNAME
(an ExternalName Service) is followed, through the zone again or upstream, so that a stub resolver gets the
whole chain and the addresses at its end in one reply (stub resolvers such as glibc's do not chase CNAMEs
themselves). The final rcode is the last link's (RFC 6604), the AA bit the first's.

`local` answers without awaiting whenever no upstream is needed (the zone and the cache of upstream
answers suffice), which is the common case: the server then replies straight from its read callback,
without a task per query; `finish` does the rest when an upstream is needed; `resolve` is both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from kubelite.proxy.dns.answer import Answer
from kubelite.proxy.dns.records import Zone
from kubelite.proxy.dns.upstream import Forwarder

# The longest CNAME chain followed (a loop of ExternalName Services ends here, in SERVFAIL).
MAX_CHAIN = 8


@dataclass(slots=True)
class Pending:
    """What `Resolver.local` could not finish: ``name`` must be asked upstream, after the ``chain`` so far."""

    name: dns.name.Name
    qtype: dns.rdatatype.RdataType
    chain: list[dns.rrset.RRset] = field(default_factory=list)
    authoritative: bool = False

    def complete(self, upstream: Answer) -> Answer:
        return Answer(upstream.rcode, self.chain + upstream.answer, upstream.authority, upstream.additional,
                      authoritative=self.authoritative, upstream=True)


class Resolver:
    def __init__(self, zone: Zone, forwarder: Forwarder) -> None:
        self.zone = zone
        self.forwarder = forwarder

    def local(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer | Pending:
        """The answer when the zone and the upstream cache can give it, else what is left to ask upstream."""
        chain: list[dns.rrset.RRset] = []
        name = qname
        authoritative: bool | None = None
        seen = {qname}
        for _ in range(MAX_CHAIN):
            answer = self.zone.lookup(name, qtype)
            if answer is None:
                pending = Pending(name, qtype, chain, bool(authoritative))
                cached = self.forwarder.cached(name, qtype)
                return pending if cached is None else pending.complete(cached)
            if authoritative is None:
                authoritative = answer.authoritative
            chain += answer.answer
            if answer.chase is None:
                return Answer(answer.rcode, chain, answer.authority, answer.additional, authoritative=authoritative)
            if answer.chase in seen:
                break
            seen.add(answer.chase)
            name = answer.chase
        return Answer(dns.rcode.SERVFAIL, chain, authoritative=bool(authoritative))

    async def finish(self, pending: Pending) -> Answer:
        """Ask upstream what `local` left pending and complete the answer."""
        return pending.complete(await self.forwarder.forward(pending.name, pending.qtype))

    async def resolve(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType) -> Answer:
        result = self.local(qname, qtype)
        return result if isinstance(result, Answer) else await self.finish(result)
