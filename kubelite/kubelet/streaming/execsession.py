"""An exec over the WebSocket channel protocol (`wsstream`), relayed to the runtime's Exec stream.

Server side of what kubelet's remotecommand does: once the WebSocket is accepted, one empty message goes on
the lowest output channel (stdout, else stderr, else error) to tell the client the streams are ready; then
stdin, resizes and the v5 stdin close signal go to the runtime, its stdout and stderr come back on channels
1 and 2, and the exec ends with one Status on channel 3 (Success, NonZeroExitCode with the code, or an
InternalError) and a normal WebSocket close. A client that goes away ends the exec (the runtime kills it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from kubelite.proto import runtime_pb2 as pb

from . import wsstream
from .runtime import StreamError, StreamingRuntime

_Requests = asyncio.Queue[pb.ExecStreamRequest | None]


async def serve_exec(ws: web.WebSocketResponse, protocol: str, runtime: StreamingRuntime,
                     start: pb.ExecRequest) -> None:
    """Run ``start`` in the runtime and relay it over the accepted ``ws`` until it ends; closes ``ws``."""
    first = wsstream.STDOUT if start.stdout else wsstream.STDERR if start.stderr else wsstream.ERROR
    await ws.send_bytes(wsstream.encode(first))
    requests: _Requests = asyncio.Queue()
    relay = asyncio.ensure_future(_relay_output(ws, runtime, start, requests))
    client = asyncio.ensure_future(_read_client(ws, protocol, start, requests))
    try:
        await asyncio.wait([relay, client], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (relay, client):
            task.cancel()
        await asyncio.gather(relay, client, return_exceptions=True)
        await ws.close()


async def _request_stream(start: pb.ExecRequest, requests: _Requests) -> AsyncIterator[pb.ExecStreamRequest]:
    yield pb.ExecStreamRequest(start=start)
    while (request := await requests.get()) is not None:
        yield request


async def _relay_output(ws: web.WebSocketResponse, runtime: StreamingRuntime, start: pb.ExecRequest,
                        requests: _Requests) -> None:
    status: bytes | None = None
    try:
        async with contextlib.aclosing(runtime.exec_stream(_request_stream(start, requests))) as responses:
            async for response in responses:
                kind = response.WhichOneof("payload")
                if kind == "stdout" and response.stdout:
                    await ws.send_bytes(wsstream.encode(wsstream.STDOUT, response.stdout))
                elif kind == "stderr" and response.stderr:
                    await ws.send_bytes(wsstream.encode(wsstream.STDERR, response.stderr))
                elif kind == "exit_code":
                    status = wsstream.success_status() if response.exit_code == 0 else \
                        wsstream.exit_code_status(response.exit_code, list(start.cmd))
                    break
                elif kind == "error":
                    status = wsstream.internal_error_status(f"error executing command in container: {response.error}")
                    break
    except StreamError as e:
        status = wsstream.internal_error_status(f"error executing command in container: {e}")
    if status is None:
        status = wsstream.internal_error_status("error executing command in container: the runtime ended the "
                                                "exec without an exit code")
    await ws.send_bytes(wsstream.encode(wsstream.ERROR, status))


async def _read_client(ws: web.WebSocketResponse, protocol: str, start: pb.ExecRequest, requests: _Requests) -> None:
    """Client messages to runtime requests, until the client closes the WebSocket."""
    async for msg in ws:
        if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            continue
        m = wsstream.decode(msg.data, protocol)
        if m is None:
            continue
        if m.channel == wsstream.STDIN and start.stdin:
            if m.closed:
                requests.put_nowait(pb.ExecStreamRequest(stdin_close=True))
            elif m.data:
                requests.put_nowait(pb.ExecStreamRequest(stdin=m.data))
        elif m.channel == wsstream.RESIZE and not m.closed and (size := wsstream.parse_resize(m.data)):
            requests.put_nowait(pb.ExecStreamRequest(resize=pb.TerminalSize(width=size[0], height=size[1])))
