"""The DNS transports: UDP and TCP (RFC 1035 §4.2, RFC 7766) on each listen address, one port for all.

UDP: a non-blocking socket read from the event loop's reader callback. A query the zone answers alone is
answered right there; one that needs an upstream gets a task. On a wildcard address ("0.0.0.0", "::") the
socket asks for IP_PKTINFO / IPV6_PKTINFO and every reply is sent from the address its query was sent to:
without that the kernel picks the source by route, and a reply to a query that the service proxy DNATed from
the kube-dns ClusterIP to this node's address would leave from another address (the pod bridge's, say),
miss the conntrack entry and be dropped by the client. (asyncio's DatagramProtocol cannot carry ancillary
data, hence the plain socket; miekg/dns, under CoreDNS, does the same.)

TCP: asyncio streams; each message is preceded by its 2-byte length; queries on one connection are
answered in order; a connection idle for ``idle_timeout`` seconds is closed (RFC 7766 §6.2.3).

Clients outside the `ClientFilter`'s networks get nothing: their datagrams are dropped, their connections
closed.

`DNSServer` is an async context manager: entering binds every socket (port 0 picks a free port that is then
used for every address and both protocols), leaving closes them, drops the clients and waits for the tasks.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Sequence

from kubelite.proxy.dns.clients import ClientFilter
from kubelite.proxy.dns.handler import Deferred, MessageHandler

log = logging.getLogger(__name__)

# Linux's IP_PKTINFO (Python 3.11's socket module does not export it) and the struct sizes of in_pktinfo
# (ifindex, spec_dst, addr) and in6_pktinfo (addr, ifindex).
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_IN_PKTINFO = struct.Struct("=I4s4s")
_IN6_PKTINFO = struct.Struct("=16sI")
_ANCILLARY_SIZE = socket.CMSG_SPACE(max(_IN_PKTINFO.size, _IN6_PKTINFO.size))
MAX_DATAGRAM = 65535
# Datagrams read per reader callback before other work gets a turn.
_READ_BURST = 64
_PORT_ATTEMPTS = 20

Ancillary = list[tuple[int, int, bytes]]


class UDPListener:
    """One UDP socket answering DNS queries; see the module docstring."""

    def __init__(self, handler: MessageHandler, address: str, port: int, clients: ClientFilter) -> None:
        self.handler = handler
        self.clients = clients
        ip = ipaddress.ip_address(address)
        self._v6 = ip.version == 6
        self._wildcard = ip.is_unspecified
        self._sock = socket.socket(socket.AF_INET6 if self._v6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            if self._v6:
                self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if self._wildcard:
                if self._v6:
                    self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                else:
                    self._sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self._sock.bind((address, port))
        except BaseException:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    async def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def _readable(self) -> None:
        for _ in range(_READ_BURST):
            try:
                data, ancdata, _flags, peer = self._sock.recvmsg(MAX_DATAGRAM, _ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. an ICMP error queued for an earlier reply
                log.debug("dns: udp receive failed: %r", e)
                continue
            if not self.clients.allows(peer[0]):
                continue
            reply_anc = self._reply_ancillary(ancdata)
            try:
                reply = self.handler.handle_now(data, udp=True)
            except Exception:
                log.exception("dns: failed to answer a query from %s", peer)
                continue
            if isinstance(reply, Deferred):
                task = self._loop.create_task(self._finish(reply, peer, reply_anc))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif reply is not None:
                self._send(reply, peer, reply_anc)

    async def _finish(self, deferred: Deferred, peer: tuple[str, int], anc: Ancillary) -> None:
        try:
            reply = await self.handler.finish(deferred)
        except Exception:
            log.exception("dns: failed to answer a query from %s", peer)
            return
        self._send(reply, peer, anc)

    def _send(self, reply: bytes, peer: tuple[str, int], anc: Ancillary) -> None:
        try:
            self._sock.sendmsg([reply], anc, 0, peer)
        except OSError as e:  # a full send buffer drops the reply: the client asks again, as over any UDP
            log.debug("dns: udp reply to %s failed: %r", peer, e)

    def _reply_ancillary(self, ancdata: Ancillary) -> Ancillary:
        """Ancillary data that makes the reply leave from the address the query arrived at."""
        for level, kind, data in ancdata:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
                _ifindex, _spec_dst, dst = _IN_PKTINFO.unpack_from(data)
                return [(socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, dst, bytes(4)))]
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= _IN6_PKTINFO.size:
                dst6, ifindex = _IN6_PKTINFO.unpack_from(data)
                # The interface matters for link-local addresses; for the others 0 lets routing choose.
                keep = ifindex if ipaddress.IPv6Address(dst6).is_link_local else 0
                return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(dst6, keep))]
        return []


class TCPListener:
    """One TCP listening socket answering length-prefixed DNS queries."""

    def __init__(self, handler: MessageHandler, clients: ClientFilter, *, idle_timeout: float) -> None:
        self.handler = handler
        self.clients = clients
        self.idle_timeout = idle_timeout
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, address: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, address, port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._connections:
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections)
        if self._server is not None:
            # Last: from Python 3.12 on this also waits for the connections to end.
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            peer = writer.get_extra_info("peername")
            if not peer or not self.clients.allows(peer[0]):
                return
            while True:
                async with asyncio.timeout(self.idle_timeout):
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    wire = await reader.readexactly(size)
                reply = await self.handler.handle(wire, udp=False)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # Only `close` cancels these tasks, and it waits for them: end quietly (Python 3.11's stream
            # callback would log a cancelled connection task as an error).
            pass
        except Exception:
            log.exception("dns: tcp connection failed")
        finally:
            self._connections.discard(task)
            writer.close()


class DNSServer:
    """UDP and TCP listeners on every address of ``addresses``, all on one port."""

    def __init__(self, handler: MessageHandler, addresses: Sequence[str], port: int, *,
                 clients: ClientFilter | None = None, tcp_idle_timeout: float = 10.0) -> None:
        self.handler = handler
        self.clients = clients or ClientFilter()
        self.addresses = list(addresses)
        self.port = port
        self.tcp_idle_timeout = tcp_idle_timeout
        self._udp: list[UDPListener] = []
        self._tcp: list[TCPListener] = []

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """(address, port) of every listen address, once bound."""
        return [(address, self.port) for address in self.addresses]

    async def start(self) -> None:
        for attempt in range(_PORT_ATTEMPTS if self.port == 0 else 1):
            try:
                await self._bind(self.port)
                return
            except OSError as e:
                await self.close()
                # With port 0 the port the first socket got may be taken for another address or protocol.
                if e.errno != errno.EADDRINUSE or self.port != 0 or attempt == _PORT_ATTEMPTS - 1:
                    raise

    async def _bind(self, port: int) -> None:
        for address in self.addresses:
            udp = UDPListener(self.handler, address, port, self.clients)
            self._udp.append(udp)
            port = udp.port
            tcp = TCPListener(self.handler, self.clients, idle_timeout=self.tcp_idle_timeout)
            self._tcp.append(tcp)
            await tcp.start(address, port)
        self.port = port

    async def close(self) -> None:
        udp, tcp = self._udp, self._tcp
        self._udp, self._tcp = [], []
        for listener in udp:
            await listener.close()
        for tcp_listener in tcp:
            await tcp_listener.close()

    async def __aenter__(self) -> DNSServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
