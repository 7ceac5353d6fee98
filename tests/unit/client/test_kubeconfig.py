from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelite.client.kubeconfig import (
    FileTokenSource,
    KubeconfigError,
    config_for_server,
    in_cluster_config,
    kubeconfig_paths,
    load_kubeconfig,
)
from kubelite.client.rest import Client, TransportError
from tests.unit.client.certs import Pki, make_pki
from tests.unit.client.fake_apiserver import FakeApiServer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(*, clusters: dict[str, Any] | None = None, users: dict[str, Any] | None = None,
               contexts: dict[str, Any] | None = None, current: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": n, "cluster": c} for n, c in (clusters or {}).items()],
        "users": [{"name": n, "user": u} for n, u in (users or {}).items()],
        "contexts": [{"name": n, "context": c} for n, c in (contexts or {}).items()],
    }
    if current:
        doc["current-context"] = current
    return doc


def write(path: Path, doc: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


SIMPLE = kubeconfig(
    clusters={"c1": {"server": "http://127.0.0.1:6443/"}, "c2": {"server": "http://10.0.0.2:6443"}},
    users={"u1": {"token": "tok-1"}, "u2": {"username": "admin", "password": "secret"}},
    contexts={"ctx1": {"cluster": "c1", "user": "u1", "namespace": "team-a"},
              "ctx2": {"cluster": "c2", "user": "u2"}},
    current="ctx1",
)


def test_current_context_with_token(tmp_path: Path) -> None:
    cfg = load_kubeconfig(str(write(tmp_path / "config", SIMPLE)), env={})
    assert cfg.server == "http://127.0.0.1:6443"
    assert cfg.ssl_context is None
    assert cfg.namespace == "team-a"
    assert cfg.context == "ctx1"
    assert cfg.auth_headers() == {"Authorization": "Bearer tok-1"}


def test_named_context_basic_auth_and_default_namespace(tmp_path: Path) -> None:
    cfg = load_kubeconfig(str(write(tmp_path / "config", SIMPLE)), context="ctx2", env={})
    assert cfg.server == "http://10.0.0.2:6443"
    assert cfg.namespace == "default"
    assert cfg.auth_headers() == {"Authorization": "Basic " + b64(b"admin:secret")}


def test_overrides_like_kubectl_flags(tmp_path: Path) -> None:
    cfg = load_kubeconfig(str(write(tmp_path / "config", SIMPLE)), cluster="c2", user="u2",
                          namespace="other", env={})
    assert cfg.server == "http://10.0.0.2:6443"
    assert cfg.namespace == "other"
    assert cfg.auth_headers()["Authorization"].startswith("Basic ")


def test_default_path_is_home_kube_config(tmp_path: Path) -> None:
    write(tmp_path / ".kube" / "config", SIMPLE)
    assert load_kubeconfig(env={"HOME": str(tmp_path)}).context == "ctx1"
    with pytest.raises(KubeconfigError, match=r"\.kube/config does not exist"):
        load_kubeconfig(env={"HOME": str(tmp_path / "nobody")})


def test_kubeconfig_env_merges_first_wins_and_resolves_relative_paths(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "config", kubeconfig(
        clusters={"shared": {"server": "http://first:1"}},
        users={"u": {"tokenFile": "token"}},  # relative to a/
        contexts={"mine": {"cluster": "shared", "user": "u", "namespace": "ns-a"}},
        current="mine"))
    (tmp_path / "a" / "token").write_text("from-a\n")
    second = write(tmp_path / "b" / "config", kubeconfig(
        clusters={"shared": {"server": "http://second:2"}, "extra": {"server": "http://extra:3"}},
        users={"u": {"token": "ignored"}, "v": {"token": "tok-v"}},
        contexts={"mine": {"cluster": "extra", "user": "v"}, "theirs": {"cluster": "extra", "user": "v"}},
        current="theirs"))
    env = {"KUBECONFIG": f"{first}::{tmp_path / 'missing'}:{second}"}
    paths, must_exist = kubeconfig_paths(None, env)
    assert paths == [first, tmp_path / "missing", second] and not must_exist

    cfg = load_kubeconfig(env=env)
    assert cfg.context == "mine"  # the first file to set current-context wins
    assert cfg.server == "http://first:1"  # named entries are never replaced by later files
    assert cfg.namespace == "ns-a"
    assert cfg.auth_headers() == {"Authorization": "Bearer from-a"}

    theirs = load_kubeconfig(env=env, context="theirs")  # entries only the second file has are there
    assert theirs.server == "http://extra:3"
    assert theirs.auth_headers() == {"Authorization": "Bearer tok-v"}


def test_explicit_path_beats_kubeconfig_env(tmp_path: Path) -> None:
    explicit = write(tmp_path / "explicit", SIMPLE)
    cfg = load_kubeconfig(str(explicit), env={"KUBECONFIG": str(tmp_path / "nope")})
    assert cfg.context == "ctx1"


def test_token_file_is_reread(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one")
    source = FileTokenSource(str(token), refresh_seconds=0)
    assert source.token() == "one"
    token.write_text("two\n")
    assert source.token() == "two"
    cached = FileTokenSource(str(token), refresh_seconds=3600)
    token.write_text("three")
    assert cached.token() == "two"


def test_impersonation_headers(tmp_path: Path) -> None:
    doc = kubeconfig(clusters={"c": {"server": "http://h:1"}},
                     users={"u": {"token": "t", "as": "bob", "as-groups": ["g1", "g2"], "as-uid": "42"}},
                     contexts={"x": {"cluster": "c", "user": "u"}}, current="x")
    headers = load_kubeconfig(str(write(tmp_path / "c", doc)), env={}).auth_headers()
    assert headers == {"Authorization": "Bearer t", "Impersonate-User": "bob", "Impersonate-Group": "g1,g2",
                       "Impersonate-Uid": "42"}


def _with(cluster: dict[str, Any] | None = None, user: dict[str, Any] | None = None) -> dict[str, Any]:
    return kubeconfig(clusters={"c": {"server": "https://127.0.0.1:1", **(cluster or {})}},
                      users={"u": user or {"token": "t"}},
                      contexts={"x": {"cluster": "c", "user": "u"}}, current="x")


@pytest.mark.parametrize(("doc", "kwargs", "expected"), [
    pytest.param("a: [b", {}, "not valid YAML", id="yaml"),
    pytest.param("- just a list", {}, "expected a mapping", id="not-a-mapping"),
    pytest.param({**SIMPLE, "current-context": ""}, {}, "current-context is not set", id="no-current"),
    pytest.param(SIMPLE, {"context": "nope"}, 'context "nope" does not exist', id="no-context"),
    pytest.param(kubeconfig(contexts={"x": {"cluster": "gone", "user": "u"}}, current="x"), {},
                 'cluster "gone"', id="no-cluster"),
    pytest.param(kubeconfig(clusters={"c": {"server": "http://h"}},
                            contexts={"x": {"cluster": "c", "user": "who"}}, current="x"),
                 {}, 'user "who"', id="no-user"),
    pytest.param(_with({"certificate-authority": "/x", "certificate-authority-data": "eA=="}), {},
                 "are both specified", id="ca-twice"),
    pytest.param(_with({"insecure-skip-tls-verify": True, "certificate-authority": "/x"}),
                 {}, "insecure flag is not allowed", id="insecure-with-ca"),
    pytest.param(_with({"server": "https://h", "certificate-authority": "missing-ca.crt"}), {},
                 "cannot load CA", id="missing-ca-file"),
    pytest.param(_with({"server": "https://h", "certificate-authority-data": "!!!"}), {},
                 "not valid base64", id="bad-base64"),
    pytest.param(_with(user={"token": "t", "username": "a", "password": "b"}), {},
                 "more than one authentication method", id="token-and-basic"),
    pytest.param(_with(user={"client-certificate-data": "eA=="}), {},
                 "client-key-data or client-key must be specified", id="cert-without-key"),
    pytest.param(_with(user={"exec": {"command": "aws"}}), {}, "exec credential plugin", id="exec"),
    pytest.param(_with(user={"tokenFile": "no-such-token"}), {}, "cannot read token file", id="token-file"),
    pytest.param(_with({"server": ""}), {}, "has no server", id="no-server"),
])
def test_errors_name_the_problem(tmp_path: Path, doc: dict[str, Any] | str, kwargs: dict[str, Any],
                                 expected: str) -> None:
    path = write(tmp_path / "bad-config", doc)
    with pytest.raises(KubeconfigError, match=expected) as info:
        load_kubeconfig(str(path), env={}, **kwargs)
    assert str(path) in str(info.value) or "token file" in str(info.value)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="does not exist"):
        load_kubeconfig(str(tmp_path / "nope"), env={})


def test_in_cluster_config(tmp_path: Path) -> None:
    pki = make_pki()
    (tmp_path / "ca.crt").write_bytes(pki.ca.cert)
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("kube-system")
    cfg = in_cluster_config({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
                            sa_dir=str(tmp_path))
    assert cfg.server == "https://10.96.0.1:443"
    assert cfg.namespace == "kube-system"
    assert cfg.auth_headers() == {"Authorization": "Bearer sa-token"}
    with pytest.raises(KubeconfigError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_config({}, sa_dir=str(tmp_path))


# --- TLS, end to end against a TLS fake server -----------------------------------------------------

def _server_tls(pki: Pki, tmp_path: Path, *, require_client_cert: bool) -> ssl.SSLContext:
    paths = pki.write(tmp_path / "pki")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(paths["server.crt"], paths["server.key"])
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=pki.ca.cert.decode())
    return ctx


async def _version(cfg_path: Path) -> dict[str, Any]:
    async with Client(load_kubeconfig(str(cfg_path), env={}), max_retries=0) as client:
        result = await client.request("GET", "/version")
        assert isinstance(result, dict)
        return result


async def test_tls_with_inline_ca_and_client_cert(tmp_path: Path) -> None:
    pki = make_pki()
    fake = FakeApiServer()
    await fake.start(_server_tls(pki, tmp_path, require_client_cert=True))
    try:
        doc = _with({"server": fake.url, "certificate-authority-data": b64(pki.ca.cert)},
                    {"client-certificate-data": b64(pki.client.cert), "client-key-data": b64(pki.client.key)})
        assert (await _version(write(tmp_path / "inline", doc)))["gitVersion"] == "v1.37.0"

        # The same with files, named relative to the kubeconfig's directory.
        paths = pki.write(tmp_path / "cfg" / "certs")
        doc = _with({"server": fake.url, "certificate-authority": "certs/ca.crt"},
                    {"client-certificate": "certs/client.crt", "client-key": str(paths["client.key"])})
        assert (await _version(write(tmp_path / "cfg" / "config", doc)))["major"] == "1"

        # Without the client certificate the handshake is refused.
        doc = _with({"server": fake.url, "certificate-authority-data": b64(pki.ca.cert)})
        with pytest.raises(TransportError):
            await _version(write(tmp_path / "nocert", doc))
    finally:
        await fake.stop()


async def test_tls_server_name_and_insecure(tmp_path: Path) -> None:
    pki = make_pki(("api.kubelite.test",), include_ip=False)  # the cert does not name 127.0.0.1
    fake = FakeApiServer()
    await fake.start(_server_tls(pki, tmp_path, require_client_cert=False))
    try:
        ca = b64(pki.ca.cert)
        with pytest.raises(TransportError):
            await _version(write(tmp_path / "plain",
                                 _with({"server": fake.url, "certificate-authority-data": ca})))
        named = _with({"server": fake.url, "certificate-authority-data": ca,
                       "tls-server-name": "api.kubelite.test"})
        assert (await _version(write(tmp_path / "named", named)))["major"] == "1"
        insecure = _with({"server": fake.url, "insecure-skip-tls-verify": True})
        assert (await _version(write(tmp_path / "insecure", insecure)))["major"] == "1"
        # Trusting the system CAs only fails against a private CA.
        with pytest.raises(TransportError):
            await _version(write(tmp_path / "system", _with({"server": fake.url})))
    finally:
        await fake.stop()


def test_config_for_server() -> None:
    cfg = config_for_server("https://127.0.0.1:6443/", token="abc", insecure=True, namespace="x")
    assert cfg.server == "https://127.0.0.1:6443"
    assert cfg.ssl_context is not None and cfg.ssl_context.verify_mode == ssl.CERT_NONE
    assert cfg.auth_headers() == {"Authorization": "Bearer abc"}
    assert config_for_server("http://h:1").ssl_context is None
