"""Header rewriting between the client and the endpoint (pure), on the raw heads: the fields pass through
byte for byte, except those removed or added here.

Towards the endpoint (`upstream_head`):
- hop-by-hop fields go (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and every field
  the Connection header names); Transfer-Encoding stays, because the body is forwarded as it came;
- ``X-Forwarded-For``, ``-Proto``, ``-Host``, ``-Port`` and ``X-Real-IP`` say who asked and how. From a
  client that is not a trusted proxy, whatever it sent under these names is dropped and replaced (so a
  client cannot make up its address); from a trusted proxy (``trusted_proxies``, CIDRs), they are kept,
  its address is appended to ``X-Forwarded-For``, and ``X-Real-IP`` is the first address of the chain —
  ingress-nginx's ``use-forwarded-headers``/``proxy-real-ip-cidr``, Traefik's ``forwardedHeaders.trustedIPs``;
- an upgrade (WebSocket) asks the endpoint for it again (``Connection: upgrade`` + ``Upgrade``); an
  HTTP/1.0 request asks for keep-alive, so that the pooled connection survives it; an absolute-form
  target becomes origin-form. ``Host`` is left alone.

Towards the client (`client_head`): hop-by-hop fields go; the status line says HTTP/1.1;
``Connection: close`` when the client connection ends after this response, ``Connection: keep-alive``
for an HTTP/1.0 client whose connection stays, ``Connection: upgrade`` + ``Upgrade`` for a 101.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from kubelite.proxy.ingress.http1 import RequestHead, ResponseHead

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"})
# Field lines (with the CRLF before them) to remove.
_HOP_LINES = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection|te|trailer|upgrade):[^\r\n]*",
                        re.IGNORECASE)
_FORWARDED_LINES = re.compile(rb"\r\n(?:x-forwarded-(?:for|proto|host|port)|x-real-ip):[^\r\n]*", re.IGNORECASE)
_FORWARDED_VALUES = re.compile(rb"\r\n(x-forwarded-(?:for|proto|host|port)|x-real-ip):[ \t]*([^\r\n]*)",
                               re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is asking and on which listener."""

    address: str  # the client's IP, as the socket says
    scheme: str  # "http" or "https": the listener's
    port: int  # the port the gateway accepted the connection on
    trusted: bool = False  # whether the client is a trusted proxy (its X-Forwarded-* are kept)


class TrustedProxies:
    """A set of networks whose X-Forwarded-* headers are believed."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self._networks = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._check = lru_cache(maxsize=4096)(self._lookup)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __contains__(self, address: str) -> bool:
        return bool(self._networks) and self._check(address)

    def _lookup(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self._networks)


def upstream_head(request: RequestHead, client: ClientInfo) -> bytes:
    """The request head to send to the endpoint; see the module docstring."""
    raw = request.raw
    chain = real_ip = client.address
    forwarded_host, forwarded_port, forwarded_proto = request.host, str(client.port), client.scheme
    if request.rewrite:
        if client.trusted:
            prior: dict[bytes, str] = {}
            prior_for: list[str] = []
            for name, value in _FORWARDED_VALUES.findall(raw):
                text = value.rstrip(b" \t").decode("latin-1")
                if name.lower() == b"x-forwarded-for":
                    prior_for.append(text)
                else:
                    prior.setdefault(name.lower(), text)
            if prior_for:
                chain = ", ".join([*prior_for, client.address])
                real_ip = prior_for[0].split(",", 1)[0].strip()
            real_ip = prior.get(b"x-real-ip", real_ip)
            forwarded_host = prior.get(b"x-forwarded-host", forwarded_host)
            forwarded_port = prior.get(b"x-forwarded-port", forwarded_port)
            forwarded_proto = prior.get(b"x-forwarded-proto", forwarded_proto)
        raw = _FORWARDED_LINES.sub(b"", _without_hop_by_hop(raw, request.connection))
    if not request.target.startswith("/"):
        raw = f"{request.method} {request.origin_target} {request.version}".encode("latin-1") + raw[raw.find(b"\r\n"):]
    extra = (f"X-Forwarded-For: {chain}\r\nX-Forwarded-Host: {forwarded_host}\r\nX-Forwarded-Port: {forwarded_port}\r\n"
             f"X-Forwarded-Proto: {forwarded_proto}\r\nX-Real-IP: {real_ip}\r\n")
    if request.upgrade:
        extra += f"Connection: upgrade\r\nUpgrade: {request.upgrade}\r\n"
    elif request.version == "HTTP/1.0":
        extra += "Connection: keep-alive\r\n"
    return raw[:-2] + extra.encode("latin-1") + b"\r\n"


def client_head(response: ResponseHead, *, keep_alive: bool, http10_client: bool, upgrade: str = "") -> bytes:
    """The response head to send to the client; see the module docstring."""
    raw = response.raw
    if response.rewrite:
        raw = _without_hop_by_hop(raw, response.connection)
    if response.version != "HTTP/1.1":
        raw = f"HTTP/1.1 {response.status} {response.reason}".encode("latin-1") + raw[raw.find(b"\r\n"):]
    if upgrade:
        tail = f"Connection: upgrade\r\nUpgrade: {upgrade}\r\n".encode("latin-1")
    elif not keep_alive:
        tail = b"Connection: close\r\n"
    elif http10_client:
        tail = b"Connection: keep-alive\r\n"
    else:
        return raw
    return raw[:-2] + tail + b"\r\n"


def _without_hop_by_hop(raw: bytes, connection: frozenset[str]) -> bytes:
    raw = _HOP_LINES.sub(b"", raw)
    named = connection - HOP_BY_HOP - {"close"}
    return _lines_named(frozenset(named)).sub(b"", raw) if named else raw


@lru_cache(maxsize=256)
def _lines_named(names: frozenset[str]) -> re.Pattern[bytes]:
    """Field lines named ``names`` (the extra fields a Connection header lists)."""
    alternatives = b"|".join(re.escape(n.encode("latin-1")) for n in sorted(names))
    return re.compile(rb"\r\n(?:" + alternatives + rb"):[^\r\n]*", re.IGNORECASE)
