"""Pod network namespaces, created, held and removed over netlink/syscalls with pyroute2 (no ``ip`` binary).

A pod's namespace is held by a bind mount of its nsfs inode at ``/run/netns/kubelite-<sandbox id prefix>``,
exactly as ``ip netns add`` makes it (pyroute2's ``netns.create`` is a port of iproute2's code: it makes
``/run/netns`` a shared mount, unshares a network namespace in a forked child and binds it there). The
namespace lives until the mount is detached and the file removed, whether or not a process is inside, so
the pod's containers can come and go and a restarted kubelet finds it again at the same path. ``ip netns``
lists and enters these namespaces too, which helps debugging.

pyroute2's calls block (a fork and a few syscalls, about a millisecond); they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pyroute2 import netns as pyroute2_netns

from kubelite.kubelet.network.errors import NetworkError

NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "kubelite-"
# 16 hex characters of a random sandbox id make a clash between two sandboxes of the machine negligible.
SANDBOX_ID_CHARS = 16


def netns_name(sandbox_id: str) -> str:
    """``kubelite-<first 16 characters of the sandbox id>``."""
    return NETNS_PREFIX + sandbox_id[:SANDBOX_ID_CHARS]


def netns_path(sandbox_id: str) -> Path:
    return NETNS_DIR / netns_name(sandbox_id)


def resolve(name_or_path: str) -> Path:
    """A namespace given as a name (``ip netns`` style, under /run/netns) or as a path (``/proc/PID/ns/net``)."""
    return Path(name_or_path) if "/" in name_or_path else NETNS_DIR / name_or_path


async def create(path: Path) -> None:
    """Create a new, empty network namespace held at ``path``; `NetworkError` if ``path`` already exists."""
    try:
        await asyncio.to_thread(pyroute2_netns.create, str(path))
    except FileExistsError:
        raise NetworkError(f"network namespace {path} already exists") from None
    except OSError as e:
        # a half-made namespace (the mount point without the mount) must not stay behind
        await remove(path)
        raise NetworkError(f"failed to create network namespace {path}: {e}") from e


async def remove(path: Path) -> None:
    """Detach and remove the namespace held at ``path``; nothing to do when it is gone already. The kernel
    frees the namespace (and every interface in it) once no process and no mount holds it."""
    if not os.path.lexists(path):
        return
    try:
        await asyncio.to_thread(pyroute2_netns.remove, str(path))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise NetworkError(f"failed to remove network namespace {path}: {e}") from e
