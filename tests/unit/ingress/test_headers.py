"""Header handling: X-Forwarded-* and X-Real-IP, hop-by-hop headers, trusted proxies, and the request and
response heads they travel in."""

from __future__ import annotations

import pytest

from kubelite.proxy.ingress.headers import (
    ClientInfo,
    TrustedProxies,
    client_response_headers,
    header,
    upstream_request_headers,
)
from kubelite.proxy.ingress.http1 import BadMessage, parse_request_head, parse_response_head, serialize_head

CLIENT = ClientInfo("203.0.113.7", "https", 443)


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [n.lower() for n, _ in headers]


# --- towards the endpoint ----------------------------------------------------------------------------

def test_forwarded_headers_are_added() -> None:
    out = upstream_request_headers([("Host", "app.example.com"), ("Accept", "*/*")], frozenset(), CLIENT,
                                   host="app.example.com")
    assert header(out, "host") == "app.example.com"
    assert header(out, "accept") == "*/*"
    assert header(out, "x-forwarded-for") == "203.0.113.7"
    assert header(out, "x-real-ip") == "203.0.113.7"
    assert header(out, "x-forwarded-proto") == "https"
    assert header(out, "x-forwarded-host") == "app.example.com"
    assert header(out, "x-forwarded-port") == "443"
    assert header(out, "connection") is None  # HTTP/1.1 keep-alive is the default


def test_an_untrusted_client_cannot_forge_forwarded_headers() -> None:
    forged = [("Host", "h"), ("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "1.2.3.4"), ("x-forwarded-proto", "gopher"),
              ("X-Forwarded-Host", "evil"), ("X-Forwarded-Port", "1")]
    out = upstream_request_headers(forged, frozenset(), CLIENT, host="h")
    assert names(out).count("x-forwarded-for") == 1
    assert header(out, "x-forwarded-for") == "203.0.113.7"
    assert header(out, "x-real-ip") == "203.0.113.7"
    assert header(out, "x-forwarded-proto") == "https"
    assert header(out, "x-forwarded-host") == "h"
    assert header(out, "x-forwarded-port") == "443"


def test_a_trusted_proxy_extends_the_chain() -> None:
    proxy = ClientInfo("10.0.0.2", "http", 80, trusted=True)
    sent = [("Host", "h"), ("X-Forwarded-For", "198.51.100.1, 10.0.0.9"), ("X-Forwarded-For", "10.0.0.8"),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Host", "public.example")]
    out = upstream_request_headers(sent, frozenset(), proxy, host="h")
    assert header(out, "x-forwarded-for") == "198.51.100.1, 10.0.0.9, 10.0.0.8, 10.0.0.2"
    assert header(out, "x-real-ip") == "198.51.100.1"
    assert header(out, "x-forwarded-proto") == "https"
    assert header(out, "x-forwarded-port") == "443"
    assert header(out, "x-forwarded-host") == "public.example"


def test_hop_by_hop_headers_and_those_connection_names_are_dropped() -> None:
    sent = [("Host", "h"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"), ("X-Secret", "s"),
            ("TE", "trailers"), ("Trailer", "x"), ("Proxy-Connection", "keep-alive"), ("Upgrade", "h2c"),
            ("Transfer-Encoding", "chunked"), ("Authorization", "Bearer t")]
    out = upstream_request_headers(sent, frozenset({"keep-alive", "x-secret"}), CLIENT, host="h")
    dropped = {"connection", "keep-alive", "x-secret", "te", "trailer", "proxy-connection", "upgrade"}
    assert dropped.isdisjoint(names(out))
    assert header(out, "transfer-encoding") == "chunked"  # the body is forwarded as it came
    assert header(out, "authorization") == "Bearer t"


def test_an_upgrade_is_asked_for_again() -> None:
    sent = [("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "k")]
    out = upstream_request_headers(sent, frozenset({"upgrade"}), CLIENT, host="h", upgrade="websocket")
    assert header(out, "connection") == "upgrade"
    assert header(out, "upgrade") == "websocket"
    assert header(out, "sec-websocket-key") == "k"


def test_http10_asks_the_endpoint_for_keep_alive() -> None:
    out = upstream_request_headers([("Host", "h")], frozenset(), CLIENT, host="h", http10=True)
    assert header(out, "connection") == "keep-alive"


@pytest.mark.parametrize(("address", "trusted"), [
    ("10.1.2.3", True), ("10.255.0.1", True), ("11.0.0.1", False), ("::ffff:10.0.0.1", True), ("fd00::5", True),
    ("fe80::1%eth0", False), ("not-an-ip", False),
])
def test_trusted_proxies(address: str, trusted: bool) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "fd00::/8"])
    assert (address in proxies) is trusted
    assert "10.0.0.1" not in TrustedProxies()


# --- towards the client ------------------------------------------------------------------------------

def test_response_headers_to_the_client() -> None:
    sent = [("Content-Type", "text/plain"), ("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked")]
    kept = client_response_headers(sent, frozenset({"keep-alive"}), keep_alive=True, http10_client=False)
    assert kept == [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked")]
    closing = client_response_headers(sent, frozenset(), keep_alive=False, http10_client=False)
    assert header(closing, "connection") == "close"
    old = client_response_headers(sent, frozenset(), keep_alive=True, http10_client=True)
    assert header(old, "connection") == "keep-alive"
    upgraded = client_response_headers([("Upgrade", "websocket"), ("Sec-WebSocket-Accept", "a")], frozenset(),
                                       keep_alive=True, http10_client=False, upgrade="websocket")
    assert upgraded == [("Sec-WebSocket-Accept", "a"), ("Connection", "upgrade"), ("Upgrade", "websocket")]


# --- message heads -----------------------------------------------------------------------------------

def test_parse_request_head() -> None:
    head = parse_request_head(b"\r\nPOST /a/b?x=1 HTTP/1.1\r\nHost: Foo.com:80\r\nContent-Length: 5\r\n"
                              b"Connection: Keep-Alive, Upgrade\r\nUpgrade: websocket\r\nExpect: 100-continue\r\n\r\n")
    assert (head.method, head.target, head.version, head.host) == ("POST", "/a/b?x=1", "HTTP/1.1", "Foo.com:80")
    assert head.path == "/a/b" and head.origin_target == "/a/b?x=1"
    assert head.length == 5 and not head.chunked and head.has_body
    assert head.connection == {"keep-alive", "upgrade"} and head.upgrade == "websocket"
    assert head.expect_continue and head.keep_alive


def test_absolute_form_target() -> None:
    head = parse_request_head(b"GET http://foo.com:8080/p?q HTTP/1.0\r\n\r\n")
    assert head.host == "foo.com:8080" and head.path == "/p" and head.origin_target == "/p?q"
    assert not head.keep_alive


@pytest.mark.parametrize(("raw", "status"), [
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="no-host"),
    pytest.param(b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="double-space"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, id="version"),
    pytest.param(b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, id="method"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                 id="length-and-chunked"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
                 id="two-lengths"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400, id="negative-length"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, id="coding"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", 400, id="obs-fold"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, id="space-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\nY: b\r\n\r\n", 400, id="bare-lf"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, id="two-hosts"),
])
def test_bad_requests(raw: bytes, status: int) -> None:
    with pytest.raises(BadMessage) as caught:
        parse_request_head(raw)
    assert caught.value.status == status


def test_identical_content_lengths_are_one() -> None:
    raw = b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"
    assert parse_request_head(raw).length == 3


def test_parse_response_head() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    assert (head.status, head.reason, head.chunked, head.keep_alive) == (200, "OK", True, False)
    assert parse_response_head(b"HTTP/1.1 204\r\n\r\n").reason == ""
    assert parse_response_head(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n").keep_alive is False
    with pytest.raises(BadMessage) as caught:
        parse_response_head(b"ICY 200 OK\r\n\r\n")
    assert caught.value.status == 502


def test_serialize_head_round_trip() -> None:
    raw = serialize_head("GET /x HTTP/1.1", [("Host", "h"), ("X-A", "1")])
    assert raw == b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\r\n"
    assert parse_request_head(raw).headers == [("Host", "h"), ("X-A", "1")]
