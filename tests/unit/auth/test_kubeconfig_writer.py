"""The admin kubeconfig: its structure, its file, default locations, and the real kubectl using it."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubelite.apiserver import certs, kubeconfig_writer
from kubelite.apiserver.auth import authn

_VENV_KUBECTL = Path(__file__).resolve().parents[3] / ".venv" / "bin" / "kubectl"
KUBECTL = str(_VENV_KUBECTL) if _VENV_KUBECTL.exists() else shutil.which("kubectl")


def test_written_kubeconfig_structure(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "kubelite" / "kubelite.yaml"
    kubeconfig_writer.write_admin_kubeconfig(path, server_url="https://127.0.0.1:6443", ca_pem=b"CA PEM",
                                             token="tok")

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["kubelite.yaml"]  # no temp file left behind
    assert yaml.safe_load(path.read_text()) == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubelite", "cluster": {
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(b"CA PEM").decode()}}],
        "users": [{"name": "admin", "user": {"token": "tok"}}],
        "contexts": [{"name": "kubelite", "context": {"cluster": "kubelite", "user": "admin"}}],
        "current-context": "kubelite",
        "preferences": {},
    }


def test_rewriting_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    kubeconfig_writer.write_admin_kubeconfig(path, server_url="https://a:1", ca_pem=b"x", token="one")
    kubeconfig_writer.write_admin_kubeconfig(path, server_url="https://b:2", ca_pem=b"x", token="two",
                                             cluster_name="lab", user="root")
    config = yaml.safe_load(path.read_text())
    assert config["users"] == [{"name": "root", "user": {"token": "two"}}]
    assert config["current-context"] == "lab"
    assert config["contexts"][0]["context"] == {"cluster": "lab", "user": "root"}


@pytest.mark.parametrize(("root", "data_dir", "kubeconfig"), [
    pytest.param(True, "/var/lib/kubelite", "/etc/kubelite/kubelite.yaml", id="root"),
    pytest.param(False, "{home}/.local/share/kubelite", "{home}/.kube/kubelite.yaml", id="user"),
])
def test_default_locations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, root: bool, data_dir: str,
                           kubeconfig: str) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KUBELITE_DATA_DIR", "KUBELITE_KUBECONFIG", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    assert kubeconfig_writer.default_data_dir() == data_dir.format(home=tmp_path)
    assert kubeconfig_writer.default_kubeconfig_path() == kubeconfig.format(home=tmp_path)


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBELITE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KUBELITE_KUBECONFIG", str(tmp_path / "kc.yaml"))
    assert kubeconfig_writer.default_data_dir() == str(tmp_path / "data")
    assert kubeconfig_writer.default_kubeconfig_path() == str(tmp_path / "kc.yaml")
    monkeypatch.delenv("KUBELITE_DATA_DIR")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert kubeconfig_writer.default_data_dir() == str(tmp_path / "xdg" / "kubelite")


# --- the real kubectl against an HTTPS app behind the authentication middleware ----------------------

async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response(authn.request_user(request).to_dict())


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[TestServer, certs.PKI, str]]:
    data_dir = tmp_path / "data"
    pki = certs.load_or_create_pki(data_dir)
    token = authn.ensure_admin_token(data_dir)
    tokens = authn.StaticTokenAuthenticator.from_csv(authn.token_file_path(data_dir))
    app = web.Application(middlewares=[authn.authn_middleware(authn.Authenticator.standard([tokens]))])
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/whoami", _whoami)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=certs.ssl_server_context(pki))
    try:
        yield server, pki, token
    finally:
        await server.close()


async def _kubectl(kubeconfig: Path, cache: Path, *args: str) -> tuple[int, str, str]:
    assert KUBECTL is not None
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cache)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_real_kubectl_trusts_the_ca_and_sends_the_token(
        https_server: tuple[TestServer, certs.PKI, str], tmp_path: Path, host: str) -> None:
    server, pki, token = https_server
    url = f"https://{host}:{server.port}"
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    kubeconfig_writer.write_admin_kubeconfig(good, server_url=url, ca_pem=pki.ca_cert_pem, token=token)
    kubeconfig_writer.write_admin_kubeconfig(bad, server_url=url, ca_pem=pki.ca_cert_pem, token="nope")

    assert await _kubectl(good, tmp_path / "cache", "get", "--raw", "/healthz") == (0, "ok", "")

    code, out, err = await _kubectl(good, tmp_path / "cache", "get", "--raw", "/whoami")
    assert code == 0, err
    assert yaml.safe_load(out)["username"] == "admin"

    code, out, err = await _kubectl(bad, tmp_path / "cache", "get", "--raw", "/whoami")
    assert code != 0
    assert "Unauthorized" in err, err


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_real_kubectl_authenticates_with_a_client_certificate(
        https_server: tuple[TestServer, certs.PKI, str], tmp_path: Path) -> None:
    server, pki, _ = https_server
    cert_pem, key_pem = certs.issue_client_cert(pki.ca, "alice", ["system:masters"])
    kubeconfig = tmp_path / "cert.yaml"
    kubeconfig_writer.write_admin_kubeconfig(kubeconfig, server_url=f"https://127.0.0.1:{server.port}",
                                             ca_pem=pki.ca_cert_pem, token="")
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"][0]["user"] = {"client-certificate-data": base64.b64encode(cert_pem).decode(),
                                  "client-key-data": base64.b64encode(key_pem).decode()}
    kubeconfig.write_text(yaml.safe_dump(config))

    code, out, err = await _kubectl(kubeconfig, tmp_path / "cache", "get", "--raw", "/whoami")
    assert code == 0, err
    user = yaml.safe_load(out)
    assert (user["username"], user["groups"]) == ("alice", ["system:masters", "system:authenticated"])
