"""Small HTTP backends on 127.0.0.1 for the ingress tests: each answers who it is.

Routes of `backend_app(name)`:
- any path: JSON ``{"backend", "method", "path" (with query), "headers", "body_length", "connection"}``
  where ``connection`` counts the client connections this backend has seen so far (keep-alive reuse);
- ``/slow?seconds=S``: waits, then answers as above;
- ``/stream?n=N&interval=S``: a chunked response of N lines, one every S seconds;
- ``/sse?n=N&interval=S``: N Server-Sent Events;
- ``/echo``: the request body back (read as it arrives);
- ``/ws``: a WebSocket echoing text as ``"<name>: <text>"`` and binary as is.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web


@dataclass
class Backend:
    name: str
    port: int
    peers: set[tuple[str, int]] = field(default_factory=set)

    @property
    def connections(self) -> int:
        """How many client connections (distinct peer addresses) sent requests so far."""
        return len(self.peers)


def backend_app(backend: Backend) -> web.Application:
    async def identify(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer:
            backend.peers.add((str(peer[0]), int(peer[1])))
        body = await request.read()
        return web.json_response({"backend": backend.name, "method": request.method, "path": request.path_qs,
                                  "headers": dict(request.headers), "body_length": len(body),
                                  "connection": backend.connections})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "1")))
        return await identify(request)

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        n, interval = int(request.query.get("n", "3")), float(request.query.get("interval", "0.2"))
        for i in range(n):
            await response.write(f"{backend.name} line {i}\n".encode())
            if i < n - 1:
                await asyncio.sleep(interval)
        await response.write_eof()
        return response

    async def sse(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        n, interval = int(request.query.get("n", "3")), float(request.query.get("interval", "0.2"))
        for i in range(n):
            await response.write(f"id: {i}\ndata: {backend.name} event {i}\n\n".encode())
            if i < n - 1:
                await asyncio.sleep(interval)
        await response.write_eof()
        return response

    async def echo(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for data in request.content.iter_any():
            await response.write(data)
        await response.write_eof()
        return response

    async def ws(request: web.Request) -> web.WebSocketResponse:
        socket_ = web.WebSocketResponse()
        await socket_.prepare(request)
        async for msg in socket_:
            if msg.type == WSMsgType.TEXT:
                await socket_.send_str(f"{backend.name}: {msg.data}")
            elif msg.type == WSMsgType.BINARY:
                await socket_.send_bytes(msg.data)
        return socket_

    app = web.Application()
    app.router.add_route("*", "/slow", slow)
    app.router.add_get("/stream", stream)
    app.router.add_get("/sse", sse)
    app.router.add_post("/echo", echo)
    app.router.add_get("/ws", ws)
    app.router.add_route("*", "/{tail:.*}", identify)
    return app


@asynccontextmanager
async def run_backends(*names: str) -> AsyncIterator[dict[str, Backend]]:
    """Start one backend per name on 127.0.0.1 (free ports); stop them all on exit."""
    runners: list[web.AppRunner] = []
    backends: dict[str, Backend] = {}
    try:
        for name in names:
            backend = Backend(name, 0)
            runner = web.AppRunner(backend_app(backend), access_log=None, handle_signals=False)
            await runner.setup()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            backend.port = sock.getsockname()[1]
            site = web.SockSite(runner, sock)
            await site.start()
            runners.append(runner)
            backends[name] = backend
        yield backends
    finally:
        for runner in runners:
            await runner.cleanup()


def refused_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_json(body: bytes) -> dict[str, object]:
    value = json.loads(body)
    assert isinstance(value, dict)
    return value
