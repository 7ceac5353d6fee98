"""Records of sandboxes and containers, persisted so that a restarted runtime adopts what is running.

Every sandbox and container has one folder under ``AgentPaths.containers`` named by its id; the record is
``sandbox.json`` or ``container.json`` in it (the container's folder is also its OCI bundle). Records are
written whole and atomically (write to a temporary file, then rename), so a crash leaves either the old
or the new record, never half of one.

A record is what the runtime decided; what happened since (a container exiting) is observed from the
shim's exit file and runc, and folded into the record by the runtime.

Records tolerate unknown keys when read (written by a newer runtime) and take defaults for missing ones.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

SandboxState = Literal["ready", "notready"]
# "creating" marks a container whose creation did not finish: a restarted runtime removes it.
ContainerState = Literal["creating", "created", "running", "exited"]

SANDBOX_FILE = "sandbox.json"
CONTAINER_FILE = "container.json"


@dataclass
class SandboxRecord:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int = 0
    created_at: int = 0  # unix ns
    state: SandboxState = "ready"
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    sysctls: dict[str, str] = field(default_factory=dict)
    # The pod network: set up (and so to be torn down) when network_ready.
    network_ready: bool = False
    netns_path: str = ""
    ip: str = ""
    ips: list[str] = field(default_factory=list)
    log_directory: str = ""
    # cgroupsPath under which its containers go, and where that is in each hierarchy.
    cgroup_parent: str = ""
    cgroup_dirs: dict[str, str] = field(default_factory=dict)
    # True when the runtime made the pod cgroup (and removes it); false when the kubelet passed its own.
    owns_cgroup: bool = True


@dataclass
class ContainerRecord:
    id: str
    sandbox_id: str
    name: str
    attempt: int = 0
    image: str = ""  # as the kubelet asked for it
    image_ref: str = ""  # the image id it resolved to
    stop_signal: str = ""  # the image's StopSignal ("" = SIGTERM)
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    state: ContainerState = "creating"
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    log_path: str = ""
    tty: bool = False
    pid: int = 0
    shim_pid: int = 0
    cgroup_dirs: dict[str, str] = field(default_factory=dict)
    # The process as the backend runs it: args, cwd, uid, gid, and for the process runtime env too (its
    # exec starts from them; runc's exec reads the bundle, so a runc record keeps env, maybe secrets, out).
    process: dict[str, Any] = field(default_factory=dict)


R = TypeVar("R", SandboxRecord, ContainerRecord)


def to_json(record: SandboxRecord | ContainerRecord) -> str:
    return json.dumps(dataclasses.asdict(record), indent=1, sort_keys=True)


def from_json(cls: type[R], text: str) -> R:
    data = json.loads(text)
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in known})


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class StateStore:
    """The records under one folder (``AgentPaths.containers``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def dir(self, id_: str) -> Path:
        return self.root / id_

    def save(self, record: SandboxRecord | ContainerRecord) -> None:
        d = self.dir(record.id)
        d.mkdir(parents=True, exist_ok=True)
        name = SANDBOX_FILE if isinstance(record, SandboxRecord) else CONTAINER_FILE
        write_atomic(d / name, to_json(record))

    def delete(self, record: SandboxRecord | ContainerRecord) -> None:
        """Forget a record (its folder's other files are the caller's to remove first)."""
        name = SANDBOX_FILE if isinstance(record, SandboxRecord) else CONTAINER_FILE
        (self.dir(record.id) / name).unlink(missing_ok=True)

    def load_sandboxes(self) -> list[SandboxRecord]:
        return self._load(SandboxRecord, SANDBOX_FILE)

    def load_containers(self) -> list[ContainerRecord]:
        return self._load(ContainerRecord, CONTAINER_FILE)

    def _load(self, cls: type[R], name: str) -> list[R]:
        out: list[R] = []
        for path in sorted(self.root.glob(f"*/{name}")):
            try:
                out.append(from_json(cls, path.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # a record we cannot read is left for an operator, not guessed at
        return out
