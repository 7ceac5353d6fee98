"""`IngressConfig`: what one node's ingress gateway is told. Durations are in seconds.

Defaults follow ingress-nginx's where it has one: 5 s to connect to an endpoint, 60 s between two reads
from it (``proxy-read-timeout``), 60 s for a client to send its request head and 75 s of keep-alive
between its requests, idle keep-alive connections kept for 60 s (``upstream-keepalive-timeout``), 3
endpoints tried when connecting fails (``proxy-next-upstream-tries``). Up to 128 idle connections are
kept per endpoint (ingress-nginx keeps 320 per backend): when more requests than that are in flight to
one endpoint at once, the connections beyond it are closed after their exchange and opened again later.
WebSocket tunnels last until either side closes or both are silent for ``tunnel_timeout`` (an hour).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from kubelite.proxy.ingress.classes import CLASS_NAME, CONTROLLER

KIB = 1024


@dataclass(frozen=True)
class IngressConfig:
    node_name: str = field(default_factory=socket.gethostname)
    # Where to listen: None means every address (IPv4 and IPv6). Port 0 picks a free port; an
    # ``https_port`` of None turns HTTPS off.
    bind_address: str | None = None
    http_port: int = 80
    https_port: int | None = 443

    class_name: str = CLASS_NAME
    controller: str = CONTROLLER
    # Install the IngressClass `class_name` (as the cluster default) at start when it is missing.
    install_class: bool = True

    # status.loadBalancer: write it at all, and with which addresses. Empty `publish_addresses` means the
    # InternalIP (else ExternalIP) of every Ready Node, or `node_ip` (detected when None) without Nodes.
    write_status: bool = True
    publish_addresses: tuple[str, ...] = ()
    node_ip: str | None = None

    # Clients (CIDRs) whose X-Forwarded-* headers are believed, e.g. a load balancer in front.
    trusted_proxies: tuple[str, ...] = ()

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    client_header_timeout: float = 60.0
    client_body_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    tunnel_timeout: float = 3600.0
    upstream_keepalive: int = 128
    upstream_keepalive_timeout: float = 60.0
    max_tries: int = 3
    # An endpoint that refused a connection is tried after the others for this long.
    fail_timeout: float = 10.0
    max_head_size: int = 64 * KIB
    # Request bodies up to this size (with a Content-Length and no Expect) are read before the endpoint is
    # picked, so that a stale keep-alive connection can be retried with them; larger ones are streamed.
    buffer_request_body: int = 64 * KIB

    # Coalesce bursts of API changes into one table rebuild after this long.
    sync_delay: float = 0.05
    # On stop, requests in flight get this long to finish.
    shutdown_grace: float = 10.0

    def __post_init__(self) -> None:
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {cidr!r} is not an IP address or CIDR") from None
