"""Pod network namespaces, created, held and removed over netlink/syscalls with pyroute2 (no ``ip`` binary).

A pod's namespace is held by a bind mount of its nsfs inode at ``/run/netns/kubelite-<sandbox id prefix>``,
exactly as ``ip netns add`` makes it: ``/run/netns`` is made a shared mount, a new network namespace is
unshared and bound there. The unshare happens in a short-lived thread of this process (a network namespace
is per thread), never in a forked child: pyroute2's ``netns.create`` forks, and its child, inheriting
asyncio's signal handlers, used to deliver a stray SIGTERM to the agent itself. The
namespace lives until the mount is detached and the file removed, whether or not a process is inside, so
the pod's containers can come and go and a restarted kubelet finds it again at the same path. ``ip netns``
lists and enters these namespaces too, which helps debugging.

The calls block (a few syscalls, well under a millisecond); they run in worker threads.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
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
        await asyncio.to_thread(_create_in_own_thread, path)
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


_CLONE_NEWNET = 0x40000000
_MS_BIND = 4096
_MS_REC = 16384
_MS_SHARED = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _ensure_shared_dir() -> None:
    """/run/netns as ``ip netns`` keeps it: a shared mount point, so that mounts under it propagate to
    other mount namespaces (containers, ``ip netns exec``)."""
    NETNS_DIR.mkdir(parents=True, exist_ok=True)
    if _libc.mount(b"", str(NETNS_DIR).encode(), b"none", _MS_SHARED | _MS_REC, None) != 0:
        _check(_libc.mount(str(NETNS_DIR).encode(), str(NETNS_DIR).encode(), b"none", _MS_BIND | _MS_REC, None),
               f"bind mount of {NETNS_DIR}")
        _check(_libc.mount(b"", str(NETNS_DIR).encode(), b"none", _MS_SHARED | _MS_REC, None),
               f"make {NETNS_DIR} shared")


def _create_in_own_thread(path: Path) -> None:
    """Create the file, then, in a fresh thread that ends right after, unshare a network namespace and bind
    it onto the file. The thread never returns to the pool, so no other work runs in the new namespace."""
    _ensure_shared_dir()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    failure: list[BaseException] = []

    def make() -> None:
        try:
            _check(_libc.unshare(_CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            source = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            _check(_libc.mount(source, str(path).encode(), b"none", _MS_BIND, None), f"bind mount onto {path}")
        except BaseException as e:
            failure.append(e)

    worker = threading.Thread(target=make, name="netns-create")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
