"""The ``kubelite`` command: one program, many roles (as k3s's ``server`` and ``agent``).

This module only wires sub-commands; each lives in its own module exposing ``register(subparsers)`` that
adds its parser and sets ``func`` to a callable taking the parsed arguments and returning an exit code.
"""

from __future__ import annotations

import os

# Before anything imports grpc: its fork handlers crash children that pyroute2 forks to create network
# namespaces (SIGSEGV in about one fork in four). kubelite never forks a process that then uses grpc.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

import argparse
import sys
from collections.abc import Callable
from importlib import import_module

# Modules that register sub-commands, in the order `kubelite --help` lists them.
COMMAND_MODULES = ("kubelite.cli.server", "kubelite.cli.agent", "kubelite.cli.simulate", "kubelite.cli.image",
                   "kubelite.cli.proxy", "kubelite.cli.dns", "kubelite.cli.ingress", "kubelite.cli.verbs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubelite", description="A small Kubernetes-compatible cluster.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
