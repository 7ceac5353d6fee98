"""``kubelite dns``: the cluster DNS server of one node, alone (the logic lives in `kubelite.proxy.dns`; this
module only parses flags and wires).

    kubelite dns [--listen ADDR ...] [--port 53] [--cluster-domain cluster.local] [--upstream ADDR[:PORT] ...]
                 [--resolv-conf /etc/resolv.conf] [--ttl 5] [--pods verified|insecure|disabled]
                 [--cluster-dns-ip 10.96.0.10] [--advertise-address IP ... [--node-name NAME]]

At start it makes sure the ``kube-system/kube-dns`` Service exists with ``--cluster-dns-ip`` (an empty value
skips that) and, given ``--advertise-address``, publishes those addresses as this node's DNS endpoints,
removed again on exit. It runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys
from pathlib import Path

from kubelite import __version__
from kubelite.cli.session import kubeconfig_path, run_until_signalled
from kubelite.client.kubeconfig import KubeconfigError, load_kubeconfig
from kubelite.client.rest import ApiException, Client, TransportError
from kubelite.proxy.dns import (
    DEFAULT_CLUSTER_DNS_IP,
    DNSConfig,
    DNSServiceConflict,
    dns_endpoints,
    ensure_dns_service,
    remove_dns_endpoints,
    run_dns,
)
from kubelite.proxy.dns.clients import DEFAULT_ALLOWED_CLIENTS
from kubelite.proxy.dns.config import DEFAULT_CLUSTER_DOMAIN, DEFAULT_PORT, DEFAULT_TTL, POD_MODES


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dns", help="run the cluster DNS server of this node (like CoreDNS)",
                       description="Answer the cluster's Service and pod names from the API server and forward "
                                   "every other name to this node's resolvers.")
    p.add_argument("--listen", action="append", default=[], metavar="ADDR",
                   help="address to listen on, UDP and TCP (repeatable; default 0.0.0.0)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    p.add_argument("--cluster-domain", default=DEFAULT_CLUSTER_DOMAIN,
                   help=f"the cluster's DNS domain (default {DEFAULT_CLUSTER_DOMAIN})")
    p.add_argument("--upstream", action="append", default=None, metavar="ADDR[:PORT]",
                   help="resolver for names outside the cluster (repeatable; default: the nameservers of "
                        "--resolv-conf)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", help="where the node's resolvers are listed "
                   "(default /etc/resolv.conf)")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL, help=f"TTL of cluster records (default {DEFAULT_TTL})")
    p.add_argument("--pods", choices=POD_MODES, default="verified",
                   help="a-b-c-d.<ns>.pod records: for existing pods only, for any IP, or none (default verified)")
    p.add_argument("--allow-from", action="append", default=None, metavar="CIDR",
                   help="answer clients from this network only (repeatable; default: private, CGNAT, "
                        "link-local and loopback ranges)")
    p.add_argument("--cluster-dns-ip", default=DEFAULT_CLUSTER_DNS_IP,
                   help=f"ClusterIP of the kube-system/kube-dns Service to ensure (default "
                        f"{DEFAULT_CLUSTER_DNS_IP}; empty: leave the Service alone)")
    p.add_argument("--advertise-address", action="append", default=[], metavar="IP",
                   help="publish this address as one of this node's DNS endpoints (repeatable)")
    p.add_argument("--node-name", default=socket.gethostname(), help="this node's name (default: the host name)")
    p.add_argument("--kubeconfig", default=None, metavar="PATH",
                   help="kubeconfig of the API server (default: as kubectl, then kubelite's admin kubeconfig)")
    p.add_argument("--context", default=None, help="the kubeconfig context to use")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.set_defaults(func=_dns)


def config_from(args: argparse.Namespace) -> DNSConfig:
    """The server the flags describe; ValueError on bad flags."""
    return DNSConfig(
        listen=tuple(args.listen) or ("0.0.0.0",), port=args.port, cluster_domain=args.cluster_domain,
        upstreams=tuple(args.upstream) if args.upstream is not None else None,
        resolv_conf=Path(args.resolv_conf), ttl=args.ttl, pods=args.pods,
        allowed_clients=tuple(args.allow_from) if args.allow_from is not None else DEFAULT_ALLOWED_CLIENTS)


def _dns(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from(args)
        kube = load_kubeconfig(kubeconfig_path(args.kubeconfig), context=args.context)
    except (ValueError, KubeconfigError) as e:
        print(f"kubelite dns: {e}", file=sys.stderr)
        return 1

    async def main(stop: asyncio.Event) -> None:
        async with Client(kube, user_agent=f"kubelite-dns/{__version__}") as client:
            if args.cluster_dns_ip:
                await ensure_dns_service(client, args.cluster_dns_ip, port=config.port)
            try:
                if args.advertise_address:
                    await dns_endpoints(client, args.advertise_address, config.port, node_name=args.node_name)
                await run_dns(client, config, stop)
            finally:
                if args.advertise_address:
                    await remove_dns_endpoints(client, node_name=args.node_name)

    try:
        run_until_signalled(main)
    except (OSError, ApiException, TransportError, DNSServiceConflict) as e:
        print(f"kubelite dns: {e}", file=sys.stderr)
        return 1
    return 0
