"""Importing image tarballs: OCI image layouts (``oci-layout`` + ``index.json`` + ``blobs/``, as written by
``docker save`` since Docker 25, skopeo, buildkit) and the classic ``docker save`` format (``manifest.json``
+ ``repositories``, a ``<id>/layer.tar`` per layer). The tarball may itself be gzip- or zstd-compressed.

The tarball is read once, as a stream: every blob goes into the content store (OCI blobs verified against
the digest their path names), the small metadata files are kept in memory. Then each image is assembled
from the store: manifests and configurations parsed, layers unpacked (diff IDs verified); the layer tarballs
are dropped by the store once the images are indexed. Synchronous: the store runs it in a thread.

Names: an OCI layout's images are named by the ``io.containerd.image.name`` annotation, else by
``org.opencontainers.image.ref.name`` when that is a full reference (a bare tag names nothing, as
containerd treats it without ``--base-name``); a ``docker save`` image by its ``RepoTags``. Names are
normalised (``busybox:latest`` → ``docker.io/library/busybox:latest``).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelite.kubelet.images.content import ContentStore
from kubelite.kubelet.images.errors import InvalidImage, InvalidReference
from kubelite.kubelet.images.layers import LayerStore
from kubelite.kubelet.images.manifest import (
    INDEX_TYPES,
    Descriptor,
    Platform,
    media_type_of,
    parse_config,
    parse_index,
    parse_manifest,
    select_platform,
)
from kubelite.kubelet.images.model import ImageRecord, PullProgress
from kubelite.kubelet.images.reference import parse_reference
from kubelite.kubelet.images.unpack import open_decompressed

_METADATA = {"index.json", "oci-layout", "manifest.json", "repositories"}
_MAX_METADATA = 16 << 20
_OCI_BLOB = re.compile(r"blobs/(sha256|sha512)/([a-f0-9]+)")
_CONTAINERD_NAME = "io.containerd.image.name"
_OCI_REF_NAME = "org.opencontainers.image.ref.name"

Emit = Callable[[PullProgress], None]


@dataclass
class ImportedImage:
    record: ImageRecord
    content: list[str]
    layer_sizes: dict[str, int] = field(default_factory=dict)


@dataclass
class ImportResult:
    images: list[ImportedImage]
    # Every blob the tarball brought. Those no image keeps (the layer tarballs, once unpacked; other
    # platforms' manifests) are for the caller to delete once the images are indexed.
    ingested: set[str]


def import_tarball(path: Path, content: ContentStore, layers: LayerStore, *, platform: Platform,
                   emit: Emit) -> ImportResult:
    """Read ``path`` into the stores; return the images it holds (not yet in the index)."""
    archive = _read_archive(path, content, emit)
    images: list[ImportedImage] = []
    if "index.json" in archive.files:
        images = _oci_images(archive, content, layers, platform, emit)
    if "manifest.json" in archive.files:
        docker = _docker_images(archive, content, layers, emit)
        if images:
            # Docker 25+ writes both: the OCI index, and manifest.json with the RepoTags.
            tags = {d.record.id: d.record.repo_tags for d in docker}
            for image in images:
                image.record.repo_tags = _unique(image.record.repo_tags + tags.get(image.record.id, []))
        else:
            images = docker
    elif "index.json" not in archive.files:
        raise InvalidImage(f"{path} is neither an OCI image layout nor a docker save tarball "
                           "(it has no index.json and no manifest.json)")
    return ImportResult(images=images, ingested=set(archive.blobs.values()))


# -- reading the archive -------------------------------------------------------------------------------------


@dataclass
class _Archive:
    files: dict[str, bytes] = field(default_factory=dict)
    # Archive path -> digest of the blob stored for it.
    blobs: dict[str, str] = field(default_factory=dict)
    # Archive path -> archive path it is a symbolic link to (docker save links repeated layers).
    links: dict[str, str] = field(default_factory=dict)

    def digest_of(self, name: str) -> str:
        name = posixpath.normpath(name).lstrip("/")
        for _ in range(10):
            if name in self.blobs:
                return self.blobs[name]
            if name not in self.links:
                break
            name = self.links[name]
        raise InvalidImage(f"the tarball has no file {name!r}")


class _CountingReader:
    """Reports how far into the (compressed) tarball file the import has read."""

    def __init__(self, raw: io.BufferedReader, total: int, emit: Emit, label: str) -> None:
        self._raw, self.total, self._emit, self._label = raw, total, emit, label
        self._read = self._reported = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._read += len(data)
        if self._read - self._reported >= (1 << 20) or not data:
            self._reported = self._read
            self._emit(PullProgress("Reading", self._label, self._read, self.total))
        return data

    def peek(self, size: int = 0) -> bytes:
        return self._raw.peek(size)


def _read_archive(path: Path, content: ContentStore, emit: Emit) -> _Archive:
    archive = _Archive()
    try:
        with open(path, "rb") as raw:
            counting = _CountingReader(raw, os.fstat(raw.fileno()).st_size, emit, str(path))
            stream = open_decompressed(counting)
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _read_member(tar, member, archive, content)
            # tarfile stops at the end-of-archive marker, before the padding: report the whole file read.
            emit(PullProgress("Reading", str(path), counting.total, counting.total))
    except (tarfile.TarError, EOFError) as e:
        raise InvalidImage(f"{path} is not a readable tar archive: {e}") from None
    return archive


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: _Archive, content: ContentStore) -> None:
    name = posixpath.normpath(member.name).lstrip("/")
    if member.issym():
        archive.links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        return
    if not member.isreg():
        return
    source = tar.extractfile(member)
    if source is None:
        return
    if name in _METADATA:
        if member.size > _MAX_METADATA:
            raise InvalidImage(f"{name} in the tarball is too large ({member.size} bytes)")
        archive.files[name] = source.read()
        return
    if posixpath.basename(name) in ("json", "VERSION"):
        return  # docker save's legacy per-layer metadata, which nothing reads any more
    match = _OCI_BLOB.fullmatch(name)
    if match:
        digest = f"{match.group(1)}:{match.group(2)}"
        if not content.exists(digest):
            content.ingest_stream(source, expected=digest)
    else:
        digest, _size = content.ingest_stream(source)
    archive.blobs[name] = digest


# -- OCI image layouts ---------------------------------------------------------------------------------------


def _oci_images(archive: _Archive, content: ContentStore, layers: LayerStore, platform: Platform,
                emit: Emit) -> list[ImportedImage]:
    layout = _json(archive.files.get("oci-layout", b"{}"), "oci-layout")
    if layout.get("imageLayoutVersion", "1.0.0") != "1.0.0":
        raise InvalidImage(f"unsupported OCI layout version {layout.get('imageLayoutVersion')!r}")
    images: dict[str, ImportedImage] = {}
    for entry in parse_index(archive.files["index.json"]):
        if entry.platform and (entry.platform.get("os"), entry.platform.get("architecture")) != (
                platform.os, platform.architecture):
            continue  # another platform's image, named directly in index.json
        names = _names(entry)
        chosen, kept = entry, []
        if entry.media_type in INDEX_TYPES:
            chosen = select_platform(parse_index(content.read(entry.digest)), platform)
            kept.append(entry.digest)
        image = _assemble(content, layers, chosen, emit)
        image.content = kept + image.content
        image.record.repo_tags = names
        image.record.repo_digests = _unique(f"{parse_reference(n).name}@{entry.digest}" for n in names)
        _merge(images, image)
    return list(images.values())


def _names(entry: Descriptor) -> list[str]:
    for key in (_CONTAINERD_NAME, _OCI_REF_NAME):
        name = entry.annotations.get(key, "")
        if key == _OCI_REF_NAME and not any(c in name for c in "/:@"):
            continue  # a bare tag: no repository to put it in
        if name:
            try:
                ref = parse_reference(name)
            except InvalidReference:
                continue
            return [ref.tagged] if ref.tagged else []
    return []


def _assemble(content: ContentStore, layers: LayerStore, descriptor: Descriptor, emit: Emit) -> ImportedImage:
    body = content.read(descriptor.digest)
    manifest = parse_manifest(body, descriptor.media_type or media_type_of(body, ""))
    config = parse_config(content.read(manifest.config.digest))
    if len(config.diff_ids) != len(manifest.layers):
        raise InvalidImage(f"manifest {descriptor.digest} has {len(manifest.layers)} layers, its configuration "
                           f"{len(config.diff_ids)} diff IDs")
    sizes = _unpack_layers(content, layers, [(d.digest, d.size) for d in manifest.layers], config.diff_ids, emit)
    record = ImageRecord(
        id=manifest.config.digest, repo_tags=[], repo_digests=[], size=manifest.size, config=config.config,
        diff_ids=config.diff_ids, manifest_digest=descriptor.digest, os=config.os,
        architecture=config.architecture,
    )
    return ImportedImage(record=record, content=[descriptor.digest, manifest.config.digest], layer_sizes=sizes)


# -- docker save ---------------------------------------------------------------------------------------------


def _docker_images(archive: _Archive, content: ContentStore, layers: LayerStore,
                   emit: Emit) -> list[ImportedImage]:
    entries = _json_list(archive.files["manifest.json"], "manifest.json")
    images: dict[str, ImportedImage] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidImage("manifest.json: an entry without Config")
        config_digest = archive.digest_of(entry["Config"])
        config = parse_config(content.read(config_digest))
        layer_paths = entry.get("Layers") or []
        if len(layer_paths) != len(config.diff_ids):
            raise InvalidImage(f"manifest.json: {entry['Config']} has {len(layer_paths)} layers and "
                               f"{len(config.diff_ids)} diff IDs")
        blobs = [(digest, content.size(digest)) for digest in map(archive.digest_of, layer_paths)]
        sizes = _unpack_layers(content, layers, blobs, config.diff_ids, emit)
        tags = []
        for tag in entry.get("RepoTags") or []:
            try:
                tags.append(parse_reference(str(tag)).tagged)
            except InvalidReference as e:
                raise InvalidImage(f"manifest.json: {e}") from None
        record = ImageRecord(
            id=config_digest, repo_tags=[t for t in tags if t], repo_digests=[],
            size=content.size(config_digest) + sum(size for _, size in blobs), config=config.config,
            diff_ids=config.diff_ids, os=config.os, architecture=config.architecture,
        )
        _merge(images, ImportedImage(record=record, content=[config_digest], layer_sizes=sizes))
    return list(images.values())


# -- shared --------------------------------------------------------------------------------------------------


def _unpack_layers(content: ContentStore, layers: LayerStore, blobs: list[tuple[str, int]],
                   diff_ids: list[str], emit: Emit) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for (digest, size), diff_id in zip(blobs, diff_ids, strict=True):
        if layers.exists(diff_id):
            emit(PullProgress("Already exists", digest, size, size))
            continue
        if not content.exists(digest):
            raise InvalidImage(f"layer {digest} is not in the tarball")
        emit(PullProgress("Extracting", digest, 0, size))
        sizes[diff_id] = layers.unpack(content.path(digest), diff_id).size
        emit(PullProgress("Pull complete", digest, size, size))
    return sizes


def _merge(images: dict[str, ImportedImage], image: ImportedImage) -> None:
    known = images.get(image.record.id)
    if known is None:
        images[image.record.id] = image
        return
    known.record.repo_tags = _unique(known.record.repo_tags + image.record.repo_tags)
    known.record.repo_digests = _unique(known.record.repo_digests + image.record.repo_digests)
    known.content = _unique(known.content + image.content)
    known.layer_sizes.update(image.layer_sizes)


def _unique(values: Any) -> list[str]:
    return list(dict.fromkeys(values))


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidImage(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise InvalidImage(f"{what} is not a JSON object")
    return value


def _json_list(data: bytes, what: str) -> list[Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InvalidImage(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, list):
        raise InvalidImage(f"{what} is not a JSON list")
    return value

