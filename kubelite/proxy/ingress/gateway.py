"""The gateway: HTTP and HTTPS listeners that route each request by the current `RouteTable` and forward it.

Client connections are driven by callbacks, not by a task each: when a complete request head is in a
connection's buffer it is parsed and routed at once (keep-alive and pipelining come for free: the next
head is looked for when an exchange ends). Then:

- the fast path, for the common exchange — a request without a body or with a small one already
  received, not an upgrade, and an idle pooled connection to the first endpoint to try — writes the
  request to that connection and waits for the answer in its data callback; a response that is complete
  on arrival (no body, or a Content-Length body all there) goes to the client in one write and the
  connection back to the pool, with no task, future or timer involved;
- everything else runs the general path (`forward.Forwarder`) in one task for that request: connecting,
  retries on other endpoints (after a refused connection, or one that ended before any byte of the
  response to a request that may be sent again), streamed bodies both ways, 1xx, upgrades. A response
  whose head came on the fast path but whose body is still arriving is finished there too, and so is the
  replay of an idempotent request whose pooled connection turned out dead.

Answers of the gateway's own, each with a plain-text body saying why (`replies`): 400 (malformed request
or path), 404 (no rule matches and no default backend), 431 (head too large), 502 (no endpoint could be
reached, or it broke the exchange), 503 (the backend has no ready endpoint, its Service or port is
missing, or no table is loaded yet), 504 (no answer within ``read_timeout``).

Timeouts are deadlines on the connections (see `channel`), checked by one sweeper task. `swap` installs
a new table atomically: requests already routed keep their backend and finish; the next request on every
connection uses the new table. `close` stops listening, closes idle client connections and gives
requests in flight ``shutdown_grace`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from kubelite.proxy.ingress.channel import Channel
from kubelite.proxy.ingress.config import IngressConfig
from kubelite.proxy.ingress.forward import IDEMPOTENT, Forwarder
from kubelite.proxy.ingress.headers import ClientInfo, TrustedProxies, client_head, upstream_head
from kubelite.proxy.ingress.http1 import (
    BadMessage,
    RequestHead,
    ResponseHead,
    parse_request_head,
    parse_response_head,
    response_has_body,
)
from kubelite.proxy.ingress.pool import UpstreamPool
from kubelite.proxy.ingress.replies import error_response
from kubelite.proxy.ingress.routes import Endpoint, Route, RouteTable, normalize_host, normalize_path
from kubelite.proxy.ingress.tls import TLSStore

log = logging.getLogger(__name__)

_SHOWN = 200  # how much of a request's host or path an error body repeats
_HEAD_END = b"\r\n\r\n"


@dataclass(slots=True)
class _Client:
    """A client connection's state: who it is, and whether one of its requests is being answered."""

    info: ClientInfo
    busy: bool = False


@dataclass(slots=True)
class _Pending:
    """A fast-path exchange waiting for its response."""

    channel: Channel
    client: _Client
    request: RequestHead
    body: bytes
    route: Route
    endpoint: Endpoint
    upstream: Channel
    interim: bool = False  # a 1xx went to the client: the request may no longer be sent again


class Gateway:
    """See the module docstring. ``tls`` None means no HTTPS listener."""

    def __init__(self, config: IngressConfig, tls: TLSStore | None = None) -> None:
        self.config = config
        self.tls = tls
        # None until the first table is installed: requests get 503 rather than a 404 that is not true.
        self.table: RouteTable | None = None
        self.pool = UpstreamPool(max_idle=config.upstream_keepalive, idle_timeout=config.upstream_keepalive_timeout,
                                 connect_timeout=config.connect_timeout, limit=config.max_head_size)
        self.forwarder = Forwarder(config, self.pool)
        self.http_port: int | None = None
        self.https_port: int | None = None
        self._trusted = TrustedProxies(config.trusted_proxies)
        self._servers: list[asyncio.Server] = []
        self._clients: dict[Channel, _Client] = {}
        self._pending: dict[Channel, _Pending] = {}  # by endpoint connection
        self._tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._closing = False
        self._drained = asyncio.Event()  # set, once closing, when no request is in flight
        # Deadlines for the fast path, computed once per sweep rather than per request: a timeout fires
        # at most one tick late.
        shortest = min(config.read_timeout, config.client_header_timeout, config.client_body_timeout,
                       config.keepalive_timeout)
        self._tick = min(max(shortest / 4, 0.02), 1.0)
        self._read_deadline = self._keepalive_deadline = 0.0

    # --- lifetime --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the configured ports (the HTTPS one only with a `TLSStore`); OSError when a port
        cannot be bound."""
        loop = asyncio.get_running_loop()
        cfg = self.config
        try:
            server = await loop.create_server(self._factory("http"), cfg.bind_address, cfg.http_port,
                                              reuse_address=True, backlog=1024)
            self._servers.append(server)
            self.http_port = _bound_port(server)
            if self.tls is not None and cfg.https_port is not None:
                server = await loop.create_server(self._factory("https"), cfg.bind_address, cfg.https_port,
                                                  ssl=self.tls.context, reuse_address=True, backlog=1024,
                                                  ssl_handshake_timeout=cfg.client_header_timeout)
                self._servers.append(server)
                self.https_port = _bound_port(server)
        except BaseException:
            await self.close()
            raise
        self._set_deadlines(loop.time())
        self._background = [asyncio.create_task(self.pool.run_expiry(), name="ingress-pool-expiry"),
                            asyncio.create_task(self._sweep(), name="ingress-deadlines")]

    async def close(self) -> None:
        self._closing = self.forwarder.closing = True
        for server in self._servers:
            server.close()
        for channel, client in list(self._clients.items()):
            if not client.busy:
                channel.close()
        self._check_drained()
        try:
            await asyncio.wait_for(self._drained.wait(), self.config.shutdown_grace)
        except TimeoutError:
            log.warning("ingress: %d requests still in flight after %gs; cutting them off",
                        sum(c.busy for c in self._clients.values()), self.config.shutdown_grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        for channel in [*self._clients, *self._pending]:
            channel.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for task in self._background:
            task.cancel()
        if self._background:
            await asyncio.wait(self._background)
        self._background = []
        self.pool.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def swap(self, table: RouteTable) -> None:
        """Route new requests by ``table``; idle connections to endpoints it no longer has are closed."""
        self.table = table
        endpoints = table.endpoints()
        self.pool.prune(endpoints)
        failed = self.forwarder.failed
        for endpoint in [e for e in failed if e not in endpoints]:
            del failed[endpoint]

    def _check_drained(self) -> None:
        if self._closing and not self._tasks and not any(c.busy for c in self._clients.values()):
            self._drained.set()

    async def _sweep(self) -> None:
        """Expire the deadlines of every connection now and then (see `channel`), until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick)
            now = loop.time()
            self._set_deadlines(now)
            for channel in [*self._clients, *self._pending, *self.forwarder.upstreams]:
                channel.expire(now)

    def _set_deadlines(self, now: float) -> None:
        self._read_deadline = now + self._tick + self.config.read_timeout
        self._keepalive_deadline = now + self._tick + self.config.keepalive_timeout

    # --- client connections ----------------------------------------------------------------------------

    def _factory(self, scheme: str) -> Callable[[], Channel]:
        limit = self.config.max_head_size

        def make() -> Channel:
            return Channel(limit=limit, on_open=lambda channel: self._open(channel, scheme))

        return make

    def _open(self, channel: Channel, scheme: str) -> None:
        if self._closing:
            channel.close()
            return
        address = channel.peer()[0]
        port = (self.http_port if scheme == "http" else self.https_port) or 0
        self._clients[channel] = _Client(ClientInfo(address, scheme, port, address in self._trusted))
        channel.on_data = self._on_client_data
        channel.on_end = self._on_client_end
        channel.on_timeout = self._on_client_idle
        channel.wait_at_most(self.config.client_header_timeout)

    def _on_client_end(self, channel: Channel) -> None:
        client = self._clients.get(channel)
        if channel.closed:
            self._clients.pop(channel, None)
            self._check_drained()
        elif client is not None and not client.busy:
            # The client is done sending and no request of its is being answered: whatever is buffered
            # is an incomplete head that cannot complete any more.
            channel.close()

    def _on_client_idle(self, channel: Channel) -> None:
        client = self._clients.get(channel)
        if client is None or not client.busy:
            channel.close()

    def _on_client_data(self, channel: Channel) -> None:
        """Answer every complete request buffered on ``channel``, one at a time."""
        client = self._clients.get(channel)
        while client is not None and not client.busy:
            size = channel.find(_HEAD_END)
            if size < 0:
                if channel.buffered > self.config.max_head_size:
                    self._refuse_and_close(channel, 431, f"the request head is larger than "
                                           f"{self.config.max_head_size} bytes")
                elif channel.ended:
                    channel.close()
                return
            if size > self.config.max_head_size:
                self._refuse_and_close(channel, 431, f"the request head is larger than {self.config.max_head_size} "
                                       "bytes")
                return
            raw = channel.take(size)
            channel.deadline = 0.0  # a request is in: its exchange sets its own deadlines
            self._dispatch(channel, client, raw)

    def _dispatch(self, channel: Channel, client: _Client, raw: bytes) -> None:
        try:
            request = parse_request_head(raw)
        except BadMessage as e:
            self._refuse_and_close(channel, e.status, str(e))
            return
        route, status, message = self._route(request)
        if route is None:
            keep_alive = request.keep_alive and not request.has_body and not self._closing
            self._write(channel, error_response(status, message, keep_alive=keep_alive,
                                                head_only=request.method == "HEAD",
                                                http10=request.version == "HTTP/1.0"))
            if keep_alive:
                channel.wait_at_most(self.config.keepalive_timeout)
            else:
                client.busy = True
                channel.close()
            return
        client.busy = True
        backend = route.backend
        turn = backend.next_turn()
        if self.forwarder.failed and self.forwarder.recently_failed(backend.endpoints[turn]):
            # Start from the first endpoint that has not failed lately (on either path).
            turn = backend.endpoints.index(self.forwarder.candidates(route, turn)[0])
        if not self._try_fast(channel, client, request, route, backend.endpoints[turn]):
            self._spawn(self._general(channel, client, request, route, start=turn))

    def _route(self, request: RequestHead) -> tuple[Route | None, int, str]:
        """The route for ``request``, or why there is none: (None, status, message)."""
        path = normalize_path(request.path)
        if path is None:
            return None, 400, f"bad request path {request.path[:_SHOWN]!r}"
        table = self.table
        if table is None:
            return None, 503, "the ingress gateway has not loaded its routes yet"
        host = normalize_host(request.host)
        route = table.route(host, path)
        if route is None:
            return None, 404, f'no Ingress rule matches host "{host[:_SHOWN]}" and path "{request.path[:_SHOWN]}"'
        if not route.backend.endpoints:
            return None, 503, f"{route.backend.unavailable} (ingress {route.ingress})"
        return route, 0, ""

    def _done(self, channel: Channel, client: _Client, keep_alive: bool) -> None:
        """An exchange ended: close, or look for the next request."""
        client.busy = False
        if not keep_alive or self._closing or channel.closed:
            channel.close()
            self._check_drained()
            return
        channel.deadline = self._keepalive_deadline
        if channel.buffered or channel.ended:  # pipelined requests, or the client is done
            self._on_client_data(channel)

    def _refuse_and_close(self, channel: Channel, status: int, message: str) -> None:
        client = self._clients.get(channel)
        if client is not None:
            client.busy = True
        self._write(channel, error_response(status, message, keep_alive=False))
        channel.close()

    @staticmethod
    def _write(channel: Channel, data: bytes) -> bool:
        try:
            channel.write(data)
            return True
        except ConnectionError:
            return False

    # --- the general path ------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._check_drained()

    async def _general(self, channel: Channel, client: _Client, request: RequestHead, route: Route, *,
                       body: bytes | None = None, start: int | None = None) -> None:
        try:
            keep_alive = await self.forwarder.proxy(channel, request, route, client.info, body=body, start=start)
        except Exception:
            log.exception("ingress: forwarding %s %s failed", request.method, request.target[:_SHOWN])
            keep_alive = False
        self._done(channel, client, keep_alive)

    async def _finish(self, pending: _Pending, response: ResponseHead) -> None:
        try:
            keep_alive = await self.forwarder.finish(pending.channel, pending.request, response, pending.upstream,
                                                     pending.endpoint)
        except Exception:
            log.exception("ingress: relaying a response to %s failed", pending.request.target[:_SHOWN])
            keep_alive = False
        self._done(pending.channel, pending.client, keep_alive)

    # --- the fast path ---------------------------------------------------------------------------------

    def _try_fast(self, channel: Channel, client: _Client, request: RequestHead, route: Route,
                  endpoint: Endpoint) -> bool:
        """Start the exchange with ``endpoint`` on the fast path if it qualifies (see the module docstring)."""
        length = request.length or 0
        if (request.upgrade or request.chunked or request.expect_continue or length > channel.buffered
                or length > self.config.buffer_request_body or channel.writing_paused):
            return False
        upstream = self.pool.take(endpoint)
        if upstream is None:
            return False
        body = channel.take(length) if length else b""
        pending = _Pending(channel, client, request, body, route, endpoint, upstream)
        self._pending[upstream] = pending
        upstream.on_data = self._on_upstream_data
        upstream.on_end = self._on_upstream_end
        upstream.on_timeout = self._on_upstream_timeout
        upstream.deadline = self._read_deadline
        try:
            upstream.write(upstream_head(request, client.info) + body)
        except ConnectionError:
            self._on_upstream_end(upstream)
        return True

    def _detach(self, upstream: Channel) -> _Pending | None:
        pending = self._pending.pop(upstream, None)
        upstream.on_data = upstream.on_end = upstream.on_timeout = None
        upstream.deadline = 0.0
        return pending

    def _on_upstream_data(self, upstream: Channel) -> None:
        pending = self._pending.get(upstream)
        if pending is None:
            return
        request, channel = pending.request, pending.channel
        while True:
            size = upstream.find(_HEAD_END)
            if size < 0:
                if upstream.buffered > self.config.max_head_size:
                    self._fail(pending, 502, "sent a response head larger than "
                               f"{self.config.max_head_size} bytes")
                return
            try:
                response = parse_response_head(upstream.take(size))
            except BadMessage as e:
                self._fail(pending, 502, f"sent an invalid response: {e}")
                return
            if response.status == 101 or not 100 <= response.status < 200:
                break
            pending.interim = True
            if request.version == "HTTP/1.1":
                self._write(channel, client_head(response, keep_alive=True, http10_client=False))
        self._detach(upstream)
        if response.status == 101:  # never asked for: upgrades take the general path
            upstream.abort()
            self._write(channel, error_response(502, "the endpoint switched protocols without being asked to",
                                                keep_alive=False))
            self._done(channel, pending.client, False)
            return
        has_body = response_has_body(request.method, response.status)
        length = response.length
        if has_body and (response.chunked or length is None or upstream.buffered < length):
            self._spawn(self._finish(pending, response))
            return
        body = upstream.take(length) if has_body and length else b""
        keep_alive = request.keep_alive and not self._closing
        self.forwarder.settle(pending.endpoint, upstream, response.keep_alive)
        head = client_head(response, keep_alive=keep_alive, http10_client=request.version == "HTTP/1.0")
        try:
            channel.write(head + body)
        except ConnectionError:
            keep_alive = False
        self._done(channel, pending.client, keep_alive)

    def _on_upstream_end(self, upstream: Channel) -> None:
        """The pooled connection ended before the response did."""
        pending = self._detach(upstream)
        if pending is None:
            return
        partial = upstream.buffered > 0
        upstream.abort()
        if not partial and not pending.interim and pending.request.method in IDEMPOTENT:
            # A keep-alive connection the endpoint had closed: the request may not have been seen (the
            # general path sends it again, and on to other endpoints if need be).
            self._spawn(self._general(pending.channel, pending.client, pending.request, pending.route,
                                      body=pending.body))
            return
        self._fail(pending, 502, "closed the connection without a complete response head", detached=True)

    def _on_upstream_timeout(self, upstream: Channel) -> None:
        pending = self._pending.get(upstream)
        if pending is not None:
            self._fail(pending, 504, f"did not answer within {self.config.read_timeout:g}s")

    def _fail(self, pending: _Pending, status: int, what: str, *, detached: bool = False) -> None:
        if not detached:
            self._detach(pending.upstream)
        pending.upstream.abort()
        route = pending.route
        self._write(pending.channel, error_response(
            status, f'endpoint {pending.endpoint} of service "{route.backend.service}" {what} '
            f"(ingress {route.ingress})", keep_alive=False))
        self._done(pending.channel, pending.client, False)


def _bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])
