"""What the runtime says about one pod: its sandboxes and containers (kubecontainer.PodStatus).

Plain frozen records built from the runtime's messages, so that planning and status computation are pure
functions of them. Lists are newest first, as the kubelet sorts them: the first container of a name is its
current instance, the second its previous one (``lastState``). Times are seconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from kubelite.kubelet import containerspec as cs
from kubelite.proto import runtime_pb2 as pb


class State(Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


_STATES = {pb.CONTAINER_CREATED: State.CREATED, pb.CONTAINER_RUNNING: State.RUNNING,
           pb.CONTAINER_EXITED: State.EXITED, pb.CONTAINER_UNKNOWN: State.UNKNOWN}


def _seconds(nanos: int) -> float | None:
    return nanos / 1e9 if nanos > 0 else None


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    sandbox_id: str
    state: State
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    restart_count: int = 0
    hash: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    # container path -> host path, to find the termination message file.
    mounts: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state is State.RUNNING

    @property
    def exited(self) -> bool:
        return self.state is State.EXITED

    @classmethod
    def from_status(cls, status: pb.ContainerStatus, sandbox_id: str, message: str = "") -> ContainerInfo:
        annotations = dict(status.annotations)
        try:
            restarts = int(annotations.get(cs.RESTART_COUNT_ANNOTATION, "") or status.metadata.attempt)
        except ValueError:
            restarts = int(status.metadata.attempt)
        return cls(
            id=status.id, name=status.metadata.name or status.labels.get(cs.CONTAINER_NAME_LABEL, ""),
            sandbox_id=sandbox_id, state=_STATES.get(status.state, State.UNKNOWN),
            created_at=_seconds(status.created_at) or 0.0, started_at=_seconds(status.started_at),
            finished_at=_seconds(status.finished_at), exit_code=status.exit_code, reason=status.reason,
            message=message or status.message, image=status.image.image, image_ref=status.image_ref,
            restart_count=restarts, hash=annotations.get(cs.CONTAINER_HASH_ANNOTATION, ""),
            annotations=annotations, mounts={m.container_path: m.host_path for m in status.mounts},
        )


@dataclass(frozen=True)
class SandboxInfo:
    id: str
    ready: bool
    created_at: float
    attempt: int = 0
    ips: tuple[str, ...] = ()

    @classmethod
    def from_status(cls, status: pb.PodSandboxStatus) -> SandboxInfo:
        ips = tuple(ip for ip in [status.network.ip, *(a.ip for a in status.network.additional_ips)] if ip)
        return cls(id=status.id, ready=status.state == pb.SANDBOX_READY, created_at=_seconds(status.created_at) or 0.0,
                   attempt=status.metadata.attempt, ips=ips)


@dataclass(frozen=True)
class PodRuntimeState:
    sandboxes: tuple[SandboxInfo, ...] = ()
    containers: tuple[ContainerInfo, ...] = ()

    @classmethod
    def of(cls, sandboxes: list[SandboxInfo], containers: list[ContainerInfo]) -> PodRuntimeState:
        return cls(tuple(sorted(sandboxes, key=lambda s: s.created_at, reverse=True)),
                   tuple(sorted(containers, key=lambda c: c.created_at, reverse=True)))

    @property
    def sandbox(self) -> SandboxInfo | None:
        """The newest sandbox."""
        return self.sandboxes[0] if self.sandboxes else None

    def latest(self, name: str) -> ContainerInfo | None:
        for c in self.containers:
            if c.name == name:
                return c
        return None

    def instances(self, name: str) -> list[ContainerInfo]:
        return [c for c in self.containers if c.name == name]

    def running(self) -> list[ContainerInfo]:
        return [c for c in self.containers if c.running]

    @property
    def ips(self) -> tuple[str, ...]:
        """The pod's IPs: those of the newest sandbox while it is ready."""
        sandbox = self.sandbox
        return sandbox.ips if sandbox is not None and sandbox.ready else ()
