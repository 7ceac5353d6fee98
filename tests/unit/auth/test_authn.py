"""Authentication: the token file, bearer tokens and client certificates over real TLS, the middleware."""

from __future__ import annotations

import logging
import ssl
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kubelite.apiserver import certs
from kubelite.apiserver.auth import authn
from kubelite.apiserver.auth.authn import UserInfo

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


# --- the token file -------------------------------------------------------------------------------

def test_token_file_rows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text(
        't1,alice,uid-a,"dev,ops"\n'
        "\n"
        "t2,bob,uid-b\n"
        "t3,carol,uid-c,solo,ignored-column\n"
        ",nobody,uid-x\n"
        "t4,dave,uid-d,\n"
    )
    with caplog.at_level(logging.WARNING):
        tokens = authn.read_token_file(path)
    assert tokens == {
        "t1": UserInfo("alice", uid="uid-a", groups=("dev", "ops")),
        "t2": UserInfo("bob", uid="uid-b"),
        "t3": UserInfo("carol", uid="uid-c", groups=("solo",)),
        "t4": UserInfo("dave", uid="uid-d"),
    }
    assert "empty token" in caplog.text


def test_token_file_with_too_few_columns_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text("t1,alice\n")
    with pytest.raises(ValueError, match="at least 3 columns"):
        authn.read_token_file(path)


def test_admin_token_created_once_and_kept(tmp_path: Path) -> None:
    path = authn.token_file_path(tmp_path)
    path.write_text('other,ci,uid-ci,"builders"')  # no final newline: the admin row must not join it

    token = authn.ensure_admin_token(tmp_path)
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert authn.ensure_admin_token(tmp_path) == token

    tokens = authn.read_token_file(path)
    assert tokens["other"] == UserInfo("ci", uid="uid-ci", groups=("builders",))
    admin = tokens[token]
    assert (admin.name, admin.groups) == ("admin", ("system:masters",))
    assert admin.uid


async def test_static_tokens_match_exactly() -> None:
    auth = authn.StaticTokenAuthenticator({"secret-1": UserInfo("a"), "secret-2": UserInfo("b")})
    assert await auth.authenticate_token("secret-2") == UserInfo("b")
    assert await auth.authenticate_token("secret-") is None
    assert await auth.authenticate_token("") is None


@pytest.mark.parametrize(("header", "token"), [
    pytest.param("Bearer abc", "abc", id="bearer"),
    pytest.param("bearer abc", "abc", id="scheme-case-insensitive"),
    pytest.param("  Bearer abc  ", "abc", id="surrounding-space"),
    pytest.param("Bearer abc def", "abc", id="extra-words"),
    pytest.param("Bearer  abc", None, id="two-spaces"),
    pytest.param("Bearer", None, id="no-token"),
    pytest.param("Basic YTpi", None, id="basic"),
    pytest.param("", None, id="absent"),
])
def test_bearer_header_parsing(header: str, token: str | None) -> None:
    assert authn.bearer_token(header) == token


# --- over TLS: a tiny app behind the middleware ------------------------------------------------------

@dataclass
class Cluster:
    pki: certs.PKI
    admin_token: str
    server: TestServer

    def client_context(self, cert: tuple[bytes, bytes] | None = None,
                       tmp: Path | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca_cert_path))
        if cert is not None:
            assert tmp is not None
            (tmp / "client.crt").write_bytes(cert[0])
            (tmp / "client.key").write_bytes(cert[1])
            ctx.load_cert_chain(tmp / "client.crt", tmp / "client.key")
        return ctx

    async def get(self, path: str, *, token: str | None = None,
                  ctx: ssl.SSLContext | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with aiohttp.ClientSession() as session, session.get(
                self.server.make_url(path), headers=headers, ssl=ctx or self.client_context()) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()


async def _whoami(request: web.Request) -> web.Response:
    return web.json_response(authn.request_user(request).to_dict())


def make_app(data_dir: Path) -> web.Application:
    tokens = authn.StaticTokenAuthenticator.from_csv(authn.token_file_path(data_dir))
    app = web.Application(middlewares=[authn.authn_middleware(authn.Authenticator.standard([tokens]))])
    app.router.add_get("/healthz", _whoami)
    app.router.add_get("/version", _whoami)
    app.router.add_get("/api/v1/namespaces", _whoami)
    return app


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    pki = certs.load_or_create_pki(tmp_path)
    token = authn.ensure_admin_token(tmp_path)
    server = TestServer(make_app(tmp_path), host="127.0.0.1")
    await server.start_server(ssl=certs.ssl_server_context(pki))
    assert server.make_url("/").scheme == "https"
    try:
        yield Cluster(pki, token, server)
    finally:
        await server.close()


async def test_admin_token_is_accepted(cluster: Cluster) -> None:
    status, body = await cluster.get("/api/v1/namespaces", token=cluster.admin_token)
    assert status == 200
    assert body["username"] == "admin"
    assert body["groups"] == ["system:masters", "system:authenticated"]


@pytest.mark.parametrize("token", [
    pytest.param(None, id="no-token"),
    pytest.param("wrong", id="wrong-token"),
])
async def test_missing_or_wrong_token_is_401_status(cluster: Cluster, token: str | None) -> None:
    assert await cluster.get("/api/v1/namespaces", token=token) == (401, UNAUTHORIZED)


async def test_public_paths_are_open_to_anonymous_but_not_to_bad_tokens(cluster: Cluster) -> None:
    status, body = await cluster.get("/healthz")
    assert status == 200
    assert body == {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    assert (await cluster.get("/version/"))[0] == 404  # let through as anonymous, then not routed
    assert await cluster.get("/healthz", token="wrong") == (401, UNAUTHORIZED)
    status, body = await cluster.get("/healthz", token=cluster.admin_token)
    assert body["username"] == "admin"


async def test_client_cert_signed_by_ca_authenticates(cluster: Cluster, tmp_path: Path) -> None:
    cert = certs.issue_client_cert(cluster.pki.ca, "system:node:n1", ["system:nodes"])
    status, body = await cluster.get("/api/v1/namespaces", ctx=cluster.client_context(cert, tmp_path))
    assert status == 200
    assert body["username"] == "system:node:n1"
    assert body["groups"] == ["system:nodes", "system:authenticated"]
    assert body["extra"][authn.CREDENTIAL_ID_KEY][0].startswith("X509SHA256=")


async def test_client_cert_wins_over_a_bearer_token(cluster: Cluster, tmp_path: Path) -> None:
    cert = certs.issue_client_cert(cluster.pki.ca, "carol", [])
    ctx = cluster.client_context(cert, tmp_path)
    status, body = await cluster.get("/api/v1/namespaces", token="wrong", ctx=ctx)
    assert (status, body["username"]) == (200, "carol")


@pytest.mark.parametrize("which", [
    pytest.param("foreign-ca", id="client-cert-from-another-ca"),
    pytest.param("server-usage", id="server-cert-used-as-client-cert"),
])
async def test_client_certs_the_tls_layer_refuses(cluster: Cluster, tmp_path: Path, which: str) -> None:
    if which == "foreign-ca":
        cert = certs.issue_client_cert(certs.create_ca(), "mallory", ["system:masters"])
    else:
        cert = certs.issue_serving_cert(cluster.pki.ca, ["mallory"], common_name="mallory")
    with pytest.raises(aiohttp.ClientError):
        await cluster.get("/api/v1/namespaces", ctx=cluster.client_context(cert, tmp_path))


async def test_server_identity_verifies_for_localhost(cluster: Cluster) -> None:
    url = cluster.server.make_url("/healthz").with_host("localhost")
    async with aiohttp.ClientSession() as session, session.get(url, ssl=cluster.client_context()) as resp:
        assert resp.status == 200


async def test_union_reports_rejection_only_when_nobody_accepts() -> None:
    class Rejects:
        async def authenticate(self, request: web.Request) -> UserInfo | None:
            raise authn.InvalidCredentials("no")

    class Accepts:
        async def authenticate(self, request: web.Request) -> UserInfo | None:
            return UserInfo("x", groups=("system:authenticated",))

    class Abstains:
        async def authenticate(self, request: web.Request) -> UserInfo | None:
            return None

    request: Any = object()
    user = await authn.Authenticator([Rejects(), Accepts()]).authenticate(request)
    assert user == UserInfo("x", groups=("system:authenticated",))
    assert await authn.Authenticator([Abstains()]).authenticate(request) is None
    with pytest.raises(authn.InvalidCredentials):
        await authn.Authenticator([Abstains(), Rejects()]).authenticate(request)
