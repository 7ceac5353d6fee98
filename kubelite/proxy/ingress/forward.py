"""Forwarding one request to a backend and its response back, in a coroutine: the general path, for
everything the gateway's callback fast path does not take (a new endpoint connection, a request body
still arriving, a response still arriving, 1xx, upgrades, retries).

- The request goes out with the same method, target (origin form) and version, its hop-by-hop headers
  replaced by X-Forwarded-* (`headers`); a small body with a Content-Length is read first (so that a
  stale pooled connection can be retried with it), any other body is streamed as it arrives, chunked or
  not, by a task running beside the response.
- Endpoints are tried in the backend's round-robin order, those that failed lately last; one that
  refuses the connection (or does not accept it within ``connect_timeout``) is skipped for the next, up
  to ``max_tries``. A request that can be replayed (an idempotent method, as nginx counts them, and a
  body that was read whole or is empty) is sent again when its connection ends — reset or closed —
  before any byte of a response arrived: on a fresh connection to the same endpoint when the connection
  was a pooled one (the endpoint may have closed it as the request went out), else on the next endpoint
  (nginx's ``proxy_next_upstream error``: a pod killed mid-request, a connection left in the listen
  queue of a closed listener), which then counts as failed. Nothing else is ever sent twice: not a
  streamed body, not a POST or PATCH, nothing after a response (even an interim 1xx) began.
- The response is streamed back as it arrives — chunked bodies stay chunked, Server-Sent Events and long
  polls pass with no delay — its head and the body bytes that came with it in one write; interim 1xx
  responses are passed on (to HTTP/1.1 clients); a 101 to an Upgrade request turns both connections into
  a two-way tunnel (`tunnel`).
- The endpoint connection goes back to the pool when the exchange ended cleanly and the response was
  not delimited by closing it.
"""

from __future__ import annotations

import asyncio
import logging
import os

from kubelite.proxy.ingress.channel import Channel, IncompleteRead, LimitExceeded
from kubelite.proxy.ingress.config import IngressConfig
from kubelite.proxy.ingress.headers import ClientInfo, client_head, upstream_head
from kubelite.proxy.ingress.http1 import (
    COPY_SIZE,
    BadMessage,
    RequestHead,
    ResponseHead,
    copy_chunked,
    copy_length,
    copy_until_eof,
    parse_response_head,
    response_has_body,
)
from kubelite.proxy.ingress.pool import UpstreamPool
from kubelite.proxy.ingress.replies import error_response
from kubelite.proxy.ingress.routes import Endpoint, Route

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
EXCHANGE_ERRORS = (IncompleteRead, ConnectionError, TimeoutError, BadMessage, LimitExceeded, OSError)


class _Unanswered(Exception):
    """The connection ended before any byte of a response arrived (the endpoint connection is aborted);
    the request may be sent again. The message says how it ended."""


class Forwarder:
    """Forwards requests over ``pool``. ``upstreams`` holds the endpoint connections in use (their read
    deadlines are swept by the gateway); ``failed`` when each endpoint that failed may be tried first
    again; ``closing`` makes every exchange the last one on its client connection."""

    def __init__(self, config: IngressConfig, pool: UpstreamPool) -> None:
        self.config = config
        self.pool = pool
        self.upstreams: set[Channel] = set()
        self.failed: dict[Endpoint, float] = {}
        self.closing = False

    def candidates(self, route: Route, start: int | None = None) -> list[Endpoint]:
        """The endpoints to try, in order: round-robin (from ``start``), the recently failed ones last."""
        endpoints = route.backend.rotation(start)
        if self.failed:
            now = asyncio.get_running_loop().time()
            healthy = [e for e in endpoints if self.failed.get(e, 0.0) <= now]
            if len(healthy) < len(endpoints):
                endpoints = healthy + [e for e in endpoints if self.failed.get(e, 0.0) > now]
        return endpoints

    # --- one request -----------------------------------------------------------------------------------

    async def proxy(self, channel: Channel, request: RequestHead, route: Route, client: ClientInfo, *,
                    body: bytes | None = None, start: int | None = None) -> bool:
        """Forward ``request`` (its head already read from ``channel``; its ``body`` too, when given) to the
        `candidates` (round-robin from ``start``) and relay the answer; whether the client connection may
        carry another request."""
        cfg = self.config
        head = upstream_head(request, client)
        streamed = False
        if body is None:
            body = b""
            length = request.length or 0
            if request.chunked or request.expect_continue or length > cfg.buffer_request_body:
                streamed = True
            elif length:
                try:
                    body = await channel.read_exactly(length, within=cfg.client_body_timeout)
                except (IncompleteRead, TimeoutError, ConnectionError):
                    return False
        replayable = not streamed and request.method in IDEMPOTENT
        errors: list[str] = []
        answered = False  # some endpoint took the connection (and then dropped the request)
        loop = asyncio.get_running_loop()
        for endpoint in self.candidates(route, start)[:max(cfg.max_tries, 1)]:
            fresh = False
            while True:
                try:
                    if fresh:
                        upstream, reused = await self.pool.connect(endpoint), False
                    else:
                        upstream, reused = await self.pool.acquire(endpoint)
                except (OSError, TimeoutError) as e:
                    self.failed[endpoint] = loop.time() + cfg.fail_timeout
                    errors.append(f"{endpoint}: {describe(e)}")
                    log.info("ingress: %s (service %s) failed: %s; trying another endpoint", endpoint,
                             route.backend.service, describe(e))
                    break
                self.failed.pop(endpoint, None)
                try:
                    return await self._exchange(channel, request, route, upstream, endpoint, head + body, streamed,
                                                retry=replayable)
                except _Unanswered as e:
                    if reused:  # the endpoint may have closed an idle connection as the request went out
                        fresh = True
                        continue
                    self.failed[endpoint] = loop.time() + cfg.fail_timeout
                    errors.append(f"{endpoint}: {e}")
                    answered = True
                    log.info("ingress: %s (service %s) %s; trying another endpoint", endpoint,
                             route.backend.service, e)
                    break
        what = "got no answer from" if answered else "could not connect to"
        return await self.refuse(channel, request, 502, f'{what} any endpoint of service '
                                 f'"{route.backend.service}" port {route.backend.port} (ingress {route.ingress}): '
                                 + "; ".join(errors))

    async def _exchange(self, channel: Channel, request: RequestHead, route: Route, upstream: Channel,
                        endpoint: Endpoint, head: bytes, streamed: bool, *, retry: bool) -> bool:
        """One exchange with ``upstream``; whether the client connection may carry another request.
        Raises `_Unanswered` (having aborted ``upstream``) when ``retry`` and the connection ended before
        any byte of a response arrived."""
        cfg = self.config
        service = route.backend.service
        sender: asyncio.Task[None] | None = None
        self.upstreams.add(upstream)
        try:
            upstream.write(head)
            if streamed:
                sender = asyncio.create_task(self._send_body(channel, upstream, request))
            try:
                response = await self._response_head(upstream, channel, request)
            except (_Unanswered, IncompleteRead, ConnectionError) as e:
                upstream.abort()
                if retry and isinstance(e, _Unanswered):
                    raise
                return await self.reply(channel, 502, f'endpoint {endpoint} of service "{service}" closed the '
                                        f"connection without a complete response head (ingress {route.ingress})",
                                        keep_alive=False)
            except TimeoutError:
                upstream.abort()
                return await self.reply(channel, 504, f'endpoint {endpoint} of service "{service}" did not answer '
                                        f"within {cfg.read_timeout:g}s (ingress {route.ingress})", keep_alive=False)
            except (BadMessage, LimitExceeded) as e:
                upstream.abort()
                return await self.reply(channel, 502, f'endpoint {endpoint} of service "{service}" sent an '
                                        f"invalid response: {e} (ingress {route.ingress})", keep_alive=False)
            if response.status == 101:
                return await self._upgrade(channel, request, response, upstream)
            keep_alive, reusable = await self.relay(channel, request, response, upstream)
            if sender is not None:
                if not sender.done():
                    # The endpoint answered before taking the whole body: the rest of it would be read
                    # as the next request.
                    sender.cancel()
                await asyncio.wait([sender])
                if sender.cancelled() or sender.exception() is not None:
                    keep_alive = reusable = False
                sender = None
            self.settle(endpoint, upstream, reusable)
            return keep_alive
        except _Unanswered:
            raise
        except EXCHANGE_ERRORS:
            upstream.abort()
            return False
        finally:
            self.upstreams.discard(upstream)
            if sender is not None:
                sender.cancel()
                await asyncio.wait([sender])

    async def finish(self, channel: Channel, request: RequestHead, response: ResponseHead, upstream: Channel,
                     endpoint: Endpoint) -> bool:
        """Relay the rest of a response whose head was read elsewhere (the fast path); as `proxy`."""
        self.upstreams.add(upstream)
        try:
            keep_alive, reusable = await self.relay(channel, request, response, upstream)
        except EXCHANGE_ERRORS:
            upstream.abort()
            return False
        finally:
            self.upstreams.discard(upstream)
        self.settle(endpoint, upstream, reusable)
        return keep_alive

    def recently_failed(self, endpoint: Endpoint) -> bool:
        return bool(self.failed) and self.failed.get(endpoint, 0.0) > asyncio.get_running_loop().time()

    def settle(self, endpoint: Endpoint, upstream: Channel, reusable: bool) -> None:
        if reusable:
            self.pool.release(endpoint, upstream)
        else:
            upstream.close()

    async def _response_head(self, upstream: Channel, channel: Channel, request: RequestHead) -> ResponseHead:
        """The final response head; 1xx interim ones are passed on to an HTTP/1.1 client. `_Unanswered`
        when the connection ended before any byte of a response arrived."""
        cfg = self.config
        interim = False
        while True:
            try:
                raw = await upstream.read_until(b"\r\n\r\n", cfg.max_head_size, within=cfg.read_timeout)
            except IncompleteRead as e:
                if interim or (e.args and e.args[0]):
                    raise
                raise _Unanswered("closed the connection before answering") from e
            except ConnectionError as e:
                if interim or upstream.buffered:  # a reset leaves what had come in the buffer
                    raise
                raise _Unanswered(describe(e)) from e
            interim = True
            response = parse_response_head(raw)
            if not 100 <= response.status < 200 or response.status == 101:
                return response
            if request.version == "HTTP/1.1":
                channel.write(client_head(response, keep_alive=True, http10_client=False))

    async def relay(self, channel: Channel, request: RequestHead, response: ResponseHead,
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
        keep_alive = request.keep_alive and framing != "eof" and not self.closing
        reusable = response.keep_alive and framing != "eof"
        head = client_head(response, keep_alive=keep_alive, http10_client=request.version == "HTTP/1.0")
        if framing == "length":
            length = response.length or 0
            first = upstream.take(length) if upstream.buffered else b""
            channel.write(head + first)
            if length > len(first):
                await copy_length(upstream, channel, length - len(first), cfg.read_timeout)
            else:
                await channel.drain(within=cfg.read_timeout)
        else:
            channel.write(head)
            if framing == "chunked":
                await copy_chunked(upstream, channel, cfg.read_timeout)
            elif framing == "eof":
                await copy_until_eof(upstream, channel, cfg.read_timeout)
            else:
                await channel.drain(within=cfg.read_timeout)
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
            return await self.reply(channel, 502, "the endpoint switched protocols without being asked to",
                                    keep_alive=False)
        channel.write(client_head(response, keep_alive=True, http10_client=False,
                                  upgrade=response.upgrade or request.upgrade))
        await tunnel(channel, upstream, self.config.tunnel_timeout)
        return False

    # --- answers of the gateway's own ------------------------------------------------------------------

    async def refuse(self, channel: Channel, request: RequestHead, status: int, message: str) -> bool:
        """Answer with an error; the connection stays only if no request body is left unread."""
        keep_alive = request.keep_alive and not request.has_body and not self.closing
        return await self.reply(channel, status, message, keep_alive=keep_alive,
                                head_only=request.method == "HEAD", http10=request.version == "HTTP/1.0")

    async def reply(self, channel: Channel, status: int, message: str, *, keep_alive: bool,
                    head_only: bool = False, http10: bool = False) -> bool:
        try:
            channel.write(error_response(status, message, keep_alive=keep_alive, head_only=head_only, http10=http10))
            await channel.drain(within=self.config.client_header_timeout)
        except (ConnectionError, TimeoutError):
            return False
        return keep_alive


async def tunnel(a: Channel, b: Channel, idle: float) -> None:
    """Copy bytes both ways until both directions ended (a half-close is passed on where the transport can),
    either side fails, or nothing moved for ``idle`` seconds; then close both."""
    loop = asyncio.get_running_loop()
    last = [loop.time()]
    a.deadline = b.deadline = 0.0  # the tunnel watches for idleness itself: either direction counts

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


def describe(error: BaseException) -> str:
    """A short reason for a failed connection attempt."""
    if isinstance(error, TimeoutError):
        return "connection timed out"
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno).lower()  # asyncio's own text repeats the address
    return str(error) or type(error).__name__
