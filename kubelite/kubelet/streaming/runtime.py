"""What the kubelet's streaming server needs from the container runtime, and how it finds containers.

`StreamingRuntime` is the plug-in point: four calls that `kubelite.kubelet.runtime_client.RuntimeClient`
already has with these exact signatures (list containers and sandboxes by label, a container's status) and
the two bidirectional streams of ``proto/runtime.proto`` (Exec, PortForward) as async iterators of its
messages. `GrpcStreamingRuntime` adapts a connected `RuntimeClient`; tests plug in a fake.

Lookup: containers and sandboxes carry the kubelet's labels (``io.kubernetes.pod.{namespace,name,uid}``,
``io.kubernetes.container.name``). A name may have been used by an earlier pod that is not cleaned up yet,
so the pod (uid) of the newest container wins; within it the highest attempt is the current container and
the next lower one the previous. The previous attempt's log is found on disk when the runtime has already
removed that container.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from grpc import aio

from kubelite.kubelet.containerspec import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
)
from kubelite.kubelet.runtime_client import RuntimeClient
from kubelite.proto import runtime_pb2 as pb

_ATTEMPT_LOG = re.compile(r"^(\d+)\.log$")


class StreamError(Exception):
    """The runtime failed a stream (it could not be started, or broke); the message is for the user."""


class StreamingRuntime(Protocol):
    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]: ...

    async def container_status(self, container_id: str) -> pb.ContainerStatus: ...

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]: ...

    def exec_stream(self, requests: AsyncIterator[pb.ExecStreamRequest]
                    ) -> AsyncGenerator[pb.ExecStreamResponse, None]:
        """RuntimeService.Exec: the first request carries `ExecRequest`; the responses end with ``exit_code``
        or ``error``. Closing the returned iterator (``aclose``) ends the exec. Raises `StreamError`."""
        ...

    def port_forward_stream(self, requests: AsyncIterator[pb.PortForwardStreamRequest]
                            ) -> AsyncGenerator[pb.PortForwardStreamResponse, None]:
        """RuntimeService.PortForward: the first request carries `PortForwardStart`; the responses end when
        the connection in the pod is done. Closing the returned iterator drops it. Raises `StreamError`."""
        ...


class GrpcStreamingRuntime:
    """`StreamingRuntime` over a connected `RuntimeClient` (the kubelet's channel to its runtime)."""

    def __init__(self, client: RuntimeClient) -> None:
        self.client = client

    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]:
        return await self.client.list_containers(sandbox_id=sandbox_id, labels=labels, state=state)

    async def container_status(self, container_id: str) -> pb.ContainerStatus:
        return await self.client.container_status(container_id)

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]:
        return await self.client.list_pod_sandboxes(labels=labels, state=state)

    async def exec_stream(self, requests: AsyncIterator[pb.ExecStreamRequest]
                          ) -> AsyncGenerator[pb.ExecStreamResponse, None]:
        call = self.client.runtime.Exec(requests)
        try:
            async for response in call:
                yield response
        except aio.AioRpcError as e:
            raise StreamError(e.details() or e.code().name) from None
        finally:
            call.cancel()

    async def port_forward_stream(self, requests: AsyncIterator[pb.PortForwardStreamRequest]
                                  ) -> AsyncGenerator[pb.PortForwardStreamResponse, None]:
        call = self.client.runtime.PortForward(requests)
        try:
            async for response in call:
                yield response
        except aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise StreamError(e.details() or e.code().name) from None
        finally:
            call.cancel()


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """One attempt of a container: ``id`` is empty when only its log is left on disk."""

    id: str
    attempt: int
    running: bool
    log_path: Path


@dataclass(frozen=True, slots=True)
class ContainerLookup:
    current: ContainerRef | None
    previous: ContainerRef | None


async def find_container(runtime: StreamingRuntime, namespace: str, pod: str, container: str) -> ContainerLookup:
    """The current and previous attempts of ``container`` of the pod ``namespace/pod`` (module doc)."""
    found = await runtime.list_containers(labels={POD_NAMESPACE_LABEL: namespace, POD_NAME_LABEL: pod,
                                                  CONTAINER_NAME_LABEL: container})
    if not found:
        return ContainerLookup(None, None)
    newest = max(found, key=lambda c: c.created_at)
    uid = newest.labels.get(POD_UID_LABEL, "")
    mine = sorted((c for c in found if c.labels.get(POD_UID_LABEL, "") == uid),
                  key=lambda c: (c.metadata.attempt, c.created_at), reverse=True)
    current = await _ref(runtime, mine[0])
    if len(mine) > 1:
        return ContainerLookup(current, await _ref(runtime, mine[1]))
    return ContainerLookup(current, _previous_on_disk(current))


async def _ref(runtime: StreamingRuntime, c: pb.Container) -> ContainerRef:
    status = await runtime.container_status(c.id)
    return ContainerRef(c.id, c.metadata.attempt, c.state == pb.CONTAINER_RUNNING, Path(status.log_path))


def _previous_on_disk(current: ContainerRef) -> ContainerRef | None:
    """The newest ``<attempt>.log`` below the current attempt beside the current log, if any."""
    folder = current.log_path.parent
    try:
        attempts = [int(m.group(1)) for p in folder.iterdir() if (m := _ATTEMPT_LOG.match(p.name))]
    except OSError:
        return None
    older = [a for a in attempts if a < current.attempt]
    if not older:
        return None
    attempt = max(older)
    return ContainerRef("", attempt, False, folder / f"{attempt}.log")


async def find_sandbox(runtime: StreamingRuntime, namespace: str, pod: str) -> str | None:
    """The id of the pod's ready sandbox (the newest, should an old one linger), or None."""
    found = await runtime.list_pod_sandboxes(labels={POD_NAMESPACE_LABEL: namespace, POD_NAME_LABEL: pod},
                                             state=pb.SANDBOX_READY)
    if not found:
        return None
    return max(found, key=lambda s: s.created_at).id
