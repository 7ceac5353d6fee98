"""A fake `StreamingRuntime` for the kubelet's streaming server: containers and sandboxes as protobuf
records, exec as a local subprocess (``sh -c`` runs on the test machine), port-forward as a TCP connection
to a local port (``ports`` maps a pod port to a port on 127.0.0.1, e.g. an echo server's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubelite.kubelet.containerspec import CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL
from kubelite.proto import runtime_pb2 as pb


@dataclass
class FakeRuntime:
    logs_root: Path
    containers: dict[str, pb.Container] = field(default_factory=dict)
    statuses: dict[str, pb.ContainerStatus] = field(default_factory=dict)
    sandboxes: list[pb.PodSandbox] = field(default_factory=list)
    ports: dict[int, int] = field(default_factory=dict)
    execs: list[pb.ExecRequest] = field(default_factory=list)
    exec_requests: list[pb.ExecStreamRequest] = field(default_factory=list)
    exec_returncodes: list[int | None] = field(default_factory=list)  # as each exec ended (-9: killed)
    _clock: int = 1

    def add_sandbox(self, namespace: str, pod: str, uid: str) -> str:
        sandbox_id = f"sb-{pod}-{uid}"
        self.sandboxes.append(pb.PodSandbox(
            id=sandbox_id, state=pb.SANDBOX_READY, created_at=self._tick(),
            metadata=pb.PodSandboxMetadata(name=pod, namespace=namespace, uid=uid),
            labels={POD_NAMESPACE_LABEL: namespace, POD_NAME_LABEL: pod, POD_UID_LABEL: uid}))
        return sandbox_id

    def add_container(self, namespace: str, pod: str, uid: str, name: str, attempt: int = 0,
                      running: bool = True) -> Path:
        """Add a container attempt; returns its log path (the folder is created, the file is not)."""
        cid = f"c-{pod}-{name}-{attempt}-{uid}"
        log_path = self.logs_root / f"{namespace}_{pod}_{uid}" / name / f"{attempt}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        labels = {POD_NAMESPACE_LABEL: namespace, POD_NAME_LABEL: pod, POD_UID_LABEL: uid, CONTAINER_NAME_LABEL: name}
        state = pb.CONTAINER_RUNNING if running else pb.CONTAINER_EXITED
        meta = pb.ContainerMetadata(name=name, attempt=attempt)
        self.containers[cid] = pb.Container(id=cid, metadata=meta, state=state, created_at=self._tick(),
                                            labels=labels)
        self.statuses[cid] = pb.ContainerStatus(id=cid, metadata=meta, state=state, log_path=str(log_path),
                                                labels=labels)
        return log_path

    def stop(self, cid: str) -> None:
        self.containers[cid].state = pb.CONTAINER_EXITED
        self.statuses[cid].state = pb.CONTAINER_EXITED

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    # --- StreamingRuntime --------------------------------------------------------------------------

    async def list_containers(self, *, sandbox_id: str = "", labels: Mapping[str, str] | None = None,
                              state: pb.ContainerState | None = None) -> list[pb.Container]:
        return [c for c in self.containers.values()
                if all(c.labels.get(k) == v for k, v in (labels or {}).items())
                and (state is None or c.state == state)]

    async def container_status(self, container_id: str) -> pb.ContainerStatus:
        return self.statuses[container_id]

    async def list_pod_sandboxes(self, *, labels: Mapping[str, str] | None = None,
                                 state: pb.PodSandboxState | None = None) -> list[pb.PodSandbox]:
        return [s for s in self.sandboxes
                if all(s.labels.get(k) == v for k, v in (labels or {}).items())
                and (state is None or s.state == state)]

    async def exec_stream(self, requests: AsyncIterator[pb.ExecStreamRequest]
                          ) -> AsyncGenerator[pb.ExecStreamResponse, None]:
        first = await anext(requests)
        start = first.start
        self.execs.append(start)
        try:
            proc = await asyncio.create_subprocess_exec(
                *start.cmd, stdin=asyncio.subprocess.PIPE if start.stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, start_new_session=True,
                # A terminal has one output: stderr goes with stdout (no real TTY is made).
                stderr=asyncio.subprocess.STDOUT if start.tty else asyncio.subprocess.PIPE)
        except OSError as e:
            yield pb.ExecStreamResponse(error=f"exec failed: {e}")
            return
        queue: asyncio.Queue[pb.ExecStreamResponse | None] = asyncio.Queue()

        async def pump(stream: asyncio.StreamReader, stdout: bool) -> None:
            while data := await stream.read(4096):
                await queue.put(pb.ExecStreamResponse(stdout=data) if stdout else pb.ExecStreamResponse(stderr=data))
            await queue.put(None)

        async def feed() -> None:
            async for request in requests:
                self.exec_requests.append(request)
                kind = request.WhichOneof("payload")
                if kind == "stdin" and proc.stdin is not None:
                    proc.stdin.write(request.stdin)
                    await proc.stdin.drain()
                elif kind == "stdin_close" and proc.stdin is not None:
                    proc.stdin.close()

        assert proc.stdout is not None
        tasks = [asyncio.ensure_future(pump(proc.stdout, True)), asyncio.ensure_future(feed())]
        if proc.stderr is not None:
            tasks.append(asyncio.ensure_future(pump(proc.stderr, False)))
        try:
            open_streams = 2 if proc.stderr is not None else 1
            while open_streams:
                item = await queue.get()
                if item is None:
                    open_streams -= 1
                else:
                    yield item
            yield pb.ExecStreamResponse(exit_code=await proc.wait())
        finally:
            for task in tasks:
                task.cancel()
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                await proc.wait()
            self.exec_returncodes.append(proc.returncode)

    async def port_forward_stream(self, requests: AsyncIterator[pb.PortForwardStreamRequest]
                                  ) -> AsyncGenerator[pb.PortForwardStreamResponse, None]:
        first = await anext(requests)
        port = first.start.port
        if port not in self.ports:
            yield pb.PortForwardStreamResponse(error=f"connection refused on port {port}")
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", self.ports[port])

        async def feed() -> None:
            async for request in requests:
                kind = request.WhichOneof("payload")
                if kind == "data":
                    writer.write(request.data)
                    await writer.drain()
                elif kind == "close_write" and writer.can_write_eof():
                    writer.write_eof()

        feeder = asyncio.ensure_future(feed())
        try:
            while data := await reader.read(65536):
                yield pb.PortForwardStreamResponse(data=data)
        finally:
            feeder.cancel()
            writer.close()


async def echo_server() -> tuple[asyncio.Server, int]:
    """A TCP echo server on 127.0.0.1 (it closes a connection when the peer half-closes)."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])
