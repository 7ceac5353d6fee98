"""The kubectl-like verbs of the ``kubelite`` command; each group lives in its own module."""

from __future__ import annotations

import argparse

from kubelite.cli import apply, create, delete, describe, get, misc, modify, streaming, top
from kubelite.cli.session import global_flags


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parents = [global_flags()]
    for module in (apply, create, get, describe, delete, modify, streaming, top, misc):
        module.register(sub, parents)
