"""DNS messages in, DNS messages out: parsing, checks, and rendering within the transport's size limit.

`handle_now` turns a query's wire bytes into the reply's, or into a `Deferred` when an upstream must be
asked (`finish` completes it), or None when nothing may be sent back (no header to answer, or the message is
itself a response). Malformed queries get FORMERR, opcodes other than QUERY and meta-types (AXFR, IXFR, ...)
NOTIMP, classes other than IN REFUSED, an EDNS version above 0 BADVERS (RFC 6891).

Rendered replies the zone gave alone (nothing from an upstream, whose TTLs run down) are kept, keyed by
the query's bytes after its id and the transport, for as long as the zone's `generation` stays the same
(any change of a Service, EndpointSlice or watched pod starts afresh): a query asked again (every pod of a
Deployment resolving the same Service) is answered by putting its id in front of the kept bytes, without
parsing or rendering.

Size (RFC 1035 §4.2.1, RFC 6891 §7): a UDP reply fits 512 bytes, or the EDNS payload the client offered
capped at ``max_udp_size``; a TCP reply fits 65535. What does not fit is cut at a whole RRset and, when the
cut falls before the additional section, the TC bit tells the client to ask again over TCP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from kubelite.proxy.dns.answer import Answer
from kubelite.proxy.dns.config import DEFAULT_MAX_UDP_SIZE
from kubelite.proxy.dns.resolver import Pending, Resolver

log = logging.getLogger(__name__)

CLASSIC_UDP_SIZE = 512
MAX_TCP_SIZE = 65535
HEADER_SIZE = 12
# Rendered replies kept at most (all dropped at once when full: a flood of distinct names stays cheap);
# 0 keeps none.
DEFAULT_REPLY_CACHE_SIZE = 10_000


@dataclass(slots=True)
class Deferred:
    """A query whose answer needs an upstream: pass it to `MessageHandler.finish`."""

    query: dns.message.Message
    pending: Pending
    udp: bool


class MessageHandler:
    def __init__(self, resolver: Resolver, *, max_udp_size: int = DEFAULT_MAX_UDP_SIZE,
                 reply_cache_size: int = DEFAULT_REPLY_CACHE_SIZE) -> None:
        self.resolver = resolver
        self.max_udp_size = max(CLASSIC_UDP_SIZE, max_udp_size)
        self.reply_cache_size = reply_cache_size
        self._replies: dict[bytes, bytes] = {}
        self._replies_generation: int | None = None

    def handle_now(self, wire: bytes, *, udp: bool) -> bytes | Deferred | None:
        generation = self.resolver.zone.generation()
        if generation != self._replies_generation:
            self._replies.clear()
            self._replies_generation = generation
        key = (b"u" if udp else b"t") + wire[2:]
        kept = self._replies.get(key)
        if kept is not None:
            return wire[:2] + kept
        reply, keep = self._handle(wire, udp)
        if keep and isinstance(reply, bytes) and generation is not None and self.reply_cache_size > 0:
            if len(self._replies) >= self.reply_cache_size:
                self._replies.clear()
            self._replies[key] = reply[2:]
        return reply

    def _handle(self, wire: bytes, udp: bool) -> tuple[bytes | Deferred | None, bool]:
        """The reply, and whether it may be kept for the same query asked again."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None, False
        except dns.exception.DNSException as e:
            log.debug("dns: malformed query: %r", e)
            return _formerr(wire), True
        if query.flags & dns.flags.QR:
            return None, False
        error = _refusal(query)
        if error is not None:
            return self._render(query, Answer(error), udp), True
        question = query.question[0]
        result = self.resolver.local(question.name, question.rdtype)
        if isinstance(result, Pending):
            return Deferred(query, result, udp), False
        return self._render(query, result, udp), not result.upstream

    async def finish(self, deferred: Deferred) -> bytes:
        answer = await self.resolver.finish(deferred.pending)
        return self._render(deferred.query, answer, deferred.udp)

    async def handle(self, wire: bytes, *, udp: bool) -> bytes | None:
        result = self.handle_now(wire, udp=udp)
        return await self.finish(result) if isinstance(result, Deferred) else result

    def _render(self, query: dns.message.Message, answer: Answer, udp: bool) -> bytes:
        response = dns.message.make_response(query, recursion_available=True, our_payload=self.max_udp_size)
        response.set_rcode(answer.rcode)
        if answer.authoritative:
            response.flags |= dns.flags.AA
        response.answer = answer.answer
        response.authority = answer.authority
        response.additional = answer.additional
        if not udp:
            limit = MAX_TCP_SIZE
        elif query.edns >= 0:
            limit = min(max(query.payload, CLASSIC_UDP_SIZE), self.max_udp_size)
        else:
            limit = CLASSIC_UDP_SIZE
        return response.to_wire(max_size=limit, prefer_truncation=True)


def _refusal(query: dns.message.Message) -> dns.rcode.Rcode | None:
    """The error rcode a query gets before any lookup, or None when it is a question to answer."""
    if query.edns > 0:
        return dns.rcode.BADVERS
    if query.opcode() != dns.opcode.QUERY:
        return dns.rcode.NOTIMP
    if len(query.question) != 1:
        return dns.rcode.FORMERR
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return dns.rcode.REFUSED
    if dns.rdatatype.is_metatype(question.rdtype) and question.rdtype != dns.rdatatype.ANY:
        return dns.rcode.NOTIMP
    return None


def _formerr(wire: bytes) -> bytes | None:
    """A FORMERR reply echoing the id (and RD) of a query that could not be parsed; None if not even the
    header is there, or the message claims to be a response (never answer those: reflection loops)."""
    if len(wire) < HEADER_SIZE:
        return None
    flags = int.from_bytes(wire[2:4], "big")
    if flags & dns.flags.QR:
        return None
    reply = dns.message.Message(id=int.from_bytes(wire[:2], "big"))
    reply.flags = dns.flags.QR | (flags & dns.flags.RD)
    reply.set_rcode(dns.rcode.FORMERR)
    return reply.to_wire()
