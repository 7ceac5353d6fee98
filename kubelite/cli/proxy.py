"""``kubelite proxy``: the service proxy of one node, alone (the logic lives in `kubelite.proxy`; this module
only parses flags and wires). Flags follow kube-proxy's where they exist.

    kubelite proxy [--kubeconfig FILE] [--hostname-override NODE] [--cluster-cidr CIDR[,CIDR]]
                   [--node-ip IP ...] [--proxy-mode nftables|userspace] [--sync-period 30s]
                   [--min-sync-period 1s] [--masquerade-all] [--netns NAME|PATH] [--cleanup-on-exit]
    kubelite proxy --cleanup [--netns NAME|PATH]

It runs until SIGINT or SIGTERM. ``--cleanup`` removes the proxy's rules (and the userspace proxy's
interface) and exits, as kube-proxy's does.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import socket
import sys

from kubelite.cli.session import kubeconfig_path, run_until_signalled
from kubelite.client.kubeconfig import KubeconfigError, load_kubeconfig
from kubelite.client.rest import Client
from kubelite.proxy.config import MODES, NFTABLES, ProxyConfig
from kubelite.proxy.nft import NftError
from kubelite.proxy.run import cleanup, run_proxy

_DURATION = re.compile(r"(\d+(?:\.\d*)?)(h|ms|us|µs|ns|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def duration(text: str) -> float:
    """Seconds in a Go duration (``30s``, ``1m30s``, ``500ms``) or a plain number of seconds."""
    try:
        value = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 30s, 1m, 500ms)") from None
        value = sum(float(n) * _UNITS[u] for n, u in parts)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: negative")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("proxy", help="run the service proxy of this node (like kube-proxy)",
                       description="Route traffic for Services (ClusterIP, NodePort) to their endpoints with "
                                   "one nftables table, kept in line with the API server.")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server (default: as kubectl, "
                   "then kubelite's admin kubeconfig)")
    p.add_argument("--context", default=None)
    p.add_argument("--hostname-override", default=None, metavar="NODE",
                   help="this node's name: endpoints on it are local (default: the host name)")
    p.add_argument("--cluster-cidr", default="", metavar="CIDR[,CIDR]",
                   help="the pod network; traffic to a ClusterIP from elsewhere is masqueraded")
    p.add_argument("--node-ip", action="append", default=[], metavar="IP",
                   help="an address of this node (repeatable; with --cluster-cidr it decides the IP families)")
    p.add_argument("--proxy-mode", choices=MODES, default=NFTABLES,
                   help="nftables (default; falls back to userspace, loudly, where nft cannot be used) or "
                        "userspace")
    p.add_argument("--sync-period", type=duration, default=30.0,
                   help="recompute every Service and check the table at least this often (default 30s)")
    p.add_argument("--min-sync-period", type=duration, default=1.0,
                   help="sync at most once per this long when changes pour in (default 1s)")
    p.add_argument("--masquerade-all", action="store_true", help="masquerade all traffic to ClusterIPs")
    p.add_argument("--masquerade-bit", type=int, default=14,
                   help="the packet mark bit flagging traffic to masquerade (default 14)")
    p.add_argument("--netns", default=None, metavar="NAME|PATH",
                   help="work in this network namespace (tests, several nodes on one machine)")
    p.add_argument("--cleanup", action="store_true", help="remove the proxy's rules and exit")
    p.add_argument("--cleanup-on-exit", action="store_true", help="remove the proxy's rules when it stops")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v: every sync)")
    p.set_defaults(func=_proxy)


def _config(args: argparse.Namespace) -> ProxyConfig:
    node_ips = tuple(ip.strip() for value in args.node_ip for ip in value.split(",") if ip.strip())
    return ProxyConfig(
        node_name=args.hostname_override or socket.gethostname().lower(),
        cluster_cidr=args.cluster_cidr,
        node_ips=node_ips,
        mode=args.proxy_mode,
        sync_period=args.sync_period,
        min_sync_period=args.min_sync_period,
        netns=args.netns,
        masquerade_all=args.masquerade_all,
        masquerade_bit=args.masquerade_bit,
        cleanup_on_stop=args.cleanup_on_exit,
    )


def _proxy(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = _config(args)
    except ValueError as e:
        print(f"kubelite proxy: {e}", file=sys.stderr)
        return 2
    if args.cleanup:
        try:
            asyncio.run(cleanup(config))
        except NftError as e:
            print(f"kubelite proxy: cleanup failed: {e}", file=sys.stderr)
            return 1
        return 0
    try:
        kubeconfig = load_kubeconfig(kubeconfig_path(args.kubeconfig), context=args.context)
    except KubeconfigError as e:
        print(f"kubelite proxy: {e}", file=sys.stderr)
        return 1

    async def main(stop: asyncio.Event) -> None:
        async with Client(kubeconfig) as client:
            await run_proxy(client, config, stop)

    run_until_signalled(main)
    return 0
