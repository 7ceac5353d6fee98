"""``kubelite agent``: join this machine to a cluster as a node (kubelet, container runtime, DNS); and the
flags `kubelite server` shares with it for its own local agent."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from kubelite.apiserver.kubeconfig_writer import default_data_dir
from kubelite.cli.session import run_until_signalled
from kubelite.client.join import JoinError, fetch_cluster_ca, parse_join_token
from kubelite.client.kubeconfig import KubeconfigError, config_for_server
from kubelite.client.rest import Client
from kubelite.kubelet.agent import AgentConfig, choose_runtime, run_agent


def add_agent_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-name", default=None, help="the Node's name (default: the host name)")
    p.add_argument("--node-ip", default=None, help="the Node's InternalIP (default: the address of the "
                   "interface that routes outwards)")
    p.add_argument("--runtime", choices=["runc", "process"], default=None,
                   help="runc (default where possible) or process (plain host processes, no isolation)")
    p.add_argument("--kubelet-port", type=int, default=10250, help="the kubelet's HTTPS port (default 10250)")
    p.add_argument("--cluster-dns", default="10.96.0.10", help="the cluster DNS address pods use")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--proxy-mode", choices=["nftables", "userspace"], default="nftables",
                   help="how Services are routed: nftables (default) or the userspace fallback")
    p.add_argument("--disable", action="append", default=[], choices=["proxy", "dns", "ingress"],
                   help="do not run this part of the node agent (repeatable)")
    p.add_argument("--ingress-http-port", type=int, default=80, help="the ingress gateway's HTTP port (80)")
    p.add_argument("--ingress-https-port", type=int, default=443, help="the ingress gateway's HTTPS port (443)")


def agent_config(args: argparse.Namespace, data_dir: str, ca_pem: bytes) -> AgentConfig:
    return AgentConfig(node_name=(args.node_name or socket.gethostname()).lower(), data_dir=Path(data_dir),
                       cluster_ca_pem=ca_pem, runtime=choose_runtime(args.runtime), node_ip=args.node_ip,
                       kubelet_port=args.kubelet_port, cluster_dns=[args.cluster_dns],
                       cluster_domain=args.cluster_domain, cluster_cidr=args.cluster_cidr,
                       proxy_mode=args.proxy_mode, enable_proxy="proxy" not in args.disable,
                       enable_dns="dns" not in args.disable, enable_ingress="ingress" not in args.disable,
                       ingress_http_port=args.ingress_http_port, ingress_https_port=args.ingress_https_port)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="join this machine to a cluster as a node")
    p.add_argument("--server", required=True, help="the API server, e.g. https://10.0.0.1:6443")
    p.add_argument("--token", default=os.environ.get("KUBELITE_TOKEN"),
                   help="the join token (the server's <data-dir>/node-token), or a bearer token with --ca-file")
    p.add_argument("--ca-file", default=None, help="the cluster CA, when the token does not carry its hash")
    p.add_argument("--data-dir", default=None, help="where the agent keeps images, containers and state")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="the cluster's pod network (as the server's)")
    add_agent_flags(p)
    p.set_defaults(func=_agent)


def _agent(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.token:
        print("kubelite: --token (or KUBELITE_TOKEN) is required", file=sys.stderr)
        return 2
    data_dir = os.path.abspath(args.data_dir or default_data_dir())

    async def main(stop: asyncio.Event) -> None:
        ca_hash, token = parse_join_token(args.token)
        if ca_hash is not None:
            ca_pem = await fetch_cluster_ca(args.server, ca_hash)
        elif args.ca_file:
            ca_pem = Path(args.ca_file).read_bytes()
        else:
            raise JoinError("a bare token needs --ca-file (or use the K10... join token from the server's "
                            "node-token file)")
        config = config_for_server(args.server, token=token, ca_data=ca_pem.decode())
        async with Client(config) as client:
            await run_agent(client, agent_config(args, data_dir, ca_pem), stop)

    try:
        run_until_signalled(main)
    except (JoinError, KubeconfigError, OSError) as e:
        print(f"kubelite: {e}", file=sys.stderr)
        return 1
    return 0
