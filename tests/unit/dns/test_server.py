"""The UDP and TCP transports on loopback: one port for both, several queries per TCP connection, idle
connections closed, replies from the address asked (a wildcard listener in a network namespace of its own),
clients outside the allowed networks ignored."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest

from kubelite.proxy.dns.clients import ClientFilter
from kubelite.proxy.dns.handler import MessageHandler
from kubelite.proxy.dns.records import Zone
from kubelite.proxy.dns.resolver import Resolver
from kubelite.proxy.dns.server import DNSServer
from kubelite.proxy.dns.upstream import Forwarder
from tests.unit.dns.builders import Cluster, service


def make_handler() -> MessageHandler:
    return MessageHandler(Resolver(Zone(Cluster(service("web", cluster_ip="10.96.0.20")).view), Forwarder([])))


@pytest.fixture
async def server() -> AsyncIterator[DNSServer]:
    async with DNSServer(make_handler(), ["127.0.0.1"], 0, tcp_idle_timeout=0.3) as s:
        yield s


def query_wire(name: str = "web.default.svc.cluster.local") -> bytes:
    return dns.message.make_query(name, "A").to_wire()


async def test_udp_and_tcp_on_one_port(server: DNSServer) -> None:
    assert server.port != 0 and server.endpoints == [("127.0.0.1", server.port)]
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    for ask in (dns.asyncquery.udp, dns.asyncquery.tcp):
        response = await ask(query, "127.0.0.1", timeout=2.0, port=server.port)
        assert [rd.to_text() for rd in response.answer[0]] == ["10.96.0.20"]


async def test_several_queries_on_one_tcp_connection_then_idle_close(server: DNSServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        wire = query_wire()
        writer.write((len(wire).to_bytes(2, "big") + wire) * 3)  # pipelined
        for _ in range(3):
            size = int.from_bytes(await reader.readexactly(2), "big")
            assert dns.message.from_wire(await reader.readexactly(size)).rcode() == dns.rcode.NOERROR
        async with asyncio.timeout(2.0):
            assert await reader.read() == b""  # closed by the server after its idle timeout
    finally:
        writer.close()


async def test_garbage_datagrams_do_not_stop_the_server(server: DNSServer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00", ("127.0.0.1", server.port))
        sock.sendto(b"\xff" * 40, ("127.0.0.1", server.port))
    response = await dns.asyncquery.udp(dns.message.make_query("web.default.svc.cluster.local", "A"),
                                        "127.0.0.1", timeout=2.0, port=server.port)
    assert response.rcode() == dns.rcode.NOERROR


async def test_a_fixed_port_in_use_is_an_error(server: DNSServer) -> None:
    with pytest.raises(OSError):
        async with DNSServer(make_handler(), ["127.0.0.1"], server.port):
            pass


async def test_closing_drops_open_tcp_clients() -> None:
    s = DNSServer(make_handler(), ["127.0.0.1"], 0)
    await s.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
    try:
        await s.close()
        async with asyncio.timeout(2.0):
            assert await reader.read() == b""
    finally:
        writer.close()


# --- wildcard listeners: the reply leaves from the address the query was sent to ---------------------------

def _wildcard_exchange(netns_path: str, result: dict[str, object]) -> None:
    """In a thread that entered ``netns_path``: a server on 0.0.0.0, a client asking 127.0.0.2 from
    127.0.0.1; records the source address of the reply."""
    from pyroute2 import netns

    netns.setns(netns_path, flags=0)

    async def exchange() -> None:
        async with DNSServer(make_handler(), ["0.0.0.0"], 0) as s:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                await loop.sock_sendto(sock, query_wire(), ("127.0.0.2", s.port))
                async with asyncio.timeout(2.0):
                    data, source = await loop.sock_recvfrom(sock, 4096)
            result["source"] = source[0]
            result["rcode"] = dns.message.from_wire(data).rcode()

    try:
        asyncio.run(exchange())
    except BaseException as e:
        result["error"] = e


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a network namespace")
async def test_wildcard_replies_come_from_the_address_asked() -> None:
    from tests.support.network import node_netns

    async with node_netns("kldns-") as path:
        result: dict[str, object] = {}
        thread = threading.Thread(target=_wildcard_exchange, args=(str(path), result))
        thread.start()
        await asyncio.to_thread(thread.join, 10.0)
    assert "error" not in result, result.get("error")
    assert result == {"source": "127.0.0.2", "rcode": dns.rcode.NOERROR}


def test_client_filter() -> None:
    default = ClientFilter()
    for allowed in ("10.244.1.5", "172.20.0.1", "192.168.1.1", "100.64.0.9", "127.0.0.1", "fd00::5", "::1"):
        assert default.allows(allowed), allowed
    for refused in ("8.8.8.8", "2001:db8::1", "not-an-ip"):
        assert not default.allows(refused), refused
    assert ClientFilter(["203.0.113.0/24"]).allows("203.0.113.7")


async def test_clients_outside_the_allowed_networks_get_nothing() -> None:
    async with DNSServer(make_handler(), ["127.0.0.1"], 0, clients=ClientFilter(["10.0.0.0/8"])) as s:
        query = dns.message.make_query("web.default.svc.cluster.local", "A")
        with pytest.raises(dns.exception.Timeout):
            await dns.asyncquery.udp(query, "127.0.0.1", timeout=0.3, port=s.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        try:
            wire = query.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            async with asyncio.timeout(2.0):
                try:
                    assert await reader.read() == b""
                except ConnectionResetError:
                    pass  # closed with our query unread: a reset, no answer either
        finally:
            writer.close()
