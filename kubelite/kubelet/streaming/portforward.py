"""Port-forward over an accepted WebSocket, relayed to the runtime's PortForward stream, in two flavours.

SPDY over WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``, kubectl ≥ 1.31): the WebSocket's binary
messages carry a SPDY/3.1 session as a byte stream. Per local connection kubectl opens two streams with the
headers ``streamtype`` (``error`` or ``data``), ``port`` and ``requestid``; it half-closes the error stream
at once. Each SYN_STREAM is answered with an empty SYN_REPLY; once both streams of a request id exist, one
connection to the port is made in the pod: DATA relays both ways, the client's FIN half-closes towards the
pod, and when the pod's side is done the data stream and then the error stream get a FIN. A failure is
written as text on the error stream (kubectl prints it and drops the session). PINGs are echoed, RST_STREAM
drops that connection, GOAWAY ends the session.

Channel WebSocket (``v4.channel.k8s.io``/``v5``, no protocol; the Python client): the ports come from the
``ports`` query; for the i-th port channel 2i is data and 2i+1 errors, and each channel first gets the port
as two little-endian bytes. One connection per port and WebSocket; the WebSocket closes when all are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from kubelite.proto import runtime_pb2 as pb

from . import spdy, wsstream
from .runtime import StreamError, StreamingRuntime

log = logging.getLogger(__name__)

_CHUNK = 32 * 1024
_Requests = asyncio.Queue[pb.PortForwardStreamRequest | None]
Send = Callable[[bytes], Awaitable[None]]


def parse_port(text: str) -> int:
    """A port number in 1..65535 (``ValueError`` otherwise)."""
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(f"invalid port {text!r}")
    return port


async def _requests(sandbox_id: str, port: int, queue: _Requests) -> AsyncIterator[pb.PortForwardStreamRequest]:
    yield pb.PortForwardStreamRequest(start=pb.PortForwardStart(pod_sandbox_id=sandbox_id, port=port))
    while (request := await queue.get()) is not None:
        yield request


async def forward(runtime: StreamingRuntime, sandbox_id: str, port: int, queue: _Requests, send_data: Send,
                  send_error: Callable[[str], Awaitable[None]], pod: str) -> None:
    """One connection to ``port`` in the sandbox: ``queue`` feeds it (data, close_write); what comes back goes
    to ``send_data``, a failure to ``send_error``. Returns when the pod's side is done."""
    try:
        async with contextlib.aclosing(runtime.port_forward_stream(_requests(sandbox_id, port, queue))) as replies:
            async for reply in replies:
                kind = reply.WhichOneof("payload")
                if kind == "data" and reply.data:
                    for i in range(0, len(reply.data), _CHUNK):
                        await send_data(reply.data[i : i + _CHUNK])
                elif kind == "error":
                    await send_error(f"error forwarding port {port} to pod {pod}: {reply.error}")
                    return
    except StreamError as e:
        await send_error(f"error forwarding port {port} to pod {pod}: {e}")


# --- SPDY over WebSocket -----------------------------------------------------------------------------------

@dataclass
class _Request:
    """The error and data streams of one forwarded connection (one kubectl request id)."""

    port_header: str
    error_id: int = 0
    data_id: int = 0
    queue: _Requests = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class SpdySession:
    """The server side of one tunnelled SPDY session (see the module doc)."""

    def __init__(self, ws: web.WebSocketResponse, runtime: StreamingRuntime, sandbox_id: str, pod: str) -> None:
        self.ws = ws
        self.runtime = runtime
        self.sandbox_id = sandbox_id
        self.pod = pod
        self._reader = spdy.FrameReader()
        self._writer = spdy.FrameWriter()
        # Header blocks share one compression context: frames must go out in the order they are encoded.
        self._write_lock = asyncio.Lock()
        self._requests: dict[str, _Request] = {}
        self._by_stream: dict[int, _Request] = {}
        self._finished: set[int] = set()

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != WSMsgType.BINARY:
                    if msg.type == WSMsgType.TEXT:
                        log.debug("port-forward for %s: text message in a SPDY tunnel, closing", self.pod)
                        break
                    continue
                if not await self._feed(msg.data):
                    break
        except spdy.ProtocolError as e:
            log.info("port-forward for %s: %s", self.pod, e)
        finally:
            tasks = [r.task for r in self._requests.values() if r.task is not None]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.ws.close()

    async def _feed(self, data: bytes) -> bool:
        """Handle the frames completed by ``data``; False when the session ends (GOAWAY)."""
        for frame in self._reader.feed(data):
            if isinstance(frame, spdy.SynStream):
                await self._open(frame)
            elif isinstance(frame, spdy.DataFrame):
                self._data(frame)
            elif isinstance(frame, spdy.RstStream):
                self._reset(frame.stream_id)
            elif isinstance(frame, spdy.Ping):
                await self.send(spdy.Ping(frame.ping_id))
            elif isinstance(frame, spdy.GoAway):
                return False
        return True

    async def send(self, frame: spdy.Frame) -> None:
        async with self._write_lock:
            if not self.ws.closed:
                await self.ws.send_bytes(self._writer.encode(frame))

    async def _open(self, syn: spdy.SynStream) -> None:
        await self.send(spdy.SynReply(syn.stream_id))
        kind = syn.headers.get("streamtype", "")
        request_id = syn.headers.get("requestid", "")
        request = self._requests.setdefault(request_id, _Request(syn.headers.get("port", "")))
        if kind == "error":
            request.error_id = syn.stream_id
        elif kind == "data":
            request.data_id = syn.stream_id
        else:
            await self.send(spdy.RstStream(syn.stream_id, spdy.PROTOCOL_ERROR))
            return
        self._by_stream[syn.stream_id] = request
        if request.error_id and request.data_id and request.task is None:
            request.task = asyncio.ensure_future(self._forward(request))

    def _data(self, frame: spdy.DataFrame) -> None:
        request = self._by_stream.get(frame.stream_id)
        if request is None or frame.stream_id != request.data_id:
            return  # the error stream carries nothing from the client; unknown streams are ignored
        if frame.data:
            request.queue.put_nowait(pb.PortForwardStreamRequest(data=frame.data))
        if frame.fin:
            request.queue.put_nowait(pb.PortForwardStreamRequest(close_write=True))

    def _reset(self, stream_id: int) -> None:
        """The client dropped a stream: nothing more goes on it; a reset data stream drops its connection
        (kubectl also resets the data stream after it has read everything: then there is nothing to drop)."""
        request = self._by_stream.get(stream_id)
        if request is None:
            return
        self._finished.add(stream_id)
        if stream_id == request.data_id and request.task is not None:
            request.task.cancel()

    async def _fin(self, stream_id: int) -> None:
        if stream_id not in self._finished:
            self._finished.add(stream_id)
            await self.send(spdy.DataFrame(stream_id, b"", fin=True))

    async def _forward(self, request: _Request) -> None:
        async def send_data(data: bytes) -> None:
            if request.data_id not in self._finished:
                await self.send(spdy.DataFrame(request.data_id, data))

        async def send_error(message: str) -> None:
            await self.send(spdy.DataFrame(request.error_id, message.encode()))

        try:
            try:
                port = parse_port(request.port_header)
            except ValueError:
                await send_error(f"invalid port {request.port_header!r}")
                return
            await forward(self.runtime, self.sandbox_id, port, request.queue, send_data, send_error, self.pod)
        finally:
            with contextlib.suppress(ConnectionError):
                await self._fin(request.data_id)
                await self._fin(request.error_id)


# --- channel WebSocket -------------------------------------------------------------------------------------

async def serve_channels(ws: web.WebSocketResponse, protocol: str, runtime: StreamingRuntime, sandbox_id: str,
                         ports: list[int], pod: str) -> None:
    """Forward ``ports`` over the channel protocol on the accepted ``ws`` (see the module doc); closes ``ws``."""
    queues: list[_Requests] = [asyncio.Queue() for _ in ports]
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await ws.send_bytes(wsstream.encode(2 * i, prefix))
        await ws.send_bytes(wsstream.encode(2 * i + 1, prefix))

    def sender(channel: int) -> Send:
        async def send(data: bytes) -> None:
            await ws.send_bytes(wsstream.encode(channel, data))
        return send

    def error_sender(channel: int) -> Callable[[str], Awaitable[None]]:
        async def send(message: str) -> None:
            await ws.send_bytes(wsstream.encode(channel, message.encode()))
        return send

    forwards = [asyncio.ensure_future(forward(runtime, sandbox_id, port, queues[i], sender(2 * i),
                                              error_sender(2 * i + 1), pod))
                for i, port in enumerate(ports)]
    client = asyncio.ensure_future(_read_channels(ws, protocol, queues))
    all_done = asyncio.ensure_future(_all_done(forwards))
    try:
        await asyncio.wait([client, all_done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [client, all_done, *forwards]:
            task.cancel()
        await asyncio.gather(client, all_done, *forwards, return_exceptions=True)
        await ws.close()


async def _all_done(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


async def _read_channels(ws: web.WebSocketResponse, protocol: str, queues: list[_Requests]) -> None:
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            continue
        m = wsstream.decode(msg.data, protocol)
        if m is None or m.channel % 2 or m.channel // 2 >= len(queues):
            continue  # nothing is read from error channels
        queue = queues[m.channel // 2]
        if m.closed:
            queue.put_nowait(pb.PortForwardStreamRequest(close_write=True))
        elif m.data:
            queue.put_nowait(pb.PortForwardStreamRequest(data=m.data))
