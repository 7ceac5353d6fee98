"""Builders of runtime states for the status and plan tests."""

from __future__ import annotations

from typing import Any

from kubelite.kubelet.containerspec import container_hash
from kubelite.kubelet.podstate import ContainerInfo, PodRuntimeState, SandboxInfo, State

Obj = dict[str, Any]
T0 = 1_700_000_000.0


def sandbox(sid: str = "sb1", *, ready: bool = True, at: float = T0, attempt: int = 0,
            ips: tuple[str, ...] = ("10.1.0.5",)) -> SandboxInfo:
    return SandboxInfo(sid, ready, at, attempt, ips)


def running(name: str, cid: str, *, at: float = T0 + 1, restarts: int = 0, sandbox_id: str = "sb1",
            spec: Obj | None = None) -> ContainerInfo:
    return ContainerInfo(cid, name, sandbox_id, State.RUNNING, created_at=at, started_at=at + 0.1,
                         image="busybox", image_ref="sha256:abc", restart_count=restarts,
                         hash=container_hash(spec) if spec else "")


def exited(name: str, cid: str, code: int, *, at: float = T0 + 1, restarts: int = 0, sandbox_id: str = "sb1",
           reason: str = "", message: str = "") -> ContainerInfo:
    return ContainerInfo(cid, name, sandbox_id, State.EXITED, created_at=at, started_at=at + 0.1,
                         finished_at=at + 5, exit_code=code, reason=reason, message=message, image="busybox",
                         image_ref="sha256:abc", restart_count=restarts)


def created(name: str, cid: str, *, at: float = T0 + 1, sandbox_id: str = "sb1") -> ContainerInfo:
    return ContainerInfo(cid, name, sandbox_id, State.CREATED, created_at=at)


def state(*containers: ContainerInfo, sandboxes: tuple[SandboxInfo, ...] = (sandbox(),)) -> PodRuntimeState:
    return PodRuntimeState.of(list(sandboxes), list(containers))


def pod(*containers: Obj, inits: tuple[Obj, ...] = (), policy: str = "Always", status: Obj | None = None,
        deleting: bool = False, **spec: Any) -> Obj:
    obj: Obj = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
                "spec": {"restartPolicy": policy, "containers": list(containers) or [{"name": "app",
                                                                                      "image": "busybox"}],
                         **spec}}
    if inits:
        obj["spec"]["initContainers"] = list(inits)
    if status is not None:
        obj["status"] = status
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return obj
