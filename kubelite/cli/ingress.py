"""``kubelite ingress``: a node's ingress gateway alone, against any API server (the agent runs it too)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys

from kubelite.cli.session import kubeconfig_path, run_until_signalled
from kubelite.client.kubeconfig import KubeconfigError, load_kubeconfig
from kubelite.client.rest import Client
from kubelite.proxy.ingress import CLASS_NAME, IngressConfig, run_ingress


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ingress", help="run the ingress gateway (HTTP/HTTPS routing by Ingress objects)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server (default: as kubectl, "
                   "then kubelite's admin kubeconfig)")
    p.add_argument("--context", default=None)
    p.add_argument("--node-name", default=socket.gethostname(), help="this node's name (events' source)")
    p.add_argument("--bind-address", default=None, help="address to listen on (default: every address)")
    p.add_argument("--http-port", type=_port, default=80, help="HTTP port (default 80; 0 picks a free one)")
    p.add_argument("--https-port", type=_port, default=443, help="HTTPS port (default 443; 0 picks a free one)")
    p.add_argument("--disable-https", action="store_true", help="serve HTTP only")
    p.add_argument("--ingress-class", default=CLASS_NAME, help=f"the IngressClass to serve (default {CLASS_NAME})")
    p.add_argument("--no-install-class", dest="install_class", action="store_false",
                   help="do not create the IngressClass (as the cluster default) when it is missing")
    p.add_argument("--disable-status", dest="write_status", action="store_false",
                   help="do not write status.loadBalancer of Ingresses")
    p.add_argument("--publish-status-address", action="append", default=[], metavar="ADDRESS",
                   help="address to publish in status.loadBalancer (repeatable; default: the Ready nodes' IPs)")
    p.add_argument("--node-ip", default=None, help="this node's address, published when there are no Node objects")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                   help="clients whose X-Forwarded-* headers are kept (repeatable)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.set_defaults(func=_ingress)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def config_from_args(args: argparse.Namespace) -> IngressConfig:
    return IngressConfig(
        node_name=args.node_name,
        bind_address=args.bind_address,
        http_port=args.http_port,
        https_port=None if args.disable_https else args.https_port,
        class_name=args.ingress_class,
        install_class=args.install_class,
        write_status=args.write_status,
        publish_addresses=tuple(args.publish_status_address),
        node_ip=args.node_ip,
        trusted_proxies=tuple(args.trusted_proxy),
    )


def _ingress(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        kubeconfig = load_kubeconfig(kubeconfig_path(args.kubeconfig), context=args.context)
        config = config_from_args(args)
    except (KubeconfigError, ValueError) as e:
        print(f"kubelite: {e}", file=sys.stderr)
        return 1

    async def main(stop: asyncio.Event) -> None:
        async with Client(kubeconfig) as client:
            await run_ingress(client, config, stop)

    try:
        run_until_signalled(main)
    except OSError as e:
        print(f"kubelite: cannot start the ingress gateway: {e}", file=sys.stderr)
        return 1
    return 0
