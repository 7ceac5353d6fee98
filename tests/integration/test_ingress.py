"""The ingress gateway against the real API server (in-process, in-memory store). Backends are small aiohttp
servers on 127.0.0.1 that say who they are (tests/support/ingress_backends.py), reached through
EndpointSlices pointing at them.

Ingresses, IngressClasses, Services and Secrets are created through the API. The EndpointSlices are written
straight into the store: the API refuses loopback endpoint addresses (as Kubernetes does), and these tests
must stay on loopback. The gateway only ever sees them through the API's lists and watches.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.apiserver import codec
from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client
from kubelite.proxy.ingress import IngressConfig, IngressController, ensure_ingress_class
from kubelite.proxy.ingress.classes import DEFAULT_CLASS_ANNOTATION
from kubelite.proxy.ingress.tls import DEFAULT_CERT_SUBJECT, self_signed
from tests.support.ingress_backends import Backend, parse_json, refused_port, run_backends

Obj = dict[str, Any]
Backends = dict[str, Backend]
SERVICES = resolve("services")
SLICES = resolve("endpointslices.discovery.k8s.io")
INGRESSES = resolve("ingresses.networking.k8s.io")
CLASSES = resolve("ingressclasses.networking.k8s.io")
SECRETS = resolve("secrets")
EVENTS = resolve("events")
WAIT = 10.0


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def kclient(store: MemoryStore) -> AsyncIterator[Client]:
    """The conftest's fixture, with the store in reach."""
    server = TestServer(build_app(store))
    await server.start_server()
    try:
        async with Client(config_for_server(str(server.make_url("")))) as c:
            yield c
    finally:
        await server.close()


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    async with run_backends("a", "b") as running:
        yield running


@pytest.fixture
async def gateway(kclient: Client) -> AsyncIterator[IngressController]:
    config = IngressConfig(node_name="node-1", bind_address="127.0.0.1", http_port=0, https_port=0,
                           node_ip="127.0.0.1", sync_delay=0.01, shutdown_grace=2.0)
    async with IngressController(kclient, config) as controller:
        await asyncio.wait_for(controller.ready(), WAIT)
        yield controller


# --- objects ----------------------------------------------------------------------------------------

async def make_service(client: Client, name: str, port: int = 80, port_name: str = "http") -> Obj:
    return await client.create(SERVICES, {"metadata": {"name": name, "namespace": "default"},
                                          "spec": {"ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}})


async def make_slice(store: MemoryStore, service: str, port: int, *, ready: bool = True) -> str:
    """An EndpointSlice of ``service`` with the endpoint 127.0.0.1:``port`` (see the module docstring); its
    name."""
    name = f"{service}-{port}"
    await store.create(SLICES.key("default", name), codec.encode({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}",
                     "creationTimestamp": meta.now_rfc3339(), "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}))
    return name


async def delete_slice(store: MemoryStore, name: str) -> None:
    await store.delete(SLICES.key("default", name))


async def expose(client: Client, store: MemoryStore, name: str, *ports: int) -> None:
    """A Service ``name`` whose endpoints are 127.0.0.1 on ``ports``."""
    await make_service(client, name)
    for port in ports:
        await make_slice(store, name, port)


def http_path(path: str, service: str, path_type: str = "Prefix", port: int | str = 80) -> Obj:
    return {"path": path, "pathType": path_type,
            "backend": {"service": {"name": service,
                                    "port": {"number": port} if isinstance(port, int) else {"name": port}}}}


async def make_ingress(client: Client, name: str, rules: list[tuple[str | None, list[Obj]]], *,
                       tls: list[Obj] | None = None, class_name: str | None = None,
                       default_backend: str | None = None, annotations: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"rules": [{**({"host": h} if h else {}), "http": {"paths": paths}} for h, paths in rules]}
    if tls is not None:
        spec["tls"] = tls
    if class_name is not None:
        spec["ingressClassName"] = class_name
    if default_backend is not None:
        spec["defaultBackend"] = {"service": {"name": default_backend, "port": {"number": 80}}}
    metadata: Obj = {"name": name, "namespace": "default", "annotations": annotations or {}}
    return await client.create(INGRESSES, {"metadata": metadata, "spec": spec})


# --- requests ---------------------------------------------------------------------------------------

async def fetch(gw: IngressController, host: str, path: str = "/") -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{gw.http_port}{path}", headers={"Host": host}) as response:
        return response.status, await response.read()


async def who(gw: IngressController, host: str, path: str = "/") -> str | None:
    """Which backend answered, or None when the gateway did (404, 503 ...)."""
    status, body = await fetch(gw, host, path)
    return str(parse_json(body)["backend"]) if status == 200 else None


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def routed(gw: IngressController, host: str, path: str, expected: str | None) -> None:
    async def check() -> bool:
        return await who(gw, host, path) == expected

    await eventually(check, f"{host}{path} to reach {expected}")


async def events_of(client: Client, name: str) -> list[Obj]:
    listed = await client.list(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return list(listed["items"])


async def event_reasons(client: Client, name: str) -> set[str]:
    return {str(e["reason"]) for e in await events_of(client, name)}


# --- the IngressClass -------------------------------------------------------------------------------

async def test_the_default_class_is_installed_once_and_left_alone(kclient: Client, gateway: IngressController) -> None:
    async def installed() -> bool:
        return any(c["metadata"]["name"] == "kubelite" for c in (await kclient.list(CLASSES))["items"])

    await eventually(installed, "the IngressClass")
    cls = await kclient.get(CLASSES, "kubelite")
    assert cls["spec"]["controller"] == "kubelite.io/ingress"
    assert cls["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "true"
    # An administrator's edit stands.
    await kclient.patch(CLASSES, "kubelite", {"metadata": {"annotations": {DEFAULT_CLASS_ANNOTATION: "false"}}})
    again = await ensure_ingress_class(kclient)
    assert again["metadata"]["annotations"][DEFAULT_CLASS_ANNOTATION] == "false"


# --- routing ----------------------------------------------------------------------------------------

async def test_host_and_path_routing(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc-a", backends["a"].port)
    await expose(kclient, store, "svc-b", backends["b"].port)
    await make_ingress(kclient, "web", [
        ("a.example.com", [http_path("/", "svc-a"), http_path("/b-only", "svc-b", "Exact")]),
        ("b.example.com", [http_path("/api", "svc-b")]),
        ("*.wild.example.com", [http_path("/", "svc-b")]),
    ])  # no class: ours through the default IngressClass
    await routed(gateway, "a.example.com", "/", "a")
    assert await who(gateway, "a.example.com", "/deep/path") == "a"
    assert await who(gateway, "a.example.com", "/b-only") == "b"
    assert await who(gateway, "a.example.com", "/b-only/more") == "a"
    assert await who(gateway, "b.example.com", "/api/v1") == "b"
    assert await who(gateway, "b.example.com", "/apiv1") is None
    assert await who(gateway, "x.wild.example.com", "/") == "b"
    assert await who(gateway, "x.y.wild.example.com", "/") is None


async def test_ingresses_of_another_class_are_ignored(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await kclient.create(CLASSES, {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}})
    await expose(kclient, store, "svc-a", backends["a"].port)
    await make_ingress(kclient, "theirs", [("theirs.example.com", [http_path("/", "svc-a")])], class_name="nginx")
    await make_ingress(kclient, "mine", [("mine.example.com", [http_path("/", "svc-a")])], class_name="kubelite")
    await routed(gateway, "mine.example.com", "/", "a")
    status, _ = await fetch(gateway, "theirs.example.com")
    assert status == 404
    theirs = await kclient.get(INGRESSES, "theirs", "default")
    assert not (theirs.get("status") or {}).get("loadBalancer")
    assert await event_reasons(kclient, "theirs") == set()


async def test_endpoint_changes_are_followed(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc", backends["a"].port)
    await make_ingress(kclient, "web", [(None, [http_path("/", "svc")])])
    await routed(gateway, "any.host", "/", "a")
    await make_slice(store, "svc", backends["b"].port)
    await delete_slice(store, f"svc-{backends['a'].port}")
    await routed(gateway, "any.host", "/", "b")


async def test_a_route_reload_lets_a_slow_request_finish(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc-a", backends["a"].port)
    await expose(kclient, store, "svc-b", backends["b"].port)
    await make_ingress(kclient, "web", [("app.example.com", [http_path("/", "svc-a")])])
    await routed(gateway, "app.example.com", "/", "a")
    slow = asyncio.create_task(fetch(gateway, "app.example.com", "/slow?seconds=1"))
    await asyncio.sleep(0.2)
    ingress = await kclient.get(INGRESSES, "web", "default")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "svc-b"
    await kclient.update(INGRESSES, ingress)
    await routed(gateway, "app.example.com", "/", "b")
    assert not slow.done()  # still in flight after the new table took over
    status, body = await asyncio.wait_for(slow, WAIT)
    assert status == 200 and parse_json(body)["backend"] == "a"


# --- streaming, WebSockets, retries -----------------------------------------------------------------

async def test_websocket_echo_through_the_gateway(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc", backends["a"].port)
    await make_ingress(kclient, "ws", [("ws.example.com", [http_path("/", "svc")])])
    await routed(gateway, "ws.example.com", "/", "a")
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"http://127.0.0.1:{gateway.http_port}/ws", headers={"Host": "ws.example.com"}) as ws:
        for text in ("hello", "world"):
            await ws.send_str(text)
            assert await asyncio.wait_for(ws.receive_str(), WAIT) == f"a: {text}"
        await ws.send_bytes(b"\x00\x01binary")
        assert await asyncio.wait_for(ws.receive_bytes(), WAIT) == b"\x00\x01binary"


@pytest.mark.parametrize("kind", ["stream", "sse"])
async def test_a_streamed_response_arrives_incrementally(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends, kind: str) -> None:
    await expose(kclient, store, "svc", backends["a"].port)
    await make_ingress(kclient, "stream", [("stream.example.com", [http_path("/", "svc")])])
    await routed(gateway, "stream.example.com", "/", "a")
    interval = 0.3
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{gateway.http_port}/{kind}?n=3&interval={interval}",
                        headers={"Host": "stream.example.com"}) as response:
        assert response.status == 200
        first = b""
        while b"a " not in first:  # the first line (or event) from the backend
            first += await asyncio.wait_for(response.content.readline(), WAIT)
        got_first = time.monotonic()
        rest = await asyncio.wait_for(response.content.read(), WAIT)
        done = time.monotonic()
    assert first.count(b"a ") == 1 and rest.count(b"a ") == 2
    # The first line was handed over before the backend had written the others (it waits `interval`
    # between lines): nothing was buffered until the end.
    assert done - got_first >= 2 * interval * 0.8


async def test_a_refused_endpoint_is_skipped(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    dead = refused_port()
    await make_service(kclient, "svc")
    await make_slice(store, "svc", dead)
    await make_ingress(kclient, "web", [("retry.example.com", [http_path("/", "svc")])])

    async def bad_gateway() -> bool:
        return (await fetch(gateway, "retry.example.com"))[0] == 502

    await eventually(bad_gateway, "a 502 while the only endpoint refuses")
    await make_slice(store, "svc", backends["a"].port)
    await routed(gateway, "retry.example.com", "/", "a")
    answers = [await who(gateway, "retry.example.com", f"/{i}") for i in range(8)]
    assert answers == ["a"] * 8  # every request, including those first sent to the dead endpoint


# --- errors and bad input ---------------------------------------------------------------------------

async def test_404_and_503_bodies(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc-a", backends["a"].port)
    await make_service(kclient, "not-ready")
    await make_slice(store, "not-ready", backends["b"].port, ready=False)
    await make_ingress(kclient, "web", [("ok.example.com", [http_path("/", "svc-a")]),
                                        ("broken.example.com", [http_path("/missing", "missing"),
                                                                http_path("/not-ready", "not-ready"),
                                                                http_path("/bad-port", "svc-a", port=81)])])
    await routed(gateway, "ok.example.com", "/", "a")
    status, body = await fetch(gateway, "nobody.example.com", "/x")
    assert (status, body) == (404, b'404 Not Found: no Ingress rule matches host "nobody.example.com" and path "/x"\n')
    status, body = await fetch(gateway, "broken.example.com", "/missing")
    assert status == 503
    assert body == b'503 Service Unavailable: service "default/missing" not found (ingress default/web)\n'
    status, body = await fetch(gateway, "broken.example.com", "/not-ready")
    assert (status, body) == (503, b'503 Service Unavailable: no ready endpoints for service "default/not-ready" '
                                   b'port 80 (ingress default/web)\n')
    status, body = await fetch(gateway, "broken.example.com", "/bad-port")
    assert (status, body) == (503, b'503 Service Unavailable: service "default/svc-a" has no port 81 '
                                   b'(ingress default/web)\n')

    async def warned() -> bool:
        return {"ServiceNotFound", "ServicePortNotFound"} <= await event_reasons(kclient, "web")

    await eventually(warned, "warning events on the Ingress")
    messages = {e["message"] for e in await events_of(kclient, "web") if e["type"] == "Warning"}
    assert 'service "default/missing" not found' in messages
    # The Service appearing mends the route.
    await expose(kclient, store, "missing", backends["b"].port)
    await routed(gateway, "broken.example.com", "/missing", "b")


async def test_the_oldest_ingress_wins_a_conflict_and_the_other_gets_an_event(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc-a", backends["a"].port)
    await expose(kclient, store, "svc-b", backends["b"].port)
    await make_ingress(kclient, "first", [("same.example.com", [http_path("/", "svc-a")])])
    await routed(gateway, "same.example.com", "/", "a")
    await asyncio.sleep(1.1)  # creationTimestamps have a one-second resolution
    await make_ingress(kclient, "second", [("same.example.com", [http_path("/", "svc-b"), http_path("/own", "svc-b")])])
    await routed(gateway, "same.example.com", "/own", "b")
    assert await who(gateway, "same.example.com", "/") == "a"

    async def conflict() -> bool:
        return "RuleConflict" in await event_reasons(kclient, "second")

    await eventually(conflict, "a RuleConflict event on the younger Ingress")
    [event] = [e for e in await events_of(kclient, "second") if e["reason"] == "RuleConflict"]
    assert event["message"] == ('host "same.example.com" and path "/" (Prefix) is already defined in ingress '
                                "default/first; this rule is ignored")
    assert "RuleConflict" not in await event_reasons(kclient, "first")
    # The older one going away hands the path over.
    await kclient.delete(INGRESSES, "first", "default")
    await routed(gateway, "same.example.com", "/", "b")


async def test_default_backend(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc-a", backends["a"].port)
    await expose(kclient, store, "fallback", backends["b"].port)
    await make_ingress(kclient, "web", [("a.example.com", [http_path("/app", "svc-a")])], default_backend="fallback")
    await routed(gateway, "a.example.com", "/app", "a")
    assert await who(gateway, "a.example.com", "/other") == "b"
    assert await who(gateway, "elsewhere.example.com", "/") == "b"


# --- status -----------------------------------------------------------------------------------------

async def test_status_is_written_back(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc", backends["a"].port)
    await make_ingress(kclient, "web", [("status.example.com", [http_path("/", "svc")])])

    async def written() -> bool:
        ingress = await kclient.get(INGRESSES, "web", "default")
        return bool((ingress.get("status") or {}).get("loadBalancer", {}).get("ingress"))

    await eventually(written, "status.loadBalancer")
    ingress = await kclient.get(INGRESSES, "web", "default")
    assert ingress["status"]["loadBalancer"]["ingress"] == [{"ip": "127.0.0.1"}]
    assert "Sync" in await event_reasons(kclient, "web")


# --- TLS --------------------------------------------------------------------------------------------

def tls_secret(name: str, host: str) -> tuple[Obj, bytes]:
    chain, key = self_signed(common_name=host, hosts=[host])
    secret = {"metadata": {"name": name, "namespace": "default"}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": base64.b64encode(chain).decode(), "tls.key": base64.b64encode(key).decode()}}
    return secret, chain


async def handshake(gw: IngressController, server_name: str, *, trust: bytes | None = None,
                    request: bool = False) -> tuple[str, Obj | None]:
    """TLS to the gateway naming ``server_name``: the common name of the certificate it served, and (with
    ``request``) the backend's answer to a GET / for that host over the connection."""
    context = ssl.create_default_context()
    if trust is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=trust.decode())
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.https_port, ssl=context,
                                                   server_hostname=server_name)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        common_name = str(cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value)
        answer = None
        if request:
            writer.write(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            raw = await asyncio.wait_for(reader.read(), WAIT)
            answer = parse_json(raw.split(b"\r\n\r\n", 1)[1])
        return common_name, answer
    finally:
        writer.close()


async def test_tls_certificates_are_chosen_by_sni(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc-a", backends["a"].port)
    await expose(kclient, store, "svc-b", backends["b"].port)
    secret_a, chain_a = tls_secret("cert-a", "a.example.com")
    secret_b, chain_b = tls_secret("cert-b", "b.example.com")
    await kclient.create(SECRETS, secret_a)
    await kclient.create(SECRETS, secret_b)
    await make_ingress(kclient, "secure", [("a.example.com", [http_path("/", "svc-a")]),
                                           ("b.example.com", [http_path("/", "svc-b")]),
                                           ("c.example.com", [http_path("/", "svc-a")])],
                       tls=[{"hosts": ["a.example.com"], "secretName": "cert-a"},
                            {"hosts": ["b.example.com"], "secretName": "cert-b"},
                            {"hosts": ["c.example.com"], "secretName": "not-there"}],
                       annotations={"cert-manager.io/cluster-issuer": "letsencrypt-prod"})

    async def served() -> bool:
        return (await handshake(gateway, "a.example.com"))[0] == "a.example.com"

    await eventually(served, "the certificate of a.example.com")
    name, answer = await handshake(gateway, "a.example.com", trust=chain_a, request=True)
    assert name == "a.example.com" and answer is not None and answer["backend"] == "a"
    headers = answer["headers"]
    assert isinstance(headers, dict) and headers["X-Forwarded-Proto"] == "https"
    assert headers["X-Forwarded-Port"] == str(gateway.https_port)
    name, answer = await handshake(gateway, "b.example.com", trust=chain_b, request=True)
    assert name == "b.example.com" and answer is not None and answer["backend"] == "b"
    # No Secret for the name (or a missing one): the gateway's default certificate, and routing still works.
    assert (await handshake(gateway, "unknown.example.com"))[0] == DEFAULT_CERT_SUBJECT
    name, answer = await handshake(gateway, "c.example.com", request=True)
    assert name == DEFAULT_CERT_SUBJECT and answer is not None and answer["backend"] == "a"
    with pytest.raises(ssl.SSLCertVerificationError):
        await handshake(gateway, "b.example.com", trust=chain_a)

    async def warned() -> bool:
        return "SecretNotFound" in await event_reasons(kclient, "secure")

    await eventually(warned, "a SecretNotFound event")
    # A Secret replaced in place is served from then on.
    renewed, chain_renewed = tls_secret("cert-a", "a.example.com")
    current = await kclient.get(SECRETS, "cert-a", "default")
    current["data"] = renewed["data"]
    await kclient.update(SECRETS, current)

    async def rotated() -> bool:
        try:
            await handshake(gateway, "a.example.com", trust=chain_renewed)
            return True
        except ssl.SSLCertVerificationError:
            return False

    await eventually(rotated, "the renewed certificate")


async def test_an_invalid_certificate_falls_back_to_the_default(
        kclient: Client, store: MemoryStore, gateway: IngressController, backends: Backends) -> None:
    await expose(kclient, store, "svc", backends["a"].port)
    _, other_key = self_signed(common_name="x")
    chain, _ = self_signed(common_name="bad.example.com", hosts=["bad.example.com"])
    await kclient.create(SECRETS, {"metadata": {"name": "mismatched", "namespace": "default"},
                                   "type": "kubernetes.io/tls",
                                   "data": {"tls.crt": base64.b64encode(chain).decode(),
                                            "tls.key": base64.b64encode(other_key).decode()}})
    await make_ingress(kclient, "bad", [("bad.example.com", [http_path("/", "svc")])],
                       tls=[{"hosts": ["bad.example.com"], "secretName": "mismatched"}])

    async def warned() -> bool:
        return "InvalidCertificate" in await event_reasons(kclient, "bad")

    await eventually(warned, "an InvalidCertificate event")
    name, answer = await handshake(gateway, "bad.example.com", request=True)
    assert name == DEFAULT_CERT_SUBJECT and answer is not None and answer["backend"] == "a"
