"""The runtime: pod sandboxes and containers, their records, and the rules of their lifecycle (CRI's).

`Runtime` keeps every sandbox and container as a record (`state`), saved before each step that makes
something on the host, so that a restarted runtime finds all of it: `start` loads the records, removes
containers whose creation never finished, folds in what happened meanwhile (containers that exited: their
shims wrote exit files) and asks the pod network to collect namespaces of sandboxes it no longer knows.
Running containers are simply adopted: their shims never depended on the runtime process.

Lifecycle (CRI v1):
- RunPodSandbox: the pod network's namespace (`PodNetwork.setup`, not for hostNetwork pods), the pod's
  IPC/UTS namespaces and /dev/shm, its hosts/resolv.conf/hostname files; the sandbox is READY.
- StopPodSandbox: kills its containers, tears its network down; NOTREADY. RemovePodSandbox: removes its
  containers and everything the sandbox made. Both are idempotent.
- CreateContainer: the image must be in the store (the kubelet pulls first); the container is created by
  the backend (for runc: ``runc create``, waiting to start). StartContainer runs it.
- StopContainer(timeout): the image's StopSignal (SIGTERM by default), SIGKILL after ``timeout`` seconds;
  nothing to do when it is not running. RemoveContainer kills it if need be and removes all it held.
- An exited container's reason is ``OOMKilled`` when the kernel's OOM killer killed in its cgroup,
  ``Completed`` for exit code 0, else ``Error``; a container that could not start is ``StartError`` (128).

Operations on one sandbox or container are serialized by a lock of its own; different objects proceed
in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubelite.kubelet.images.errors import ImageError
from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.runtime import bundle, cgroups, convert, podfiles, shim
from kubelite.kubelet.runtime.backends import (
    Backend,
    ContainerStartError,
    ProcessBackend,
    RuncBackend,
    shim_alive,
)
from kubelite.kubelet.runtime.deps import ImageStoreLike, PodNetworkLike
from kubelite.kubelet.runtime.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RuntimeFailure,
)
from kubelite.kubelet.runtime.runc import Runc, RuncError
from kubelite.kubelet.runtime.sandbox import DEFAULT_SHM_SIZE, SandboxDir
from kubelite.kubelet.runtime.state import ContainerRecord, SandboxRecord, StateStore
from kubelite.kubelet.runtime.streams import ExecCommand, ExecSession, ExecTimeout, connect_in_netns, exec_sync
from kubelite.proto import runtime_pb2 as pb

log = logging.getLogger(__name__)

RUNTIMES = ("runc", "process")
DEFAULT_RUNC = "/usr/sbin/runc"
# How long a container may take to go after SIGKILL before StopContainer gives up.
KILL_GRACE = 10.0


@dataclass(frozen=True)
class RuntimeOptions:
    runc_binary: str = DEFAULT_RUNC
    # Where pods' cgroups go when the kubelet names no cgroup parent: a relative path is under the
    # runtime's own cgroup (as runc resolves it), an absolute one under each hierarchy's root.
    cgroup_root: str = "kubelite"
    log_max_size: int = 10 * 1024 * 1024  # the kubelet's containerLogMaxSize default
    log_max_files: int = 5  # containerLogMaxFiles
    shm_size: int = DEFAULT_SHM_SIZE


@dataclass(frozen=True)
class Usage:
    """A container's or pod's resource use at ``timestamp`` (unix ns). ``nano_cores`` is the CPU rate since
    the previous sample (None for the first)."""

    timestamp: int
    cpu_ns: int
    nano_cores: int | None
    working_set: int
    memory_usage: int
    rss: int


def new_id() -> str:
    return secrets.token_hex(32)


def parse_signal(name: str) -> int:
    """An image's StopSignal (``SIGQUIT``, ``QUIT`` or ``3``); SIGTERM when empty or unknown."""
    if name.isdigit():
        return int(name)
    upper = name.upper()
    sig = getattr(signal.Signals, upper if upper.startswith("SIG") else "SIG" + upper, None)
    return int(sig) if sig is not None else int(signal.SIGTERM)


def exit_reason(exit_code: int, oom_killed: bool) -> str:
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


class Runtime:
    def __init__(
        self,
        paths: AgentPaths,
        *,
        runtime: str = "runc",
        images: ImageStoreLike,
        network: PodNetworkLike | None,
        options: RuntimeOptions | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        self.paths = paths
        self.images = images
        self.network = network
        self.options = options or RuntimeOptions()
        self.clock = clock
        self.store = StateStore(paths.containers)
        o = self.options
        self.backend: Backend
        if runtime == "runc":
            self.backend = RuncBackend(
                runc=Runc(o.runc_binary, paths.runc_root),
                images=images,
                containers_dir=paths.containers,
                log_max_size=o.log_max_size,
                log_max_files=o.log_max_files,
            )
        else:
            self.backend = ProcessBackend(
                containers_dir=paths.containers, log_max_size=o.log_max_size, log_max_files=o.log_max_files
            )
        self.sandboxes: dict[str, SandboxRecord] = {}
        self.containers: dict[str, ContainerRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._cpu_samples: dict[str, tuple[int, int]] = {}

    @property
    def name(self) -> str:
        return self.backend.name

    # -- adoption ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the records, adopt what still runs, clean up what a crash left half made."""
        self.paths.runc_root.mkdir(parents=True, exist_ok=True)
        self.sandboxes = {sb.id: sb for sb in self.store.load_sandboxes()}
        for rec in self.store.load_containers():
            self.containers[rec.id] = rec
            if rec.state == "creating":
                log.warning("removing container %s whose creation did not finish", rec.id)
                try:
                    await self._discard(rec)
                except Exception as e:  # kept for the next start; it never shows in lists meanwhile
                    log.error("cannot remove the half-made container %s: %s", rec.id, e)
                continue
            self._refresh(rec)
        # Containers removed while the runtime was down no longer pin their images.
        self.images.retain_holders(set(self.containers))
        if self.network is not None and self.backend.isolated:
            try:
                await self.network.garbage_collect({sb.id for sb in self.sandboxes.values() if sb.network_ready})
            except Exception as e:  # leftovers of a crash must not keep the runtime from serving
                log.error("collecting the pod network's leftovers failed: %s", e)
        log.info(
            "runtime %s adopted %d sandboxes and %d containers", self.name, len(self.sandboxes), len(self.containers)
        )

    # -- lookups -----------------------------------------------------------------------------------

    def _lock(self, id_: str) -> asyncio.Lock:
        return self._locks.setdefault(id_, asyncio.Lock())

    def _find(self, table: dict[str, SandboxRecord] | dict[str, ContainerRecord], id_: str, kind: str) -> str:
        """The full id of a known object given its id or a unique prefix of it."""
        if id_ in table:
            return id_
        matches = [k for k in table if id_ and k.startswith(id_)]
        if len(matches) != 1:
            raise NotFound(f"{kind} {id_!r} not found" if not matches else f"{kind} id prefix {id_!r} is ambiguous")
        return matches[0]

    def sandbox(self, id_: str) -> SandboxRecord:
        return self.sandboxes[self._find(self.sandboxes, id_, "pod sandbox")]

    def container(self, id_: str) -> ContainerRecord:
        """A container's record, brought up to date."""
        rec = self.containers[self._find(self.containers, id_, "container")]
        if rec.state == "creating":
            raise NotFound(f"container {id_!r} not found")
        self._refresh(rec)
        return rec

    def list_sandboxes(self) -> list[SandboxRecord]:
        return sorted(self.sandboxes.values(), key=lambda s: s.created_at)

    def list_containers(self) -> list[ContainerRecord]:
        out = [c for c in self.containers.values() if c.state != "creating"]
        for rec in out:
            self._refresh(rec)
        return sorted(out, key=lambda c: c.created_at)

    def _sandbox_dir(self, sb: SandboxRecord) -> SandboxDir:
        return SandboxDir(self.store.dir(sb.id))

    def _containers_of(self, sandbox_id: str) -> list[ContainerRecord]:
        return [c for c in self.containers.values() if c.sandbox_id == sandbox_id]

    # -- sandboxes ---------------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig) -> SandboxRecord:
        md = config.metadata
        if not (md.name and md.namespace and md.uid):
            raise InvalidArgument("the sandbox's metadata needs a name, a namespace and a uid")
        linux = config.linux
        isolated = self.backend.isolated
        sb = SandboxRecord(
            id=new_id(),
            name=md.name,
            namespace=md.namespace,
            uid=md.uid,
            attempt=md.attempt,
            created_at=self.clock(),
            state="notready",
            hostname=config.hostname or md.name,
            labels=dict(config.labels),
            annotations=dict(config.annotations),
            host_network=linux.host_network or not isolated,
            host_pid=linux.host_pid or not isolated,
            host_ipc=linux.host_ipc or not isolated,
            sysctls=dict(linux.sysctls),
            log_directory=config.log_directory,
        )
        self.sandboxes[sb.id] = sb
        async with self._lock(sb.id):
            self.store.save(sb)
            try:
                await self._make_sandbox(sb, config)
            except BaseException:
                try:
                    await asyncio.shield(self._destroy_sandbox(sb))
                except Exception as cleanup_error:  # the sandbox's own error is the one to report
                    log.error("cleaning up after the failed sandbox %s: %s", sb.id, cleanup_error)
                raise
        return sb

    async def _make_sandbox(self, sb: SandboxRecord, config: pb.PodSandboxConfig) -> None:
        sdir = self._sandbox_dir(sb)
        if not sb.host_network:
            if self.network is None:
                raise FailedPrecondition("the runtime has no pod network: only hostNetwork pods can run")
            status = await self.network.setup(
                sandbox_id=sb.id,
                namespace=sb.namespace,
                name=sb.name,
                uid=sb.uid,
                port_mappings=convert.port_mappings(config),
            )
            sb.network_ready = True
            sb.netns_path, sb.ip, sb.ips = status.netns_path, status.ip, list(status.ips)
            self.store.save(sb)
        if self.backend.isolated:
            await sdir.make_namespaces(ipc=not sb.host_ipc, uts=not sb.host_network, hostname=sb.hostname)
            if not sb.host_ipc:
                sdir.mount_shm(self.options.shm_size)
            sb.cgroup_parent = config.linux.cgroup_parent or f"{self.options.cgroup_root}/{sb.id}"
            dirs = cgroups.resolve(sb.cgroup_parent)
            # A pod cgroup that exists already is the kubelet's; one runc makes for us is ours to remove.
            sb.owns_cgroup = not any(d.exists() for d in dirs.values())
            sb.cgroup_dirs = {k: str(v) for k, v in dirs.items()}
        dns = config.dns_config
        sdir.write_files(
            hosts=podfiles.hosts_file(
                hostname=sb.hostname,
                ips=sb.ips or ([sb.ip] if sb.ip else []),
                host_aliases=[(a.ip, list(a.hostnames)) for a in config.host_aliases],
                subdomain=config.subdomain,
                namespace=sb.namespace,
                domain=podfiles.cluster_domain(dns.searches, sb.namespace),
                host_network=sb.host_network,
                node_hosts=_read_host_file("/etc/hosts"),
            ),
            resolv_conf=podfiles.resolv_conf(
                servers=dns.servers,
                searches=dns.searches,
                options=dns.options,
                node_resolv=_read_host_file("/etc/resolv.conf"),
            ),
            hostname=podfiles.hostname_file(sb.hostname),
        )
        sb.state = "ready"
        self.store.save(sb)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sb = self.sandbox(sandbox_id)
        async with self._lock(sb.id):
            for rec in self._containers_of(sb.id):
                async with self._lock(rec.id):
                    await self._stop(rec, 0)
            await self._teardown_network(sb)
            sb.state = "notready"
            self.store.save(sb)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove the sandbox with its containers; a sandbox that is gone already is not an error."""
        try:
            sb = self.sandbox(sandbox_id)
        except NotFound:
            return
        async with self._lock(sb.id):
            for rec in self._containers_of(sb.id):
                async with self._lock(rec.id):
                    await self._remove(rec)
            await self._destroy_sandbox(sb)

    async def _teardown_network(self, sb: SandboxRecord) -> None:
        if sb.network_ready and self.network is not None:
            await self.network.teardown(sb.id)
            sb.network_ready = False
            self.store.save(sb)

    async def _destroy_sandbox(self, sb: SandboxRecord) -> None:
        await self._teardown_network(sb)
        self._sandbox_dir(sb).remove()
        if sb.owns_cgroup:
            cgroups.remove({k: Path(v) for k, v in sb.cgroup_dirs.items()})
        self.sandboxes.pop(sb.id, None)
        self._locks.pop(sb.id, None)
        self._cpu_samples.pop(sb.id, None)

    # -- containers --------------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: pb.ContainerConfig) -> ContainerRecord:
        sb = self.sandbox(sandbox_id)
        if sb.state != "ready":
            raise FailedPrecondition(f"pod sandbox {sb.id} is not ready")
        md = config.metadata
        if not md.name:
            raise InvalidArgument("the container's metadata needs a name")
        for other in self._containers_of(sb.id):
            if other.name == md.name and other.attempt == md.attempt:
                raise AlreadyExists(
                    f"container {md.name} (attempt {md.attempt}) already exists in pod sandbox {sb.id}: {other.id}"
                )
        spec = convert.container_spec(config)
        image = self.images.resolve(config.image.image)
        if image is None:
            raise NotFound(f"image {config.image.image!r} not found")
        rec = ContainerRecord(
            id=new_id(),
            sandbox_id=sb.id,
            name=md.name,
            attempt=md.attempt,
            image=config.image.image,
            image_ref=image.id,
            stop_signal=image.config.stop_signal,
            created_at=self.clock(),
            state="creating",
            labels=dict(config.labels),
            annotations=dict(config.annotations),
            mounts=[
                {"container_path": m.container_path, "host_path": m.host_path, "readonly": m.readonly,
                 "propagation": m.propagation}
                for m in config.mounts
            ],
            log_path=self._log_path(sb, config),
            tty=config.tty,
        )
        self.containers[rec.id] = rec
        async with self._lock(rec.id):
            self.store.save(rec)
            try:
                self.images.acquire(image.id, rec.id)
                await self.backend.create(rec, spec, image, sb, self._sandbox_dir(sb))
            except BaseException as e:
                try:
                    await asyncio.shield(self._discard(rec))
                except Exception as cleanup_error:  # the creation's own error is the one to report
                    log.error("cleaning up after the failed creation of %s: %s", rec.id, cleanup_error)
                if isinstance(e, bundle.SpecError):
                    raise InvalidArgument(str(e)) from e
                if isinstance(e, (ContainerStartError, OSError)):
                    raise RuntimeFailure(f"cannot create container {md.name}: {e}") from e
                raise
            rec.state = "created"
            self.store.save(rec)
        return rec

    def _log_path(self, sb: SandboxRecord, config: pb.ContainerConfig) -> str:
        """CRI: log_path is relative to the sandbox's log_directory; without them, kubelite's own layout."""
        if config.log_path and sb.log_directory:
            return str(Path(sb.log_directory) / config.log_path)
        if config.log_path.startswith("/"):
            return config.log_path
        base = Path(sb.log_directory) if sb.log_directory else self.paths.logs / f"{sb.namespace}_{sb.name}_{sb.uid}"
        return str(base / config.metadata.name / f"{config.metadata.attempt}.log")

    async def start_container(self, container_id: str) -> None:
        rec = self.container(container_id)
        async with self._lock(rec.id):
            self._refresh(rec)
            if rec.state != "created":
                raise FailedPrecondition(f"container {rec.id} is {rec.state}, not created")
            started = self.clock()  # taken before: a container may be done before runc start returns
            try:
                await self.backend.start(rec)
            except (ContainerStartError, RuncError, OSError) as e:
                rec.state, rec.exit_code, rec.reason, rec.message = "exited", 128, "StartError", str(e)
                rec.finished_at = self.clock()
                self.store.save(rec)
                raise RuntimeFailure(f"cannot start container {rec.name}: {e}") from e
            rec.state, rec.started_at = "running", started
            self.store.save(rec)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        rec = self.container(container_id)
        async with self._lock(rec.id):
            await self._stop(rec, timeout)

    async def remove_container(self, container_id: str) -> None:
        """Remove a container, killing it if it runs; one that is gone already is not an error."""
        try:
            rec = self.container(container_id)
        except NotFound:
            return
        async with self._lock(rec.id):
            await self._remove(rec)

    async def _stop(self, rec: ContainerRecord, timeout: float) -> None:
        self._refresh(rec)
        if rec.state == "exited":
            return
        if rec.state == "created" and not rec.shim_pid:  # nothing runs yet (process runtime)
            self._set_exited(rec, exit_code=128 + signal.SIGKILL, oom_killed=False, finished_at=self.clock())
            return
        if timeout > 0 and rec.state == "running":
            await self._signal(rec, parse_signal(rec.stop_signal))
            if await self._wait_exited(rec, timeout):
                return
        await self._signal(rec, signal.SIGKILL)
        if not await self._wait_exited(rec, KILL_GRACE):
            raise RuntimeFailure(f"container {rec.id} did not exit {KILL_GRACE:.0f} s after SIGKILL")

    async def _signal(self, rec: ContainerRecord, sig: int) -> None:
        try:
            await self.backend.signal(rec, sig)
        except RuncError as e:
            self._refresh(rec)
            if rec.state != "exited":  # else it exited meanwhile, which is what we wanted
                log.warning("signal %d to container %s failed: %s", sig, rec.id, e)

    async def _wait_exited(self, rec: ContainerRecord, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            self._refresh(rec)
            if rec.state == "exited":
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 0.1)

    async def _remove(self, rec: ContainerRecord) -> None:
        self._refresh(rec)
        if rec.state in ("created", "running"):
            await self._stop(rec, 0)
        await self._discard(rec)

    async def _discard(self, rec: ContainerRecord) -> None:
        """Release everything a container holds, whatever its state, and forget it."""
        await self.backend.cleanup(rec)
        with contextlib.suppress(ImageError):
            self.images.release(rec.image_ref, rec.id)
        shutil.rmtree(self.store.dir(rec.id), ignore_errors=True)
        self.containers.pop(rec.id, None)
        self._locks.pop(rec.id, None)
        self._cpu_samples.pop(rec.id, None)

    def _refresh(self, rec: ContainerRecord) -> None:
        """Fold into the record what the container's shim observed (its exit)."""
        if rec.state not in ("created", "running") or not rec.shim_pid:
            return
        d = self.store.dir(rec.id)
        ex = shim.read_exit(d)
        if ex is None and not shim_alive(d, rec.shim_pid):
            ex = shim.read_exit(d)  # it may have written the file just before exiting
            if ex is None:
                rec.state, rec.exit_code, rec.reason = "exited", 255, "Unknown"
                rec.message = "the container's shim exited without recording how the container ended"
                rec.finished_at = self.clock()
                self.store.save(rec)
                return
        if ex is not None:
            self._set_exited(rec, exit_code=ex.exit_code, oom_killed=ex.oom_killed, finished_at=ex.finished_at)

    def _set_exited(self, rec: ContainerRecord, *, exit_code: int, oom_killed: bool, finished_at: int) -> None:
        rec.state, rec.exit_code, rec.finished_at = "exited", exit_code, finished_at
        rec.reason = exit_reason(exit_code, oom_killed)
        self.store.save(rec)

    # -- exec and port-forward ---------------------------------------------------------------------

    def _exec_command(self, container_id: str, cmd: list[str], *, tty: bool) -> ExecCommand:
        rec = self.container(container_id)
        if rec.state != "running":
            raise FailedPrecondition(f"container {rec.id} is not running")
        if not cmd:
            raise InvalidArgument("exec needs a command")
        return self.backend.exec_command(rec, cmd, tty=tty)

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int) -> tuple[bytes, bytes, int]:
        command = self._exec_command(container_id, cmd, tty=False)
        try:
            return await exec_sync(command, timeout or None)
        except ExecTimeout as e:
            raise DeadlineExceeded(str(e)) from e

    async def exec_session(
        self, container_id: str, cmd: list[str], *, tty: bool, stdin: bool, stdout: bool, stderr: bool
    ) -> ExecSession:
        command = self._exec_command(container_id, cmd, tty=tty)
        try:
            return await ExecSession.start(command, tty=tty, stdin=stdin, stdout=stdout, stderr=stderr)
        except OSError as e:
            raise RuntimeFailure(f"cannot exec in container {container_id}: {e}") from e

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sb = self.sandbox(sandbox_id)
        if sb.state != "ready":
            raise FailedPrecondition(f"pod sandbox {sb.id} is not ready")
        if not 0 < port < 65536:
            raise InvalidArgument(f"invalid port {port}")
        try:
            sock = await connect_in_netns("" if sb.host_network else sb.netns_path, port)
        except OSError as e:
            raise RuntimeFailure(f"port-forward to port {port} of pod sandbox {sb.id}: {e}") from e
        return await asyncio.open_connection(sock=sock)

    # -- stats -------------------------------------------------------------------------------------

    def _usage(self, key: str, stats: cgroups.CgroupStats) -> Usage:
        now = self.clock()
        previous = self._cpu_samples.get(key)
        self._cpu_samples[key] = (now, stats.cpu_usage_ns)
        nano_cores = None
        if previous is not None and now > previous[0]:
            nano_cores = max(stats.cpu_usage_ns - previous[1], 0) * 1_000_000_000 // (now - previous[0])
        return Usage(now, stats.cpu_usage_ns, nano_cores, stats.working_set, stats.memory_usage, stats.rss)

    def container_usage(self, rec: ContainerRecord) -> Usage | None:
        if rec.state != "running":
            return None
        stats = self.backend.stats(rec)
        return self._usage(rec.id, stats) if stats is not None else None

    def sandbox_usage(self, sb: SandboxRecord) -> Usage | None:
        if sb.cgroup_dirs:
            stats = cgroups.read_stats({k: Path(v) for k, v in sb.cgroup_dirs.items()})
        else:  # the process runtime: the sum of its containers
            parts = [s for c in self._containers_of(sb.id) if c.state == "running" if (s := self.backend.stats(c))]
            stats = cgroups.CgroupStats(
                cpu_usage_ns=sum(s.cpu_usage_ns for s in parts),
                memory_usage=sum(s.memory_usage for s in parts),
                working_set=sum(s.working_set for s in parts),
                rss=sum(s.rss for s in parts),
            ) if parts else None
        return self._usage(sb.id, stats) if stats is not None else None


def _read_host_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
