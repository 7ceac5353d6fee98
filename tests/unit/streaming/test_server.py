"""The kubelet's streaming server over plain HTTP (authentication off): what goes over the WebSocket and
what reaches the runtime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from kubelite.kubelet.server import STATUS_HEADER, build_kubelet_app
from kubelite.proto import runtime_pb2 as pb
from tests.support.streaming_runtime import FakeRuntime

EXEC = "/exec/ns/web/app"
Kubelet = tuple[TestClient[Any, Any], FakeRuntime]


@pytest.fixture
async def kubelet(tmp_path: Path) -> AsyncIterator[Kubelet]:
    rt = FakeRuntime(tmp_path)
    rt.add_container("ns", "web", "uid", "app")
    async with TestClient(TestServer(build_kubelet_app(rt, tmp_path, client_names=None))) as client:
        yield client, rt


async def messages(ws: object) -> list[bytes]:
    out = []
    async for msg in ws:  # type: ignore[attr-defined]
        assert msg.type == WSMsgType.BINARY
        out.append(msg.data)
    return out


async def test_exec_v4_with_text_stdin_and_resize(kubelet: Kubelet) -> None:
    client, rt = kubelet
    ws = await client.ws_connect(EXEC, params=[("command", "sh"), ("command", "-c"), ("command", "head -c 5"),
                                               ("stdin", "1"), ("stdout", "1"), ("stderr", "1")],
                                 protocols=["v4.channel.k8s.io"])
    assert ws.protocol == "v4.channel.k8s.io"
    await ws.send_bytes(b'\x04{"Width":100,"Height":40}')
    await ws.send_str("\x00hel")  # the Python client sends str stdin as text messages
    await ws.send_bytes(b"\x00lo world")
    got = await asyncio.wait_for(messages(ws), 10)
    assert got[0] == b"\x01"  # streams are ready
    assert b"".join(m[1:] for m in got if m[0] == 1) == b"hello"
    assert json.loads(got[-1][1:]) == {"metadata": {}, "status": "Success"}
    assert ws.close_code == 1000
    resize = [r.resize for r in rt.exec_requests if r.WhichOneof("payload") == "resize"]
    assert resize == [pb.TerminalSize(width=100, height=40)]


async def test_exec_tty_has_no_stderr(kubelet: Kubelet) -> None:
    client, rt = kubelet
    ws = await client.ws_connect(EXEC, params=[("command", "true"), ("stdout", "true"), ("stderr", "true"),
                                               ("tty", "true")], protocols=["v5.channel.k8s.io"])
    await asyncio.wait_for(messages(ws), 10)
    assert (rt.execs[0].tty, rt.execs[0].stderr, rt.execs[0].stdin) == (True, False, False)


async def test_a_client_that_leaves_ends_the_exec(kubelet: Kubelet) -> None:
    client, rt = kubelet
    ws = await client.ws_connect(EXEC, params=[("command", "sh"), ("command", "-c"),
                                               ("command", "echo started; sleep 30"), ("stdout", "true")],
                                 protocols=["v5.channel.k8s.io"])
    assert (await ws.receive()).data == b"\x01"
    assert (await ws.receive()).data == b"\x01started\n"
    await ws.close()
    for _ in range(200):
        if rt.exec_returncodes:
            break
        await asyncio.sleep(0.05)
    assert rt.exec_returncodes == [-9]


@pytest.mark.parametrize(("path", "params", "code", "message"), [
    pytest.param(EXEC, [("stdout", "1")], 400, "you must specify at least one command for the container",
                 id="no-command"),
    pytest.param(EXEC, [("command", "ls")], 400, "you must specify at least 1 of stdin, stdout, stderr",
                 id="no-stream"),
    pytest.param("/exec/ns/web/gone", [("command", "ls"), ("stdout", "1")], 500, 'container not found ("gone")',
                 id="no-container"),
    pytest.param("/portforward/ns/web", [("ports", "80")], 404,
                 'pod "web" in namespace "ns" has no running sandbox', id="no-sandbox"),
])
async def test_refused_handshakes_carry_their_status(kubelet: Kubelet, path: str,
                                                     params: list[tuple[str, str]], code: int, message: str) -> None:
    client, _ = kubelet
    async with client.get(path, params=params, headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                        "Sec-WebSocket-Version": "13",
                                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as resp:
        assert resp.status == code
        status = json.loads(resp.headers[STATUS_HEADER])
        assert (status["code"], status["message"]) == (code, message)
        assert json.loads(await resp.read()) == status


async def test_plain_requests_and_unknown_protocols_are_refused(kubelet: Kubelet) -> None:
    client, _ = kubelet
    async with client.post(EXEC, params=[("command", "ls"), ("stdout", "1")]) as resp:
        assert resp.status == 400
        assert "Upgrade request required" in (await resp.json())["message"]
    async with client.get(EXEC, params=[("command", "ls"), ("stdout", "1")],
                          headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                   "Sec-WebSocket-Protocol": "channel.k8s.io"}) as resp:
        assert resp.status == 400
        assert "unable to negotiate protocol" in (await resp.json())["message"]


async def test_logs_options_are_checked(kubelet: Kubelet) -> None:
    client, _ = kubelet
    for query, message in (("tailLines=-1", "tailLines: Invalid value: -1"), ("limitBytes=0", "limitBytes"),
                           ("sinceTime=yesterday", "sinceTime"), ("tailLines=x", "must be an integer")):
        async with client.get(f"/containerLogs/ns/web/app?{query}") as resp:
            assert resp.status == 400
            assert message in (await resp.json())["message"]
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/nothing")).status == 404
