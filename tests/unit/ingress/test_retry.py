"""Retries on the next endpoint when a fresh endpoint connection ends before any byte of the response
(nginx's ``proxy_next_upstream error``): only for requests that may be sent again (idempotent method,
body read whole or empty), never after a response began, at most ``max_tries`` endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.unit.ingress.test_gateway import OK, exchange, gateway, get, table_for

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Endpoint"], Awaitable[None]]


async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ep: Endpoint) -> None:
    """Accept, then close without reading (a listener closing with connections in its queue)."""


async def reset_after_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ep: Endpoint) -> None:
    """Read the request head, then reset the connection (a pod killed with the request in flight)."""
    await reader.readuntil(b"\r\n\r\n")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def partial_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ep: Endpoint) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Le")
    await writer.drain()


async def interim_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ep: Endpoint) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
    await writer.drain()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ep: Endpoint) -> None:
    """Answer every request on the connection with 200 "ok" (after reading its body, if any)."""
    while head := await reader.readuntil(b"\r\n\r\n"):
        for line in head.lower().split(b"\r\n"):
            if line.startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
            elif line.startswith(b"transfer-encoding:"):
                await reader.readuntil(b"0\r\n\r\n")  # the tests' chunked bodies have no trailers
        ep.requests += 1
        writer.write(OK)
        await writer.drain()


class Endpoint:
    """A loopback TCP server running ``handle`` for each connection; counts the connections it got."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.connections = 0
        self.requests = 0  # answered, by `answer`
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.handle(reader, writer, self)
        except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
            pass  # the test is over, or the gateway went away
        finally:
            writer.close()
            self._tasks.discard(task)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Endpoint]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def endpoints(*handlers: Handler) -> AsyncIterator[list[Endpoint]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Endpoint(h).running()) for h in handlers]


def post(body: bytes = b"x") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: foo.com\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# fail_timeout=0: the failing endpoint keeps its turn, so that round-robin starts half of the requests on it.
ROUNDS = 4


@pytest.mark.parametrize("failing", [pytest.param(close_at_once, id="closed"),
                                     pytest.param(reset_after_head, id="reset")])
@pytest.mark.parametrize("request_", [pytest.param(get(), id="GET"),
                                      pytest.param(b"PUT / HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 3\r\n\r\nabc",
                                                   id="PUT-buffered-body")])
async def test_an_idempotent_request_goes_on_to_the_next_endpoint(failing: Handler, request_: bytes) -> None:
    async with endpoints(failing, answer) as (bad, good), \
            gateway(table_for([bad.port, good.port]), fail_timeout=0.0) as gw:
        statuses = [(await exchange(gw, request_))[0].status for _ in range(ROUNDS)]
        assert statuses == [200] * ROUNDS
        assert bad.connections == ROUNDS // 2  # each of those requests was then answered by the other
        assert good.requests == ROUNDS


@pytest.mark.parametrize("failing", [pytest.param(close_at_once, id="closed"),
                                     pytest.param(reset_after_head, id="reset")])
async def test_a_post_is_not_sent_twice(failing: Handler) -> None:
    async with endpoints(failing, answer) as (bad, good), \
            gateway(table_for([bad.port, good.port]), fail_timeout=0.0) as gw:
        replies = [await exchange(gw, post()) for _ in range(ROUNDS)]
        assert sorted(head.status for head, _ in replies) == [200] * (ROUNDS // 2) + [502] * (ROUNDS // 2)
        assert b"without a complete response head" in next(body for head, body in replies if head.status == 502)
        assert bad.connections == good.requests == ROUNDS // 2


async def test_a_streamed_body_is_not_sent_twice() -> None:
    chunked = b"PUT / HTTP/1.1\r\nHost: foo.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    async with endpoints(reset_after_head, answer) as (bad, good), \
            gateway(table_for([bad.port, good.port]), fail_timeout=0.0) as gw:
        statuses = sorted([(await exchange(gw, chunked))[0].status for _ in range(ROUNDS)])
        assert statuses == [200] * (ROUNDS // 2) + [502] * (ROUNDS // 2)
        assert good.requests == ROUNDS // 2


@pytest.mark.parametrize("failing", [pytest.param(partial_head, id="part-of-a-head"),
                                     pytest.param(interim_then_close, id="interim-1xx")])
async def test_no_retry_once_a_response_began(failing: Handler) -> None:
    async with endpoints(failing, answer) as (bad, good), \
            gateway(table_for([bad.port, good.port]), fail_timeout=0.0) as gw:
        statuses = sorted([(await exchange(gw, get()))[0].status for _ in range(ROUNDS)])
        assert statuses == [200] * (ROUNDS // 2) + [502] * (ROUNDS // 2)
        assert good.requests == ROUNDS // 2


async def test_retries_stop_after_max_tries() -> None:
    async with endpoints(*[close_at_once] * 4) as bad, \
            gateway(table_for([e.port for e in bad]), max_tries=2) as gw:
        head, body = await exchange(gw, get())
        assert head.status == 502
        assert b'got no answer from any endpoint of service "default/web" port 80' in body
        assert sum(e.connections for e in bad) == 2
        # Both are now tried last, for fail_timeout: the next request starts with the other two.
        assert (await exchange(gw, get()))[0].status == 502
        assert [e.connections for e in bad] == [1, 1, 1, 1]


async def test_a_failed_endpoint_is_tried_last_afterwards() -> None:
    async with endpoints(reset_after_head, answer) as (bad, good), \
            gateway(table_for([bad.port, good.port])) as gw:
        for _ in range(ROUNDS):
            assert (await exchange(gw, get()))[0].status == 200
        assert bad.connections <= 1


async def test_no_replay_on_the_fast_path_once_an_interim_response_was_passed_on() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ep: Endpoint) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)  # keep-alive: the next request comes over the pooled connection (the fast path)
        await interim_then_close(reader, writer, ep)

    async with endpoints(handle) as (only,), gateway(table_for([only.port])) as gw:
        assert (await exchange(gw, get()))[0].status == 200
        assert gw.pool.idle_count() == 1
        head, body = await exchange(gw, get())
        assert head.status == 502 and b"without a complete response head" in body
        assert only.connections == 1
