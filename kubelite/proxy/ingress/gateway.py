"""The gateway: an HTTP/1.1 and HTTPS reverse proxy routing each request by the current `RouteTable`.

One task per client connection reads requests one after the other (keep-alive, pipelining), routes each
by Host and path, and forwards it to an endpoint of the matched backend:

- the request goes out with the same method, target (origin form) and version, its hop-by-hop headers
  replaced by X-Forwarded-* (`headers`); a small body with a Content-Length is read first (so a stale
  pooled connection can be retried with it), any other body is streamed as it arrives, chunked or not;
- endpoints are tried round-robin; one that refuses the connection (or does not accept it within
  ``connect_timeout``) is skipped for the next one, up to ``max_tries``, and tried after the others for
  ``fail_timeout``. A pooled connection that turns out dead before any byte of the response is retried on
  a fresh connection when the method is idempotent; nothing else is ever sent twice;
- the response is streamed back as it arrives — chunked bodies stay chunked, Server-Sent Events and
  long polls pass with no delay — its head and the body bytes that came with it in one write;
  interim 1xx responses are passed on (to HTTP/1.1 clients);
- a 101 to an Upgrade request (WebSocket) turns both connections into a two-way tunnel;
- the endpoint connection goes back to the pool when the exchange ended cleanly and the response was
  not delimited by closing it.

Answers of its own, each with a plain-text body saying why: 400 (malformed request or path), 404 (no
rule matches and no default backend), 431 (request head too large), 502 (no endpoint could be reached,
or it broke the exchange), 503 (the backend has no ready endpoint, or its Service or port is missing),
504 (the endpoint did not answer within ``read_timeout``).

`swap` installs a new table atomically: requests already routed keep their backend and finish; the
next request on every connection uses the new table. `close` stops listening, closes idle client
connections and gives requests in flight ``shutdown_grace`` seconds.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
from collections.abc import Callable

from kubelite.proxy.ingress.channel import Channel, IncompleteRead, LimitExceeded
from kubelite.proxy.ingress.config import IngressConfig
from kubelite.proxy.ingress.headers import ClientInfo, TrustedProxies, client_response_headers, upstream_request_headers
from kubelite.proxy.ingress.http1 import (
    COPY_SIZE,
    BadMessage,
    RequestHead,
    ResponseHead,
    copy_chunked,
    copy_length,
    copy_until_eof,
    parse_request_head,
    parse_response_head,
    response_has_body,
    serialize_head,
)
from kubelite.proxy.ingress.pool import UpstreamPool
from kubelite.proxy.ingress.routes import Endpoint, Route, RouteTable, normalize_host, normalize_path
from kubelite.proxy.ingress.tls import TLSStore

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
REASONS = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
           505: "HTTP Version Not Supported"}
SERVER = "kubelite-ingress"
_SHOWN_PATH = 200  # how much of a request path an error body repeats
_EXCHANGE_ERRORS = (IncompleteRead, ConnectionError, TimeoutError, BadMessage, LimitExceeded, OSError)


class _Stale(Exception):
    """A reused connection was dead before the response began: the request may be sent again."""


class Gateway:
    """See the module docstring. ``tls`` None means no HTTPS listener."""

    def __init__(self, config: IngressConfig, tls: TLSStore | None = None) -> None:
        self.config = config
        self.tls = tls
        # None until the first table is installed: requests get 503 rather than a 404 that is not true.
        self.table: RouteTable | None = None
        self.pool = UpstreamPool(max_idle=config.upstream_keepalive, idle_timeout=config.upstream_keepalive_timeout,
                                 connect_timeout=config.connect_timeout, limit=config.max_head_size)
        self.http_port: int | None = None
        self.https_port: int | None = None
        self._trusted = TrustedProxies(config.trusted_proxies)
        self._servers: list[asyncio.Server] = []
        self._connections: dict[Channel, asyncio.Task[None]] = {}
        self._busy: set[Channel] = set()
        self._failed: dict[Endpoint, float] = {}
        self._closing = False
        self._expiry: asyncio.Task[None] | None = None

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
        self._expiry = asyncio.create_task(self.pool.run_expiry(), name="ingress-pool-expiry")

    async def close(self) -> None:
        self._closing = True
        for server in self._servers:
            server.close()
        for channel in list(self._connections):
            if channel not in self._busy:
                channel.close()
        tasks = list(self._connections.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        if self._expiry is not None:
            self._expiry.cancel()
            await asyncio.wait([self._expiry])
            self._expiry = None
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
        for endpoint in [e for e in self._failed if e not in endpoints]:
            del self._failed[endpoint]

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    # --- connections -----------------------------------------------------------------------------------

    def _factory(self, scheme: str) -> Callable[[], Channel]:
        limit = self.config.max_head_size

        def make() -> Channel:
            return Channel(limit=limit, on_open=lambda channel: self._open(channel, scheme))

        return make

    def _open(self, channel: Channel, scheme: str) -> None:
        if self._closing:
            channel.close()
            return
        task = asyncio.get_running_loop().create_task(self._serve(channel, scheme))
        self._connections[channel] = task
        task.add_done_callback(lambda _: self._connections.pop(channel, None))

    async def _serve(self, channel: Channel, scheme: str) -> None:
        cfg = self.config
        address = channel.peer()[0]
        port = (self.http_port if scheme == "http" else self.https_port) or 0
        client = ClientInfo(address, scheme, port, address in self._trusted)
        timeout = cfg.client_header_timeout
        try:
            while not self._closing:
                try:
                    async with asyncio.timeout(timeout):
                        raw = await channel.read_until(b"\r\n\r\n", cfg.max_head_size)
                except LimitExceeded:
                    await self._reply(channel, 431, f"the request head is larger than {cfg.max_head_size} bytes",
                                      keep_alive=False)
                    return
                except (IncompleteRead, TimeoutError, ConnectionError):
                    return
                self._busy.add(channel)
                try:
                    keep_alive = await self._exchange(channel, raw, client)
                finally:
                    self._busy.discard(channel)
                if not keep_alive:
                    return
                timeout = cfg.keepalive_timeout
        except Exception:
            log.exception("ingress: connection from %s failed", address)
        finally:
            channel.close()

    async def _exchange(self, channel: Channel, raw: bytes, client: ClientInfo) -> bool:
        """Answer one request; whether the client connection may carry another."""
        try:
            request = parse_request_head(raw)
        except BadMessage as e:
            await self._reply(channel, e.status, str(e), keep_alive=False)
            return False
        path = normalize_path(request.path)
        if path is None:
            return await self._refuse(channel, request, 400, f"bad request path {request.path[:_SHOWN_PATH]!r}")
        host = normalize_host(request.host)
        table = self.table
        if table is None:
            return await self._refuse(channel, request, 503, "the ingress gateway has not loaded its routes yet")
        route = table.route(host, path)
        if route is None:
            return await self._refuse(channel, request, 404, f'no Ingress rule matches host "{host[:_SHOWN_PATH]}" '
                                      f'and path "{request.path[:_SHOWN_PATH]}"')
        if not route.backend.endpoints:
            return await self._refuse(channel, request, 503, f"{route.backend.unavailable} (ingress {route.ingress})")
        return await self._proxy(channel, request, route, client)

    # --- forwarding ------------------------------------------------------------------------------------

    async def _proxy(self, channel: Channel, request: RequestHead, route: Route, client: ClientInfo) -> bool:
        cfg = self.config
        headers = upstream_request_headers(request.headers, request.connection, client, host=request.host,
                                           upgrade=request.upgrade, http10=request.version == "HTTP/1.0")
        head = serialize_head(f"{request.method} {request.origin_target} {request.version}", headers)
        body = b""
        streamed = False
        if request.has_body:
            length = request.length or 0
            if request.chunked or request.expect_continue or length > cfg.buffer_request_body:
                streamed = True
            else:
                try:
                    async with asyncio.timeout(cfg.client_body_timeout):
                        body = await channel.read_exactly(length)
                except (IncompleteRead, TimeoutError, ConnectionError):
                    return False
        replayable = not streamed and request.method in IDEMPOTENT
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        for endpoint in self._candidates(route)[:max(cfg.max_tries, 1)]:
            fresh = False
            while True:
                try:
                    if fresh:
                        upstream, reused = await self.pool.connect(endpoint), False
                    else:
                        upstream, reused = await self.pool.acquire(endpoint)
                except (OSError, TimeoutError) as e:
                    self._failed[endpoint] = loop.time() + cfg.fail_timeout
                    errors.append(f"{endpoint}: {_describe(e)}")
                    log.info("ingress: %s (service %s) failed: %s; trying another endpoint", endpoint,
                             route.backend.service, _describe(e))
                    break
                self._failed.pop(endpoint, None)
                try:
                    return await self._forward(channel, request, route, upstream, endpoint, head + body, streamed,
                                               replay=reused and replayable)
                except _Stale:
                    fresh = True
        return await self._refuse(channel, request, 502, f'could not connect to any endpoint of service '
                                  f'"{route.backend.service}" port {route.backend.port} (ingress {route.ingress}): '
                                  + "; ".join(errors))

    def _candidates(self, route: Route) -> list[Endpoint]:
        endpoints = route.backend.rotation()
        if self._failed:
            now = asyncio.get_running_loop().time()
            healthy = [e for e in endpoints if self._failed.get(e, 0.0) <= now]
            if len(healthy) < len(endpoints):
                endpoints = healthy + [e for e in endpoints if self._failed.get(e, 0.0) > now]
        return endpoints

    async def _forward(self, channel: Channel, request: RequestHead, route: Route, upstream: Channel,
                       endpoint: Endpoint, head: bytes, streamed: bool, *, replay: bool) -> bool:
        """One exchange with ``upstream``; whether the client connection may carry another request.
        Raises `_Stale` (having closed ``upstream``) when ``replay`` and the connection was dead."""
        cfg = self.config
        sender: asyncio.Task[None] | None = None
        try:
            upstream.write(head)
            if streamed:
                sender = asyncio.create_task(self._send_body(channel, upstream, request))
            try:
                async with asyncio.timeout(cfg.read_timeout):
                    response = await self._response_head(upstream, channel, request)
            except (IncompleteRead, ConnectionError) as e:
                upstream.abort()
                if replay and not _got_bytes(e):
                    raise _Stale() from e
                if channel.closed:
                    return False
                await self._reply(channel, 502, f"endpoint {endpoint} of service \"{route.backend.service}\" closed "
                                  f"the connection without a complete response head (ingress {route.ingress})",
                                  keep_alive=False)
                return False
            except TimeoutError:
                upstream.abort()
                await self._reply(channel, 504, f"endpoint {endpoint} of service \"{route.backend.service}\" did not "
                                  f"answer within {cfg.read_timeout:g}s (ingress {route.ingress})", keep_alive=False)
                return False
            except (BadMessage, LimitExceeded) as e:
                upstream.abort()
                await self._reply(channel, 502, f"endpoint {endpoint} of service \"{route.backend.service}\" sent an "
                                  f"invalid response: {e} (ingress {route.ingress})", keep_alive=False)
                return False
            if response.status == 101:
                return await self._upgrade(channel, request, response, upstream)
            keep_alive, reusable = await self._relay_response(channel, request, response, upstream)
            if sender is not None:
                if not sender.done():
                    # The endpoint answered before taking the whole body: the rest of it would be read
                    # as the next request.
                    sender.cancel()
                await asyncio.wait([sender])
                if sender.cancelled() or sender.exception() is not None:
                    keep_alive = reusable = False
                sender = None
            if reusable:
                self.pool.release(endpoint, upstream)
            else:
                upstream.close()
            return keep_alive
        except _Stale:
            raise
        except _EXCHANGE_ERRORS:
            upstream.abort()
            return False
        finally:
            if sender is not None:
                sender.cancel()
                await asyncio.wait([sender])

    async def _response_head(self, upstream: Channel, channel: Channel, request: RequestHead) -> ResponseHead:
        """The final response head; 1xx interim ones are passed on to an HTTP/1.1 client."""
        while True:
            raw = await upstream.read_until(b"\r\n\r\n", self.config.max_head_size)
            response = parse_response_head(raw)
            if not 100 <= response.status < 200 or response.status == 101:
                return response
            if request.version == "HTTP/1.1":
                channel.write(serialize_head(f"HTTP/1.1 {response.status} {response.reason}",
                                             client_response_headers(response.headers, response.connection,
                                                                     keep_alive=True, http10_client=False)))

    async def _relay_response(self, channel: Channel, request: RequestHead, response: ResponseHead,
                              upstream: Channel) -> tuple[bool, bool]:
        """Send the response head and body to the client; (client keep-alive, endpoint reusable)."""
        cfg = self.config
        if not response_has_body(request.method, response.status):
            framing = "none"
        elif response.chunked:
            framing = "chunked"
        elif response.length is not None:
            framing = "length"
        else:
            framing = "eof"
        keep_alive = request.keep_alive and framing != "eof" and not self._closing
        reusable = response.keep_alive and framing != "eof"
        head = serialize_head(f"HTTP/1.1 {response.status} {response.reason}",
                              client_response_headers(response.headers, response.connection, keep_alive=keep_alive,
                                                      http10_client=request.version == "HTTP/1.0"))
        if framing == "length":
            length = response.length or 0
            first = upstream.take(length) if upstream.buffered else b""
            channel.write(head + first)
            if length > len(first):
                await copy_length(upstream, channel, length - len(first), cfg.read_timeout)
            else:
                await channel.drain()
        else:
            channel.write(head)
            if framing == "chunked":
                await copy_chunked(upstream, channel, cfg.read_timeout)
            elif framing == "eof":
                await copy_until_eof(upstream, channel, cfg.read_timeout)
            else:
                await channel.drain()
        return keep_alive, reusable

    async def _send_body(self, channel: Channel, upstream: Channel, request: RequestHead) -> None:
        """Stream the request body to the endpoint; on failure the endpoint connection is aborted, so that
        the exchange ends instead of waiting for a body that will not come."""
        try:
            if request.chunked:
                await copy_chunked(channel, upstream, self.config.client_body_timeout)
            else:
                await copy_length(channel, upstream, request.length or 0, self.config.client_body_timeout)
        except BaseException:
            upstream.abort()
            raise

    async def _upgrade(self, channel: Channel, request: RequestHead, response: ResponseHead,
                       upstream: Channel) -> bool:
        if not request.upgrade:
            upstream.abort()
            await self._reply(channel, 502, "the endpoint switched protocols without being asked to",
                              keep_alive=False)
            return False
        upgrade = next((v for n, v in response.headers if n.lower() == "upgrade"), request.upgrade)
        channel.write(serialize_head(f"HTTP/1.1 101 {response.reason}",
                                     client_response_headers(response.headers, response.connection,
                                                             keep_alive=True, http10_client=False, upgrade=upgrade)))
        await tunnel(channel, upstream, self.config.tunnel_timeout)
        return False

    # --- answers of our own ----------------------------------------------------------------------------

    async def _refuse(self, channel: Channel, request: RequestHead, status: int, message: str) -> bool:
        """Answer with an error; the connection stays only if no request body is left unread."""
        keep_alive = request.keep_alive and not request.has_body and not self._closing
        return await self._reply(channel, status, message, keep_alive=keep_alive,
                                 head_only=request.method == "HEAD", http10=request.version == "HTTP/1.0")

    async def _reply(self, channel: Channel, status: int, message: str, *, keep_alive: bool,
                     head_only: bool = False, http10: bool = False) -> bool:
        reason = REASONS.get(status, "Error")
        body = f"{status} {reason}: {message}\n".encode(errors="replace")
        headers = [("Server", SERVER), ("Date", email.utils.formatdate(usegmt=True)),
                   ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                   ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
        if not keep_alive:
            headers.append(("Connection", "close"))
        elif http10:
            headers.append(("Connection", "keep-alive"))
        try:
            channel.write(serialize_head(f"HTTP/1.1 {status} {reason}", headers) + (b"" if head_only else body))
            await channel.drain()
        except ConnectionError:
            return False
        return keep_alive


async def tunnel(a: Channel, b: Channel, idle: float) -> None:
    """Copy bytes both ways until both directions ended (a half-close is passed on where the transport can),
    either side fails, or nothing moved for ``idle`` seconds; then close both."""
    loop = asyncio.get_running_loop()
    last = [loop.time()]

    async def pump(src: Channel, dst: Channel) -> None:
        while data := await src.read(COPY_SIZE):
            dst.write(data)
            await dst.drain()
            last[0] = loop.time()
        if dst.transport is not None and dst.transport.can_write_eof():
            dst.write_eof()
        else:
            dst.close()

    tasks = {asyncio.create_task(pump(a, b)), asyncio.create_task(pump(b, a))}
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, timeout=min(idle, 30.0), return_when=asyncio.FIRST_COMPLETED)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                break
            if loop.time() - last[0] > idle:
                break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        a.close()
        b.close()


def _bound_port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def _got_bytes(error: BaseException) -> bool:
    return isinstance(error, IncompleteRead) and bool(error.args and error.args[0])


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "connection timed out"
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()  # asyncio's own text repeats the address
    return str(error) or type(error).__name__
