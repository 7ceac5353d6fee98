"""The ``pods/log``, ``pods/exec``, ``pods/attach`` and ``pods/portforward`` subresources: proxied to the
kubelet of the pod's node, as kube-apiserver's pod REST storage does (``LogLocation``, ``ExecLocation``,
``PortForwardLocation`` and the upgrade-aware proxy).

Before anything reaches a kubelet the pod is checked with kube-apiserver's words: a missing pod is 404; a
container name that is not in the pod is 400 ``container x is not valid for pod y``; no name with several
containers is 400 ``a container name must be specified for pod y, choose one of: [a b]``; exec, attach and
port-forward on a pod without a node are 400 ``pod y does not have a host assigned`` (logs of such a pod
are empty). The kubelet is found from the Node: the first of its InternalIP, ExternalIP, Hostname,
InternalDNS, ExternalDNS addresses, and ``status.daemonEndpoints.kubeletEndpoint.Port`` (10250 when unset).

Relaying: logs as a chunked ``text/plain`` stream, held open while the kubelet follows and closed towards
the kubelet when the client goes away; WebSockets message by message both ways, after the kubelet accepted
its own WebSocket with one of the subprotocols the client offered, which the client is then answered with;
the close code of one side goes to the other. A kubelet's refusal becomes a Status with its code and words
(from the ``X-Kubelite-Status`` header of a refused handshake, or the body). A request that is no
WebSocket (kubectl's SPDY fallback) is passed to the kubelet as a plain request, so the client gets the
kubelet's verdict.

The API server calls kubelets with a client certificate issued by the cluster CA (`kubelet_client_ssl_context`,
common name ``kube-apiserver-kubelet-client``) and, as kube-apiserver without
``--kubelet-certificate-authority``, does not verify the kubelets' self-signed serving certificates.

Wiring (`install` once at start; `serve` from the REST dispatcher for the subresources in `SUBRESOURCES`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from cryptography import x509

from kubelite.api import errors
from kubelite.api.registry import by_resource
from kubelite.kubelet.streaming.tls import KUBELET_CLIENT_COMMON_NAME
from kubelite.kubelet.streaming.wsstream import STATUS_HEADER

from ..certs import PKI, issue_client_cert, write_atomic
from ..resources import Resources
from .common import RequestInfo

log = logging.getLogger(__name__)

SUBRESOURCES = ("log", "exec", "attach", "portforward")
DEFAULT_KUBELET_PORT = 10250
ADDRESS_PREFERENCE = ("InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS")
KUBELET_CLIENT_ORGANIZATION = "system:masters"
_MAX_MESSAGE = 16 * 1024 * 1024
_LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")
_STREAM_PARAMS = ("stdin", "stdout", "stderr", "tty")
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}

_PODS = by_resource("", "v1", "pods")
_NODES = by_resource("", "v1", "nodes")


def kubelet_client_ssl_context(pki: PKI) -> ssl.SSLContext:
    """The TLS client context the API server calls kubelets with. Its certificate (``tls/kubelet-client.crt``
    and ``.key``) is issued by the cluster CA on first use, and again when the CA changed."""
    cert_path, key_path = pki.tls_dir / "kubelet-client.crt", pki.tls_dir / "kubelet-client.key"
    if not _issued_by(cert_path, key_path, pki):
        cert_pem, key_pem = issue_client_cert(pki.ca, KUBELET_CLIENT_COMMON_NAME, [KUBELET_CLIENT_ORGANIZATION])
        write_atomic(key_path, key_pem, mode=0o600)
        write_atomic(cert_path, cert_pem, mode=0o644)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def _issued_by(cert_path: Path, key_path: Path, pki: PKI) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        x509.load_pem_x509_certificate(cert_path.read_bytes()).verify_directly_issued_by(pki.ca.cert)
    except Exception:  # unreadable, or signed by another CA
        return False
    return True


class KubeletConnector:
    """The API server's HTTP client for kubelets: one pooled session, created in the serving loop."""

    def __init__(self, ssl_context: ssl.SSLContext | None, *, connect_timeout: float = 10.0) -> None:
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context is not None else "http"

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else False)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def timeout(self) -> aiohttp.ClientTimeout:
        # Streams last as long as they last: only connecting is bounded.
        return aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


class PodStreamProxy:
    def __init__(self, resources: Resources, connector: KubeletConnector) -> None:
        self.resources = resources
        self.connector = connector

    async def serve(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        if info.kind is not _PODS or info.subresource not in SUBRESOURCES:
            raise errors.not_found(f"{info.kind.plural}/{info.subresource}", info.name, info.kind.group)
        if info.subresource == "log":
            if request.method != "GET":
                raise errors.method_not_allowed(f"{request.method} is not supported on pods/log")
            return await self._logs(request, info)
        if request.method not in ("GET", "POST"):
            raise errors.method_not_allowed(f"{request.method} is not supported on pods/{info.subresource}")
        return await self._stream(request, info)

    # --- locating the kubelet ----------------------------------------------------------------------

    async def _pod(self, info: RequestInfo) -> dict[str, Any]:
        return await self.resources.get(_PODS, info.namespace, info.name)

    async def _kubelet_base(self, node_name: str) -> str:
        node = await self.resources.get(_NODES, None, node_name)
        url = kubelet_url(node, self.connector.scheme)
        if url is None:
            addresses = (node.get("status") or {}).get("addresses") or []
            known = " ".join(f"{{{a.get('type', '')} {a.get('address', '')}}}" for a in addresses)
            raise errors.internal(f"no preferred addresses found; known addresses: [{known}]")
        return url

    # --- logs --------------------------------------------------------------------------------------

    async def _logs(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        _validate_log_options(request, info.name)
        pod = await self._pod(info)
        container = resolve_container(pod, request.query.get("container", ""))
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if not node_name:  # as kube-apiserver: no location, an empty log
            await resp.prepare(request)
            await resp.write_eof()
            return resp
        url = f"{await self._kubelet_base(node_name)}/containerLogs/{info.namespace}/{info.name}/{container}"
        params = {k: request.query[k] for k in _LOG_PARAMS if k in request.query}
        try:
            async with self.connector.session().get(url, params=params, timeout=self.connector.timeout()) as kresp:
                if kresp.status != 200:
                    raise kubelet_error(kresp.status, await kresp.read())
                await resp.prepare(request)
                await _pump(kresp.content, resp, lambda: _client_alive(request))
        except aiohttp.ClientError as e:
            if resp.prepared:
                return resp  # the kubelet went away mid-stream: end the log there
            raise _dial_error(url, e) from None
        except ConnectionError:
            return resp  # the client went away
        with contextlib.suppress(ConnectionError):
            await resp.write_eof()
        return resp

    # --- exec, attach, port-forward ----------------------------------------------------------------

    async def _stream(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        pod = await self._pod(info)
        query: list[tuple[str, str]] = []
        if info.subresource == "portforward":
            path = f"/portforward/{info.namespace}/{info.name}"
            query = [(k, v) for k, v in request.query.items() if k in ("ports", "port")]
        else:
            _validate_stream_options(request, info.subresource)
            container = resolve_container(pod, request.query.get("container", ""))
            path = f"/{info.subresource}/{info.namespace}/{info.name}/{container}"
            query = [(k, v) for k, v in request.query.items() if k == "command" or k in _STREAM_PARAMS]
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        if not node_name:
            raise errors.bad_request(f"pod {info.name} does not have a host assigned")
        url = await self._kubelet_base(node_name) + path
        if request.headers.get("Upgrade", "").lower() != "websocket" or request.method != "GET":
            return await self._plain(request, url, query)
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        try:
            kws = await self.connector.session().ws_connect(
                url, params=query, protocols=offered, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=10),
                max_msg_size=_MAX_MESSAGE, autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            raise _handshake_error(e) from None
        except aiohttp.ClientError as e:
            raise _dial_error(url, e) from None
        try:
            ws = web.WebSocketResponse(protocols=(kws.protocol,) if kws.protocol else (), max_msg_size=_MAX_MESSAGE)
            await ws.prepare(request)
            await relay(ws, kws)
            return ws
        finally:
            await kws.close()

    async def _plain(self, request: web.Request, url: str, query: list[tuple[str, str]]) -> web.Response:
        """A non-WebSocket request: the kubelet's answer (it refuses what it cannot upgrade), as a Status."""
        try:
            async with self.connector.session().request(request.method, url, params=query,
                                                        timeout=self.connector.timeout()) as kresp:
                body = await kresp.read()
        except aiohttp.ClientError as e:
            raise _dial_error(url, e) from None
        raise kubelet_error(kresp.status if kresp.status >= 400 else 400, body)


PROXY_KEY = web.AppKey("pod_stream_proxy", PodStreamProxy)


def install(app: web.Application, resources: Resources, connector: KubeletConnector) -> None:
    """Make `serve` answer on ``app`` through ``connector``; its session is closed with the app."""
    app[PROXY_KEY] = PodStreamProxy(resources, connector)

    async def close(_app: web.Application) -> None:
        await connector.close()

    app.on_cleanup.append(close)


async def serve(request: web.Request, info: RequestInfo) -> web.StreamResponse:
    """Answer a request for one of `SUBRESOURCES` of a pod (503 when no proxy is installed)."""
    proxy = request.app.get(PROXY_KEY)
    if proxy is None:
        raise errors.service_unavailable(f"{info.kind.plural}/{info.subresource} is served by the node agent, "
                                         "which is not connected to this server")
    return await proxy.serve(request, info)


# --- helpers -----------------------------------------------------------------------------------------------

def _containers(pod: dict[str, Any], key: str) -> list[str]:
    return [c.get("name", "") for c in (pod.get("spec") or {}).get(key) or []]


def resolve_container(pod: dict[str, Any], container: str) -> str:
    """The container a request is about, checked against the pod as kube-apiserver's validateContainer."""
    name = (pod.get("metadata") or {}).get("name", "")
    containers = _containers(pod, "containers")
    if not container:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        everything = containers + _containers(pod, "initContainers") + _containers(pod, "ephemeralContainers")
        raise errors.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                 f"[{' '.join(everything)}]")
    if container not in containers + _containers(pod, "initContainers") + _containers(pod, "ephemeralContainers"):
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'{name}: invalid value "{raw}": must be an integer') from None


def _validate_log_options(request: web.Request, name: str) -> None:
    """PodLogOptions validation (422 Invalid, as ValidatePodLogOptions)."""
    causes: list[errors.Cause] = []
    tail, limit, since = (_int_param(request, k) for k in ("tailLines", "limitBytes", "sinceSeconds"))
    if tail is not None and tail < 0:
        causes.append(errors.invalid("tailLines", tail, "must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        causes.append(errors.invalid("limitBytes", limit, "must be greater than 0"))
    if since is not None and request.query.get("sinceTime"):
        causes.append(errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    elif since is not None and since < 1:
        causes.append(errors.invalid("sinceSeconds", since, "must be greater than 0"))
    if causes:
        raise errors.invalid_object("PodLogOptions", name, causes)


def _validate_stream_options(request: web.Request, subresource: str) -> None:
    def on(key: str) -> bool:
        return request.query.get(key, "") in ("1", "t", "true", "True", "TRUE")

    if subresource == "exec" and not request.query.getall("command", []):
        raise errors.bad_request("you must specify at least one command for the container")
    if not (on("stdin") or on("stdout") or on("stderr")):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")


def kubelet_error(code: int, body: bytes) -> errors.APIError:
    """A kubelet's error answer as an APIError: its Status when it sent one, else its text."""
    with contextlib.suppress(ValueError):
        status = json.loads(body)
        if isinstance(status, dict) and status.get("kind") == "Status":
            return errors.APIError(int(status.get("code") or code), str(status.get("reason") or _reason(code)),
                                   str(status.get("message") or ""), status.get("details") or {})
    return errors.APIError(code, _reason(code), body.decode("utf-8", "replace").strip() or f"kubelet answered {code}")


def _reason(code: int) -> str:
    return _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


def _handshake_error(e: aiohttp.WSServerHandshakeError) -> errors.APIError:
    raw = e.headers.get(STATUS_HEADER) if e.headers is not None else None
    if raw:
        return kubelet_error(e.status, raw.encode())
    return errors.APIError(e.status if e.status >= 400 else 502, _reason(e.status),
                           f"unable to upgrade connection to the kubelet: {e.message} ({e.status})")


def _dial_error(url: str, e: Exception) -> errors.APIError:
    return errors.APIError(500, "InternalError", f'error dialing backend: Get "{url}": {e}')


def _client_alive(request: web.Request) -> bool:
    return request.transport is not None and not request.transport.is_closing()


async def _pump(source: aiohttp.StreamReader, resp: web.StreamResponse, alive: Callable[[], bool],
                check_every: float = 1.0) -> None:
    """Copy a streamed body to ``resp`` as it comes; stop when it ends or when ``alive`` says the client left
    (checked while the source is silent, so that a followed log does not hold the kubelet forever)."""
    while True:
        try:
            chunk = await asyncio.wait_for(source.readany(), check_every)
        except TimeoutError:
            if not alive():
                return
            continue
        if not chunk:
            return
        await resp.write(chunk)


async def _pipe(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for msg in source:
        if msg.type == WSMsgType.BINARY:
            await target.send_bytes(msg.data)
        elif msg.type == WSMsgType.TEXT:
            await target.send_str(msg.data)
    await target.close(code=source.close_code or aiohttp.WSCloseCode.OK)


async def relay(client: web.WebSocketResponse, kubelet: aiohttp.ClientWebSocketResponse) -> None:
    """Messages both ways until one side closes; its close code then closes the other side."""
    up = asyncio.ensure_future(_pipe(client, kubelet))
    down = asyncio.ensure_future(_pipe(kubelet, client))
    try:
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (up, down):
            task.cancel()
        results = await asyncio.gather(up, down, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, ConnectionError | asyncio.CancelledError):
                log.debug("websocket relay ended with %r", result)
        await client.close()
        await kubelet.close()


def kubelet_url(node: dict[str, Any], scheme: str) -> str | None:
    """The base URL of a node's kubelet: its preferred address (InternalIP, ExternalIP, Hostname, ...) and
    ``status.daemonEndpoints.kubeletEndpoint.Port`` (10250 when unset); None without an address."""
    status = node.get("status") or {}
    addresses = status.get("addresses") or []
    host = next((a.get("address") for kind in ADDRESS_PREFERENCE for a in addresses
                 if a.get("type") == kind and a.get("address")), None)
    if host is None:
        return None
    port = int(((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port if port > 0 else DEFAULT_KUBELET_PORT}"
