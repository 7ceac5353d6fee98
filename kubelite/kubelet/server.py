"""The kubelet's HTTPS endpoint: container logs, exec and port-forward, reached only through the API
server's ``pods/log``, ``pods/exec`` and ``pods/portforward`` proxy.

Paths (as the kubelet's server.go):

- ``GET /healthz``: ``ok`` (no client certificate needed);
- ``GET /containerLogs/{namespace}/{pod}/{container}?follow&previous&tailLines&sinceSeconds&sinceTime&
  timestamps&limitBytes``: the container's log as chunked ``text/plain`` (see `streaming.logs`);
- ``GET|POST /exec/{namespace}/{pod}/{container}?command=..&stdin&stdout&stderr&tty``: a WebSocket with
  ``v5.channel.k8s.io`` or ``v4.channel.k8s.io`` (see `streaming.execsession`);
- ``GET|POST /portforward/{namespace}/{pod}[/{uid}][?ports=..]``: a WebSocket with
  ``SPDY/3.1+portforward.k8s.io`` (kubectl) or the channel protocol (see `streaming.portforward`);
- ``GET /stats/summary``: CPU and memory of the node, its pods and their containers, as Kubernetes' Summary
  API (see `stats.summary`); the API server's ``metrics.k8s.io`` API is made from it.

Every other request needs a client certificate verified against the cluster CA with an allowed common
name (`streaming.tls`): 401 without one, 403 with another name. Errors are ``Status`` JSON with the
kubelet's words; an exec or port-forward refused before the WebSocket upgrade also carries its Status,
compact, in the ``X-Kubelite-Status`` header, because a WebSocket client (the API server's proxy) gets the
headers of a failed handshake but not its body. SPDY upgrades (kubectl's fallback) are refused: kubelite
speaks WebSocket only.

The runtime is reached through the `StreamingRuntime` protocol (`GrpcStreamingRuntime` over the
kubelet's `RuntimeClient`). `serve_streaming` is the whole endpoint as the kubelet runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Collection, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from kubelite.api import errors
from kubelite.proto import runtime_pb2 as pb

from .paths import AgentPaths
from .runtime_client import RuntimeClient
from .stats.summary import GrpcStatsSource, SummaryProvider
from .streaming import execsession, portforward, wsstream
from .streaming.logs import LogOptions, parse_timestamp, stream_log
from .streaming.runtime import GrpcStreamingRuntime, StreamingRuntime, find_container, find_sandbox
from .streaming.tls import KUBELET_CLIENT_COMMON_NAME, client_common_name, ensure_serving_cert, server_ssl_context

log = logging.getLogger(__name__)

DEFAULT_PORT = 10250
STATUS_HEADER = wsstream.STATUS_HEADER
RUNTIME_KEY = web.AppKey("runtime", StreamingRuntime)
LOGS_ROOT_KEY = web.AppKey("logs_root", Path)
STATS_KEY = web.AppKey("stats", SummaryProvider)

_TRUE = ("1", "t", "true", "True", "TRUE")
_MAX_MESSAGE = 16 * 1024 * 1024


def build_kubelet_app(runtime: StreamingRuntime, logs_root: Path, *,
                      client_names: Collection[str] | None = (KUBELET_CLIENT_COMMON_NAME,),
                      stats: SummaryProvider | None = None) -> web.Application:
    """The kubelet's streaming server. ``logs_root`` is the node's log folder (``AgentPaths.logs``): log
    files are only ever read below it. ``client_names`` are the certificate names allowed to call;
    None turns authentication off (only for tests over plain HTTP). ``/stats/summary`` is served from
    ``stats`` when given."""
    app = web.Application(middlewares=[_errors, _authenticator(client_names)])
    app[RUNTIME_KEY] = runtime
    app[LOGS_ROOT_KEY] = logs_root.resolve()
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", _container_logs)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", _exec)
        app.router.add_route(method, "/portforward/{namespace}/{pod}", _port_forward)
        app.router.add_route(method, "/portforward/{namespace}/{pod}/{uid}", _port_forward)
    if stats is not None:
        app[STATS_KEY] = stats
        app.router.add_get("/stats/summary", _stats_summary)
    return app


class KubeletServer:
    """Serves a kubelet app over HTTPS until the context ends; ``port`` is the bound port (0 picks one)."""

    def __init__(self, app: web.Application, *, ssl_context: ssl.SSLContext, address: str = "0.0.0.0",
                 port: int = DEFAULT_PORT) -> None:
        self.app = app
        self.ssl_context = ssl_context
        self.address = address
        self.port = port
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> KubeletServer:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.address, self.port, ssl_context=self.ssl_context, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("kubelet streaming server listening on %s:%d", self.address, self.port)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


@contextlib.asynccontextmanager
async def serve_streaming(runtime: RuntimeClient, paths: AgentPaths, *, node_name: str, client_ca_pem: bytes,
                          sans: Iterable[str] = (), address: str = "0.0.0.0",
                          port: int = DEFAULT_PORT) -> AsyncIterator[KubeletServer]:
    """The kubelet's HTTPS endpoint over its runtime, for the life of the context: the serving certificate
    under ``paths.kubelet_dir/pki`` (made for ``node_name`` and ``sans``, the node's addresses and host
    name), clients verified against ``client_ca_pem`` (the cluster CA), logs read below ``paths.logs``.
    The server's ``port`` is the one to publish in ``Node.status.daemonEndpoints`` (0 picks a free one)."""
    cert, key = await asyncio.to_thread(ensure_serving_cert, paths.kubelet_dir / "pki", node_name=node_name,
                                        sans=sans)
    app = build_kubelet_app(GrpcStreamingRuntime(runtime), paths.logs,
                            stats=SummaryProvider(GrpcStatsSource(runtime), node_name=node_name))
    async with KubeletServer(app, ssl_context=server_ssl_context(cert, key, client_ca_pem), address=address,
                             port=port) as server:
        yield server


# --- middlewares -------------------------------------------------------------------------------------------

def _status_response(err: errors.APIError) -> web.Response:
    status = json.dumps(err.to_status(), separators=(",", ":"))
    return web.Response(status=err.code, text=status, content_type="application/json",
                        headers={STATUS_HEADER: status})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.APIError as e:
        return _status_response(e)
    except web.HTTPNotFound:
        return _status_response(errors.APIError(404, "NotFound", "the server could not find the requested resource"))
    except web.HTTPMethodNotAllowed as e:
        return _status_response(errors.method_not_allowed(e.text or "method not allowed"))
    except web.HTTPException:
        raise
    except Exception as e:  # the runtime failed us (down, or a bug): a Status, not a traceback
        log.warning("%s %s failed: %s", request.method, request.path, e, exc_info=log.isEnabledFor(logging.DEBUG))
        return _status_response(errors.internal(str(e) or type(e).__name__))


def _authenticator(allowed: Collection[str] | None) -> Any:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if allowed is None or request.path == "/healthz":
            return await handler(request)
        transport = request.transport
        name = client_common_name(transport.get_extra_info("peercert") if transport is not None else None)
        if name is None:
            raise errors.unauthorized()
        if name not in allowed:
            raise errors.forbidden_error(f'user "{name}" is not allowed to use the kubelet API')
        return await handler(request)

    return authenticate


# --- handlers ----------------------------------------------------------------------------------------------

async def _healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _stats_summary(request: web.Request) -> web.Response:
    return web.json_response(await request.app[STATS_KEY].summary())


def _bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "") in _TRUE


def _int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'{name}: invalid value "{raw}": must be an integer') from None


def log_options(request: web.Request, now_ns: int | None = None) -> LogOptions:
    """The query of ``/containerLogs`` as `LogOptions` (``sinceSeconds`` relative to ``now_ns``)."""
    since: int | None = None
    if (seconds := _int(request, "sinceSeconds")) is not None:
        since = (now_ns if now_ns is not None else time.time_ns()) - seconds * 1_000_000_000
    elif raw := request.query.get("sinceTime"):
        try:
            since = parse_timestamp(raw)
        except ValueError:
            raise errors.bad_request(f'sinceTime: invalid value "{raw}": must be an RFC 3339 time') from None
    tail = _int(request, "tailLines")
    limit = _int(request, "limitBytes")
    if tail is not None and tail < 0:
        raise errors.bad_request(f"tailLines: Invalid value: {tail}: must be greater than or equal to 0")
    if limit is not None and limit < 1:
        raise errors.bad_request(f"limitBytes: Invalid value: {limit}: must be greater than 0")
    return LogOptions(follow=_bool(request, "follow"), tail_lines=tail, since_ns=since,
                      timestamps=_bool(request, "timestamps"), limit_bytes=limit)


async def _container_logs(request: web.Request) -> web.StreamResponse:
    namespace, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
    opts = log_options(request)
    runtime = request.app[RUNTIME_KEY]
    found = await find_container(runtime, namespace, pod, name)
    ref = found.previous if _bool(request, "previous") else found.current
    if ref is None:
        if _bool(request, "previous"):
            raise errors.bad_request(f'previous terminated container "{name}" in pod "{pod}" not found')
        raise errors.bad_request(f'container "{name}" in pod "{pod}" is waiting to start: ContainerCreating')
    path = ref.log_path.resolve()
    if not path.is_relative_to(request.app[LOGS_ROOT_KEY]):
        raise errors.internal(f"the log of container {name!r} is outside the node's log folder")

    async def still_running() -> bool:
        if not ref.id:
            return False
        try:
            status = await runtime.container_status(ref.id)
        except Exception:  # gone: nothing more will be written
            return False
        return bool(status.state == pb.CONTAINER_RUNNING)

    def alive() -> bool:
        return request.transport is not None and not request.transport.is_closing()

    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    try:
        await stream_log(path, opts, resp.write, still_running=still_running if opts.follow else None, alive=alive)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client went away
    return resp


def _upgrade_check(request: web.Request) -> None:
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise errors.bad_request("Upgrade request required: kubelite serves exec and port-forward over "
                                 "WebSocket only (kubectl 1.31 or later, or the Python client)")


def _negotiate(request: web.Request, supported: tuple[str, ...]) -> str:
    offered = wsstream.offered_protocols(request.headers.get("Sec-WebSocket-Protocol", ""))
    chosen = wsstream.negotiate(offered, supported)
    if chosen is None:
        raise errors.bad_request(f"unable to upgrade: unable to negotiate protocol: client supports "
                                 f"{offered}, server supports {list(supported)}")
    return chosen


async def _accept(request: web.Request, protocol: str) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(protocol,), max_msg_size=_MAX_MESSAGE)
    await ws.prepare(request)
    return ws


async def _exec(request: web.Request) -> web.StreamResponse:
    namespace, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
    command = request.query.getall("command", [])
    tty = _bool(request, "tty")
    start = pb.ExecRequest(cmd=command, tty=tty, stdin=_bool(request, "stdin"), stdout=_bool(request, "stdout"),
                           stderr=_bool(request, "stderr") and not tty)
    if not command:
        raise errors.bad_request("you must specify at least one command for the container")
    if not (start.stdin or start.stdout or _bool(request, "stderr")):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    found = await find_container(request.app[RUNTIME_KEY], namespace, pod, name)
    if found.current is None or not found.current.running:
        raise errors.APIError(500, "InternalError", f'container not found ("{name}")')
    start.container_id = found.current.id
    _upgrade_check(request)
    protocol = _negotiate(request, wsstream.EXEC_PROTOCOLS)
    ws = await _accept(request, protocol)
    await execsession.serve_exec(ws, protocol, request.app[RUNTIME_KEY], start)
    return ws


async def _port_forward(request: web.Request) -> web.StreamResponse:
    namespace, pod = request.match_info["namespace"], request.match_info["pod"]
    runtime = request.app[RUNTIME_KEY]
    sandbox_id = await find_sandbox(runtime, namespace, pod)
    if sandbox_id is None:
        raise errors.APIError(404, "NotFound", f'pod "{pod}" in namespace "{namespace}" has no running sandbox')
    _upgrade_check(request)
    protocol = _negotiate(request, wsstream.PORT_FORWARD_PROTOCOLS)
    if protocol == wsstream.SPDY_PORT_FORWARD:
        ws = await _accept(request, protocol)
        await portforward.SpdySession(ws, runtime, sandbox_id, f"{namespace}/{pod}").run()
        return ws
    ports = _ports(request)
    ws = await _accept(request, protocol)
    await portforward.serve_channels(ws, protocol, runtime, sandbox_id, ports, f"{namespace}/{pod}")
    return ws


def _ports(request: web.Request) -> list[int]:
    """The ``ports`` (or ``port``) query of a channel port-forward: repeated and/or comma-separated."""
    raw = [p for v in request.query.getall("ports", []) + request.query.getall("port", []) for p in v.split(",")]
    if not raw:
        raise errors.bad_request("query parameter \"port\" is required")
    try:
        return [portforward.parse_port(p.strip()) for p in raw]
    except ValueError as e:
        raise errors.bad_request(str(e)) from None
