"""A typed asyncio client of the runtime's gRPC services (kubelite/proto/runtime.proto) on its unix socket.

The kubelet reaches its runtime only through this class. Each method is one RPC with the runtime request
timeout; requests and results are the generated protobuf messages, so that nothing is copied on the way.

Errors: a failed RPC raises `RuntimeServiceError` carrying the gRPC status code and the runtime's message
(what the user sees in a pod's events and status, e.g. the registry's reason for a failed pull);
`NotFoundError` for ``NOT_FOUND`` (a sandbox, container or image that is gone) and `UnavailableError` when
the runtime cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc
from grpc import aio

from kubelite.proto import runtime_pb2 as pb
from kubelite.proto import runtime_pb2_grpc as pb_grpc

# The API version the kubelet asks Version for (CRI's kubeRuntimeAPIVersion).
RUNTIME_API_VERSION = "0.1.0"


class RuntimeServiceError(Exception):
    """A failed runtime RPC: ``code`` is the gRPC status, ``message`` the runtime's own words."""

    def __init__(self, method: str, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message or f"{method}: {code.name}")
        self.method = method
        self.code = code
        self.message = message or code.name


class NotFoundError(RuntimeServiceError):
    pass


class UnavailableError(RuntimeServiceError):
    pass


def _error(method: str, e: aio.AioRpcError) -> RuntimeServiceError:
    code = e.code()
    message = e.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFoundError(method, code, message)
    if code == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(method, code, message)
    return RuntimeServiceError(method, code, message)


T = TypeVar("T")
PullCallback = Callable[[pb.PullImageProgress], None]


class RuntimeClient:
    """One channel to the runtime; use as an async context manager (or `connect`/`close`)."""

    def __init__(self, socket_path: Path | str, *, timeout: float = 120.0) -> None:
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._channel: aio.Channel | None = None
        self._runtime: pb_grpc.RuntimeServiceStub | None = None
        self._images: pb_grpc.ImageServiceStub | None = None

    def connect(self) -> None:
        if self._channel is None:
            self._channel = aio.insecure_channel(f"unix://{self.socket_path}")
            self._runtime = pb_grpc.RuntimeServiceStub(self._channel)  # type: ignore[no-untyped-call]
            self._images = pb_grpc.ImageServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        self._runtime = self._images = None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> RuntimeClient:
        self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def runtime(self) -> pb_grpc.RuntimeServiceStub:
        if self._runtime is None:
            raise RuntimeError("RuntimeClient is not connected")
        return self._runtime

    @property
    def images(self) -> pb_grpc.ImageServiceStub:
        if self._images is None:
            raise RuntimeError("RuntimeClient is not connected")
        return self._images

    async def _call(self, method: str, stub_method: Any, request: Any, response: type[T],
                    timeout: float | None = None) -> T:
        try:
            result = await stub_method(request, timeout=timeout or self.timeout)
        except aio.AioRpcError as e:
            raise _error(method, e) from None
        if not isinstance(result, response):
            raise RuntimeServiceError(method, grpc.StatusCode.INTERNAL, f"{method} answered {type(result).__name__}")
        return result

    # --- version -----------------------------------------------------------------------------------

    async def version(self) -> pb.VersionResponse:
        return await self._call("Version", self.runtime.Version, pb.VersionRequest(version=RUNTIME_API_VERSION),
                                pb.VersionResponse)

    # --- sandboxes ---------------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "") -> str:
        request = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        resp = await self._call("RunPodSandbox", self.runtime.RunPodSandbox, request, pb.RunPodSandboxResponse)
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call("StopPodSandbox", self.runtime.StopPodSandbox,
                         pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), pb.StopPodSandboxResponse)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self._call("RemovePodSandbox", self.runtime.RemovePodSandbox,
                         pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id), pb.RemovePodSandboxResponse)

    async def pod_sandbox_status(self, sandbox_id: str) -> pb.PodSandboxStatus:
        resp = await self._call("PodSandboxStatus", self.runtime.PodSandboxStatus,
                                pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), pb.PodSandboxStatusResponse)
        return resp.status

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]:
        flt = pb.PodSandboxFilter(label_selector=dict(labels or {}))
        if state is not None:
            flt.state = state
            flt.has_state = True
        resp = await self._call("ListPodSandbox", self.runtime.ListPodSandbox, pb.ListPodSandboxRequest(filter=flt),
                                pb.ListPodSandboxResponse)
        return list(resp.items)

    # --- containers --------------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: pb.ContainerConfig,
                               sandbox_config: pb.PodSandboxConfig) -> str:
        request = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        resp = await self._call("CreateContainer", self.runtime.CreateContainer, request, pb.CreateContainerResponse)
        return resp.container_id

    async def start_container(self, container_id: str) -> None:
        await self._call("StartContainer", self.runtime.StartContainer,
                         pb.StartContainerRequest(container_id=container_id), pb.StartContainerResponse)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the RPC itself may take that long."""
        await self._call("StopContainer", self.runtime.StopContainer,
                         pb.StopContainerRequest(container_id=container_id, timeout=timeout),
                         pb.StopContainerResponse, timeout=self.timeout + timeout)

    async def remove_container(self, container_id: str) -> None:
        await self._call("RemoveContainer", self.runtime.RemoveContainer,
                         pb.RemoveContainerRequest(container_id=container_id), pb.RemoveContainerResponse)

    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]:
        flt = pb.ContainerFilter(pod_sandbox_id=sandbox_id, label_selector=dict(labels or {}))
        if state is not None:
            flt.state = state
            flt.has_state = True
        resp = await self._call("ListContainers", self.runtime.ListContainers, pb.ListContainersRequest(filter=flt),
                                pb.ListContainersResponse)
        return list(resp.containers)

    async def container_status(self, container_id: str) -> pb.ContainerStatus:
        resp = await self._call("ContainerStatus", self.runtime.ContainerStatus,
                                pb.ContainerStatusRequest(container_id=container_id), pb.ContainerStatusResponse)
        return resp.status

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int = 0) -> pb.ExecSyncResponse:
        """Run ``cmd`` in the container to completion; ``timeout`` seconds (0 = none) bounds the command."""
        return await self._call("ExecSync", self.runtime.ExecSync,
                                pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout),
                                pb.ExecSyncResponse, timeout=self.timeout + timeout if timeout else None)

    # --- images ------------------------------------------------------------------------------------

    async def image_status(self, image: str) -> pb.Image | None:
        """The image, or None when the runtime does not have it."""
        try:
            resp = await self._call("ImageStatus", self.images.ImageStatus,
                                    pb.ImageStatusRequest(image=pb.ImageSpec(image=image)), pb.ImageStatusResponse)
        except NotFoundError:
            return None
        return resp.image if resp.HasField("image") and resp.image.id else None

    async def list_images(self) -> list[pb.Image]:
        resp = await self._call("ListImages", self.images.ListImages, pb.ListImagesRequest(), pb.ListImagesResponse)
        return list(resp.images)

    async def pull_image(self, image: str, *, auth: pb.AuthConfig | None = None,
                         sandbox_config: pb.PodSandboxConfig | None = None,
                         progress: PullCallback | None = None) -> str:
        """Pull ``image``; returns the image reference (id) of the last progress message.

        A pull has no deadline: large images take as long as they take, and the runtime de-duplicates
        concurrent pulls of one image."""
        request = pb.PullImageRequest(image=pb.ImageSpec(image=image))
        if auth is not None:
            request.auth.CopyFrom(auth)
        if sandbox_config is not None:
            request.sandbox_config.CopyFrom(sandbox_config)
        image_ref = ""
        try:
            async for message in self.images.PullImage(request):
                if progress is not None:
                    progress(message)
                if message.image_ref:
                    image_ref = message.image_ref
        except aio.AioRpcError as e:
            raise _error("PullImage", e) from None
        if not image_ref:
            raise RuntimeServiceError("PullImage", grpc.StatusCode.UNKNOWN,
                                      f"the runtime finished pulling {image} without naming the image")
        return image_ref

    async def remove_image(self, image: str) -> None:
        await self._call("RemoveImage", self.images.RemoveImage,
                         pb.RemoveImageRequest(image=pb.ImageSpec(image=image)), pb.RemoveImageResponse)

    async def image_fs_info(self) -> list[pb.FilesystemUsage]:
        resp = await self._call("ImageFsInfo", self.images.ImageFsInfo, pb.ImageFsInfoRequest(),
                                pb.ImageFsInfoResponse)
        return list(resp.image_filesystems)
