"""Doing things inside a network namespace from this process: a thread that lives there.

Sockets and netlink sessions belong to the namespace of the thread that creates them, and keep it for
life whatever thread later uses them. `NetnsThread` is one private worker thread that enters the given
namespace once, at start (``setns(2)``, which moves only the calling thread); a function run through it
creates its sockets there, and the asyncio loop can then use them as usual. Without a namespace the
thread stays in the process's own. A private thread, never asyncio's shared executor, whose threads must
stay where everyone else expects them.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

from kubelite.kubelet.network import netns as netns_paths

CLONE_NEWNET = 0x40000000

P = ParamSpec("P")
T = TypeVar("T")


def resolve(name_or_path: str) -> Path:
    """A namespace given as an ``ip netns`` name (under /run/netns) or as a path (``/proc/PID/ns/net``)."""
    return netns_paths.resolve(name_or_path)


def enter(path: Path) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"cannot enter network namespace {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class NetnsThread:
    """One worker thread inside a network namespace (None: the process's own); see the module docstring."""

    def __init__(self, netns: str | None, *, name: str = "netns") -> None:
        self.path = resolve(netns) if netns else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=self._start)

    def _start(self) -> None:
        if self.path is not None:
            enter(self.path)

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
