"""The example apps of manifests/ end to end on a real node (runc, CNI, the nftables proxy, cluster DNS, the
ingress gateway), driven by the real kubectl exactly as docs/examples.md tells a user to:

- scenario 1 (manifests/shop): the API answers through the Ingress of shop.example.com with rows it fetched
  from the database by the Service name ``postgres`` (and 503 once the database is gone); the Ingress's
  cert-manager annotation changes nothing;
- scenario 2 (manifests/site): the front end answers over HTTPS through the gateway with the certificate of
  its ``kubernetes.io/tls`` Secret, chosen by SNI; the web client logs the pages it fetched through the
  Service; manifests/site/tls-secret.sh replaces the certificate, and the gateway serves the new one;
- the real-image twins (manifests/*/real) pass the API server's validation (a server-side dry run);
- cluster DNS by short, namespace-qualified and full names from a pod;
- a pod whose readiness probe starts failing leaves the Service's endpoints (and the Ingress's rotation),
  and rejoins them when it passes again;
- rolling updates of the API (behind the Ingress) and of the database (behind its ClusterIP, called by the
  API) under a steady stream of requests through the Ingress: not one request fails.

One node for the whole module (tests/e2e/nodes.py), with kubelite's busybox image imported under the name
the stand-ins use. The HTTP(S) clients run in threads that entered the node's network namespace.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubelite.proxy.netns import enter

from .conftest import KUBECTL, Cluster
from .nodes import NODE_IP, REQUIREMENTS, real_node, wait_for

pytestmark = REQUIREMENTS

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
LOCAL_IMAGE = "kubelite.local/busybox:latest"  # the image the stand-ins name
SHOP_HOST = "shop.example.com"
SITE_HOST = "www.example.com"
T = TypeVar("T")


# --- the node and the apps ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node() -> Iterator[Cluster]:
    with real_node(prefix="kubelite-examples-") as cluster:
        # What docs/examples.md has the user do first: kubelite's busybox image under the stand-ins' name.
        subprocess.run([sys.executable, "-m", "kubelite.cli.main", "image", "busybox", "--tag", LOCAL_IMAGE,
                        "--data-dir", cluster.data_dir], check=True, capture_output=True)
        yield cluster


@pytest.fixture(scope="module")
def site_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for SITE_HOST and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SITE_HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(SITE_HOST)]), critical=False)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("site-tls")
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "tls.crt", folder / "tls.key"


@pytest.fixture(scope="module")
def apps(node: Cluster, site_cert: tuple[Path, Path]) -> Cluster:
    """Both scenarios applied as the walk-through does, every Deployment rolled out."""
    node.kubectl("apply", "-f", str(MANIFESTS / "shop"))
    node.kubectl("apply", "-f", str(MANIFESTS / "site"))
    cert, key = site_cert
    node.kubectl("create", "secret", "tls", "site-tls", "-n", "site", "--cert", str(cert), "--key", str(key))
    for namespace, name in (("shop", "postgres"), ("shop", "api"), ("site", "frontend"), ("site", "web-client")):
        node.kubectl("rollout", "status", f"deploy/{name}", "-n", namespace, "--timeout=90s", timeout=100)
    return node


# --- clients inside the node -------------------------------------------------------------------------------


def netns_path(node: Cluster) -> Path:
    """The node's network namespace (its wrap is ``nsenter --net=PATH``)."""
    return Path(next(arg for arg in node.wrap if arg.startswith("--net=")).removeprefix("--net="))


def in_node(node: Cluster, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a fresh thread that entered the node's network namespace."""
    with ThreadPoolExecutor(1, initializer=enter, initargs=(netns_path(node),)) as pool:
        return pool.submit(fn, *args).result(timeout=60)


def http_get(host: str, path: str = "/") -> tuple[int, bytes]:
    """GET through the gateway on the node's port 80, by Host header: (status, body)."""
    conn = http.client.HTTPConnection(NODE_IP, 80, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def https_get(server_name: str, cafile: Path | None) -> tuple[bytes, int, bytes]:
    """GET / over TLS on the node's port 443 with ``server_name`` as SNI and Host (what ``curl --resolve``
    does), the certificate verified against ``cafile`` when given: (the server's certificate as DER, status,
    body)."""
    context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    if cafile is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((NODE_IP, 443), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        peer = tls.getpeercert(binary_form=True) or b""
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(tls)
        response.begin()
        return peer, response.status, response.read()


def shop_answer() -> dict[str, Any]:
    status, body = http_get(SHOP_HOST)
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


class SteadyClient(threading.Thread):
    """GET / of ``host`` through the gateway every ``interval`` seconds from inside the node, until `stop`;
    a new connection per request. Counts the answers by the API's ``version``; every status but 200 and every
    connection error is a failure, kept with its time and what was said."""

    def __init__(self, node: Cluster, host: str, interval: float = 0.02) -> None:
        super().__init__(name="steady-client", daemon=True)
        self.path = netns_path(node)
        self.host = host
        self.interval = interval
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        enter(self.path)
        while not self._halt.is_set():
            started = time.monotonic()
            try:
                status, body = http_get(self.host)
                if status == 200:
                    self.versions[json.loads(body)["version"]] += 1
                else:
                    self.failures.append(f"{time.time():.3f} {status} {body[:300]!r}")
            except (OSError, http.client.HTTPException, ValueError) as e:
                self.failures.append(f"{time.time():.3f} {type(e).__name__}: {e}")
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    @property
    def total(self) -> int:
        return sum(self.versions.values()) + len(self.failures)


def pods(node: Cluster, namespace: str, app: str, *, terminating: bool = False) -> list[dict[str, Any]]:
    """The pods labelled ``app``; those being deleted only if ``terminating``."""
    items: list[dict[str, Any]] = node.kubectl_json("get", "pods", "-n", namespace, "-l", f"app={app}")["items"]
    return [p for p in items if terminating or not p["metadata"].get("deletionTimestamp")]


def exec_sh(node: Cluster, namespace: str, target: str, script: str, check: bool = True) -> str:
    return node.kubectl("exec", "-n", namespace, target, "--", "sh", "-c", script, check=check).stdout


# --- scenario 1: the API and its database ------------------------------------------------------------------


def test_api_answers_through_the_ingress_with_rows_from_postgres(apps: Cluster) -> None:
    api_pods = {p["metadata"]["name"] for p in pods(apps, "shop", "api")}
    [database] = [p["metadata"]["name"] for p in pods(apps, "shop", "postgres")]
    assert len(api_pods) == 2

    wait_for(lambda: in_node(apps, http_get, SHOP_HOST)[0] == 200, 30, "the API through the Ingress")
    answers = [in_node(apps, shop_answer) for _ in range(8)]
    for answer in answers:
        assert answer["answeredBy"] == database and answer["database"] == "postgres:5432"
        assert [p["name"] for p in answer["products"]] == ["espresso", "cappuccino", "croissant"]
        assert answer["version"] == "v1"
    assert {a["api"] for a in answers} == api_pods  # both replicas take turns
    status, body = in_node(apps, http_get, SHOP_HOST, "/?id=2")
    assert status == 200 and json.loads(body)["products"] == [{"id": 2, "name": "cappuccino", "price": "3.20"}]

    # The annotation for cert-manager is ignored: no warning on the Ingress, and its status is written.
    ingress = apps.kubectl_json("get", "ingress", "shop", "-n", "shop")
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ingress["status"]["loadBalancer"]["ingress"] == [{"ip": NODE_IP}]
    warnings = apps.kubectl_json("get", "events", "-n", "shop", "--field-selector", "type=Warning")["items"]
    assert not [e for e in warnings if e["involvedObject"]["kind"] == "Ingress"], warnings


def test_api_says_503_while_the_database_is_gone(apps: Cluster) -> None:
    apps.kubectl("scale", "deploy/postgres", "-n", "shop", "--replicas=0")
    try:
        wait_for(lambda: in_node(apps, http_get, SHOP_HOST)[0] == 503, 30, "503 without a database")
        assert b"the database at postgres:5432 did not answer" in in_node(apps, http_get, SHOP_HOST)[1]
    finally:
        apps.kubectl("scale", "deploy/postgres", "-n", "shop", "--replicas=1")
        apps.kubectl("rollout", "status", "deploy/postgres", "-n", "shop", "--timeout=60s")
    wait_for(lambda: in_node(apps, http_get, SHOP_HOST)[0] == 200, 30, "the API answering again")


# --- scenario 2: the front end over TLS, and its client ----------------------------------------------------


def test_site_answers_over_https_with_its_certificate_by_sni(apps: Cluster, site_cert: tuple[Path, Path]) -> None:
    cert, _ = site_cert
    expected = ssl.PEM_cert_to_DER_cert(cert.read_text())

    def served() -> bool:
        with contextlib.suppress(OSError):
            return in_node(apps, https_get, SITE_HOST, None)[0] == expected
        return False

    wait_for(served, 30, "the gateway serving the site's certificate")
    # Verified against the site's own certificate, for its host name.
    peer, status, body = in_node(apps, https_get, SITE_HOST, cert)
    assert peer == expected and status == 200 and b"<h1>Hello from the kubelite site</h1>" in body
    # Another name gets the gateway's default certificate, which the site's does not verify.
    other, _, _ = in_node(apps, https_get, SHOP_HOST, None)
    assert other != expected
    with pytest.raises(ssl.SSLCertVerificationError):
        in_node(apps, https_get, SHOP_HOST, cert)
    # Plain HTTP to the same host works too (no redirect is configured).
    status, body = in_node(apps, http_get, SITE_HOST, "/style.css")
    assert status == 200 and b"h1 { color" in body


def test_web_client_logs_the_pages_it_fetched_through_the_service(apps: Cluster) -> None:
    def fetched() -> bool:
        logs = apps.kubectl("logs", "-n", "site", "deploy/web-client", check=False).stdout
        return re.search(r"GET http://frontend/: \d+ bytes, <h1>Hello from the kubelite site</h1>", logs) is not None

    wait_for(fetched, 30, "the web client's log of a fetched page")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls_secret_script_replaces_the_certificate(apps: Cluster, site_cert: tuple[Path, Path]) -> None:
    """The walk-through's script makes a new self-signed certificate; the gateway serves it from then on."""
    assert KUBECTL is not None
    kubectl = " ".join([*apps.wrap, KUBECTL, "--kubeconfig", apps.kubeconfig, "--cache-dir", apps.cache_dir])
    made_it = subprocess.run([str(MANIFESTS / "site" / "tls-secret.sh")], capture_output=True, text=True,
                             env={"PATH": "/usr/bin:/bin", "KUBECTL": kubectl}, timeout=60)
    assert made_it.returncode == 0, made_it.stdout + made_it.stderr
    secret = apps.kubectl_json("get", "secret", "site-tls", "-n", "site")
    assert secret["type"] == "kubernetes.io/tls"
    made = ssl.PEM_cert_to_DER_cert(base64.b64decode(secret["data"]["tls.crt"]).decode())
    assert made != ssl.PEM_cert_to_DER_cert(site_cert[0].read_text())
    assert x509.load_der_x509_certificate(made).subject.rfc4514_string() == f"CN={SITE_HOST}"
    wait_for(lambda: in_node(apps, https_get, SITE_HOST, None)[0] == made, 30, "the new certificate served")


def test_real_image_manifests_pass_the_servers_validation(apps: Cluster) -> None:
    """The real-image twins cannot run offline, but the API server (strict field validation included)
    accepts them over the running stand-ins, as `kubectl apply -f manifests/shop/real/` would."""
    out = apps.kubectl("apply", "--dry-run=server", "-f", str(MANIFESTS / "shop" / "real"),
                       "-f", str(MANIFESTS / "site" / "real")).stdout
    assert "deployment.apps/api configured (server dry run)" in out
    assert "secret/postgres-auth created (server dry run)" in out


# --- cluster DNS -----------------------------------------------------------------------------------------


def test_dns_by_short_and_full_names_from_a_pod(apps: Cluster) -> None:
    frontend_ip = apps.kubectl_json("get", "svc", "frontend", "-n", "site")["spec"]["clusterIP"]
    for url in ("http://frontend/", "http://frontend.site/", "http://frontend.site.svc.cluster.local/"):
        page = exec_sh(apps, "site", "deploy/web-client", f"wget -qO- {url}")
        assert "<h1>Hello from the kubelite site</h1>" in page, url
    # Another namespace's Service by namespace-qualified name, over the database's own protocol.
    rows = exec_sh(apps, "site", "deploy/web-client",
                   "echo 'SELECT id, name, price FROM products WHERE id = 3;' | nc -w 3 postgres.shop 5432")
    assert rows.splitlines()[0] == "3|croissant|1.90"
    lookup = exec_sh(apps, "site", "deploy/web-client", "nslookup frontend.site.svc.cluster.local")
    assert frontend_ip in lookup
    missing = exec_sh(apps, "site", "deploy/web-client", "nslookup nothere.site.svc.cluster.local", check=False)
    assert "NXDOMAIN" in missing


# --- readiness -------------------------------------------------------------------------------------------


def _api_endpoints(node: Cluster) -> dict[str, bool]:
    """API pod name -> the ``ready`` condition of its endpoint."""
    slices = node.kubectl_json("get", "endpointslices", "-n", "shop", "-l", "kubernetes.io/service-name=api")
    return {e["targetRef"]["name"]: bool(e["conditions"].get("ready")) for s in slices["items"]
            for e in s.get("endpoints") or []}


def test_a_pod_failing_readiness_leaves_the_endpoints_and_rejoins(apps: Cluster) -> None:
    flipped, other = sorted(p["metadata"]["name"] for p in pods(apps, "shop", "api"))
    exec_sh(apps, "shop", flipped, "rm /www/healthz")  # the readiness probe's file
    try:
        wait_for(lambda: _api_endpoints(apps) == {flipped: False, other: True}, 30, f"{flipped} not ready")
        subset = apps.kubectl_json("get", "endpoints", "api", "-n", "shop")["subsets"][0]
        assert [a["targetRef"]["name"] for a in subset["notReadyAddresses"]] == [flipped]
        assert [a["targetRef"]["name"] for a in subset["addresses"]] == [other]
        wait_for(lambda: {in_node(apps, shop_answer)["api"] for _ in range(6)} == {other}, 10,
                 "the Ingress sending everything to the ready pod")
    finally:
        exec_sh(apps, "shop", flipped, "echo ok > /www/healthz")
    wait_for(lambda: _api_endpoints(apps) == {flipped: True, other: True}, 30, f"{flipped} ready again")
    wait_for(lambda: {in_node(apps, shop_answer)["api"] for _ in range(8)} == {flipped, other}, 10,
             "both pods answering through the Ingress")


# --- rolling updates under load ----------------------------------------------------------------------------


def _settled(node: Cluster, app: str, replicas: int) -> Callable[[], bool]:
    return lambda: len(pods(node, "shop", app, terminating=True)) == replicas


def test_rolling_updates_under_a_steady_stream_fail_no_request(apps: Cluster) -> None:
    """A request every 20 ms through the Ingress while the API rolls out a new version (the gateway moves to
    the new pods) and then the database does (the API's ClusterIP connections move): not one may fail."""
    client = SteadyClient(apps, SHOP_HOST)
    client.start()
    try:
        wait_for(lambda: client.versions["v1"] >= 10 or bool(client.failures), 20, "the stream flowing")
        for deployment, change, replicas in (("api", "VERSION=v2", 2), ("postgres", "ROLLED=1", 1)):
            apps.kubectl("set", "env", f"deploy/{deployment}", "-n", "shop", change)
            apps.kubectl("rollout", "status", f"deploy/{deployment}", "-n", "shop", "--timeout=90s", timeout=100)
            # The old pods' whole termination happens under the stream too.
            wait_for(_settled(apps, deployment, replicas), 30, f"the old {deployment} pods gone")
        seen = client.total
        wait_for(lambda: client.total >= seen + 25, 10, "more requests after the rollouts")
    finally:
        client.stop()
    assert not client.failures, f"{len(client.failures)} of {client.total} requests failed:\n" + \
        "\n".join(client.failures[:20])
    assert client.versions["v1"] >= 10 and client.versions["v2"] >= 25, client.versions
    assert in_node(apps, shop_answer)["version"] == "v2"
