"""``kubelite server`` (the control plane, with a node agent unless ``--disable-agent``) and
``kubelite apiserver`` (the API server alone)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from kubelite.apiserver.kubeconfig_writer import default_data_dir, default_kubeconfig_path
from kubelite.apiserver.server import Component, ServerConfig, run
from kubelite.cli.agent import add_agent_flags, agent_config
from kubelite.cli.session import kubeconfig_path, run_until_signalled
from kubelite.client.kubeconfig import KubeconfigError, load_kubeconfig
from kubelite.client.rest import Client
from kubelite.controllers.context import ControllerOptions
from kubelite.controllers.manager import run_controller_manager
from kubelite.kubelet.agent import run_agent
from kubelite.scheduler import run_scheduler


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="where state, certificates and tokens live "
                   "(default: /var/lib/kubelite as root, ~/.local/share/kubelite otherwise)")
    p.add_argument("--bind-address", default="0.0.0.0", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=6443, help="HTTPS port (default 6443)")
    p.add_argument("--etcd-endpoints", default="", help="comma-separated etcd client URLs; "
                   "without them the embedded SQLite store is used")
    p.add_argument("--write-kubeconfig", default=None, help="where to write the admin kubeconfig "
                   "(default: /etc/kubelite/kubelite.yaml as root, ~/.kube/kubelite.yaml otherwise)")
    p.add_argument("--tls-san", action="append", default=[], help="extra host name or IP for the "
                   "serving certificate (repeatable)")
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                   help="the range ClusterIPs are allocated from (default 10.96.0.0/12)")
    p.add_argument("--service-node-port-range", default="30000-32767", help="NodePort range (default 30000-32767)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v: access log)")


def _add_controller_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-monitor-grace-period", type=duration, default=40.0, metavar="DURATION",
                   help="a node whose heartbeat is older than this becomes NotReady/Unknown (default 40s)")
    p.add_argument("--node-monitor-period", type=duration, default=5.0, metavar="DURATION",
                   help="how often node heartbeats are checked (default 5s)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16", help="pod addresses; each node gets a slice of it")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, help="the size of each node's slice (default 24)")


def duration(text: str) -> float:
    """A Go-style duration ("40s", "1m30s", "500ms", "2h") or plain seconds, as seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    try:
        return float(text)
    except ValueError:
        pass
    total, number, i = 0.0, "", 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in units or not number:
            raise argparse.ArgumentTypeError(f"not a duration: {text!r} (use e.g. 40s, 1m, 500ms)")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (a unit is missing)")
    return total


def _controller_options(args: argparse.Namespace) -> ControllerOptions:
    return ControllerOptions(node_monitor_grace_period=args.node_monitor_grace_period,
                             node_monitor_period=args.node_monitor_period, cluster_cidr=args.cluster_cidr,
                             node_cidr_mask_size=args.node_cidr_mask_size)


def _controller_component(args: argparse.Namespace) -> Component:
    options = _controller_options(args)

    async def controller_manager(client: Client, stop: asyncio.Event) -> None:
        await run_controller_manager(client, stop, options)

    return controller_manager


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("server", help="run the control plane (API server, controllers, scheduler)")
    _add_common(p)
    p.add_argument("--disable-agent", action="store_true", help="do not run a node agent in this process")
    add_agent_flags(p)
    p.add_argument("--scheduler-config", default=None, help="a KubeSchedulerConfiguration file (plugins, weights)")
    _add_controller_flags(p)
    p.set_defaults(func=_server, components=("controller-manager", "scheduler", "agent"))
    a = sub.add_parser("apiserver", help="run the API server alone")
    _add_common(a)
    a.set_defaults(func=_server, components=())
    c = sub.add_parser("controller-manager", help="run the controllers alone, against any API server")
    c.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server (default: as kubectl, "
                   "then kubelite's admin kubeconfig)")
    c.add_argument("--context", default=None)
    _add_controller_flags(c)
    c.set_defaults(func=_controller_manager)
    s = sub.add_parser("scheduler", help="run the scheduler alone, against any API server")
    s.add_argument("--kubeconfig", default=None, help="kubeconfig of the API server")
    s.add_argument("--context", default=None)
    s.add_argument("--config", dest="scheduler_config", default=None,
                   help="a KubeSchedulerConfiguration file (plugins, weights)")
    s.set_defaults(func=_scheduler)


def _config(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        data_dir=os.path.abspath(args.data_dir or default_data_dir()),
        bind_address=args.bind_address,
        port=args.port,
        etcd_endpoints=[e.strip() for e in args.etcd_endpoints.split(",") if e.strip()],
        kubeconfig_path=os.path.abspath(args.write_kubeconfig or default_kubeconfig_path()),
        tls_sans=args.tls_san,
        service_cidr=args.service_cluster_ip_range,
        node_port_range=_port_range(args.service_node_port_range),
        components=_components(args),
    )


def _port_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        first, last = int(low), int(high if sep else low)
    except ValueError:
        raise SystemExit(f"kubelite: --service-node-port-range must look like 30000-32767, got {text!r}") from None
    if not 0 < first <= last < 65536:
        raise SystemExit(f"kubelite: --service-node-port-range {text!r} is not a valid port range")
    return first, last


def _server(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kubelite.apiserver.access").setLevel(logging.INFO if args.verbose else logging.WARNING)
    config = _config(args)
    print(f"kubelite: data directory {config.data_dir}", file=sys.stderr)
    try:
        asyncio.run(run(config))
    except OSError as e:
        print(f"kubelite: cannot start the server: {e}", file=sys.stderr)
        return 1
    return 0


def _components(args: argparse.Namespace) -> list[Component]:
    """The control-plane roles `kubelite server` runs in its own process, as clients of its API server."""
    roles = {"controller-manager": _controller_component, "scheduler": _scheduler_component,
             "agent": _agent_component}
    names = [n for n in args.components if not (n == "agent" and args.disable_agent)]
    return [roles[name](args) for name in names]


def _agent_component(args: argparse.Namespace) -> Component:
    data_dir = os.path.abspath(args.data_dir or default_data_dir())

    async def agent(client: Client, stop: asyncio.Event) -> None:
        ca_pem = (Path(data_dir) / "tls" / "ca.crt").read_bytes()
        await run_agent(client, agent_config(args, data_dir, ca_pem), stop)

    return agent


def _scheduler_component(args: argparse.Namespace) -> Component:
    async def scheduler(client: Client, stop: asyncio.Event) -> None:
        await run_scheduler(client, stop, config_path=args.scheduler_config)

    return scheduler


def _run_client_role(args: argparse.Namespace, role: Component) -> int:
    """Run one control-plane role as a client of the API server named by the kubeconfig, until a signal."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_kubeconfig(kubeconfig_path(args.kubeconfig), context=args.context)
    except KubeconfigError as e:
        print(f"kubelite: {e}", file=sys.stderr)
        return 1

    async def main(stop: asyncio.Event) -> None:
        async with Client(config) as client:
            await role(client, stop)

    run_until_signalled(main)
    return 0


def _controller_manager(args: argparse.Namespace) -> int:
    return _run_client_role(args, _controller_component(args))


def _scheduler(args: argparse.Namespace) -> int:
    return _run_client_role(args, _scheduler_component(args))
