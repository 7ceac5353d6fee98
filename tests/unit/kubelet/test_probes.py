"""Probes: one attempt of each kind against real local servers and the fake runtime, and the workers'
thresholds, holds and results."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from kubelite.kubelet.podstate import ContainerInfo, PodRuntimeState, State
from kubelite.kubelet.probes import Kind, ProbeManager, Result, exec_command, http_get, resolve_port, tcp_connect
from kubelite.kubelet.runtime_client import RuntimeClient
from kubelite.proto import runtime_pb2 as pb
from tests.unit.kubelet.fake_runtime import FakeRuntime, serve
from tests.unit.kubelet.recorder import RecordingRecorder

Obj = dict[str, Any]


def test_resolve_port() -> None:
    ctr = {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port(80, ctr) == 80
    assert resolve_port("81", ctr) == 81
    assert resolve_port("http", ctr) == 8080
    with pytest.raises(ValueError, match="couldn't find port: metrics in app"):
        resolve_port("metrics", ctr)


@pytest.fixture
async def http_server() -> AsyncIterator[int]:
    async def ok(request: web.Request) -> web.Response:
        assert request.headers["User-Agent"].startswith("kube-probe/")
        return web.Response(text=request.headers.get("X-Check", "fine"))

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500)

    async def moved(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://elsewhere.invalid/"})

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(0.5)
        return web.Response()

    app = web.Application()
    app.router.add_get("/healthz", ok)
    app.router.add_get("/broken", broken)
    app.router.add_get("/moved", moved)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_http_probe(http_server: int) -> None:
    async with aiohttp.ClientSession() as session:
        result, output = await http_get(session, {"path": "/healthz", "httpHeaders": [{"name": "X-Check",
                                                                                       "value": "hdr"}]},
                                        "127.0.0.1", http_server, 1)
        assert (result, output) == (Result.SUCCESS, "hdr")
        assert await http_get(session, {"path": "broken"}, "127.0.0.1", http_server, 1) == \
            (Result.FAILURE, "HTTP probe failed with statuscode: 500")
        assert (await http_get(session, {"path": "/moved"}, "127.0.0.1", http_server, 1))[0] is Result.SUCCESS
        result, output = await http_get(session, {"path": "/slow"}, "127.0.0.1", http_server, 0.2)
        assert result is Result.FAILURE and "context deadline exceeded" in output
        port = free_port()
        result, output = await http_get(session, {"path": "/"}, "127.0.0.1", port, 1)
        assert result is Result.FAILURE
        assert output == f'Get "http://127.0.0.1:{port}/": dial tcp 127.0.0.1:{port}: connect: connection refused'


async def test_tcp_probe(http_server: int) -> None:
    assert await tcp_connect("127.0.0.1", http_server, 1) == (Result.SUCCESS, "")
    port = free_port()
    assert await tcp_connect("127.0.0.1", port, 1) == \
        (Result.FAILURE, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def _running_container(rc: RuntimeClient, fake: FakeRuntime, name: str = "app") -> str:
    fake.add_image("img")
    config = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="p", uid="u1", namespace="ns"))
    sid = await rc.run_pod_sandbox(config)
    cid = await rc.create_container(sid, pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name),
                                                            image=pb.ImageSpec(image="img")), config)
    await rc.start_container(cid)
    return cid


async def test_exec_probe() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            cid = await _running_container(rc, fake)
            assert await exec_command(rc, cid, ["check"], 1) == (Result.SUCCESS, "")
            fake.exec_results[("app", "check")] = (2, "bad things")
            assert await exec_command(rc, cid, ["check"], 1) == (Result.FAILURE, "bad things")
            fake.exec_results[("app", "check")] = (1, "")
            assert await exec_command(rc, cid, ["check"], 1) == (Result.FAILURE, 'command "check" exited with 1')
            await rc.stop_container(cid, 1)
            assert (await exec_command(rc, cid, ["check"], 1))[0] is Result.UNKNOWN


def _pod(**probes: Obj) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "img", **probes}]}}


def _exec(command: str, **settings: Any) -> Obj:
    return {"exec": {"command": [command]}, "periodSeconds": 0.02, "timeoutSeconds": 1, "failureThreshold": 1,
            "successThreshold": 1, **settings}


def _state(cid: str) -> PodRuntimeState:
    return PodRuntimeState.of([], [ContainerInfo(cid, "app", "sb", State.RUNNING, created_at=0.0, started_at=0.0)])


async def _until(check: Any, what: str) -> None:
    async with asyncio.timeout(5):
        while not check():  # noqa: ASYNC110 - the workers run on their own schedule
            await asyncio.sleep(0.01)


async def test_readiness_needs_its_thresholds_and_wakes_the_pod() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            cid = await _running_container(rc, fake)
            woken: list[str] = []
            recorder = RecordingRecorder()
            manager = ProbeManager(rc, recorder, woken.append)
            pod = _pod(readinessProbe=_exec("ready", failureThreshold=3, successThreshold=2))
            try:
                manager.sync_pod(pod, _state(cid), "10.1.0.5")
                assert manager.readiness("u1") == {cid: False}
                await _until(lambda: manager.readiness("u1").get(cid), "ready")
                assert woken == ["u1"]
                fake.exec_results[("app", "ready")] = (1, "nope")
                await _until(lambda: recorder.messages().count("Readiness probe failed: nope") >= 2, "2 failures")
                assert manager.readiness("u1")[cid] is True  # not yet: the threshold is 3
                await _until(lambda: not manager.readiness("u1")[cid], "unready")
                assert ("Warning", "Unhealthy", "Readiness probe failed: nope") in recorder.events
            finally:
                await manager.close()


async def test_liveness_failure_holds_until_the_container_changes() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            cid = await _running_container(rc, fake)
            fake.exec_results[("app", "alive")] = (1, "dead")
            manager = ProbeManager(rc, RecordingRecorder(), lambda uid: None)
            pod = _pod(livenessProbe=_exec("alive", failureThreshold=2))
            try:
                manager.sync_pod(pod, _state(cid), "10.1.0.5")
                await _until(lambda: manager.failed("u1", Kind.LIVENESS) == {cid}, "liveness failed")
                calls = fake.calls.count("ExecSync")
                await asyncio.sleep(0.1)
                assert fake.calls.count("ExecSync") == calls  # on hold
                other = await _running_container(rc, fake)
                del fake.exec_results[("app", "alive")]
                manager.sync_pod(pod, _state(other), "10.1.0.5")
                await _until(lambda: fake.calls.count("ExecSync") > calls, "the new container is probed")
                assert other not in manager.failed("u1", Kind.LIVENESS)
            finally:
                await manager.close()


async def test_startup_probe_gates_the_others() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            cid = await _running_container(rc, fake)
            fake.exec_results[("app", "started")] = (1, "not yet")
            manager = ProbeManager(rc, RecordingRecorder(), lambda uid: None)
            pod = _pod(startupProbe=_exec("started", failureThreshold=100), readinessProbe=_exec("ready"))
            try:
                manager.sync_pod(pod, _state(cid), "10.1.0.5")
                await asyncio.sleep(0.1)
                assert manager.started("u1") == {} and manager.readiness("u1") == {cid: False}
                assert not any(c == "ExecSync" for c in fake.calls[:0])
                del fake.exec_results[("app", "started")]
                await _until(lambda: manager.started("u1").get(cid), "started")
                await _until(lambda: manager.readiness("u1").get(cid), "ready once started")
            finally:
                await manager.close()


async def test_grpc_probes_count_as_success() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            recorder = RecordingRecorder()
            manager = ProbeManager(rc, recorder, lambda uid: None)
            pod = _pod(readinessProbe={"grpc": {"port": 9000}})
            manager.sync_pod(pod, _state("c1"), "10.1.0.5")
            manager.sync_pod(pod, _state("c1"), "10.1.0.5")
            assert manager.readiness("u1") == {"c1": True}
            assert recorder.reasons() == ["ProbeNotSupported"]
            await manager.close()
