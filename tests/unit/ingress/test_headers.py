"""Header handling: X-Forwarded-* and X-Real-IP, hop-by-hop headers, trusted proxies, and the request and
response heads they travel in."""

from __future__ import annotations

import pytest

from kubelite.proxy.ingress.headers import ClientInfo, TrustedProxies, client_head, upstream_head
from kubelite.proxy.ingress.http1 import (
    BadMessage,
    Headers,
    RequestHead,
    parse_request_head,
    parse_response_head,
    serialize_head,
)

CLIENT = ClientInfo("203.0.113.7", "https", 443)


def names(headers: Headers) -> list[str]:
    return [n.lower() for n, _ in headers]


def header(headers: Headers, name: str) -> str | None:
    return next((v for n, v in headers if n.lower() == name), None)


def request(*fields: tuple[str, str], line: str = "GET /p?q=1 HTTP/1.1") -> RequestHead:
    return parse_request_head(serialize_head(line, list(fields)))


def forwarded(head: RequestHead, client: ClientInfo = CLIENT) -> RequestHead:
    """What the endpoint receives."""
    return parse_request_head(upstream_head(head, client))


# --- towards the endpoint ----------------------------------------------------------------------------

def test_forwarded_headers_are_added() -> None:
    out = forwarded(request(("Host", "app.example.com"), ("Accept", "*/*")))
    assert (out.method, out.target, out.version) == ("GET", "/p?q=1", "HTTP/1.1")
    assert out.headers == [
        ("Host", "app.example.com"), ("Accept", "*/*"), ("X-Forwarded-For", "203.0.113.7"),
        ("X-Forwarded-Host", "app.example.com"), ("X-Forwarded-Port", "443"), ("X-Forwarded-Proto", "https"),
        ("X-Real-IP", "203.0.113.7")]
    # HTTP/1.1 keep-alive is the default: no Connection field


def test_an_untrusted_client_cannot_forge_forwarded_headers() -> None:
    out = forwarded(request(("Host", "h"), ("X-Forwarded-For", "1.2.3.4"), ("X-Real-IP", "1.2.3.4"),
                            ("x-forwarded-proto", "gopher"), ("X-Forwarded-Host", "evil"), ("X-Forwarded-Port", "1")))
    assert names(out.headers).count("x-forwarded-for") == 1
    assert header(out.headers, "x-forwarded-for") == "203.0.113.7"
    assert header(out.headers, "x-real-ip") == "203.0.113.7"
    assert header(out.headers, "x-forwarded-proto") == "https"
    assert header(out.headers, "x-forwarded-host") == "h"
    assert header(out.headers, "x-forwarded-port") == "443"
    assert names(out.headers).count("x-forwarded-proto") == 1


def test_a_trusted_proxy_extends_the_chain() -> None:
    proxy = ClientInfo("10.0.0.2", "http", 80, trusted=True)
    out = forwarded(request(("Host", "h"), ("X-Forwarded-For", "198.51.100.1, 10.0.0.9"),
                            ("X-Forwarded-For", "10.0.0.8"), ("X-Forwarded-Proto", "https"),
                            ("X-Forwarded-Port", "443"), ("X-Forwarded-Host", "public.example")), proxy)
    assert header(out.headers, "x-forwarded-for") == "198.51.100.1, 10.0.0.9, 10.0.0.8, 10.0.0.2"
    assert header(out.headers, "x-real-ip") == "198.51.100.1"
    assert header(out.headers, "x-forwarded-proto") == "https"
    assert header(out.headers, "x-forwarded-port") == "443"
    assert header(out.headers, "x-forwarded-host") == "public.example"
    assert names(out.headers).count("x-forwarded-for") == 1


def test_hop_by_hop_headers_and_those_connection_names_are_dropped() -> None:
    out = forwarded(request(("Host", "h"), ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
                            ("X-Secret", "s"), ("TE", "trailers"), ("Trailer", "x"), ("Proxy-Connection", "keep-alive"),
                            ("Upgrade", "h2c"), ("Transfer-Encoding", "chunked"), ("Authorization", "Bearer t"),
                            ("X-Secretive", "kept")))
    dropped = {"connection", "keep-alive", "x-secret", "te", "trailer", "proxy-connection", "upgrade"}
    assert dropped.isdisjoint(names(out.headers))
    assert header(out.headers, "transfer-encoding") == "chunked"  # the body is forwarded as it came
    assert header(out.headers, "authorization") == "Bearer t"
    assert header(out.headers, "x-secretive") == "kept"


def test_an_upgrade_is_asked_for_again() -> None:
    out = forwarded(request(("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "websocket"),
                            ("Sec-WebSocket-Key", "k")))
    assert header(out.headers, "connection") == "upgrade"
    assert header(out.headers, "upgrade") == "websocket"
    assert header(out.headers, "sec-websocket-key") == "k"
    assert out.upgrade == "websocket"


def test_http10_asks_the_endpoint_for_keep_alive() -> None:
    out = forwarded(request(("Host", "h"), line="GET / HTTP/1.0"))
    assert header(out.headers, "connection") == "keep-alive" and out.version == "HTTP/1.0"


def test_absolute_form_becomes_origin_form() -> None:
    out = forwarded(parse_request_head(b"GET http://h.example:8080/a?b HTTP/1.1\r\nHost: h.example:8080\r\n\r\n"))
    assert out.target == "/a?b" and out.host == "h.example:8080"


@pytest.mark.parametrize(("address", "trusted"), [
    ("10.1.2.3", True), ("10.255.0.1", True), ("11.0.0.1", False), ("::ffff:10.0.0.1", True), ("fd00::5", True),
    ("fe80::1%eth0", False), ("not-an-ip", False),
])
def test_trusted_proxies(address: str, trusted: bool) -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "fd00::/8"])
    assert (address in proxies) is trusted
    assert "10.0.0.1" not in TrustedProxies()


# --- towards the client ------------------------------------------------------------------------------

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def test_response_headers_to_the_client() -> None:
    response = parse_response_head(RESPONSE)
    assert client_head(response, keep_alive=True, http10_client=False) == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
    closing = parse_response_head(client_head(response, keep_alive=False, http10_client=False))
    assert header(closing.headers, "connection") == "close"
    old = parse_response_head(client_head(response, keep_alive=True, http10_client=True))
    assert header(old.headers, "connection") == "keep-alive"
    switching = parse_response_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: a\r\n\r\n")
    upgraded = parse_response_head(client_head(switching, keep_alive=True, http10_client=False,
                                               upgrade=switching.upgrade))
    assert upgraded.headers == [("Sec-WebSocket-Accept", "a"), ("Connection", "upgrade"), ("Upgrade", "websocket")]


def test_a_response_without_hop_by_hop_fields_passes_as_it_is() -> None:
    raw = b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
    assert client_head(parse_response_head(raw), keep_alive=True, http10_client=False) == raw


def test_an_http10_response_is_sent_as_http11() -> None:
    head = client_head(parse_response_head(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), keep_alive=False,
                       http10_client=False)
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


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
