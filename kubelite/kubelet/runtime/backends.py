"""How containers run: `RuncBackend` (runc, overlayfs, cgroups, namespaces) or `ProcessBackend` (plain host
processes, no isolation). The manager (`manager.Runtime`) owns records and lifecycle rules; a backend only
does the backend-specific part of each step and fills in the record it is given.

RuncBackend. Create mounts the root filesystem (`rootfs`), resolves the user against the image's
/etc/passwd, writes the bundle's ``config.json`` (`bundle.build_spec`) and starts the container's shim,
which runs ``runc create``; start is ``runc start``; signals are ``runc kill``; cleanup is
``runc delete --force`` and unmounting the root filesystem (runc removes the container's cgroup).

ProcessBackend (runtime name ``kubelite-process``), for machines where runc cannot run. A container is its
command (resolved from the image's Entrypoint/Cmd as Kubernetes does) started by its shim at start, as the
runtime's user unless runAsUser/runAsGroup say otherwise (and the runtime may switch users), with the
image's and the container's env, in workingDir when that exists on the host (else /). There is no
isolation at all: no namespaces (every pod is on the host network and the host's IPC/UTS), no root
filesystem from the image (binaries and files are the host's), no volume mounts, no cgroup limits; stats
are the main process's own CPU time and resident memory from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import stat
import sys
from pathlib import Path
from typing import Any, Protocol

from kubelite.kubelet.images.model import ImageRecord
from kubelite.kubelet.runtime import bundle, cgroups, rootfs, shim
from kubelite.kubelet.runtime.cgroups import CgroupStats
from kubelite.kubelet.runtime.convert import image_defaults
from kubelite.kubelet.runtime.deps import ImageStoreLike
from kubelite.kubelet.runtime.runc import Runc
from kubelite.kubelet.runtime.sandbox import SandboxDir
from kubelite.kubelet.runtime.state import ContainerRecord, SandboxRecord
from kubelite.kubelet.runtime.streams import ExecCommand, scratch_path

# Where ``import kubelite`` finds this package: the shim runs with ``python -S`` (no site-packages: it needs
# only the standard library and kubelite, and processing site, with its .pth files and the editable install's
# finder, is about 6 ms of CPU per shim) and finds kubelite on PYTHONPATH instead.
_PACKAGE_ROOT = str(Path(shim.__file__).resolve().parents[3])

# /dev entries that are not the host's devices but mounts of its own (containerd's HostDevices skips them).
_SKIP_DEV = {"pts", "shm", "mqueue", "fd", "hugepages", ".lxc", ".lxd-mounts"}


class ContainerStartError(Exception):
    """The container could not be started (runc create or the command failed); the message says why."""


class Backend(Protocol):
    name: str
    # False: sandboxes get no namespaces of their own (every pod is treated as hostNetwork/hostIPC).
    isolated: bool

    async def create(
        self,
        rec: ContainerRecord,
        container: bundle.ContainerSpec,
        image: ImageRecord,
        sandbox: SandboxRecord,
        sandbox_dir: SandboxDir,
    ) -> None: ...

    async def start(self, rec: ContainerRecord) -> None: ...

    async def signal(self, rec: ContainerRecord, sig: int) -> None: ...

    async def cleanup(self, rec: ContainerRecord) -> None: ...

    def exec_command(self, rec: ContainerRecord, cmd: list[str], *, tty: bool) -> ExecCommand: ...

    def stats(self, rec: ContainerRecord) -> CgroupStats | None: ...



async def spawn_shim(directory: Path, config: shim.ShimConfig) -> dict[str, Any]:
    """Start a container's shim and return its report (``pid``, ``shim_pid``, ``cgroups``)."""
    path = shim.write_config(directory, config)
    python_path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH", "")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-S",
        "-m",
        "kubelite.kubelet.runtime.shim",
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": python_path},
    )
    out, err = await proc.communicate()
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ContainerStartError(f"the shim failed: {err.decode(errors='replace').strip()}") from None
    if not isinstance(answer, dict) or "error" in answer:
        raise ContainerStartError(str(answer.get("error") if isinstance(answer, dict) else answer))
    return answer


def shim_alive(directory: Path, pid: int) -> bool:
    """Whether ``pid`` is still the shim of the container in ``directory`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return os.fsencode(directory / shim.CONFIG_FILE) in cmdline.split(b"\0")


def _read_in_root(root: Path, relative: str) -> str:
    """A file of a container's root filesystem, "" if missing or if a symlink leads out of the root."""
    path = root / relative
    try:
        if not os.path.realpath(path).startswith(os.path.realpath(root) + os.sep):
            return ""
        return path.read_text(errors="replace")
    except OSError:
        return ""


def host_devices(top: Path = Path("/dev")) -> list[bundle.HostDevice]:
    """The host's device nodes, for privileged containers."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DEV]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(
                    bundle.HostDevice(
                        path=path,
                        type="c" if stat.S_ISCHR(st.st_mode) else "b",
                        major=os.major(st.st_rdev),
                        minor=os.minor(st.st_rdev),
                        file_mode=stat.S_IMODE(st.st_mode),
                        uid=st.st_uid,
                        gid=st.st_gid,
                    )
                )
    return out


def swap_accounted() -> bool:
    """Whether the memory controller limits memory+swap (v1 memsw files, v2 memory.swap.max)."""
    mounts = cgroups.hierarchies()
    if "memory" in mounts:
        return (mounts["memory"] / "memory.memsw.limit_in_bytes").exists()
    return "" in mounts and any(mounts[""].glob("*/memory.swap.max"))


def nofile_limit() -> int:
    """NOFILE for containers: 1048576, or this process's hard limit when lower (only CAP_SYS_RESOURCE
    may raise it)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return bundle.NOFILE if hard == resource.RLIM_INFINITY else min(bundle.NOFILE, hard)


class RuncBackend:
    name = "kubelite-runc"
    isolated = True

    def __init__(
        self, *, runc: Runc, images: ImageStoreLike, containers_dir: Path, log_max_size: int, log_max_files: int
    ) -> None:
        self.runc = runc
        self.images = images
        self.containers_dir = containers_dir
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files
        self.all_caps = bundle.all_capabilities(bundle.bounding_set(Path("/proc/self/status").read_text()))
        self.memory_swap = swap_accounted()
        self.nofile = nofile_limit()

    def _dir(self, rec: ContainerRecord) -> Path:
        return self.containers_dir / rec.id

    async def create(
        self,
        rec: ContainerRecord,
        container: bundle.ContainerSpec,
        image: ImageRecord,
        sandbox: SandboxRecord,
        sandbox_dir: SandboxDir,
    ) -> None:
        d = self._dir(rec)
        root = d / "rootfs"
        layers = self.images.layer_dirs(image)
        rootfs.mount_overlay(layers, upper=d / "fs" / "upper", work=d / "fs" / "work", target=root)
        defaults = image_defaults(image)
        sec = container.security
        user = bundle.resolve_user(
            defaults.user,
            run_as_user=sec.run_as_user,
            run_as_group=sec.run_as_group,
            supplemental_groups=sec.supplemental_groups,
            passwd=_read_in_root(root, "etc/passwd"),
            group=_read_in_root(root, "etc/group"),
        )
        sandbox_spec = bundle.SandboxSpec(
            hostname=sandbox.hostname,
            host_network=sandbox.host_network,
            host_pid=sandbox.host_pid,
            host_ipc=sandbox.host_ipc,
            netns_path=sandbox.netns_path,
            ipc_ns_path="" if sandbox.host_ipc else str(sandbox_dir.ipc_ns),
            uts_ns_path="" if sandbox.host_network else str(sandbox_dir.uts_ns),
            shm_path="" if sandbox.host_ipc else str(sandbox_dir.shm),
            files=sandbox_dir.files(),
            sysctls=tuple(sorted(sandbox.sysctls.items())),
        )
        spec = bundle.build_spec(
            container,
            defaults,
            sandbox_spec,
            user=user,
            cgroups_path=f"{sandbox.cgroup_parent}/{rec.id}",
            all_caps=self.all_caps,
            host_devices=host_devices() if sec.privileged else (),
            memory_swap=self.memory_swap,
            nofile=self.nofile,
            min_oom_score_adj=_own_oom_score_adj(),
        )
        _ensure_dir_in_root(root, spec["process"]["cwd"])
        (d / "config.json").write_text(json.dumps(spec, indent=1))
        # What ran, for the record (runc exec reads the rest from config.json; env stays out, it may hold
        # secrets).
        process = spec["process"]
        rec.process = {"args": process["args"], "cwd": process["cwd"], "uid": user.uid, "gid": user.gid}
        config = shim.ShimConfig(
            id=rec.id,
            mode="runc",
            log_path=rec.log_path,
            log_max_size=self.log_max_size,
            log_max_files=self.log_max_files,
            tty=container.tty,
            runc=self.runc.binary,
            runc_root=str(self.runc.root),
            bundle=str(d),
        )
        report = await spawn_shim(d, config)
        rec.pid = int(report["pid"])
        rec.shim_pid = int(report["shim_pid"])
        rec.cgroup_dirs = {str(k): str(v) for k, v in report.get("cgroups", {}).items()}

    async def start(self, rec: ContainerRecord) -> None:
        await self.runc.start(rec.id)

    async def signal(self, rec: ContainerRecord, sig: int) -> None:
        await self.runc.kill(rec.id, sig)

    async def cleanup(self, rec: ContainerRecord) -> None:
        await self.runc.delete(rec.id, force=True)
        rootfs.unmount(self._dir(rec) / "rootfs")

    def exec_command(self, rec: ContainerRecord, cmd: list[str], *, tty: bool) -> ExecCommand:
        pid_file = scratch_path(self._dir(rec), ".pid")
        return ExecCommand(argv=self.runc.exec_argv(rec.id, cmd, tty=tty, pid_file=str(pid_file)), pid_file=pid_file)

    def stats(self, rec: ContainerRecord) -> CgroupStats | None:
        return cgroups.read_stats({k: Path(v) for k, v in rec.cgroup_dirs.items()})


class ProcessBackend:
    name = "kubelite-process"
    isolated = False

    def __init__(self, *, containers_dir: Path, log_max_size: int, log_max_files: int) -> None:
        self.containers_dir = containers_dir
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files

    async def create(
        self,
        rec: ContainerRecord,
        container: bundle.ContainerSpec,
        image: ImageRecord,
        sandbox: SandboxRecord,
        sandbox_dir: SandboxDir,
    ) -> None:
        defaults = image_defaults(image)
        args = bundle.resolve_command(container.command, container.args, defaults.entrypoint, defaults.cmd)
        env = bundle.merge_env(
            [bundle.DEFAULT_PATH],
            [f"HOSTNAME={sandbox.hostname}"] if sandbox.hostname else [],
            defaults.env,
            [f"{k}={v}" for k, v in container.env],
        )
        cwd = next((d for d in (container.working_dir, defaults.working_dir) if d and os.path.isdir(d)), "/")
        sec = container.security
        rec.process = {"args": args, "env": env, "cwd": cwd, "uid": sec.run_as_user, "gid": sec.run_as_group}

    async def start(self, rec: ContainerRecord) -> None:
        p = rec.process
        config = shim.ShimConfig(
            id=rec.id,
            mode="process",
            log_path=rec.log_path,
            log_max_size=self.log_max_size,
            log_max_files=self.log_max_files,
            tty=rec.tty,
            args=list(p["args"]),
            env=list(p["env"]),
            cwd=str(p["cwd"]),
            uid=p.get("uid"),
            gid=p.get("gid"),
        )
        report = await spawn_shim(self.containers_dir / rec.id, config)
        rec.pid = int(report["pid"])
        rec.shim_pid = int(report["shim_pid"])

    async def signal(self, rec: ContainerRecord, sig: int) -> None:
        if rec.pid:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(rec.pid, sig)

    async def cleanup(self, rec: ContainerRecord) -> None:
        """Nothing is held once the process has exited: its shim killed the rest of its group."""

    def exec_command(self, rec: ContainerRecord, cmd: list[str], *, tty: bool) -> ExecCommand:
        p = rec.process
        env = dict(e.split("=", 1) for e in p.get("env", []) if "=" in e)
        return ExecCommand(argv=list(cmd), env=env, cwd=str(p.get("cwd") or "/"))

    def stats(self, rec: ContainerRecord) -> CgroupStats | None:
        try:
            fields = Path(f"/proc/{rec.pid}/stat").read_text().rsplit(")", 1)[1].split()
            pages = int(Path(f"/proc/{rec.pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return None
        ticks = int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)
        cpu_ns = ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
        rss = pages * os.sysconf("SC_PAGE_SIZE")
        return CgroupStats(cpu_usage_ns=cpu_ns, memory_usage=rss, working_set=rss, rss=rss)


def _ensure_dir_in_root(root: Path, path: str) -> None:
    """Create the process's working directory in the root filesystem if it is missing (as containerd does),
    unless the path leads out of the root through a symlink."""
    target = root / path.lstrip("/")
    if target.is_dir():
        return
    real_root = os.path.realpath(root)
    parent = target
    while not parent.exists():
        parent = parent.parent
    if os.path.realpath(parent) == real_root or os.path.realpath(parent).startswith(real_root + os.sep):
        with contextlib.suppress(OSError):
            target.mkdir(parents=True, exist_ok=True)



def _own_oom_score_adj() -> int:
    """The lowest oom_score_adj a container may get: anything with CAP_SYS_RESOURCE, else no lower than this
    process's own (as containerd's restrict_oom_score_adj)."""
    try:
        status = open("/proc/self/status").read()
        cap_eff = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:")), 16)
        if cap_eff & (1 << 24):  # CAP_SYS_RESOURCE
            return -1000
        return int(open("/proc/self/oom_score_adj").read().strip())
    except (OSError, ValueError, StopIteration):
        return 0
