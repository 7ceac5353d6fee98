"""Finding containers by the kubelet's labels, and `GrpcStreamingRuntime` over a real gRPC channel (a
servicer in the test process that answers with `FakeRuntime`)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from grpc import aio

from kubelite.apiserver.certs import create_ca, issue_client_cert
from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.runtime_client import RuntimeClient
from kubelite.kubelet.server import serve_streaming
from kubelite.kubelet.streaming.runtime import ContainerRef, GrpcStreamingRuntime, find_container, find_sandbox
from kubelite.kubelet.streaming.tls import KUBELET_CLIENT_COMMON_NAME
from kubelite.proto import runtime_pb2 as pb
from kubelite.proto import runtime_pb2_grpc as pb_grpc
from tests.support.streaming_runtime import FakeRuntime, echo_server


async def test_current_and_previous_attempts(tmp_path: Path) -> None:
    rt = FakeRuntime(tmp_path)
    rt.add_container("ns", "web", "old-uid", "app", attempt=7, running=False)  # an earlier pod of that name
    first = rt.add_container("ns", "web", "uid", "app", attempt=0, running=False)
    second = rt.add_container("ns", "web", "uid", "app", attempt=1)
    found = await find_container(rt, "ns", "web", "app")
    assert found.current == ContainerRef("c-web-app-1-uid", 1, True, second)
    assert found.previous == ContainerRef("c-web-app-0-uid", 0, False, first)
    assert await find_container(rt, "ns", "web", "other") == (await find_container(rt, "ns", "nope", "app"))


async def test_previous_log_left_on_disk(tmp_path: Path) -> None:
    rt = FakeRuntime(tmp_path)
    log = rt.add_container("ns", "web", "uid", "app", attempt=3)
    for attempt in (0, 2, 5):
        (log.parent / f"{attempt}.log").write_text("")
    found = await find_container(rt, "ns", "web", "app")
    assert found.previous == ContainerRef("", 2, False, log.parent / "2.log")


async def test_find_sandbox(tmp_path: Path) -> None:
    rt = FakeRuntime(tmp_path)
    assert await find_sandbox(rt, "ns", "web") is None
    rt.add_sandbox("ns", "web", "old")
    newest = rt.add_sandbox("ns", "web", "new")
    assert await find_sandbox(rt, "ns", "web") == newest


class Servicer(pb_grpc.RuntimeServiceServicer):
    def __init__(self, fake: FakeRuntime) -> None:
        self.fake = fake

    async def ListContainers(self, request: pb.ListContainersRequest, context: Any) -> pb.ListContainersResponse:
        f = request.filter
        found = await self.fake.list_containers(labels=dict(f.label_selector), state=f.state if f.has_state else None)
        return pb.ListContainersResponse(containers=found)

    async def ContainerStatus(self, request: pb.ContainerStatusRequest, context: Any) -> pb.ContainerStatusResponse:
        return pb.ContainerStatusResponse(status=await self.fake.container_status(request.container_id))

    async def Exec(self, request_iterator: AsyncIterator[pb.ExecStreamRequest],
                   context: Any) -> AsyncIterator[pb.ExecStreamResponse]:
        async for response in self.fake.exec_stream(request_iterator):
            yield response

    async def PortForward(self, request_iterator: AsyncIterator[pb.PortForwardStreamRequest],
                          context: Any) -> AsyncIterator[pb.PortForwardStreamResponse]:
        async for response in self.fake.port_forward_stream(request_iterator):
            yield response


@pytest.fixture
async def grpc_runtime(tmp_path: Path) -> AsyncIterator[tuple[GrpcStreamingRuntime, FakeRuntime]]:
    fake = FakeRuntime(tmp_path)
    server = aio.server()
    pb_grpc.add_RuntimeServiceServicer_to_server(Servicer(fake), server)  # type: ignore[no-untyped-call]
    socket = tmp_path / "rt.sock"
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    try:
        async with RuntimeClient(socket) as client:
            yield GrpcStreamingRuntime(client), fake
    finally:
        await server.stop(0)


async def test_exec_over_grpc(grpc_runtime: tuple[GrpcStreamingRuntime, FakeRuntime]) -> None:
    runtime, _ = grpc_runtime
    stdin: asyncio.Queue[pb.ExecStreamRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.ExecStreamRequest]:
        yield pb.ExecStreamRequest(start=pb.ExecRequest(cmd=["sh", "-c", "read x; echo got $x; exit 2"],
                                                        stdin=True, stdout=True, stderr=True))
        while (item := await stdin.get()) is not None:
            yield item

    stdin.put_nowait(pb.ExecStreamRequest(stdin=b"it\n"))
    replies = [r async for r in runtime.exec_stream(requests())]
    assert [r.WhichOneof("payload") for r in replies] == ["stdout", "exit_code"]
    assert (replies[0].stdout, replies[1].exit_code) == (b"got it\n", 2)


async def test_port_forward_over_grpc_and_closing_early(grpc_runtime: tuple[GrpcStreamingRuntime, FakeRuntime]
                                                        ) -> None:
    runtime, fake = grpc_runtime
    server, port = await echo_server()
    fake.ports[80] = port
    queue: asyncio.Queue[pb.PortForwardStreamRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.PortForwardStreamRequest]:
        yield pb.PortForwardStreamRequest(start=pb.PortForwardStart(pod_sandbox_id="sb", port=80))
        while (item := await queue.get()) is not None:
            yield item

    try:
        replies = runtime.port_forward_stream(requests())
        queue.put_nowait(pb.PortForwardStreamRequest(data=b"ping"))
        assert (await anext(replies)).data == b"ping"
        await replies.aclose()  # the caller gives up: the call is cancelled, nothing raises
        queue.put_nowait(pb.PortForwardStreamRequest(data=b"x"))
        closed = [r async for r in runtime.port_forward_stream(_start_only(81))]
        assert [r.error for r in closed] == ["connection refused on port 81"]
    finally:
        server.close()


async def _start_only(port: int) -> AsyncIterator[pb.PortForwardStreamRequest]:
    yield pb.PortForwardStreamRequest(start=pb.PortForwardStart(pod_sandbox_id="sb", port=port))


async def test_serve_streaming_as_the_kubelet_runs_it(tmp_path: Path,
                                                     grpc_runtime: tuple[GrpcStreamingRuntime, FakeRuntime]) -> None:
    runtime, fake = grpc_runtime
    fake.add_container("ns", "web", "uid", "app")
    ca = create_ca()
    cert, key = issue_client_cert(ca, KUBELET_CLIENT_COMMON_NAME)
    (tmp_path / "client.crt").write_bytes(cert)
    (tmp_path / "client.key").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")
    paths = AgentPaths(tmp_path / "node")
    async with serve_streaming(runtime.client, paths, node_name="n1", client_ca_pem=ca.cert_pem,
                               sans=["127.0.0.1"], address="127.0.0.1", port=0) as server:
        assert (paths.kubelet_dir / "pki" / "kubelet.crt").exists()
        base = f"https://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(f"{base}/exec/ns/web/app?command=echo&command=hi&stdout=1", ssl=ctx,
                                          protocols=["v5.channel.k8s.io"])
            got = [msg.data async for msg in ws]
            assert got[:2] == [b"\x01", b"\x01hi\n"]
            assert json.loads(got[-1][1:])["status"] == "Success"
            # A runtime that fails a call gives a Status, not a traceback.
            async with session.get(f"{base}/portforward/ns/web?ports=80", ssl=ctx) as resp:
                assert resp.status == 500
                assert "not implemented" in (await resp.json())["message"].lower()
