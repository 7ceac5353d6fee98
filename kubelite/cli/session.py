"""What every kubectl-like verb shares: the global flags, finding the kubeconfig, one connected `Session`,
and turning failures into kubectl's messages and exit codes.

Which kubeconfig (first that applies): ``--kubeconfig PATH``; ``$KUBECONFIG``; ``~/.kube/config`` if it
exists; else the admin kubeconfig ``kubelite server`` writes (`default_kubeconfig_path`), so that
``kubelite get ns`` works right after the server starts, without any setup.

Failures, on stderr with exit code 1: a request the server refused prints ``Error from server (Reason):
message``; anything else ``error: ...`` (kubectl's two spellings).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from kubelite import __version__
from kubelite.api.registry import UnknownKind
from kubelite.cli.output import api_error_text
from kubelite.client.kubeconfig import Config, KubeconfigError, load_kubeconfig
from kubelite.client.rest import ApiException, Client, TransportError


class CliError(Exception):
    """A user-facing failure; printed as ``error: <message>`` with exit code 1."""


@dataclass
class Session:
    """One verb's connection and streams. ``namespace`` is ``-n`` or the context's namespace."""

    client: Client
    namespace: str
    explicit_namespace: bool
    out: TextIO
    err: TextIO
    stdin: TextIO = field(default_factory=lambda: sys.stdin)

    def error(self, message: str) -> None:
        self.err.write(f"error: {message}\n")


Body = Callable[[Session], Awaitable[int]]


_BOOL_SPELLINGS = {"1": True, "t": True, "true": True, "0": False, "f": False, "false": False}


def add_bool_flag(parser: argparse.ArgumentParser, flag: str, *, default: bool | None, help: str) -> None:
    """A kubectl-style boolean flag: ``--wait`` alone is true, ``--wait=false`` sets a value (Go's
    ``strconv.ParseBool`` spellings), and ``--wait deploy`` leaves ``deploy`` to the positionals.

    argparse matches a whole option string before splitting at ``=``, so each ``--flag=value`` spelling is
    registered as an option of its own; ``default=None`` tells "not given" apart.
    """
    dest = flag.lstrip("-").replace("-", "_")
    suffix = "" if default is None else f" (default {str(default).lower()})"
    parser.add_argument(flag, dest=dest, action="store_const", const=True, default=default,
                        help=f"{help}; --{dest.replace('_', '-')}=false turns it off{suffix}")
    for text, value in _BOOL_SPELLINGS.items():
        for spelling in {text, text.upper(), text.capitalize()}:
            parser.add_argument(f"{flag}={spelling}", dest=dest, action="store_const", const=value,
                                help=argparse.SUPPRESS)


def global_flags(*, suppress_defaults: bool = False) -> argparse.ArgumentParser:
    """The parent parser of every verb: ``--kubeconfig``, ``--context``, ``-n/--namespace``.

    A nested sub-command (``create namespace``) takes them with ``suppress_defaults``, so that a flag given
    before it is not reset to its default by the nested parser.
    """
    parent = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress_defaults else None
    parent.add_argument("--kubeconfig", default=default, metavar="PATH",
                        help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then kubelite's admin "
                             "kubeconfig)")
    parent.add_argument("--context", default=default, help="the kubeconfig context to use")
    parent.add_argument("-n", "--namespace", default=default, help="the namespace of this request")
    return parent


def kubeconfig_path(explicit: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The file to load, or None to let `load_kubeconfig` read ``$KUBECONFIG`` / ``~/.kube/config``."""
    env = os.environ if env is None else env
    if explicit:
        return explicit
    if env.get("KUBECONFIG"):
        return None
    home = env.get("HOME") or str(Path.home())
    if (Path(home) / ".kube" / "config").exists():
        return None
    # Imported here: it brings the API server's certificate code, which other paths do not need.
    from kubelite.apiserver.kubeconfig_writer import default_kubeconfig_path

    fallback = default_kubeconfig_path()
    if Path(fallback).exists():
        return fallback
    raise CliError(f"no kubeconfig found: tried {Path(home) / '.kube' / 'config'} and {fallback}; start "
                   "'kubelite server' or pass --kubeconfig")


def load_config(args: argparse.Namespace) -> Config:
    return load_kubeconfig(kubeconfig_path(args.kubeconfig), context=args.context, namespace=args.namespace)


def run(args: argparse.Namespace, body: Body) -> int:
    """Run a verb's async body against the configured cluster; returns the exit code."""
    return asyncio.run(run_async(args, body, out=sys.stdout, err=sys.stderr, stdin=sys.stdin))


async def run_async(args: argparse.Namespace, body: Body, *, out: TextIO, err: TextIO,
                    stdin: TextIO | None = None) -> int:
    try:
        config = load_config(args)
    except (KubeconfigError, CliError) as e:
        err.write(f"error: {e}\n")
        return 1
    async with Client(config, user_agent=f"kubelite-cli/{__version__}") as client:
        session = Session(client, config.namespace, bool(args.namespace), out, err, stdin or sys.stdin)
        try:
            return await body(session)
        except ApiException as e:
            err.write(api_error_text(e) + "\n")
        except TransportError as e:
            err.write(f"Unable to connect to the server: {e}\n")
        except (CliError, UnknownKind) as e:
            err.write(f"error: {e.args[0] if e.args else e}\n")
        return 1


def run_until_signalled(body: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``body(stop)`` in a fresh event loop; SIGINT and SIGTERM set ``stop`` (the long-running roles:
    server parts, agent, proxy, DNS, ingress, simulate)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await body(stop)

    asyncio.run(main())
