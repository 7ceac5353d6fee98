"""The container runtime through its gRPC API on a unix socket: real runc containers of a busybox image.

Each test gets a node of its own under a temporary folder (`AgentPaths`) with the real image store (a busybox
image imported from a tarball) and runs the runtime as a process of its own, as kubelite runs it:
``python -m tests.integration.test_runtime <config>`` (`serve_main`), which a test can stop, kill and start
again. The runtime's pod network is `FakeNetwork` (a bare network namespace with lo up per sandbox, no CNI)
except in one test that uses the real `PodNetwork` inside a node namespace the test makes. Pods' cgroups go
under a cgroup of the test's own, relative to the runtime's cgroup. Whatever a test leaves behind (runc
containers, shims, mounts, namespaces, cgroups) is removed by the fixture, also when the test fails.

The runtime process runs with GRPC_ENABLE_FORK_SUPPORT=0: with gRPC's fork handlers on, a child forked by
pyroute2 (namespaces) in a process with gRPC threads crashes now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio

from kubelite.kubelet.images import ImageStore
from kubelite.kubelet.network import NetworkStatus, PodNetwork, PortMapping, netns
from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.runtime import cgroups, rootfs
from kubelite.kubelet.runtime.backends import shim_alive
from kubelite.kubelet.runtime.manager import RuntimeOptions
from kubelite.kubelet.runtime.server import serve_runtime
from kubelite.kubelet.runtime.state import StateStore
from kubelite.proto import runtime_pb2 as pb
from kubelite.proto import runtime_pb2_grpc as pb_grpc
from tests.support.images import BUSYBOX, DEFAULT_NAME, build_busybox_image, oci_tarball

RUNC = "/usr/sbin/runc"
REPO = Path(__file__).resolve().parents[2]
FAKE_NETNS_PREFIX = "klrt-"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="runc containers need root"),
    pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason=f"{RUNC} not found: install the Debian package runc"),
    pytest.mark.skipif(not BUSYBOX.is_file(), reason=f"{BUSYBOX} not found: install busybox-static"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare not found"),
]


# -- the runtime process ----------------------------------------------------------------------------------


class FakeNetwork:
    """A pod network without CNI: a bare network namespace (lo up) per sandbox and a made-up IP."""

    async def setup(self, *, sandbox_id: str, namespace: str, name: str, uid: str,
                    port_mappings: list[PortMapping]) -> NetworkStatus:
        path = netns.NETNS_DIR / f"{FAKE_NETNS_PREFIX}{sandbox_id[:12]}"
        await netns.create(path)
        lo_up = await asyncio.create_subprocess_exec("nsenter", f"--net={path}", "ip", "link", "set", "lo", "up")
        if await lo_up.wait() != 0:
            raise OSError(f"cannot bring lo up in {path}")
        return NetworkStatus(ip="10.99.0.2", ips=["10.99.0.2"], netns_path=str(path), interface="eth0")

    async def teardown(self, sandbox_id: str) -> None:
        await netns.remove(netns.NETNS_DIR / f"{FAKE_NETNS_PREFIX}{sandbox_id[:12]}")

    async def garbage_collect(self, live_sandbox_ids: set[str]) -> None:
        pass


def serve_main(config_path: str) -> None:
    """The runtime process of a test node (see `Node.serve`)."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: go with the test
    config = json.loads(Path(config_path).read_text())
    paths = AgentPaths(Path(config["root"]))
    if config["network"] == "cni":
        network: Any = PodNetwork(paths, pod_cidr=config["pod_cidr"], bridge_name=config["bridge"],
                                  host_netns=config["host_netns"])
        network.ensure_default_config(config["pod_cidr"])
    else:
        network = FakeNetwork()
    options = RuntimeOptions(runc_binary=RUNC, cgroup_root=config["cgroup_root"], **config["options"])

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await serve_runtime(paths, runtime=config["runtime"], images=ImageStore(paths.images), network=network,
                            stop=stop, options=options)

    asyncio.run(run())


@dataclass
class Api:
    runtime: pb_grpc.RuntimeServiceStub
    images: pb_grpc.ImageServiceStub
    process: asyncio.subprocess.Process


@dataclass
class Node:
    paths: AgentPaths
    images: ImageStore
    cgroup_root: str
    runtime: str = "runc"
    network: dict[str, str] = field(default_factory=lambda: {"network": "fake"})
    options: dict[str, int] = field(default_factory=dict)  # more RuntimeOptions
    log_dirs: list[Path] = field(default_factory=list)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[Api]:
        """The runtime serving on the node's socket; stopped with SIGTERM (containers left running) on exit,
        unless the test killed it."""
        config = self.paths.root.parent / "runtime.json"
        config.write_text(json.dumps({"root": str(self.paths.root), "runtime": self.runtime,
                                      "cgroup_root": self.cgroup_root, "options": self.options, **self.network}))
        log = os.open(self.paths.root.parent / "runtime.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.test_runtime", str(config), cwd=REPO,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "0"})
        finally:
            os.close(log)
        channel = aio.insecure_channel(f"unix://{self.paths.runtime_socket}")
        try:
            api = Api(pb_grpc.RuntimeServiceStub(channel), pb_grpc.ImageServiceStub(channel),  # type: ignore[no-untyped-call]
                      proc)
            deadline = time.monotonic() + 30
            while True:
                assert proc.returncode is None, f"the runtime exited: {self.runtime_log()}"
                if self.paths.runtime_socket.exists():
                    with contextlib.suppress(aio.AioRpcError):
                        await api.runtime.Version(pb.VersionRequest(), timeout=2)
                        break
                assert time.monotonic() < deadline, f"the runtime did not start serving: {self.runtime_log()}"
                await asyncio.sleep(0.02)
            yield api
        finally:
            await channel.close()
            if proc.returncode is None:
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    def runtime_log(self) -> str:
        path = self.paths.root.parent / "runtime.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def sandbox_config(self, name: str = "web", **kw: Any) -> pb.PodSandboxConfig:
        uid = f"uid-{name}-{secrets.token_hex(2)}"
        log_dir = self.paths.logs / f"default_{name}_{uid}"
        self.log_dirs.append(log_dir)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default"),
            hostname=name,
            log_directory=str(log_dir),
            dns_config=pb.DNSConfig(servers=["10.43.0.10"], searches=["default.svc.cluster.local"],
                                    options=["ndots:5"]),
            **kw,
        )


def container_config(name: str, script: str, *, attempt: int = 0, **kw: Any) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=DEFAULT_NAME),
        command=["sh", "-c", script],
        log_path=f"{name}/{attempt}.log",
        **kw,
    )


def remove_netns(path: Path) -> None:
    rootfs.unmount(path)
    path.unlink(missing_ok=True)


def scrub(paths: AgentPaths, cgroup_root: str) -> None:
    """Remove whatever a test left behind, without relying on the runtime under test."""
    if paths.runc_root.exists():
        ids = subprocess.run([RUNC, "--root", str(paths.runc_root), "list", "-q"], capture_output=True,
                             text=True).stdout.split()
        for id_ in ids:
            subprocess.run([RUNC, "--root", str(paths.runc_root), "delete", "--force", id_], capture_output=True)
    if paths.containers.exists():
        store = StateStore(paths.containers)
        for rec in store.load_containers():
            # Only processes that are provably the test's: a live shim, and the process-runtime container
            # it is the parent of (runc containers went with runc delete).
            if rec.shim_pid and shim_alive(paths.containers / rec.id, rec.shim_pid):
                with contextlib.suppress(OSError, IndexError):
                    if rec.pid and Path(f"/proc/{rec.pid}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(
                            rec.shim_pid):
                        os.killpg(rec.pid, signal.SIGKILL)
                with contextlib.suppress(OSError):
                    os.kill(rec.shim_pid, signal.SIGKILL)
        for sb in store.load_sandboxes():
            if sb.netns_path.startswith(str(netns.NETNS_DIR / FAKE_NETNS_PREFIX)):
                remove_netns(Path(sb.netns_path))
    prefix = os.fsencode(str(paths.root)) + b"/"
    with open("/proc/self/mountinfo", "rb") as f:
        mounts = [line.split(b" ")[4] for line in f]
    for target in reversed(mounts):
        if target.startswith(prefix):
            rootfs.unmount(Path(os.fsdecode(target)))
    for top in cgroups.resolve(cgroup_root).values():
        if top.is_dir():
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)


@pytest.fixture(scope="module")
def busybox_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("busybox")
    return oci_tarball(build_busybox_image(d), d / "busybox.tar")


@pytest.fixture
async def node(tmp_path: Path, busybox_tarball: Path) -> AsyncIterator[Node]:
    paths = AgentPaths(tmp_path / "node")
    cgroup_root = f"kltest-{secrets.token_hex(4)}"
    try:
        images = ImageStore(paths.images)
        await images.import_tarball(busybox_tarball)
        yield Node(paths=paths, images=images, cgroup_root=cgroup_root)
    finally:
        scrub(paths, cgroup_root)


# -- helpers ----------------------------------------------------------------------------------------------


async def wait_for(predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def status(api: Api, container_id: str) -> pb.ContainerStatus:
    resp: pb.ContainerStatusResponse = await api.runtime.ContainerStatus(
        pb.ContainerStatusRequest(container_id=container_id))
    return resp.status


async def wait_state(api: Api, container_id: str, state: int, timeout: float = 15.0) -> pb.ContainerStatus:
    async def reached() -> bool:
        return (await status(api, container_id)).state == state

    await wait_for(reached, f"container state {pb.ContainerState.Name(state)}", timeout)
    return await status(api, container_id)


async def run_container(api: Api, sandbox_id: str, sandbox: pb.PodSandboxConfig,
                        config: pb.ContainerConfig) -> str:
    created: pb.CreateContainerResponse = await api.runtime.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox))
    await api.runtime.StartContainer(pb.StartContainerRequest(container_id=created.container_id))
    return created.container_id


def log_records(path: Path) -> list[tuple[str, str, str]]:
    """(stream, tag, content) of each record of a CRI log (checking each timestamp's format)."""
    out = []
    for line in path.read_text().splitlines():
        stamp, stream, tag, content = line.split(" ", 3)
        assert len(stamp) == 30 and stamp[10] == "T" and stamp.endswith("Z"), stamp
        out.append((stream, tag, content))
    return out


async def wait_log(path: Path, wanted: Callable[[list[tuple[str, str, str]]], bool]) -> list[tuple[str, str, str]]:
    async def ok() -> bool:
        return path.exists() and wanted(log_records(path))

    await wait_for(ok, f"log {path}")
    return log_records(path)


async def exec_sync(api: Api, container_id: str, cmd: list[str], timeout: int = 10) -> pb.ExecSyncResponse:
    resp: pb.ExecSyncResponse = await api.runtime.ExecSync(
        pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout))
    return resp


async def exec_stream(api: Api, start: pb.ExecRequest, stdin: list[pb.ExecStreamRequest]
                      ) -> tuple[bytes, bytes, int | None, str]:
    async def requests() -> AsyncIterator[pb.ExecStreamRequest]:
        yield pb.ExecStreamRequest(start=start)
        for r in stdin:
            yield r
        await asyncio.sleep(30)  # the stream stays open until the exec ends

    out, err, code, error = b"", b"", None, ""
    async for resp in api.runtime.Exec(requests(), timeout=20):
        kind = resp.WhichOneof("payload")
        if kind == "stdout":
            out += resp.stdout
        elif kind == "stderr":
            err += resp.stderr
        elif kind == "exit_code":
            code = resp.exit_code
        elif kind == "error":
            error = resp.error
    return out, err, code, error


# -- tests ------------------------------------------------------------------------------------------------


async def test_version_names_the_runtime(node: Node) -> None:
    async with node.serve() as api:
        v = await api.runtime.Version(pb.VersionRequest(version="0.1.0"))
        assert node.paths.runtime_socket.stat().st_mode & 0o777 == 0o600
    assert (v.runtime_name, v.runtime_api_version) == ("kubelite-runc", "0.1.0")
    assert not node.paths.runtime_socket.exists()


async def test_a_busybox_container_runs_logs_and_execs(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("web")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        sb = (await api.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))).status
        assert sb.state == pb.SANDBOX_READY and sb.network.ip == "10.99.0.2"
        assert sb.netns_path == f"/run/netns/{FAKE_NETNS_PREFIX}{sid[:12]}" and Path(sb.netns_path).exists()
        script = "echo hello; echo oops >&2; hostname; cat /etc/resolv.conf; id; exec sleep 3600"
        config = container_config("app", script, envs=[pb.KeyValue(key="GREETING", value="hi there")])
        cid = await run_container(api, sid, sandbox, config)
        st = await wait_state(api, cid, pb.CONTAINER_RUNNING)
        assert st.pid > 0 and st.started_at >= st.created_at > 0 and st.image_ref.startswith("sha256:")
        log_path = Path(st.log_path)
        assert log_path == node.log_dirs[0] / "app" / "0.log"
        records = await wait_log(log_path, lambda r: any(c.startswith("uid=") for _, _, c in r))
        assert ("stdout", "F", "hello") in records and ("stderr", "F", "oops") in records
        assert ("stdout", "F", "web") in records  # the pod's hostname
        assert ("stdout", "F", "nameserver 10.43.0.10") in records
        assert ("stdout", "F", "uid=0(root) gid=0(root) groups=0(root)") in records

        listed = await api.runtime.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
            pod_sandbox_id=sid, state=pb.CONTAINER_RUNNING, has_state=True)))
        assert [c.id for c in listed.containers] == [cid]

        # ExecSync: output, exit codes, the container's env and files.
        r = await exec_sync(api, cid, ["sh", "-c", 'echo "$GREETING"; cat /etc/hosts; exit 3'])
        assert r.exit_code == 3 and r.stdout.startswith(b"hi there\n") and b"10.99.0.2\tweb" in r.stdout
        r = await exec_sync(api, cid, ["cat", "/proc/1/cmdline"])
        assert r.stdout == b"sleep\x003600\x00"  # the container has a pid namespace of its own
        with pytest.raises(aio.AioRpcError) as info:
            await exec_sync(api, cid, ["sleep", "30"], timeout=1)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        ps = await exec_sync(api, cid, ["busybox", "ps"])
        assert b"sleep 30" not in ps.stdout  # the timed-out command was killed

        # Interactive exec with stdin, then with a terminal.
        out, _err, code, error = await exec_stream(
            api, pb.ExecRequest(container_id=cid, cmd=["sh"], stdin=True, stdout=True, stderr=True),
            [pb.ExecStreamRequest(stdin=b"echo from stdin\necho to stderr >&2\n"),
             pb.ExecStreamRequest(stdin=b"exit 7\n")])
        assert (out, code, error) == (b"from stdin\n", 7, "")
        out, _err, code, _ = await exec_stream(
            api, pb.ExecRequest(container_id=cid, cmd=["sh", "-c", "test -t 0 && echo on a tty"], tty=True,
                                stdout=True), [])
        assert b"on a tty" in out and code == 0, (out, _err, code, _)
        out, _err, code, error = await exec_stream(
            api, pb.ExecRequest(container_id=cid, cmd=["no-such-command"], stdout=True, stderr=True), [])
        assert code not in (0, None) or error

        # Stats from the container's cgroup.
        stats = (await api.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=cid))).stats
        assert stats.memory.working_set_bytes.value > 0 and stats.cpu.usage_core_nano_seconds.value > 0
        pod = (await api.runtime.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sid))).stats
        assert pod.memory.working_set_bytes.value >= stats.memory.working_set_bytes.value
        assert [c.attributes.id for c in pod.containers] == [cid]

        await api.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))


async def test_a_tty_container_logs_its_terminal(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("term")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config(
            "term", 'test -t 1 && echo "a tty, TERM=$TERM"; echo to stderr >&2', tty=True))
        st = await wait_state(api, cid, pb.CONTAINER_EXITED)
        assert st.exit_code == 0
        records = log_records(Path(st.log_path))
        assert [(stream, content.rstrip("\r")) for stream, _, content in records] == [
            ("stdout", "a tty, TERM=xterm"), ("stdout", "to stderr")]


async def test_logs_rotate_at_the_configured_size(node: Node) -> None:
    node.options = {"log_max_size": 4096, "log_max_files": 3}
    async with node.serve() as api:
        sandbox = node.sandbox_config("chatty")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config(
            "chatty", 'i=0; while [ $i -lt 400 ]; do echo "line $i"; i=$((i+1)); done'))
        st = await wait_state(api, cid, pb.CONTAINER_EXITED)
        log_path = Path(st.log_path)
        rotated = sorted(log_path.parent.glob("0.log.*"))
        assert len(rotated) == 2  # 3 files in all
        assert all(p.stat().st_size <= 4096 for p in [*rotated, log_path])
        assert log_records(log_path)[-1] == ("stdout", "F", "line 399")


async def test_exec_in_a_stopped_container_is_refused(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config()
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config("once", "echo done"))
        st = await wait_state(api, cid, pb.CONTAINER_EXITED)
        assert (st.exit_code, st.reason) == (0, "Completed")
        with pytest.raises(aio.AioRpcError) as info:
            await exec_sync(api, cid, ["true"])
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_container_over_its_memory_limit_is_oom_killed(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("hog")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        limits = pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(memory_limit_in_bytes=32 << 20))
        # dd fills a 100 MiB buffer from /dev/zero: far over the 32 MiB limit.
        config = container_config("hog", "exec dd if=/dev/zero of=/dev/null bs=100M count=1", linux=limits)
        cid = await run_container(api, sid, sandbox, config)
        st = await wait_state(api, cid, pb.CONTAINER_EXITED)
        assert (st.reason, st.exit_code) == ("OOMKilled", 137)
        assert st.finished_at >= st.started_at


async def test_stop_sends_sigterm_then_sigkill_after_the_timeout(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("stop")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        polite = await run_container(api, sid, sandbox, container_config(
            "polite", 'trap "echo got TERM; exit 0" TERM; echo ready; while true; do sleep 0.1; done'))
        stubborn = await run_container(api, sid, sandbox, container_config(
            "stubborn", 'trap "" TERM; echo ready; while true; do sleep 0.1; done'))
        for cid in (polite, stubborn):
            path = Path((await status(api, cid)).log_path)
            await wait_log(path, lambda r: ("stdout", "F", "ready") in r)

        await api.runtime.StopContainer(pb.StopContainerRequest(container_id=polite, timeout=30))
        st = await status(api, polite)
        assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 0, "Completed")
        assert ("stdout", "F", "got TERM") in log_records(Path(st.log_path))

        started = time.monotonic()
        await api.runtime.StopContainer(pb.StopContainerRequest(container_id=stubborn, timeout=1))
        assert time.monotonic() - started >= 1.0  # it ignored SIGTERM: SIGKILL came only after the timeout
        st = await status(api, stubborn)
        assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 137, "Error")
        # Stopping again is nothing to do.
        await api.runtime.StopContainer(pb.StopContainerRequest(container_id=stubborn, timeout=1))


async def test_a_restarted_runtime_adopts_running_containers(node: Node) -> None:
    sandbox = node.sandbox_config("keep")
    async with node.serve() as api:
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config(
            "ticker", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"))
        st = await wait_state(api, cid, pb.CONTAINER_RUNNING)
        log_path = Path(st.log_path)
        await wait_log(log_path, lambda r: len(r) >= 2)
        api.process.kill()  # a crash, not a clean stop
        await api.process.wait()
    # The runtime is gone; the container is not, and it keeps logging.
    assert Path(f"/proc/{st.pid}").exists()
    count = len(log_records(log_path))
    await wait_log(log_path, lambda r: len(r) > count + 2)

    async with node.serve() as api:
        again = await status(api, cid)
        assert (again.state, again.pid, again.started_at) == (pb.CONTAINER_RUNNING, st.pid, st.started_at)
        sandboxes = await api.runtime.ListPodSandbox(pb.ListPodSandboxRequest())
        assert [s.id for s in sandboxes.items] == [sid]
        r = await exec_sync(api, cid, ["echo", "still here"])
        assert r.stdout == b"still here\n"
        count = len(log_records(log_path))
        await wait_log(log_path, lambda r: len(r) > count)
        await api.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
        assert (await status(api, cid)).exit_code == 137


async def test_a_container_exiting_while_the_runtime_is_down_is_seen_after(node: Node) -> None:
    sandbox = node.sandbox_config("brief")
    async with node.serve() as api:
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config("brief", "sleep 0.5; exit 4"))
    await asyncio.sleep(1.0)
    async with node.serve() as api:
        st = await wait_state(api, cid, pb.CONTAINER_EXITED)
        assert (st.exit_code, st.reason) == (4, "Error")


def runc_ids(paths: AgentPaths) -> list[str]:
    out = subprocess.run([RUNC, "--root", str(paths.runc_root), "list", "-q"], capture_output=True, text=True)
    return out.stdout.split()


async def test_remove_cleans_up_mounts_cgroups_and_runc_state(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("tidy")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config("app", "exec sleep 3600"))
        await wait_state(api, cid, pb.CONTAINER_RUNNING)
        cdir, sdir = node.paths.containers / cid, node.paths.containers / sid
        record = StateStore(node.paths.containers).load_containers()[0]
        memory_cgroup = Path(record.cgroup_dirs["memory"])
        assert memory_cgroup.is_dir() and rootfs.is_mounted(cdir / "rootfs") and runc_ids(node.paths) == [cid]
        assert all(rootfs.is_mounted(p) for p in (sdir / "ns" / "ipc", sdir / "ns" / "uts", sdir / "shm"))

        await api.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        assert not rootfs.is_mounted(cdir / "rootfs") and not cdir.exists()
        assert not memory_cgroup.exists() and runc_ids(node.paths) == []
        assert node.images.holders(record.image_ref) == []
        with pytest.raises(aio.AioRpcError) as info:
            await status(api, cid)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        await api.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))  # idempotent

        netns_path = Path(f"/run/netns/{FAKE_NETNS_PREFIX}{sid[:12]}")
        assert netns_path.exists()
        await api.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        assert not netns_path.exists()
        await api.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        await api.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))  # idempotent
        assert not sdir.exists() and not memory_cgroup.parent.exists()
        assert str(node.paths.root) not in Path("/proc/self/mountinfo").read_text()


async def test_removing_a_sandbox_removes_its_running_containers(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("gone")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cids = [await run_container(api, sid, sandbox, container_config(n, "exec sleep 3600")) for n in ("a", "b")]
        for cid in cids:
            await wait_state(api, cid, pb.CONTAINER_RUNNING)
        await api.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        assert (await api.runtime.ListContainers(pb.ListContainersRequest())).containers == []
        assert runc_ids(node.paths) == [] and not any(node.paths.containers.iterdir())


async def test_bad_requests_are_reported(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("bad")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id

        async def code_of(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(aio.AioRpcError) as info:
                await call
            return info.value.code(), info.value.details() or ""

        create = api.runtime.CreateContainer
        missing_image = container_config("x", "true")
        missing_image.image.image = "kubelite.test/nothing:here"
        code, message = await code_of(create(pb.CreateContainerRequest(pod_sandbox_id=sid, config=missing_image)))
        assert code == grpc.StatusCode.NOT_FOUND and "kubelite.test/nothing:here" in message
        not_in_image = container_config("y", "")
        del not_in_image.command[:]
        not_in_image.command.append("/no/such/binary")
        code, message = await code_of(create(pb.CreateContainerRequest(pod_sandbox_id=sid, config=not_in_image)))
        assert code == grpc.StatusCode.UNKNOWN and "/no/such/binary" in message
        code, _ = await code_of(create(pb.CreateContainerRequest(pod_sandbox_id="nope", config=missing_image)))
        assert code == grpc.StatusCode.NOT_FOUND
        await create(pb.CreateContainerRequest(pod_sandbox_id=sid, config=container_config("z", "sleep 1")))
        code, _ = await code_of(create(pb.CreateContainerRequest(pod_sandbox_id=sid,
                                                                 config=container_config("z", "sleep 1"))))
        assert code == grpc.StatusCode.ALREADY_EXISTS
        # Nothing of the failed creations is left.
        assert len(runc_ids(node.paths)) == 1 and len(list(node.paths.containers.iterdir())) == 2


async def test_security_context_user_and_readonly_rootfs(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("secure")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        sc = pb.LinuxContainerSecurityContext(
            run_as_user=pb.Int64Value(value=65534), readonly_rootfs=True,
            capabilities=pb.Capability(drop_capabilities=["ALL"]))
        cid = await run_container(api, sid, sandbox, container_config(
            "locked", "id; touch /file 2>&1 || true; grep CapEff /proc/self/status; exec sleep 3600",
            linux=pb.LinuxContainerConfig(security_context=sc)))
        st = await wait_state(api, cid, pb.CONTAINER_RUNNING)
        records = await wait_log(Path(st.log_path), lambda r: any("CapEff" in c for _, _, c in r))
        contents = [c for _, _, c in records]
        assert contents[0] == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
        assert "Read-only file system" in contents[1]
        assert contents[2].split() == ["CapEff:", "0000000000000000"]


async def test_a_privileged_container_gets_every_capability_and_the_host_devices(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("priv")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        sc = pb.LinuxContainerSecurityContext(privileged=True)
        cid = await run_container(api, sid, sandbox, container_config(
            "priv", "exec sleep 3600", linux=pb.LinuxContainerConfig(security_context=sc)))
        await wait_state(api, cid, pb.CONTAINER_RUNNING)
        caps = await exec_sync(api, cid, ["sh", "-c", "grep CapEff /proc/self/status"])
        own = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapBnd"))
        assert caps.stdout.split()[1] == own.split()[1].encode()
        devices = await exec_sync(api, cid, ["ls", "/dev"])
        host_devices = {p.name for p in Path("/dev").iterdir() if p.is_char_device() or p.is_block_device()}
        assert host_devices <= set(devices.stdout.decode().split())
        unmasked = await exec_sync(api, cid, ["cat", "/proc/timer_list"])
        assert unmasked.exit_code == 0 and unmasked.stdout


async def test_port_forward_reaches_a_port_inside_the_pod(node: Node) -> None:
    async with node.serve() as api:
        sandbox = node.sandbox_config("httpd")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config("httpd", "exec httpd -f -p 8080 -h /var/www"))
        await wait_state(api, cid, pb.CONTAINER_RUNNING)

        async def get() -> tuple[bytes, str]:
            async def requests() -> AsyncIterator[pb.PortForwardStreamRequest]:
                yield pb.PortForwardStreamRequest(start=pb.PortForwardStart(pod_sandbox_id=sid, port=8080))
                yield pb.PortForwardStreamRequest(data=b"GET /index.html HTTP/1.0\r\n\r\n")
                await asyncio.sleep(30)

            data, error = b"", ""
            async for resp in api.runtime.PortForward(requests(), timeout=10):
                data += resp.data
                error = resp.error or error
            return data, error

        async def answered() -> bool:
            data, _ = await get()
            return bool(data)

        await wait_for(answered, "httpd to listen")
        data, error = await get()
        assert error == "" and data.startswith(b"HTTP/1.") and data.endswith(b"hello from kubelite busybox\n")
        # Nothing listens on the host's port 8080 for this: the connection was made inside the pod.
        data, error = b"", ""
        async for resp in api.runtime.PortForward(_one_start(sid, 9), timeout=10):
            error = resp.error or error
        assert "cannot connect to port 9" in error


async def _one_start(sid: str, port: int) -> AsyncIterator[pb.PortForwardStreamRequest]:
    yield pb.PortForwardStreamRequest(start=pb.PortForwardStart(pod_sandbox_id=sid, port=port))
    await asyncio.sleep(30)


async def test_images_through_the_image_service(node: Node) -> None:
    async with node.serve() as api:
        listed = await api.images.ListImages(pb.ListImagesRequest())
        [image] = listed.images
        assert image.repo_tags == [DEFAULT_NAME] and image.cmd == ["sh"] and image.id.startswith("sha256:")
        st = await api.images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=DEFAULT_NAME)))
        assert st.image.id == image.id
        missing = await api.images.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="nothing:here")))
        assert not missing.HasField("image")
        fs = await api.images.ImageFsInfo(pb.ImageFsInfoRequest())
        assert fs.image_filesystems[0].used_bytes.value > 0

        sandbox = node.sandbox_config("img")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        cid = await run_container(api, sid, sandbox, container_config("app", "exec sleep 3600"))
        with pytest.raises(aio.AioRpcError) as info:
            await api.images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image.id)))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        await api.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        await api.images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image.id)))
        await api.images.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image.id)))  # idempotent
        assert (await api.images.ListImages(pb.ListImagesRequest())).images == []


async def test_the_process_runtime_runs_the_command_on_the_host(node: Node) -> None:
    node.runtime = "process"
    async with node.serve() as api:
        v = await api.runtime.Version(pb.VersionRequest())
        assert v.runtime_name == "kubelite-process"
        sandbox = node.sandbox_config("plain")
        sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
        sb = (await api.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))).status
        # No isolation: the host's network, no namespace made.
        assert sb.netns_path == "" and not Path(f"/run/netns/{FAKE_NETNS_PREFIX}{sid[:12]}").exists()
        config = container_config("app", 'echo "$GREETING"; echo oops >&2; exec sleep 3600',
                                  envs=[pb.KeyValue(key="GREETING", value="on the host")])
        cid = await run_container(api, sid, sandbox, config)
        st = await wait_state(api, cid, pb.CONTAINER_RUNNING)
        # A plain host process: in the host's pid namespace, with the host's files.
        assert Path(f"/proc/{st.pid}/cmdline").read_bytes() == b"sleep\x003600\x00"
        assert os.readlink(f"/proc/{st.pid}/ns/pid") == os.readlink("/proc/self/ns/pid")
        records = await wait_log(Path(st.log_path), lambda r: len(r) == 2)
        assert sorted(records) == [("stderr", "F", "oops"), ("stdout", "F", "on the host")]
        r = await exec_sync(api, cid, ["sh", "-c", 'echo "$GREETING"'])
        assert r.stdout == b"on the host\n"
        stats = (await api.runtime.ContainerStats(pb.ContainerStatsRequest(container_id=cid))).stats
        assert stats.memory.working_set_bytes.value > 0
        await api.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=5))
        st = await status(api, cid)
        assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 143)  # sleep dies of SIGTERM
        await api.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        assert not any(node.paths.containers.iterdir())


@asynccontextmanager
async def node_namespace() -> AsyncIterator[Path]:
    """A network namespace standing for the node (lo up), made with util-linux rather than pyroute2 so that
    this process, which runs gRPC clients, never forks a Python child."""
    netns.NETNS_DIR.mkdir(parents=True, exist_ok=True)
    path = netns.NETNS_DIR / f"{FAKE_NETNS_PREFIX}node-{secrets.token_hex(3)}"
    path.touch()
    try:
        proc = await asyncio.create_subprocess_exec("unshare", f"--net={path}", "ip", "link", "set", "lo", "up")
        assert await proc.wait() == 0
        yield path
    finally:
        remove_netns(path)


async def test_the_real_pod_network_gives_the_pod_an_address(node: Node) -> None:
    if not Path("/usr/lib/cni/bridge").exists():
        pytest.skip("containernetworking-plugins are not installed")
    async with node_namespace() as host:
        node.network = {"network": "cni", "pod_cidr": "10.251.7.0/24", "bridge": f"klrt{secrets.token_hex(3)}",
                        "host_netns": str(host)}
        async with node.serve() as api:
            sandbox = node.sandbox_config("net")
            sid = (await api.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox))).pod_sandbox_id
            try:
                sb = (await api.runtime.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid))).status
                assert sb.network.ip.startswith("10.251.7.")
                cid = await run_container(api, sid, sandbox, container_config("app", "exec sleep 3600"))
                await wait_state(api, cid, pb.CONTAINER_RUNNING)
                r = await exec_sync(api, cid, ["cat", "/proc/net/fib_trie", "/etc/hosts"])
                assert sb.network.ip.encode() in r.stdout
                assert f"{sb.network.ip}\tnet\n".encode() in r.stdout
            finally:
                await api.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
            assert not Path(sb.netns_path).exists()

if __name__ == "__main__":
    serve_main(sys.argv[1])
