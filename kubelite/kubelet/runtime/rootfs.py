"""Mounts the runtime makes on the host: a container's root filesystem (overlayfs over the image's
unpacked layers plus a private upper dir) and a pod's /dev/shm (tmpfs).

The layers are shared by every container of the image and never written; each container writes into
its own ``upper`` (with overlayfs' ``work`` dir beside it), both inside the container's folder so that
removing the container removes its changes.

The mount's options carry every layer path and must fit in one page (4096 bytes); when they would not,
the mount is made by mount(8) run from the layers' common parent with relative paths, as containerd
does, instead of by mount(2) directly.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

MNT_DETACH = 2
_OPTIONS_LIMIT = 4000

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def overlay_options(lowers: Sequence[str], upper: str, work: str) -> str:
    """Mount options with the layers listed lowest first (overlayfs wants the topmost first)."""
    return f"lowerdir={':'.join(reversed(lowers))},upperdir={upper},workdir={work}"


def mount_overlay(layers: Sequence[Path], *, upper: Path, work: Path, target: Path) -> None:
    """Mount the layers (lowest first) with ``upper`` on ``target``; an image without layers gets an
    empty lower dir beside ``upper``."""
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    if not layers:
        empty = upper.parent / "empty"
        empty.mkdir(exist_ok=True)
        layers = [empty]
    options = overlay_options([str(p) for p in layers], str(upper), str(work))
    if len(options) <= _OPTIONS_LIMIT:
        _check(_libc.mount(b"overlay", os.fsencode(target), b"overlay", 0, options.encode()), f"mount {target}")
        return
    base = os.path.commonpath([str(p) for p in layers])
    relative = overlay_options([os.path.relpath(p, base) for p in layers], str(upper), str(work))
    done = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", relative, str(target)], cwd=base, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise OSError(errno.EINVAL, f"mount {target}: {done.stderr.strip()}")


def mount_tmpfs(target: Path, options: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    flags = 0x2 | 0x4 | 0x8  # MS_NOSUID | MS_NODEV | MS_NOEXEC
    _check(_libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", flags, options.encode()), f"mount {target}")


def is_mounted(target: Path) -> bool:
    wanted = os.fsencode(target)
    with open("/proc/self/mountinfo", "rb") as f:
        return any(line.split(b" ")[4] == wanted for line in f)


def unmount(target: Path) -> None:
    """Unmount ``target`` if it is mounted; busy mounts are detached (lazy unmount)."""
    if not is_mounted(target):
        return
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY:
        _check(_libc.umount2(os.fsencode(target), MNT_DETACH), f"umount {target}")
    elif err not in (errno.EINVAL, errno.ENOENT):
        raise OSError(err, f"umount {target}: {os.strerror(err)}")
