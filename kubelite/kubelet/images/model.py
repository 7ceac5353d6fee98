"""The values the image store hands out: image records, their run-time configuration, pull progress and
registry credentials. Plain dataclasses, serialisable to the JSON of the store's index."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ImageConfig:
    """What an image says about running it (the ``config`` object of the OCI image configuration)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    # "80/tcp"-style keys of ExposedPorts, sorted.
    exposed_ports: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""

    @classmethod
    def from_oci(cls, config: dict[str, Any]) -> ImageConfig:
        """Read the ``config`` member of an image configuration (null members are empty)."""

        def strings(key: str) -> list[str]:
            value = config.get(key) or []
            return [str(v) for v in value] if isinstance(value, list) else []

        labels = config.get("Labels") or {}
        ports = config.get("ExposedPorts") or {}
        return cls(
            entrypoint=strings("Entrypoint"),
            cmd=strings("Cmd"),
            env=strings("Env"),
            working_dir=str(config.get("WorkingDir") or ""),
            user=str(config.get("User") or ""),
            exposed_ports=sorted(str(p) for p in ports) if isinstance(ports, dict) else [],
            labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
            stop_signal=str(config.get("StopSignal") or ""),
        )


@dataclass
class ImageRecord:
    """One image in the store.

    ``id`` is ``sha256:<hex of the configuration blob's digest>`` (as Docker and containerd name images);
    ``repo_tags`` are normalised references (``docker.io/library/busybox:latest``); ``repo_digests`` are
    ``name@digest`` of the manifest (or index) pulled; ``size`` is the sum of the blobs' sizes as the
    manifest states them (compressed layers + configuration), which is what CRI reports.
    ``diff_ids`` are the uncompressed layer digests, lowest layer first; ``manifest_digest`` is the
    platform manifest's digest ("" for a ``docker save`` import, which has none).
    """

    id: str
    repo_tags: list[str]
    repo_digests: list[str]
    size: int
    config: ImageConfig
    diff_ids: list[str] = field(default_factory=list)
    manifest_digest: str = ""
    os: str = "linux"
    architecture: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageRecord:
        values = dict(data)
        values["config"] = ImageConfig(**values.get("config", {}))
        return cls(**values)


@dataclass
class PullProgress:
    """One step of a pull or an import, for progress bars and logs.

    ``status`` is one of Docker's words: ``Resolving``, ``Pulling fs layer``, ``Already exists``,
    ``Resuming``, ``Downloading``, ``Download complete``, ``Reading`` (a tarball), ``Extracting``,
    ``Pull complete``, ``Done``. ``layer`` is the blob digest the step is about (the reference for
    ``Resolving``/``Done``, the tarball for ``Reading``); ``current``/``total`` are bytes (0 when unknown).
    """

    status: str
    layer: str
    current: int = 0
    total: int = 0


@dataclass
class RegistryAuth:
    """Credentials for one registry: a user name and password (basic auth, also sent to a token server),
    or ``token``, a bearer token used as is (a dockerconfigjson ``registrytoken``)."""

    username: str = ""
    password: str = ""
    token: str = ""

    def __repr__(self) -> str:  # never print a secret in a log or a traceback
        return f"RegistryAuth(username={self.username!r}, password=***, token=***)"
