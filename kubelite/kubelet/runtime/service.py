"""The gRPC servicers of runtime.proto: `RuntimeServicer` over `manager.Runtime`, `ImageServicer` over the
image store. They translate messages (`convert`) and errors; the runtime and the store do the work.

Errors become gRPC statuses with the runtime's own message, which the kubelet shows to users:
`NotFound` -> NOT_FOUND, `AlreadyExists` -> ALREADY_EXISTS, `InvalidArgument` -> INVALID_ARGUMENT,
`FailedPrecondition` -> FAILED_PRECONDITION, `DeadlineExceeded` -> DEADLINE_EXCEEDED (an ExecSync that timed
out: the kubelet reads it as a probe timeout, as it does with containerd), anything else -> UNKNOWN. For
images: ImageNotFound -> NOT_FOUND, InvalidReference -> INVALID_ARGUMENT, ImageInUse ->
FAILED_PRECONDITION, a registry's refusal (RegistryError) -> UNKNOWN with the registry's reason.

Exec and PortForward are bidirectional streams: the first request starts the exec or names the port; an
exec ends with its exit code (or an error message) as the last response.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import grpc
from grpc import aio

import kubelite
from kubelite.kubelet.images.errors import (
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
)
from kubelite.kubelet.images.model import PullProgress, RegistryAuth
from kubelite.kubelet.network import NetworkError
from kubelite.kubelet.runtime import convert
from kubelite.kubelet.runtime.deps import ImageStoreLike
from kubelite.kubelet.runtime.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RuntimeFailure,
)
from kubelite.kubelet.runtime.manager import Runtime, Usage
from kubelite.kubelet.runtime.runc import RuncError
from kubelite.kubelet.runtime.state import ContainerRecord, SandboxRecord
from kubelite.kubelet.runtime.streams import ExecSession
from kubelite.proto import runtime_pb2 as pb
from kubelite.proto import runtime_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# The runtime API version this runtime speaks (the kubelet's client asks for the same).
RUNTIME_API_VERSION = "0.1.0"

_CODES: list[tuple[type[Exception], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (ImageNotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidReference, grpc.StatusCode.INVALID_ARGUMENT),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (ImageInUse, grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
]

T = TypeVar("T")


def status_code(error: Exception) -> grpc.StatusCode:
    return next((code for cls, code in _CODES if isinstance(error, cls)), grpc.StatusCode.UNKNOWN)


# Failures whose message says it all; anything else is also logged with its traceback.
_EXPECTED = (RuntimeFailure, ImageError, NetworkError, RuncError, OSError)


async def _abort(context: aio.ServicerContext[Any, Any], error: Exception) -> NoReturn:
    if not isinstance(error, _EXPECTED):
        log.error("runtime request failed", exc_info=error)
    await context.abort(status_code(error), str(error) or type(error).__name__)
    raise AssertionError("unreachable")  # context.abort raises


async def _call(context: aio.ServicerContext[Any, Any], work: Awaitable[T]) -> T:
    """Run one request's work, turning every failure into a gRPC status with the failure's message."""
    try:
        return await work
    except Exception as e:
        await _abort(context, e)


def _labels_match(labels: dict[str, str], selector: Any) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _cpu(u: Usage) -> pb.CpuUsage:
    cpu = pb.CpuUsage(timestamp=u.timestamp, usage_core_nano_seconds=pb.UInt64Value(value=u.cpu_ns))
    if u.nano_cores is not None:
        cpu.usage_nano_cores.value = u.nano_cores
    return cpu


def _memory(u: Usage) -> pb.MemoryUsage:
    return pb.MemoryUsage(
        timestamp=u.timestamp,
        working_set_bytes=pb.UInt64Value(value=u.working_set),
        usage_bytes=pb.UInt64Value(value=u.memory_usage),
        rss_bytes=pb.UInt64Value(value=u.rss),
    )


class RuntimeServicer(pb_grpc.RuntimeServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def Version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(
            version=RUNTIME_API_VERSION,
            runtime_name=self.runtime.name,
            runtime_version=kubelite.__version__,
            runtime_api_version=RUNTIME_API_VERSION,
        )

    # -- sandboxes ---------------------------------------------------------------------------------

    async def RunPodSandbox(self, request: pb.RunPodSandboxRequest, context: Any) -> pb.RunPodSandboxResponse:
        sb = await _call(context, self.runtime.run_pod_sandbox(request.config))
        return pb.RunPodSandboxResponse(pod_sandbox_id=sb.id)

    async def StopPodSandbox(self, request: pb.StopPodSandboxRequest, context: Any) -> pb.StopPodSandboxResponse:
        await _call(context, self.runtime.stop_pod_sandbox(request.pod_sandbox_id))
        return pb.StopPodSandboxResponse()

    async def RemovePodSandbox(
        self, request: pb.RemovePodSandboxRequest, context: Any
    ) -> pb.RemovePodSandboxResponse:
        await _call(context, self.runtime.remove_pod_sandbox(request.pod_sandbox_id))
        return pb.RemovePodSandboxResponse()

    async def PodSandboxStatus(
        self, request: pb.PodSandboxStatusRequest, context: Any
    ) -> pb.PodSandboxStatusResponse:
        sb = await _call(context, _now(self.runtime.sandbox, request.pod_sandbox_id))
        return pb.PodSandboxStatusResponse(status=convert.sandbox_status_to_pb(sb))

    async def ListPodSandbox(self, request: pb.ListPodSandboxRequest, context: Any) -> pb.ListPodSandboxResponse:
        f = request.filter
        items = [
            convert.sandbox_to_pb(sb)
            for sb in self.runtime.list_sandboxes()
            if (not f.id or sb.id.startswith(f.id))
            and (not f.has_state or convert.SANDBOX_STATES[sb.state] == f.state)
            and _labels_match(sb.labels, f.label_selector)
        ]
        return pb.ListPodSandboxResponse(items=items)

    # -- containers --------------------------------------------------------------------------------

    async def CreateContainer(
        self, request: pb.CreateContainerRequest, context: Any
    ) -> pb.CreateContainerResponse:
        rec = await _call(context, self.runtime.create_container(request.pod_sandbox_id, request.config))
        return pb.CreateContainerResponse(container_id=rec.id)

    async def StartContainer(self, request: pb.StartContainerRequest, context: Any) -> pb.StartContainerResponse:
        await _call(context, self.runtime.start_container(request.container_id))
        return pb.StartContainerResponse()

    async def StopContainer(self, request: pb.StopContainerRequest, context: Any) -> pb.StopContainerResponse:
        await _call(context, self.runtime.stop_container(request.container_id, request.timeout))
        return pb.StopContainerResponse()

    async def RemoveContainer(
        self, request: pb.RemoveContainerRequest, context: Any
    ) -> pb.RemoveContainerResponse:
        await _call(context, self.runtime.remove_container(request.container_id))
        return pb.RemoveContainerResponse()

    def _containers(self, f: pb.ContainerFilter) -> list[ContainerRecord]:
        return [
            c
            for c in self.runtime.list_containers()
            if (not f.id or c.id.startswith(f.id))
            and (not f.pod_sandbox_id or c.sandbox_id.startswith(f.pod_sandbox_id))
            and (not f.has_state or convert.CONTAINER_STATES[c.state] == f.state)
            and _labels_match(c.labels, f.label_selector)
        ]

    async def ListContainers(self, request: pb.ListContainersRequest, context: Any) -> pb.ListContainersResponse:
        containers = [convert.container_to_pb(c) for c in self._containers(request.filter)]
        return pb.ListContainersResponse(containers=containers)

    async def ContainerStatus(
        self, request: pb.ContainerStatusRequest, context: Any
    ) -> pb.ContainerStatusResponse:
        rec = await _call(context, _now(self.runtime.container, request.container_id))
        return pb.ContainerStatusResponse(status=convert.container_status_to_pb(rec))

    # -- stats -------------------------------------------------------------------------------------

    def _container_stats(self, rec: ContainerRecord) -> pb.ContainerStats:
        stats = pb.ContainerStats(
            attributes=pb.ContainerAttributes(
                id=rec.id, metadata=convert.container_metadata(rec), labels=rec.labels, annotations=rec.annotations
            )
        )
        usage = self.runtime.container_usage(rec)
        if usage is not None:
            stats.cpu.CopyFrom(_cpu(usage))
            stats.memory.CopyFrom(_memory(usage))
        return stats

    async def ContainerStats(self, request: pb.ContainerStatsRequest, context: Any) -> pb.ContainerStatsResponse:
        rec = await _call(context, _now(self.runtime.container, request.container_id))
        return pb.ContainerStatsResponse(stats=self._container_stats(rec))

    async def ListContainerStats(
        self, request: pb.ListContainerStatsRequest, context: Any
    ) -> pb.ListContainerStatsResponse:
        return pb.ListContainerStatsResponse(stats=[self._container_stats(c) for c in self._containers(request.filter)])

    async def PodSandboxStats(self, request: pb.PodSandboxStatsRequest, context: Any) -> pb.PodSandboxStatsResponse:
        sb: SandboxRecord = await _call(context, _now(self.runtime.sandbox, request.pod_sandbox_id))
        stats = pb.PodSandboxStats(id=sb.id, metadata=convert.sandbox_metadata(sb))
        usage = self.runtime.sandbox_usage(sb)
        if usage is not None:
            stats.cpu.CopyFrom(_cpu(usage))
            stats.memory.CopyFrom(_memory(usage))
        members = self._containers(pb.ContainerFilter(pod_sandbox_id=sb.id, state=pb.CONTAINER_RUNNING, has_state=True))
        stats.containers.extend(self._container_stats(c) for c in members)
        return pb.PodSandboxStatsResponse(stats=stats)

    # -- exec and port-forward ---------------------------------------------------------------------

    async def ExecSync(self, request: pb.ExecSyncRequest, context: Any) -> pb.ExecSyncResponse:
        out, err, code = await _call(
            context, self.runtime.exec_sync(request.container_id, list(request.cmd), request.timeout)
        )
        return pb.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    async def Exec(
        self, request_iterator: AsyncIterator[pb.ExecStreamRequest], context: Any
    ) -> AsyncIterator[pb.ExecStreamResponse]:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "start":
            yield pb.ExecStreamResponse(error="the first message of an exec must start it")
            return
        start = first.start
        try:
            session = await self.runtime.exec_session(
                start.container_id, list(start.cmd), tty=start.tty, stdin=start.stdin, stdout=start.stdout,
                stderr=start.stderr,
            )
        except RuntimeFailure as e:
            yield pb.ExecStreamResponse(error=str(e))
            return
        feeder = asyncio.ensure_future(_feed_exec(request_iterator, session))
        try:
            async for stream, data in session.output():
                yield pb.ExecStreamResponse(stdout=data) if stream == "stdout" else pb.ExecStreamResponse(stderr=data)
            yield pb.ExecStreamResponse(exit_code=await session.wait())
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            await session.close()

    async def PortForward(
        self, request_iterator: AsyncIterator[pb.PortForwardStreamRequest], context: Any
    ) -> AsyncIterator[pb.PortForwardStreamResponse]:
        first = await anext(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "start":
            yield pb.PortForwardStreamResponse(error="the first message of a port-forward must name the port")
            return
        try:
            reader, writer = await self.runtime.port_forward(first.start.pod_sandbox_id, first.start.port)
        except RuntimeFailure as e:
            yield pb.PortForwardStreamResponse(error=str(e))
            return
        feeder = asyncio.ensure_future(_feed_socket(request_iterator, writer))
        try:
            while data := await reader.read(64 * 1024):
                yield pb.PortForwardStreamResponse(data=data)
        except OSError as e:
            yield pb.PortForwardStreamResponse(error=f"port-forward: {e}")
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            writer.close()


async def _now(fn: Callable[[str], T], arg: str) -> T:
    """A synchronous lookup as an awaitable, so that `_call` maps its errors too."""
    return fn(arg)


async def _feed_exec(requests: AsyncIterator[pb.ExecStreamRequest], session: ExecSession) -> None:
    async for req in requests:
        kind = req.WhichOneof("payload")
        if kind == "stdin":
            await session.write(req.stdin)
        elif kind == "stdin_close":
            await session.close_stdin()
        elif kind == "resize":
            session.resize(req.resize.width, req.resize.height)


async def _feed_socket(requests: AsyncIterator[pb.PortForwardStreamRequest], writer: asyncio.StreamWriter) -> None:
    async for req in requests:
        kind = req.WhichOneof("payload")
        if kind == "data":
            writer.write(req.data)
            await writer.drain()
        elif kind == "close_write" and writer.can_write_eof():
            writer.write_eof()


async def _remove_image(images: ImageStoreLike, ref: str) -> None:
    with contextlib.suppress(ImageNotFound):
        await images.remove(ref)


def registry_auth(auth: pb.AuthConfig) -> RegistryAuth | None:
    """CRI AuthConfig as the store's credentials: user and password (or ``auth``, base64 user:password),
    or a token (registry_token, else identity_token)."""
    username, password = auth.username, auth.password
    if auth.auth and not username:
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            username, _, password = base64.b64decode(auth.auth).decode().partition(":")
    token = auth.registry_token or auth.identity_token
    if not (username or password or token):
        return None
    return RegistryAuth(username=username, password=password, token=token)


def _disk_usage(root: Path) -> tuple[int, int]:
    """(bytes, inodes) used under ``root``."""
    used = inodes = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                used += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
                inodes += 1
    return used, inodes


class ImageServicer(pb_grpc.ImageServiceServicer):
    def __init__(self, images: ImageStoreLike, images_dir: Path) -> None:
        self.images = images
        self.images_dir = images_dir

    async def ListImages(self, request: pb.ListImagesRequest, context: Any) -> pb.ListImagesResponse:
        wanted = request.filter.image.image
        records = self.images.list()
        if wanted:
            found = self.images.resolve(wanted)
            records = [r for r in records if found is not None and r.id == found.id]
        return pb.ListImagesResponse(images=[convert.image_to_pb(r) for r in records])

    async def ImageStatus(self, request: pb.ImageStatusRequest, context: Any) -> pb.ImageStatusResponse:
        """CRI: an image that is not present is an empty answer, not an error."""
        found = await _call(context, _now(self.images.resolve, request.image.image))
        return pb.ImageStatusResponse(image=convert.image_to_pb(found)) if found else pb.ImageStatusResponse()

    async def PullImage(self, request: pb.PullImageRequest, context: Any) -> AsyncIterator[pb.PullImageProgress]:
        queue: asyncio.Queue[PullProgress] = asyncio.Queue()
        pull = asyncio.ensure_future(
            self.images.pull(request.image.image, auth=registry_auth(request.auth), progress=queue.put_nowait)
        )
        try:
            while not pull.done() or not queue.empty():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait([getter, pull], return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    p = getter.result()
                    yield pb.PullImageProgress(status=p.status, layer=p.layer, current=p.current, total=p.total)
                else:
                    getter.cancel()
            try:
                record = pull.result()
            except Exception as e:
                await _abort(context, e)
            yield pb.PullImageProgress(status="Done", image_ref=record.id)
        finally:
            pull.cancel()

    async def RemoveImage(self, request: pb.RemoveImageRequest, context: Any) -> pb.RemoveImageResponse:
        """CRI: removing an image that is gone already succeeds."""
        await _call(context, _remove_image(self.images, request.image.image))
        return pb.RemoveImageResponse()

    async def ImageFsInfo(self, request: pb.ImageFsInfoRequest, context: Any) -> pb.ImageFsInfoResponse:
        used, inodes = await asyncio.to_thread(_disk_usage, self.images_dir)
        usage = pb.FilesystemUsage(
            timestamp=time.time_ns(),
            mountpoint=str(self.images_dir),
            used_bytes=pb.UInt64Value(value=used),
            inodes_used=pb.UInt64Value(value=inodes),
        )
        return pb.ImageFsInfoResponse(image_filesystems=[usage])
