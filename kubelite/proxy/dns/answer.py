"""`Answer`: the sections and rcode of one reply, whoever produced it (the cluster zone or an upstream)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rrset


@dataclass(slots=True)
class Answer:
    rcode: dns.rcode.Rcode
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    # The answer is a CNAME to this name, which the caller should resolve further.
    chase: dns.name.Name | None = None
    # Whether the answer comes from the zone owning the name (the AA bit).
    authoritative: bool = False
    # Whether any of it came from an upstream: its TTLs then run down with time, so it must not be kept as is.
    upstream: bool = False


def servfail() -> Answer:
    return Answer(dns.rcode.SERVFAIL)
