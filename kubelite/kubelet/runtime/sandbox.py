"""A pod sandbox on the host: what the pod's containers share, without a pause container.

A sandbox is its record plus, in its folder (``AgentPaths.containers/<sandbox id>``):
- ``ns/ipc`` and ``ns/uts``: persistent IPC and UTS namespaces, each bind-mounted on a file so that it
  lives without a process in it. util-linux ``unshare --ipc=FILE --uts=FILE hostname NAME`` makes them and
  sets the pod's hostname in the new UTS namespace; containers join them through the OCI spec's
  ``namespaces[].path`` (see `bundle`). This replaces the pause container that holds them in containerd,
  and needs no process per pod. hostIPC pods share the host's IPC namespace, hostNetwork pods the host's
  UTS namespace (as in Kubernetes), so those files are not made for them.
- ``shm``: the pod's /dev/shm, a 64 MiB tmpfs shared by its containers (the host's /dev/shm for hostIPC).
- ``hosts``, ``resolv.conf``, ``hostname``: bind-mounted into every container (`podfiles`).
The network namespace comes from the pod network (`PodNetwork.setup`) and is the runtime's business.

`SandboxDir.remove` undoes all of it and is idempotent.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from kubelite.kubelet.runtime import rootfs

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


class SandboxDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def ipc_ns(self) -> Path:
        return self.path / "ns" / "ipc"

    @property
    def uts_ns(self) -> Path:
        return self.path / "ns" / "uts"

    @property
    def shm(self) -> Path:
        return self.path / "shm"

    @property
    def hosts(self) -> Path:
        return self.path / "hosts"

    @property
    def resolv_conf(self) -> Path:
        return self.path / "resolv.conf"

    @property
    def hostname(self) -> Path:
        return self.path / "hostname"

    def files(self) -> tuple[tuple[str, str], ...]:
        """Container path -> host path of the files every container of the pod gets."""
        return (
            ("/etc/hosts", str(self.hosts)),
            ("/etc/resolv.conf", str(self.resolv_conf)),
            ("/etc/hostname", str(self.hostname)),
        )

    async def make_namespaces(self, *, ipc: bool, uts: bool, hostname: str) -> None:
        """Create the persistent namespaces asked for; the UTS one gets ``hostname``."""
        if not (ipc or uts):
            return
        args = []
        for wanted, path, flag in ((ipc, self.ipc_ns, "--ipc"), (uts, self.uts_ns, "--uts")):
            if wanted:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                args.append(f"{flag}={path}")
        command = ["hostname", hostname] if uts and hostname else ["true"]
        proc = await asyncio.create_subprocess_exec(
            "unshare", *args, *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise OSError(f"cannot create the pod's namespaces: {err.decode(errors='replace').strip()}")

    def mount_shm(self, size: int = DEFAULT_SHM_SIZE) -> None:
        rootfs.mount_tmpfs(self.shm, f"mode=1777,size={size}")

    def write_files(self, *, hosts: str, resolv_conf: str, hostname: str) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.hosts.write_text(hosts)
        self.resolv_conf.write_text(resolv_conf)
        self.hostname.write_text(hostname)

    def remove(self) -> None:
        """Unmount the namespaces and /dev/shm and remove the folder."""
        for target in (self.ipc_ns, self.uts_ns, self.shm):
            rootfs.unmount(target)
        shutil.rmtree(self.path, ignore_errors=True)
