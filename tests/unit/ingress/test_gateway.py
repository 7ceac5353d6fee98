"""The gateway's HTTP/1 behaviour over real loopback sockets, with a fixed routing table (no API server):
keep-alive both ways, pipelining, HTTP/1.0, bodies (buffered, streamed, chunked, 100-continue), its own
error answers, stale pooled connections, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from kubelite.proxy.ingress.config import IngressConfig
from kubelite.proxy.ingress.gateway import Gateway
from kubelite.proxy.ingress.http1 import ResponseHead, parse_response_head
from kubelite.proxy.ingress.routes import RouteTable, build_routes
from tests.support.ingress_backends import Backend, parse_json, refused_port, run_backends

from .helpers import FakeCluster, endpoint_slice, ingress, path, rule, service

Reply = tuple[ResponseHead, bytes]


def table_for(ports: list[int], *, host: str = "foo.com") -> RouteTable:
    """foo.com/ → Service web, whose endpoints are 127.0.0.1 on ``ports``."""
    slices = [endpoint_slice("web", ["127.0.0.1"], ("http", p), name=f"web-{i}") for i, p in enumerate(ports)]
    return build_routes([ingress("ing", rule(host, path("/", "web")))],
                        FakeCluster(service("web", ("http", 80)), *slices)).table


@contextlib.asynccontextmanager
async def gateway(table: RouteTable | None, **settings: Any) -> AsyncIterator[Gateway]:
    config = IngressConfig(bind_address="127.0.0.1", http_port=0, https_port=None, install_class=False, **settings)
    async with Gateway(config) as gw:
        if table is not None:
            gw.swap(table)
        yield gw


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with run_backends("one") as backends:
        yield backends["one"]


async def connect(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", gw.http_port)


async def read_reply(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    """One response: head and body (decoded from chunks)."""
    while True:
        head = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
        if not 100 <= head.status < 200:
            break
    if method == "HEAD" or head.status in (204, 304):
        return head, b""
    if head.chunked:
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return head, body
    if head.length is not None:
        return head, await reader.readexactly(head.length)
    return head, await reader.read()


async def exchange(gw: Gateway, raw: bytes, method: str = "GET") -> Reply:
    reader, writer = await connect(gw)
    try:
        writer.write(raw)
        return await asyncio.wait_for(read_reply(reader, method), 10)
    finally:
        writer.close()


def get(target: str = "/", host: str = "foo.com", extra: str = "") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


# --- forwarding ---------------------------------------------------------------------------------------

async def test_keep_alive_on_both_sides(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        for i in range(5):
            writer.write(get(f"/n/{i}"))
            head, body = await read_reply(reader)
            assert head.status == 200 and head.keep_alive
            assert parse_json(body)["path"] == f"/n/{i}"
        writer.close()
        assert backend.connections == 1  # one pooled connection carried all five
        assert gw.pool.idle_count() == 1


async def test_forwarded_headers_reach_the_endpoint(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        _, body = await exchange(gw, get("/who?x=1", host="FOO.com:8080", extra="X-Forwarded-For: 6.6.6.6\r\n"))
        seen = parse_json(body)
        headers = seen["headers"]
        assert isinstance(headers, dict)
        assert seen["path"] == "/who?x=1"
        assert headers["Host"] == "FOO.com:8080"
        assert headers["X-Forwarded-For"] == "127.0.0.1" and headers["X-Real-IP"] == "127.0.0.1"
        assert headers["X-Forwarded-Proto"] == "http" and headers["X-Forwarded-Host"] == "FOO.com:8080"
        assert headers["X-Forwarded-Port"] == str(gw.http_port)


async def test_pipelined_requests_are_answered_in_order(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(get("/first") + get("/slow?seconds=0.2") + get("/third"))
        paths = [parse_json((await read_reply(reader))[1])["path"] for _ in range(3)]
        writer.close()
        assert paths == ["/first", "/slow?seconds=0.2", "/third"]


async def test_http10_without_and_with_keep_alive(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(b"GET /a HTTP/1.0\r\nHost: foo.com\r\nConnection: keep-alive\r\n\r\n")
        head, body = await read_reply(reader)
        assert head.status == 200 and ("Connection", "keep-alive") in head.headers
        writer.write(b"GET /b HTTP/1.0\r\nHost: foo.com\r\n\r\n")
        head, body = await read_reply(reader)
        assert parse_json(body)["path"] == "/b" and ("Connection", "close") in head.headers
        assert await reader.read() == b""  # closed by the gateway
        writer.close()


async def test_head_request(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(b"HEAD / HTTP/1.1\r\nHost: foo.com\r\n\r\n" + get("/after"))
        head, _ = await read_reply(reader, "HEAD")
        assert head.status == 200 and head.length and head.length > 0
        _, body = await read_reply(reader)
        assert parse_json(body)["path"] == "/after"
        writer.close()


async def test_buffered_and_streamed_request_bodies(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        small = b"x" * 1000
        _, body = await exchange(gw, b"POST /count HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 1000\r\n\r\n"
                                 + small)
        assert parse_json(body)["body_length"] == 1000
        big = bytes(range(256)) * 4096  # 1 MiB: over the buffering limit, streamed
        head, body = await exchange(gw, b"POST /echo HTTP/1.1\r\nHost: foo.com\r\nContent-Length: %d\r\n\r\n" % len(big)
                                    + big)
        assert head.status == 200 and body == big


async def test_chunked_request_body_is_streamed(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: foo.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(0.05)
        writer.write(b"6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        head, body = await asyncio.wait_for(read_reply(reader), 10)
        writer.close()
        assert head.status == 200 and body == b"hello world"


async def test_expect_100_continue(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(b"POST /count HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = parse_response_head(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10))
        assert interim.status == 100
        writer.write(b"body")
        head, body = await asyncio.wait_for(read_reply(reader), 10)
        writer.close()
        assert head.status == 200 and parse_json(body)["body_length"] == 4


async def test_large_responses_arrive_whole(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        big = bytes(range(256)) * 20_000  # ~5 MB each way
        head, body = await exchange(gw, b"POST /echo HTTP/1.1\r\nHost: foo.com\r\nContent-Length: %d\r\n\r\n" % len(big)
                                    + big)
        assert head.chunked and body == big


async def test_round_robin_and_retry_when_an_endpoint_refuses() -> None:
    async with run_backends("a", "b") as backends, \
            gateway(table_for([backends["a"].port, refused_port(), backends["b"].port])) as gw:
        seen = [parse_json((await exchange(gw, get()))[1])["backend"] for _ in range(6)]
        assert set(seen) == {"a", "b"}  # every request answered, by both live endpoints


async def test_502_when_every_endpoint_refuses() -> None:
    async with gateway(table_for([refused_port(), refused_port()])) as gw:
        head, body = await exchange(gw, get())
        assert head.status == 502
        assert b'could not connect to any endpoint of service "default/web" port 80' in body
        assert b"connection refused" in body


# --- answers of its own -------------------------------------------------------------------------------

async def test_404_names_host_and_path(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(get("/x", host="bar.com"))
        head, body = await read_reply(reader)
        assert head.status == 404 and head.keep_alive
        assert body == b'404 Not Found: no Ingress rule matches host "bar.com" and path "/x"\n'
        writer.write(get("/y"))  # the connection carries on
        assert (await read_reply(reader))[0].status == 200
        writer.close()


async def test_503_before_routes_are_loaded() -> None:
    async with gateway(None) as gw:
        head, body = await exchange(gw, get())
        assert head.status == 503 and b"has not loaded its routes yet" in body


@pytest.mark.parametrize(("raw", "status"), [
    pytest.param(b"NOT HTTP AT ALL\r\n\r\n", 400, id="garbage"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: foo.com\r\n\r\n", 505, id="version"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="no-host"),
    pytest.param(b"GET /../etc HTTP/1.1\r\nHost: foo.com\r\n\r\n", 400, id="path-above-root"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: foo.com\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                 id="smuggling"),
])
async def test_malformed_requests(backend: Backend, raw: bytes, status: int) -> None:
    async with gateway(table_for([backend.port])) as gw:
        head, body = await exchange(gw, raw)
        assert head.status == status and body.startswith(f"{status} ".encode())


async def test_431_for_a_huge_head(backend: Backend) -> None:
    async with gateway(table_for([backend.port]), max_head_size=4096) as gw:
        head, _ = await exchange(gw, get(extra="X-Big: " + "a" * 8000 + "\r\n"))
        assert head.status == 431


# --- misbehaving endpoints ----------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_endpoint(handle: Handler) -> AsyncIterator[int]:
    """A TCP server whose n-th connection (from 0) is handled by ``handle(reader, writer, n)``."""
    count = 0
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        n, count = count, count + 1
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await handle(reader, writer, n)
        except asyncio.CancelledError:
            pass  # the test is over
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(("method", "status"), [("GET", 200), ("POST", 502)])
async def test_a_dead_pooled_connection_is_retried_only_for_idempotent_requests(method: str, status: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        if n == 0:
            # Keep-alive promised, then the next request on this connection is dropped unanswered (the race
            # of a server closing an idle connection as a request arrives).
            await reader.readuntil(b"\r\n\r\n")
        else:
            await writer.drain()
            await reader.read()

    async with raw_endpoint(handle) as port, gateway(table_for([port])) as gw:
        assert (await exchange(gw, get()))[0].status == 200
        body = b"" if method == "GET" else b"Content-Length: 0\r\n"
        head, _ = await exchange(gw, f"{method} / HTTP/1.1\r\nHost: foo.com\r\n".encode() + body + b"\r\n")
        assert head.status == status


async def test_504_when_the_endpoint_does_not_answer() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.read()

    async with raw_endpoint(handle) as port, gateway(table_for([port]), read_timeout=0.3) as gw:
        head, body = await exchange(gw, get())
        assert head.status == 504 and b"did not answer within 0.3s" in body


async def test_a_response_delimited_by_close() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        await writer.drain()

    async with raw_endpoint(handle) as port, gateway(table_for([port])) as gw:
        head, body = await exchange(gw, get())
        assert head.status == 200 and body == b"until the end" and not head.keep_alive
        assert gw.pool.idle_count() == 0


async def test_an_invalid_response_is_a_502() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await writer.drain()

    async with raw_endpoint(handle) as port, gateway(table_for([port])) as gw:
        head, body = await exchange(gw, get())
        assert head.status == 502 and b"sent an invalid response" in body


async def test_close_lets_a_request_in_flight_finish(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        reader, writer = await connect(gw)
        writer.write(get("/slow?seconds=0.3"))
        await asyncio.sleep(0.1)
        closing = asyncio.create_task(gw.close())
        head, _ = await asyncio.wait_for(read_reply(reader), 10)
        await closing
        writer.close()
        assert head.status == 200 and not head.keep_alive


# --- the fast path (a pooled connection and a complete request) ----------------------------------------

async def pooled_exchange(gw: Gateway, second: bytes) -> tuple[Reply, Reply]:
    """Two requests on one client connection: the first fills the pool, the second takes the fast path."""
    reader, writer = await connect(gw)
    try:
        writer.write(get("/first"))
        first = await asyncio.wait_for(read_reply(reader), 10)
        assert gw.pool.idle_count() == 1
        writer.write(second)
        return first, await asyncio.wait_for(read_reply(reader), 10)
    finally:
        writer.close()


async def test_a_response_still_arriving_is_finished_by_the_general_path(backend: Backend) -> None:
    async with gateway(table_for([backend.port])) as gw:
        _, (head, body) = await pooled_exchange(gw, get("/stream?n=3&interval=0.05"))
        assert head.chunked and body == b"one line 0\none line 1\none line 2\n"
        assert backend.connections == 1 and gw.pool.idle_count() == 1


async def test_interim_responses_on_the_fast_path() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + OK)
        await writer.drain()
        await reader.read()

    async with raw_endpoint(handle) as port, gateway(table_for([port])) as gw:
        reader, writer = await connect(gw)
        writer.write(get("/first"))
        await asyncio.wait_for(read_reply(reader), 10)
        writer.write(get("/second"))
        interim = parse_response_head(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10))
        head, body = await asyncio.wait_for(read_reply(reader), 10)
        writer.close()
        assert interim.status == 103 and ("Link", "</style.css>; rel=preload") in interim.headers
        assert head.status == 200 and body == b"ok"


async def test_504_on_the_fast_path() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await reader.read()  # the second request is never answered

    async with raw_endpoint(handle) as port, gateway(table_for([port]), read_timeout=0.3) as gw:
        first, (head, body) = await pooled_exchange(gw, get("/second"))
        assert first[0].status == 200
        assert head.status == 504 and b"did not answer within 0.3s" in body
