"""A fake upstream DNS server on loopback, for tests of forwarding: never a real resolver, never the internet.

`FakeUpstream` answers UDP and TCP on one 127.0.0.1 port from ``records`` (name → zone-file lines such as
``"A 192.0.2.1"``), NXDOMAIN with an SOA otherwise, and counts what it was asked. Knobs: ``truncate_udp``
(UDP answers come back empty with TC set, so clients must retry over TCP), ``silent`` (no answer at all: a
dead server), ``rcode`` (answer every query with that rcode), ``ttl``, ``delay`` (seconds before answering).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

SOA_TEXT = "ns.upstream.test. hostmaster.upstream.test. 1 3600 600 86400 60"


@dataclass
class FakeUpstream:
    records: dict[str, list[str]] = field(default_factory=dict)
    ttl: int = 300
    truncate_udp: bool = False
    silent: bool = False
    rcode: dns.rcode.Rcode | None = None
    delay: float = 0.0
    port: int = 0
    udp_queries: Counter[str] = field(default_factory=Counter)
    tcp_queries: Counter[str] = field(default_factory=Counter)
    _transport: asyncio.DatagramTransport | None = None
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def queries(self, name: str) -> int:
        key = name.lower().rstrip(".") + "."
        return self.udp_queries[key] + self.tcp_queries[key]

    def answer(self, wire: bytes) -> dns.message.Message:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query, recursion_available=True)
        if self.rcode is not None:
            response.set_rcode(self.rcode)
            return response
        question = query.question[0]
        lines = self.records.get(question.name.to_text().lower().rstrip("."))
        if lines is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text("upstream.test.", 60, "IN", "SOA", SOA_TEXT))
            return response
        for line in lines:
            rdtype, _, data = line.partition(" ")
            if dns.rdatatype.from_text(rdtype) in (question.rdtype, dns.rdatatype.CNAME):
                response.answer.append(dns.rrset.from_text(question.name, self.ttl, "IN", rdtype, data))
        if not response.answer:
            response.authority.append(dns.rrset.from_text("upstream.test.", 60, "IN", "SOA", SOA_TEXT))
        return response

    async def __aenter__(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        wanted = self.port
        for attempt in range(10):
            transport, _ = await loop.create_datagram_endpoint(lambda: _UDP(self),
                                                               local_addr=("127.0.0.1", wanted))
            self.port = transport.get_extra_info("sockname")[1]
            try:
                self._server = await asyncio.start_server(self._serve_tcp, "127.0.0.1", self.port)
            except OSError:
                transport.close()
                if wanted or attempt == 9:  # a fixed port that is taken, or no luck at all
                    raise
                continue
            self._transport = transport
            return self
        raise AssertionError("unreachable")

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def _respond_udp(self, data: bytes, peer: tuple[str, int]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        response = self.answer(data)
        if self.truncate_udp:
            response.answer, response.authority = [], []
            response.flags |= dns.flags.TC
        assert self._transport is not None
        self._transport.sendto(response.to_wire(), peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                wire = await reader.readexactly(size)
                self.tcp_queries[_qname(wire)] += 1
                if self.silent:
                    continue
                reply = self.answer(wire).to_wire()
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _qname(wire: bytes) -> str:
    return dns.message.from_wire(wire).question[0].name.to_text().lower()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.fake.udp_queries[_qname(data)] += 1
        if self.fake.silent:
            return
        task = asyncio.get_running_loop().create_task(self.fake._respond_udp(data, addr))
        self.fake._tasks.add(task)
        task.add_done_callback(self.fake._tasks.discard)
