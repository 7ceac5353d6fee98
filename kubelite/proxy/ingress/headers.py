"""Header rewriting between the client and the endpoint (pure).

Towards the endpoint (`upstream_request_headers`):
- hop-by-hop headers go (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and every header
  the Connection header names); Transfer-Encoding stays, because the body is forwarded as it came;
- ``X-Forwarded-For``, ``-Proto``, ``-Host``, ``-Port`` and ``X-Real-IP`` say who asked and how. From a
  client that is not a trusted proxy, whatever it sent under these names is dropped and replaced (so a
  client cannot make up its address); from a trusted proxy (``trusted_proxies``, CIDRs), they are kept,
  its address is appended to ``X-Forwarded-For``, and ``X-Real-IP`` is the first address of the chain —
  ingress-nginx's ``use-forwarded-headers``/``proxy-real-ip-cidr``, Traefik's ``forwardedHeaders.trustedIPs``;
- an upgrade (WebSocket) asks the endpoint for it again (``Connection: upgrade`` + ``Upgrade``); an
  HTTP/1.0 request asks for keep-alive, so that the pooled connection survives it. ``Host`` is left alone.

Towards the client (`client_response_headers`): hop-by-hop headers go; ``Connection: close`` when the
client connection ends after this response, ``Connection: keep-alive`` for an HTTP/1.0 client whose
connection stays, ``Connection: upgrade`` + ``Upgrade`` for a 101.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

Headers = list[tuple[str, str]]

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade"})
FORWARDED = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port",
                       "x-real-ip"})


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


def upstream_request_headers(headers: Headers, connection: frozenset[str], client: ClientInfo, *,
                             host: str, upgrade: str = "", http10: bool = False) -> Headers:
    """The request headers to send to the endpoint; see the module docstring. ``connection`` is the
    request's Connection tokens (lower case), ``host`` its Host."""
    out: Headers = []
    prior_for: list[str] = []
    prior: dict[str, str] = {}
    for name, value in headers:
        lname = name.lower()
        if lname in HOP_BY_HOP or lname in connection:
            continue
        if lname in FORWARDED:
            if client.trusted:
                if lname == "x-forwarded-for":
                    prior_for.append(value)
                else:
                    prior.setdefault(lname, value)
            continue
        out.append((name, value))
    chain = ", ".join([*prior_for, client.address])
    first = prior_for[0].split(",", 1)[0].strip() if prior_for else client.address
    out += [
        ("X-Forwarded-For", chain),
        ("X-Forwarded-Host", prior.get("x-forwarded-host", host)),
        ("X-Forwarded-Port", prior.get("x-forwarded-port", str(client.port))),
        ("X-Forwarded-Proto", prior.get("x-forwarded-proto", client.scheme)),
        ("X-Real-IP", prior.get("x-real-ip", first)),
    ]
    if upgrade:
        out += [("Connection", "upgrade"), ("Upgrade", upgrade)]
    elif http10:
        out.append(("Connection", "keep-alive"))
    return out


def client_response_headers(headers: Headers, connection: frozenset[str], *, keep_alive: bool,
                            http10_client: bool, upgrade: str = "") -> Headers:
    """The response headers to send to the client; see the module docstring."""
    out: Headers = [(n, v) for n, v in headers if (ln := n.lower()) not in HOP_BY_HOP and ln not in connection]
    if upgrade:
        out += [("Connection", "upgrade"), ("Upgrade", upgrade)]
    elif not keep_alive:
        out.append(("Connection", "close"))
    elif http10_client:
        out.append(("Connection", "keep-alive"))
    return out


def header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive)."""
    lname = name.lower()
    for n, v in headers:
        if n.lower() == lname:
            return v
    return None
