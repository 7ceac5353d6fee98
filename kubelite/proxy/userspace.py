"""The userspace proxy: the fallback where nftables cannot be used. Connections are accepted by this
process and copied to an endpoint, as kube-proxy's old userspace mode did.

For every TCP or UDP Service port (SCTP is left out, with a warning) it listens
- on the ClusterIP itself: the ClusterIPs are added to a dummy interface ``kubelite-svc`` (as kube-proxy's
  IPVS mode does with ``kube-ipvs0``; an empty bridge where the kernel has no dummy driver), so that
  traffic to them is delivered to this node, pods' included;
- on the NodePort, on the node's addresses (``node_ips``; all addresses when none are given);
- on external IPs (only where the address is local to the node).

A new connection goes to an endpoint chosen the way the nftables rules choose it: the port's endpoints by
traffic policy (`services.categorize`), at random, or the client's previous one under ClientIP affinity;
an endpoint refusing the connection is skipped for the next. With no endpoint the connection is closed at
once (TCP reset). UDP is relayed per client address through a socket connected to one endpoint, dropped
after `UDP_IDLE_SECONDS` of silence. Client addresses are not preserved (the endpoint sees this node).

With ``netns`` every socket and the dummy interface are made inside that network namespace (`NetnsThread`).
Syncs follow the same `SyncRunner` rules as the nftables proxy; each reconciles the listeners with what the
Services want (new ones opened, gone ones closed, endpoint lists swapped in place).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute

from kubelite.client.events import EventRecorder
from kubelite.proxy.config import ProxyConfig
from kubelite.proxy.netns import NetnsThread
from kubelite.proxy.services import IPV4, Endpoint, PortPlan, ServicePortName, plan_service, slice_service_key
from kubelite.proxy.source import ServiceSource
from kubelite.proxy.syncrunner import SyncRunner

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DUMMY_INTERFACE = "kubelite-svc"
UDP_IDLE_SECONDS = 30.0
CONNECT_TIMEOUT = 5.0
BUFFER = 65536
# What a listener accepts: (address, port, protocol).
Address = tuple[str, int, str]


@dataclass
class Target:
    """Where a listener's connections go: the endpoints of one Service port for one kind of traffic."""

    name: ServicePortName
    endpoints: tuple[Endpoint, ...] = ()
    affinity_seconds: int | None = None
    # client address → (endpoint, when it was last used)
    affinity: dict[str, tuple[Endpoint, float]] = field(default_factory=dict)

    def pick(self, client: str, now: float, exclude: set[Endpoint]) -> Endpoint | None:
        candidates = [e for e in self.endpoints if e not in exclude]
        if not candidates:
            return None
        if self.affinity_seconds is not None:
            sticky = self.affinity.get(client)
            if sticky is not None and now - sticky[1] < self.affinity_seconds and sticky[0] in candidates:
                self.affinity[client] = (sticky[0], now)
                return sticky[0]
        choice = random.choice(candidates)
        if self.affinity_seconds is not None:
            self.affinity[client] = (choice, now)
        return choice


class Listener:
    """One listening socket (TCP or UDP) and the connections it relays."""

    def __init__(self, address: Address, target: Target, proxy: UserspaceProxier) -> None:
        self.address = address
        self.target = target
        self.proxy = proxy
        self.server: asyncio.Server | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        ip, port, protocol = self.address
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
        sock = await self.proxy.thread.run(_bound_socket, family, kind, ip, port)
        loop = asyncio.get_running_loop()
        if protocol == "tcp":
            self.server = await asyncio.start_server(self._accepted, sock=sock, limit=BUFFER)
        else:
            self.transport, _ = await loop.create_datagram_endpoint(lambda: _UdpFront(self), sock=sock)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        if self.transport is not None:
            self.transport.close()
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)

    def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._relay(reader, writer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        tried: set[Endpoint] = set()
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while upstream is None:
            endpoint = self.target.pick(str(peer[0]), time.monotonic(), tried)
            if endpoint is None:
                _reset(writer)
                return
            tried.add(endpoint)
            try:
                upstream = await self.proxy.connect(endpoint)
            except OSError as e:
                log.debug("%s: endpoint %s: %s", self.target.name, endpoint, e)
        up_reader, up_writer = upstream
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()


class _UdpFront(asyncio.DatagramProtocol):
    """A UDP listener: one upstream socket per client address."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.DatagramTransport | None = None
        self.flows: dict[Any, _UdpFlow] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        flow = self.flows.get(addr)
        if flow is not None:
            flow.send(data)
            return
        endpoint = self.listener.target.pick(str(addr[0]), time.monotonic(), set())
        if endpoint is None:
            return
        flow = _UdpFlow(self, addr)
        self.flows[addr] = flow
        flow.queue.append(data)
        task = asyncio.ensure_future(flow.open(endpoint))
        self.listener.tasks.add(task)
        task.add_done_callback(self.listener.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        for flow in list(self.flows.values()):
            flow.close()


class _UdpFlow(asyncio.DatagramProtocol):
    def __init__(self, front: _UdpFront, client: Any) -> None:
        self.front = front
        self.client = client
        self.queue: list[bytes] = []
        self.upstream: asyncio.DatagramTransport | None = None
        self.idle: asyncio.TimerHandle | None = None

    async def open(self, endpoint: Endpoint) -> None:
        try:
            family = socket.AF_INET6 if ":" in endpoint.ip else socket.AF_INET
            sock = await self.front.listener.proxy.thread.run(_connected_udp, family, endpoint.ip, endpoint.port)
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        except OSError as e:
            log.debug("udp endpoint %s: %s", endpoint, e)
            self.close()
            return
        for data in self.queue:
            transport.sendto(data)
        self.queue.clear()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.DatagramTransport)
        self.upstream = transport
        self._touch()

    def send(self, data: bytes) -> None:
        if self.upstream is None:
            self.queue.append(data)
        else:
            self.upstream.sendto(data)
            self._touch()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.front.transport is not None:
            self.front.transport.sendto(data, self.client)
        self._touch()

    def error_received(self, exc: Exception) -> None:
        log.debug("udp flow %s: %s", self.client, exc)

    def _touch(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self.close)

    def close(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        if self.upstream is not None:
            self.upstream.close()
        self.front.flows.pop(self.client, None)


class UserspaceProxier:
    """The userspace proxy of one node (see the module docstring). Same interface as `NftablesProxier`."""

    def __init__(self, config: ProxyConfig, source: ServiceSource, *, recorder: EventRecorder | None = None,
                 interface: str = DUMMY_INTERFACE, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.source = source
        self.recorder = recorder
        self.interface = interface
        self.thread = NetnsThread(config.netns, name="userspace-proxy")
        self.listeners: dict[Address, Listener] = {}
        self.cluster_ips: set[str] = set()
        self.synced = False
        self._failed_addresses: set[Address] = set()
        self.runner = SyncRunner(self.sync, min_interval=config.min_sync_period, max_interval=config.sync_period,
                                 clock=clock)

    def service_changed(self, key: str) -> None:
        self.runner.request()

    def slice_changed(self, slice_: Obj) -> None:
        if slice_service_key(slice_) is not None:
            self.runner.request()

    def set_synced(self) -> None:
        self.synced = True
        self.runner.request()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.runner.run(stop)
        finally:
            for listener in list(self.listeners.values()):
                await listener.close()
            self.listeners.clear()

    async def sync(self) -> None:
        """Reconcile the listeners and the dummy interface's addresses with every Service."""
        if not self.synced:
            return
        wanted: dict[Address, Target] = {}
        cluster_ips: set[str] = set()
        for key in sorted(self.source.service_keys()):
            svc = self.source.service(key)
            slices = self.source.slices(key)
            for family in self.config.ip_families:
                plan = plan_service(svc, slices, family=family, node_name=self.config.node_name,
                                    dual_stack=self.config.dual_stack)
                for port_plan in plan.ports:
                    if port_plan.port.name.protocol == "sctp":
                        continue
                    cluster_ips.add(port_plan.port.cluster_ip)
                    self._want(wanted, port_plan)
        await self._sync_addresses(cluster_ips)
        for address in list(self.listeners):
            if address not in wanted:
                await self.listeners.pop(address).close()
        for address, target in wanted.items():
            listener = self.listeners.get(address)
            if listener is not None:
                listener.target.endpoints = target.endpoints
                listener.target.affinity_seconds = target.affinity_seconds
                continue
            listener = Listener(address, target, self)
            try:
                await listener.start()
            except OSError as e:
                if address not in self._failed_addresses:
                    log.warning("userspace proxy: cannot listen on %s:%d/%s for %s: %s", *address, target.name, e)
                self._failed_addresses.add(address)
                continue
            self._failed_addresses.discard(address)
            self.listeners[address] = listener

    def _want(self, wanted: dict[Address, Target], plan: PortPlan) -> None:
        sp, eps = plan.port, plan.endpoints
        internal = eps.local if sp.internal_local else eps.cluster
        external = eps.local if sp.external_policy_local else eps.cluster
        proto = sp.name.protocol
        wanted[(sp.cluster_ip, sp.port, proto)] = Target(sp.name, internal, sp.affinity_seconds)
        for ip in sp.external_ips:
            wanted[(ip, sp.port, proto)] = Target(sp.name, external, sp.affinity_seconds)
        if sp.node_port:
            for ip in self._node_addresses(IPV4 if ":" not in sp.cluster_ip else "IPv6"):
                wanted[(ip, sp.node_port, proto)] = Target(sp.name, external, sp.affinity_seconds)

    def _node_addresses(self, family: str) -> list[str]:
        ips = [ip for ip in self.config.node_ips if (":" in ip) == (family != IPV4)]
        return ips or (["0.0.0.0"] if family == IPV4 else ["::"])

    async def connect(self, endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        family = socket.AF_INET6 if ":" in endpoint.ip else socket.AF_INET
        sock = await self.thread.run(socket.socket, family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, (endpoint.ip, endpoint.port)), CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            sock.close()
            raise OSError(errno.ECONNREFUSED if not isinstance(e, TimeoutError) else errno.ETIMEDOUT, str(e)) from e
        return await asyncio.open_connection(sock=sock, limit=BUFFER)

    async def _sync_addresses(self, wanted: set[str]) -> None:
        """Put exactly ``wanted`` on the dummy interface (created when first needed)."""
        if wanted == self.cluster_ips:
            return
        try:
            await self.thread.run(_set_addresses, self.interface, wanted, self.cluster_ips)
        except Exception as e:  # pyroute2's NetlinkError, permissions
            log.warning("userspace proxy: cannot put ClusterIPs on %s (ClusterIPs will not answer): %s",
                        self.interface, e)
            return
        self.cluster_ips = set(wanted)

    async def cleanup(self) -> None:
        """Remove the dummy interface (and with it every ClusterIP on it)."""
        try:
            await self.thread.run(_remove_interface, self.interface)
        except Exception as e:
            log.warning("userspace proxy: cannot remove %s: %s", self.interface, e)
        self.cluster_ips = set()

    def close(self) -> None:
        self.thread.close()


# Netlink calls run in the proxy's `NetnsThread`, so that their sockets are made in its namespace. (Not
# pyroute2's ``netns=``: that forks a helper and stops it with SIGTERM, which the helper's inherited asyncio
# signal handler reports to this process's event loop as a SIGTERM of its own.)

def _set_addresses(interface: str, wanted: set[str], current: set[str]) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if not found:
            try:
                ipr.link("add", ifname=interface, kind="dummy")
            except Exception as e:  # NetlinkError: EOPNOTSUPP without the dummy module
                # An empty bridge does the same job: its addresses are local, and nothing is attached to it.
                log.info("userspace proxy: no dummy interfaces here (%s); using an empty bridge", e)
                ipr.link("add", ifname=interface, kind="bridge")
            found = ipr.link_lookup(ifname=interface)
            ipr.link("set", index=found[0], state="up")
        index = found[0]
        for ip in sorted(wanted - current):
            with contextlib.suppress(Exception):  # already there (a previous run)
                ipr.addr("add", index=index, address=ip, prefixlen=32 if ":" not in ip else 128)
        for ip in sorted(current - wanted):
            with contextlib.suppress(Exception):
                ipr.addr("del", index=index, address=ip, prefixlen=32 if ":" not in ip else 128)


def _remove_interface(interface: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=interface)
        if found:
            ipr.link("del", index=found[0])


def _bound_socket(family: int, kind: int, ip: str, port: int) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A ClusterIP may reach the dummy interface a moment after the socket is bound.
        sock.setsockopt(socket.SOL_IP, getattr(socket, "IP_FREEBIND", 15), 1)
        sock.bind((ip, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _connected_udp(family: int, ip: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.connect((ip, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a reset (SO_LINGER 0): the client sees 'connection refused/reset' at once."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on (half-close), so that request/response protocols finish."""
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
