"""``kubelite simulate``: simulated nodes and their kubelets against any API server (the logic lives in
`kubelite.kubelet.simulated`; this module only parses flags and wires).

    kubelite simulate --nodes 5 [--cpu 4] [--memory 16Gi] [--pods 110] [--name-prefix sim-]
                      [--fail sim-2 --fail-after 10s ...] [--termination-delay 0s] [--cleanup]

``--fail NODE`` may be repeated; each takes the ``--fail-after`` at the same position, or the only one given
for all, or 0s when none is given. It runs until SIGINT or SIGTERM; the nodes stay registered unless
``--cleanup``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
from collections.abc import Sequence

from kubelite import __version__
from kubelite.cli.session import CliError, kubeconfig_path, run_until_signalled
from kubelite.client.kubeconfig import KubeconfigError, load_kubeconfig
from kubelite.client.rest import ApiException, Client, TransportError
from kubelite.kubelet.simulated import NodeSimulator, SimulationConfig

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``10s``, ``1m30s``, ``500ms``); a bare number is seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ValueError(f"invalid duration {text!r}: must not be negative")
        return value
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (use e.g. 10s, 1m30s, 500ms)")
    return total


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def failures(nodes: Sequence[str], afters: Sequence[float]) -> dict[str, float]:
    """Pair ``--fail`` with ``--fail-after``: by position, or one delay for all, or none (at once)."""
    if not afters:
        return dict.fromkeys(nodes, 0.0)
    if len(afters) == 1:
        return dict.fromkeys(nodes, afters[0])
    if len(afters) != len(nodes):
        raise CliError(f"{len(nodes)} --fail but {len(afters)} --fail-after: give one --fail-after per --fail, "
                       "or a single one for all")
    return dict(zip(nodes, afters, strict=True))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("simulate", help="register simulated nodes and play their kubelets (like kwok)",
                       description="Register N simulated nodes, renew their leases, and run the pods bound to "
                                   "them through their lifecycle without containers.")
    p.add_argument("--nodes", type=int, required=True, help="how many nodes to simulate")
    p.add_argument("--cpu", default="4", help="CPU capacity of each node (default 4)")
    p.add_argument("--memory", default="16Gi", help="memory capacity of each node (default 16Gi)")
    p.add_argument("--pods", type=int, default=110, help="pod capacity of each node (default 110)")
    p.add_argument("--ephemeral-storage", default="100Gi", help="ephemeral storage of each node (default 100Gi)")
    p.add_argument("--name-prefix", default="sim-", help="node names are PREFIX0, PREFIX1, ... (default sim-)")
    p.add_argument("--fail", action="append", default=[], metavar="NODE",
                   help="stop this node's heartbeats and pod handling (repeatable)")
    p.add_argument("--fail-after", action="append", default=[], type=_duration, metavar="DURATION",
                   help="when the matching --fail happens, after the nodes are up (e.g. 10s; default at once)")
    p.add_argument("--termination-delay", type=_duration, default=0.0, metavar="DURATION",
                   help="how long a deleted pod takes to stop (default 0s)")
    p.add_argument("--lease-interval", type=_duration, default=10.0, metavar="DURATION",
                   help="node lease renew interval (default 10s)")
    p.add_argument("--status-interval", type=_duration, default=300.0, metavar="DURATION",
                   help="how often node status is posted when nothing changes (default 5m)")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight when registering (default 64)")
    p.add_argument("--cleanup", action="store_true", help="delete the simulated nodes on exit")
    p.add_argument("--kubeconfig", default=None, metavar="PATH",
                   help="kubeconfig of the API server (default: as kubectl, then kubelite's admin kubeconfig)")
    p.add_argument("--context", default=None, help="the kubeconfig context to use")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    p.set_defaults(func=_simulate)


def config_from(args: argparse.Namespace) -> SimulationConfig:
    """The simulation the flags describe; ValueError/CliError on bad flags."""
    return SimulationConfig(
        nodes=args.nodes, cpu=args.cpu, memory=args.memory, pods=args.pods,
        ephemeral_storage=args.ephemeral_storage, name_prefix=args.name_prefix,
        failures=failures(args.fail, args.fail_after), lease_renew_interval=args.lease_interval,
        status_report_interval=args.status_interval, termination_delay=args.termination_delay,
        create_concurrency=args.concurrency)


def _simulate(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from(args)
        kube = load_kubeconfig(kubeconfig_path(args.kubeconfig), context=args.context)
    except (ValueError, CliError, KubeconfigError) as e:
        print(f"kubelite simulate: {e}", file=sys.stderr)
        return 1

    async def main(stop: asyncio.Event) -> None:
        async with Client(kube, user_agent=f"kubelite-simulate/{__version__}",
                          pool_size=max(config.create_concurrency, 10)) as client:
            sim = NodeSimulator(client, config, cleanup=args.cleanup)
            running = asyncio.create_task(sim.run(stop))
            ready = asyncio.create_task(sim.ready.wait())
            await asyncio.wait({running, ready}, return_when=asyncio.FIRST_COMPLETED)
            if sim.ready.is_set():
                print(f"kubelite simulate: {config.nodes} nodes ready ({sim.names[0]} ... {sim.names[-1]}); "
                      "Ctrl-C to stop", file=sys.stderr, flush=True)
            ready.cancel()
            await running

    try:
        run_until_signalled(main)
    except (ApiException, TransportError, ExceptionGroup) as e:
        cause = api_failure(e)
        if cause is None:
            raise
        print(f"kubelite simulate: {cause}", file=sys.stderr)
        return 1
    return 0


def api_failure(e: BaseException) -> ApiException | TransportError | None:
    """The first refusal or connection failure in ``e`` (which may be an exception group)."""
    if isinstance(e, ApiException | TransportError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for inner in e.exceptions:
            found = api_failure(inner)
            if found is not None:
                return found
    return None
