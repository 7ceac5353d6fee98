"""An in-memory RuntimeService + ImageService for kubelet tests: a real gRPC server on a unix socket that
"runs" containers instantly, so the kubelet can be tested without root, runc or images.

What a test controls (all plain attributes):
- ``images``: image reference -> image id of the images "present"; a pull adds the image unless
  ``pull_errors[image]`` holds the message to fail with (``pull_delay`` seconds per pull);
- ``exit_on_start[name] = code``: a container of that name exits with ``code`` right after it starts
  (``exit_reason`` overrides the reason, e.g. "OOMKilled"); `exit(name, code)` ends running ones later;
- ``start_errors[name] = message``: StartContainer of that name fails;
- ``exec_results[(name, " ".join(cmd))] = (exit code, output)`` for ExecSync (default: exit 0);
- ``ignore_sigterm``: container names that only die at the end of StopContainer's timeout (137);
- ``sandbox_ip``: the address sandboxes get (default: one 10.88.0.x per sandbox).
It records ``calls`` (RPC names in order), ``starts`` ((container name, time)), ``stops`` ((container name,
timeout)), ``pull_auths`` and the
``ContainerConfig`` of every created container (``containers[id].config``).
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import grpc
from grpc import aio

from kubelite.proto import runtime_pb2 as pb
from kubelite.proto import runtime_pb2_grpc as pb_grpc


def _now() -> int:
    return time.time_ns()


@dataclass
class FakeSandbox:
    id: str
    config: pb.PodSandboxConfig
    ip: str
    state: pb.PodSandboxState = pb.SANDBOX_READY
    created_at: int = field(default_factory=_now)


@dataclass
class FakeContainer:
    id: str
    sandbox_id: str
    config: pb.ContainerConfig
    image_ref: str
    state: pb.ContainerState = pb.CONTAINER_CREATED
    created_at: int = field(default_factory=_now)
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""

    @property
    def name(self) -> str:
        return self.config.metadata.name


def _labels_match(labels: Any, selector: Any) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class FakeRuntime(pb_grpc.RuntimeServiceServicer, pb_grpc.ImageServiceServicer):
    def __init__(self, runtime_name: str = "kubelite-fake") -> None:
        self.runtime_name = runtime_name
        self.images: dict[str, str] = {}
        self.pull_errors: dict[str, str] = {}
        self.pull_delay = 0.0
        self.pull_auths: list[pb.AuthConfig] = []
        self.exit_on_start: dict[str, int] = {}
        self.exit_reason: dict[str, str] = {}
        self.start_errors: dict[str, str] = {}
        self.exec_results: dict[tuple[str, str], tuple[int, str]] = {}
        self.ignore_sigterm: set[str] = set()
        self.sandbox_ip: str | None = None
        self.sandboxes: dict[str, FakeSandbox] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[str] = []
        self.stops: list[tuple[str, int]] = []
        self.starts: list[tuple[str, float]] = []  # (container name, time.time()), kept after removal
        self._ids = itertools.count(1)
        self._server: aio.Server | None = None
        self.socket: Path | None = None

    # --- test helpers ------------------------------------------------------------------------------

    async def start(self, socket: Path) -> None:
        self.socket = socket
        self._server = aio.server()
        pb_grpc.add_RuntimeServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        pb_grpc.add_ImageServiceServicer_to_server(self, self._server)  # type: ignore[no-untyped-call]
        self._server.add_insecure_port(f"unix://{socket}")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None

    def add_image(self, ref: str, image_id: str | None = None) -> str:
        image_id = image_id or f"sha256:{abs(hash(ref)):064x}"[:71]
        self.images[ref] = image_id
        return image_id

    def exit(self, name: str, code: int, reason: str = "") -> int:
        """End the running containers called ``name``; returns how many."""
        n = 0
        for c in self.containers.values():
            if c.name == name and c.state == pb.CONTAINER_RUNNING:
                self._finish(c, code, reason)
                n += 1
        return n

    def by_name(self, name: str) -> list[FakeContainer]:
        return sorted((c for c in self.containers.values() if c.name == name), key=lambda c: c.created_at)

    def running(self, name: str) -> list[FakeContainer]:
        return [c for c in self.by_name(name) if c.state == pb.CONTAINER_RUNNING]

    @staticmethod
    def _finish(c: FakeContainer, code: int, reason: str = "") -> None:
        c.state = pb.CONTAINER_EXITED
        c.exit_code = code
        c.finished_at = _now()
        c.reason = reason or ("Completed" if code == 0 else "Error")

    @staticmethod
    async def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
        await context.abort(code, message)
        raise AssertionError("abort returned")

    async def _sandbox(self, sid: str, context: Any) -> FakeSandbox:
        sb = self.sandboxes.get(sid)
        if sb is None:
            await self._abort(context, grpc.StatusCode.NOT_FOUND, f"sandbox {sid} not found")
        return sb

    async def _ctr(self, cid: str, context: Any) -> FakeContainer:
        c = self.containers.get(cid)
        if c is None:
            await self._abort(context, grpc.StatusCode.NOT_FOUND, f"container {cid} not found")
        return c

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012d}"

    def _record(self, name: str) -> None:
        self.calls.append(name)

    def _resolve(self, ref: str) -> str | None:
        if ref in self.images:
            return self.images[ref]
        if ref in self.images.values():
            return ref
        return None

    # --- RuntimeService ----------------------------------------------------------------------------

    async def Version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        self._record("Version")
        return pb.VersionResponse(version="0.1.0", runtime_name=self.runtime_name, runtime_version="0.0.1",
                                  runtime_api_version="v1")

    async def RunPodSandbox(self, request: pb.RunPodSandboxRequest, context: Any) -> pb.RunPodSandboxResponse:
        self._record("RunPodSandbox")
        sid = self._id("sb")
        ip = self.sandbox_ip or f"10.88.0.{len(self.sandboxes) % 250 + 2}"
        self.sandboxes[sid] = FakeSandbox(sid, request.config, "" if request.config.linux.host_network else ip)
        return pb.RunPodSandboxResponse(pod_sandbox_id=sid)

    async def StopPodSandbox(self, request: pb.StopPodSandboxRequest, context: Any) -> pb.StopPodSandboxResponse:
        self._record("StopPodSandbox")
        sb = await self._sandbox(request.pod_sandbox_id, context)
        for c in self.containers.values():
            if c.sandbox_id == sb.id and c.state == pb.CONTAINER_RUNNING:
                self._finish(c, 137)
        sb.state = pb.SANDBOX_NOTREADY
        return pb.StopPodSandboxResponse()

    async def RemovePodSandbox(self, request: pb.RemovePodSandboxRequest,
                               context: Any) -> pb.RemovePodSandboxResponse:
        self._record("RemovePodSandbox")
        self.sandboxes.pop(request.pod_sandbox_id, None)
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == request.pod_sandbox_id]:
            del self.containers[cid]
        return pb.RemovePodSandboxResponse()

    def _sandbox_status(self, sb: FakeSandbox) -> pb.PodSandboxStatus:
        return pb.PodSandboxStatus(id=sb.id, metadata=sb.config.metadata, state=sb.state, created_at=sb.created_at,
                                   network=pb.PodSandboxNetworkStatus(ip=sb.ip), labels=dict(sb.config.labels),
                                   annotations=dict(sb.config.annotations))

    async def PodSandboxStatus(self, request: pb.PodSandboxStatusRequest,
                               context: Any) -> pb.PodSandboxStatusResponse:
        sb = await self._sandbox(request.pod_sandbox_id, context)
        return pb.PodSandboxStatusResponse(status=self._sandbox_status(sb))

    async def ListPodSandbox(self, request: pb.ListPodSandboxRequest, context: Any) -> pb.ListPodSandboxResponse:
        flt = request.filter
        items = [pb.PodSandbox(id=sb.id, metadata=sb.config.metadata, state=sb.state, created_at=sb.created_at,
                               labels=dict(sb.config.labels), annotations=dict(sb.config.annotations))
                 for sb in self.sandboxes.values()
                 if (not flt.id or sb.id == flt.id) and (not flt.has_state or sb.state == flt.state)
                 and _labels_match(sb.config.labels, flt.label_selector)]
        return pb.ListPodSandboxResponse(items=items)

    async def CreateContainer(self, request: pb.CreateContainerRequest,
                              context: Any) -> pb.CreateContainerResponse:
        self._record("CreateContainer")
        await self._sandbox(request.pod_sandbox_id, context)
        image_ref = self._resolve(request.config.image.image)
        if image_ref is None:
            await self._abort(context, grpc.StatusCode.NOT_FOUND, f"image {request.config.image.image} not found")
        cid = self._id("c")
        self.containers[cid] = FakeContainer(cid, request.pod_sandbox_id, request.config, image_ref)
        return pb.CreateContainerResponse(container_id=cid)

    async def StartContainer(self, request: pb.StartContainerRequest, context: Any) -> pb.StartContainerResponse:
        self._record("StartContainer")
        c = await self._ctr(request.container_id, context)
        if c.name in self.start_errors:
            await self._abort(context, grpc.StatusCode.UNKNOWN, self.start_errors[c.name])
        c.state = pb.CONTAINER_RUNNING
        c.started_at = _now()
        self.starts.append((c.name, c.started_at / 1e9))
        if c.name in self.exit_on_start:
            self._finish(c, self.exit_on_start[c.name], self.exit_reason.get(c.name, ""))
        return pb.StartContainerResponse()

    async def StopContainer(self, request: pb.StopContainerRequest, context: Any) -> pb.StopContainerResponse:
        self._record("StopContainer")
        c = await self._ctr(request.container_id, context)
        self.stops.append((c.name, int(request.timeout)))
        if c.state == pb.CONTAINER_RUNNING:
            if c.name in self.ignore_sigterm:
                await asyncio.sleep(request.timeout)
                self._finish(c, 137)
            else:
                self._finish(c, 143)
        return pb.StopContainerResponse()

    async def RemoveContainer(self, request: pb.RemoveContainerRequest,
                              context: Any) -> pb.RemoveContainerResponse:
        self._record("RemoveContainer")
        self.containers.pop(request.container_id, None)
        return pb.RemoveContainerResponse()

    def _container(self, c: FakeContainer) -> pb.Container:
        return pb.Container(id=c.id, pod_sandbox_id=c.sandbox_id, metadata=c.config.metadata, image=c.config.image,
                            image_ref=c.image_ref, state=c.state, created_at=c.created_at,
                            labels=dict(c.config.labels), annotations=dict(c.config.annotations))

    async def ListContainers(self, request: pb.ListContainersRequest, context: Any) -> pb.ListContainersResponse:
        flt = request.filter
        items = [self._container(c) for c in self.containers.values()
                 if (not flt.id or c.id == flt.id) and (not flt.has_state or c.state == flt.state)
                 and (not flt.pod_sandbox_id or c.sandbox_id == flt.pod_sandbox_id)
                 and _labels_match(c.config.labels, flt.label_selector)]
        return pb.ListContainersResponse(containers=items)

    async def ContainerStatus(self, request: pb.ContainerStatusRequest,
                              context: Any) -> pb.ContainerStatusResponse:
        c = await self._ctr(request.container_id, context)
        status = pb.ContainerStatus(
            id=c.id, metadata=c.config.metadata, state=c.state, created_at=c.created_at, started_at=c.started_at,
            finished_at=c.finished_at, exit_code=c.exit_code, image=c.config.image, image_ref=c.image_ref,
            reason=c.reason, labels=dict(c.config.labels), annotations=dict(c.config.annotations),
            mounts=list(c.config.mounts), log_path=c.config.log_path)
        return pb.ContainerStatusResponse(status=status)

    async def ExecSync(self, request: pb.ExecSyncRequest, context: Any) -> pb.ExecSyncResponse:
        self._record("ExecSync")
        c = await self._ctr(request.container_id, context)
        if c.state != pb.CONTAINER_RUNNING:
            await self._abort(context, grpc.StatusCode.NOT_FOUND, f"container {request.container_id} is not running")
        code, output = self.exec_results.get((c.name, " ".join(request.cmd)), (0, ""))
        return pb.ExecSyncResponse(stdout=output.encode(), exit_code=code)

    # --- ImageService ------------------------------------------------------------------------------

    def _image(self, ref: str, image_id: str) -> pb.Image:
        tags = [r for r, i in self.images.items() if i == image_id]
        return pb.Image(id=image_id, repo_tags=tags, size=1234, user="")

    async def ListImages(self, request: pb.ListImagesRequest, context: Any) -> pb.ListImagesResponse:
        seen = dict.fromkeys(self.images.values())
        return pb.ListImagesResponse(images=[self._image("", i) for i in seen])

    async def ImageStatus(self, request: pb.ImageStatusRequest, context: Any) -> pb.ImageStatusResponse:
        self._record("ImageStatus")
        image_id = self._resolve(request.image.image)
        if image_id is None:
            return pb.ImageStatusResponse()
        return pb.ImageStatusResponse(image=self._image(request.image.image, image_id))

    async def PullImage(self, request: pb.PullImageRequest, context: Any) -> AsyncIterator[pb.PullImageProgress]:
        self._record("PullImage")
        ref = request.image.image
        self.pull_auths.append(request.auth)
        yield pb.PullImageProgress(status="resolving")
        if self.pull_delay:
            await asyncio.sleep(self.pull_delay)
        if ref in self.pull_errors:
            await self._abort(context, grpc.StatusCode.UNKNOWN, self.pull_errors[ref])
        image_id = self._resolve(ref) or self.add_image(ref)
        yield pb.PullImageProgress(status="done", image_ref=image_id, current=1234, total=1234)

    async def RemoveImage(self, request: pb.RemoveImageRequest, context: Any) -> pb.RemoveImageResponse:
        for ref in [r for r, i in self.images.items() if request.image.image in (r, i)]:
            del self.images[ref]
        return pb.RemoveImageResponse()

    async def ImageFsInfo(self, request: pb.ImageFsInfoRequest, context: Any) -> pb.ImageFsInfoResponse:
        return pb.ImageFsInfoResponse()


@asynccontextmanager
async def serve(fake: FakeRuntime | None = None) -> AsyncIterator[FakeRuntime]:
    """Serve ``fake`` (or a new one) on a socket in a short temporary folder (unix socket paths are short)."""
    fake = fake or FakeRuntime()
    folder = Path(tempfile.mkdtemp(prefix="kl-", dir="/tmp"))
    try:
        await fake.start(folder / "runtime.sock")
        yield fake
    finally:
        await fake.stop()
        shutil.rmtree(folder, ignore_errors=True)
