"""Manifests, indexes and image configurations: Docker's v2 schema 2 and the OCI image spec, read into
small descriptors, and the choice of one platform's manifest out of a manifest list or an OCI index.

Schema 1 manifests (deprecated since 2017, refused by Docker 25) are not supported.
"""

from __future__ import annotations

import json
import platform as host_platform
from dataclasses import dataclass, field
from typing import Any

from kubelite.kubelet.images.digest import parse_digest
from kubelite.kubelet.images.errors import InvalidImage, RegistryError
from kubelite.kubelet.images.model import ImageConfig

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# The Accept header of a manifest request: every kind this store can read.
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
# Manifests are small; a bigger answer is an error, not something to hold in memory (containerd's limit).
MAX_MANIFEST_SIZE = 4 << 20

# Python's machine names → GOARCH (and the variant, for ARM).
_MACHINES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""), "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"), "i386": ("386", ""),
    "i686": ("386", ""), "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to a blob: its media type, digest and size (plus the platform, in an index)."""

    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, *, what: str) -> Descriptor:
        if not isinstance(data, dict) or not isinstance(data.get("digest"), str):
            raise InvalidImage(f"{what}: a descriptor without a digest")
        parse_digest(data["digest"])
        size = data.get("size", 0)
        if not isinstance(size, int) or size < 0:
            raise InvalidImage(f"{what}: descriptor {data['digest']} has an invalid size")
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=data["digest"],
            size=size,
            platform=data.get("platform") or {},
            annotations=data.get("annotations") or {},
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """One platform's image: its configuration blob and its layers, lowest first."""

    media_type: str
    config: Descriptor
    layers: list[Descriptor]

    @property
    def size(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class ImageConfigBlob:
    """The parts of an image configuration blob the store uses."""

    config: ImageConfig
    diff_ids: list[str]
    os: str
    architecture: str
    variant: str = ""


@dataclass(frozen=True, slots=True)
class Platform:
    """``os/architecture[/variant]`` as Go spells them (linux/amd64, linux/arm/v7)."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @classmethod
    def host(cls) -> Platform:
        """linux/<this machine's architecture>."""
        arch, variant = _MACHINES.get(host_platform.machine().lower(), (host_platform.machine().lower(), ""))
        return cls("linux", arch, variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

    def compatible_variants(self) -> list[str]:
        """Variants this platform runs, best first ("" matches a descriptor that names none)."""
        if self.architecture == "arm":
            # An ARMv7 machine also runs v6 and v5 binaries (containerd's platforms matcher).
            order = ["v7", "v6", "v5"]
            return ["", *order[order.index(self.variant):]] if self.variant in order else [""]
        if self.architecture == "arm64":
            return ["", "v8"] if self.variant in ("", "v8") else ["", self.variant, "v8"]
        return ["", self.variant, "v1"] if self.variant else ["", "v1"]


def media_type_of(body: bytes, content_type: str) -> str:
    """The media type of a manifest: the Content-Type if it names a known one, else the document's
    ``mediaType``, else guessed from its shape (an OCI index or manifest may omit mediaType)."""
    declared = content_type.split(";")[0].strip()
    if declared in MANIFEST_TYPES or declared in INDEX_TYPES:
        return declared
    data = _load(body, "manifest")
    media_type = data.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    if "manifests" in data:
        return OCI_INDEX
    if "layers" in data:
        return OCI_MANIFEST
    return declared


def parse_manifest(body: bytes, media_type: str) -> Manifest:
    if media_type not in MANIFEST_TYPES:
        raise InvalidImage(f"unsupported manifest media type {media_type!r}")
    data = _load(body, "manifest")
    layers = data.get("layers")
    if not isinstance(layers, list):
        raise InvalidImage("manifest has no layers")
    return Manifest(
        media_type=media_type,
        config=Descriptor.from_json(data.get("config"), what="manifest config"),
        layers=[Descriptor.from_json(layer, what="manifest layer") for layer in layers],
    )


def parse_index(body: bytes) -> list[Descriptor]:
    data = _load(body, "index")
    manifests = data.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidImage("index has no manifests")
    return [Descriptor.from_json(m, what="index entry") for m in manifests]


def select_platform(entries: list[Descriptor], platform: Platform) -> Descriptor:
    """The manifest for ``platform`` out of an index, as containerd picks it: same OS and architecture, the
    best compatible variant. Entries without a platform are not images (attestations, artifacts)."""
    variants = platform.compatible_variants()
    best: tuple[int, Descriptor] | None = None
    for entry in entries:
        p = entry.platform
        if p.get("os") != platform.os or p.get("architecture") != platform.architecture:
            continue
        variant = str(p.get("variant", ""))
        # A variant equal to the machine's ranks first, then the order of compatible_variants.
        rank = -1 if variant and variant == platform.variant else (
            variants.index(variant) if variant in variants else None)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    if best is None:
        raise RegistryError(f"no matching manifest for {platform} in the manifest list entries")
    return best[1]


def parse_config(body: bytes) -> ImageConfigBlob:
    data = _load(body, "image configuration")
    rootfs = data.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids")
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise InvalidImage("image configuration has no rootfs.diff_ids")
    for diff_id in diff_ids:
        parse_digest(diff_id)
    config = data.get("config") or {}
    return ImageConfigBlob(
        config=ImageConfig.from_oci(config if isinstance(config, dict) else {}),
        diff_ids=list(diff_ids),
        os=str(data.get("os", "")),
        architecture=str(data.get("architecture", "")),
        variant=str(data.get("variant", "")),
    )


def _load(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidImage(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidImage(f"{what} is not a JSON object")
    if data.get("schemaVersion") == 1:
        raise InvalidImage(f"{what} uses Docker's schema 1, which is not supported: push the image again "
                           "with a current client")
    return data
