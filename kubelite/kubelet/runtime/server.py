"""Serve the runtime: `serve_runtime` runs the RuntimeService and ImageService of runtime.proto on the
unix socket ``AgentPaths.runtime_socket`` until ``stop`` is set.

Before it listens, the runtime adopts what an earlier run left (`manager.Runtime.start`), so the first
request already sees every sandbox and container. Stopping the server stops serving only: containers keep
running in their shims, to be adopted by the next run. The socket is made owner-only (0600), as it gives
root's powers to whoever can call it.

The process must run with ``GRPC_ENABLE_FORK_SUPPORT=0`` in its environment before grpc is first imported:
with gRPC's fork handlers on (the C core's default), a child that pyroute2 forks to make a network
namespace in a process with gRPC threads crashes (SIGSEGV) about one time in four. `serve_runtime` warns
when the variable is not set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from grpc import aio

from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.runtime.deps import ImageStoreLike, PodNetworkLike
from kubelite.kubelet.runtime.manager import Runtime, RuntimeOptions
from kubelite.kubelet.runtime.service import ImageServicer, RuntimeServicer
from kubelite.proto import runtime_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Finishing requests in flight when told to stop (an exec or port-forward stream is cut after this).
STOP_GRACE = 2.0


async def serve_runtime(
    paths: AgentPaths,
    *,
    runtime: str = "runc",
    images: ImageStoreLike,
    network: PodNetworkLike | None,
    stop: asyncio.Event,
    options: RuntimeOptions | None = None,
) -> None:
    """Serve until ``stop`` is set. ``runtime`` is ``"runc"`` or ``"process"`` (containers as plain host
    processes: no isolation, Version says ``kubelite-process``); ``network`` may be None when every pod
    uses the host's network (always so for the process runtime)."""
    if os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").lower() not in ("0", "false"):
        log.warning("GRPC_ENABLE_FORK_SUPPORT=0 is not set: namespaces made in this process may fail at random")
    rt = Runtime(paths, runtime=runtime, images=images, network=network, options=options)
    if runtime == "process":
        log.warning("the process runtime runs containers as plain host processes, WITHOUT ANY ISOLATION")
    await rt.start()
    server = aio.server()
    pb_grpc.add_RuntimeServiceServicer_to_server(RuntimeServicer(rt), server)  # type: ignore[no-untyped-call]
    pb_grpc.add_ImageServiceServicer_to_server(ImageServicer(images, paths.images), server)  # type: ignore[no-untyped-call]
    socket_path = paths.runtime_socket
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()  # left by a runtime that died
    server.add_insecure_port(f"unix://{socket_path}")
    await server.start()
    os.chmod(socket_path, 0o600)
    log.info("runtime %s serving on %s", rt.name, socket_path)
    try:
        await stop.wait()
    finally:
        await server.stop(STOP_GRACE)
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
