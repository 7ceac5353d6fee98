"""Pulling one image from a registry into the content and layer stores.

The steps, as Docker and containerd take them: resolve the reference to a manifest (choosing this
platform's manifest from a list or index), fetch the configuration, then for each layer not unpacked yet:
download the blob (verified; resumed from a partial file with a Range request; retried from where it broke
when the connection drops), unpack it (its diff ID verified), and drop the compressed blob, which is not
needed once the layer is unpacked. At most three layers download at once (Docker's default). A blob or a
layer that another pull is already fetching is awaited, not fetched twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from kubelite.kubelet.images.content import ContentStore, Ingest
from kubelite.kubelet.images.errors import DigestMismatch, InvalidImage, RegistryError
from kubelite.kubelet.images.layers import LayerStore
from kubelite.kubelet.images.manifest import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Manifest,
    Platform,
    parse_config,
    parse_index,
    parse_manifest,
    select_platform,
)
from kubelite.kubelet.images.model import ImageRecord, PullProgress, RegistryAuth
from kubelite.kubelet.images.reference import Reference
from kubelite.kubelet.images.registry import RegistryClient, new_session
from kubelite.kubelet.images.singleflight import SingleFlight

log = logging.getLogger(__name__)

Emit = Callable[[PullProgress], None]
MAX_CONCURRENT_DOWNLOADS = 3
_ATTEMPTS = 3
# Report download progress every this many bytes (and at the end).
_PROGRESS_STEP = 512 << 10
# Failures while a body streams in, after which the download resumes from what arrived.
_STREAM_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError, TimeoutError)


@dataclass
class PulledImage:
    record: ImageRecord
    # Blobs the image keeps: index (if any), manifest, configuration.
    content: list[str]
    # Bytes unpacked per layer this pull unpacked.
    layer_sizes: dict[str, int] = field(default_factory=dict)


class Puller:
    """Pulls images into ``content`` and ``layers``; one per store, shared by its concurrent pulls."""

    def __init__(self, content: ContentStore, layers: LayerStore, *, platform: Platform,
                 insecure_registries: frozenset[str] = frozenset()) -> None:
        self.content = content
        self.layers = layers
        self.platform = platform
        self.insecure_registries = insecure_registries
        self._blobs: SingleFlight[str, Path] = SingleFlight()

    async def pull(self, ref: Reference, *, auth: RegistryAuth | None, emit: Emit) -> PulledImage:
        emit(PullProgress("Resolving", str(ref)))
        async with new_session() as session:
            client = RegistryClient(session, ref, auth=auth, insecure_registries=self.insecure_registries)
            content: list[str] = []
            fetched = await client.get_manifest(ref.object)
            top_digest = fetched.digest
            if fetched.media_type in INDEX_TYPES:
                entry = select_platform(parse_index(fetched.body), self.platform)
                self.content.write(fetched.body, fetched.digest)
                content.append(fetched.digest)
                fetched = await client.get_manifest(entry.digest)
            if fetched.media_type not in MANIFEST_TYPES:
                raise RegistryError(f"unsupported manifest media type {fetched.media_type!r} for {ref}")
            manifest = parse_manifest(fetched.body, fetched.media_type)
            self.content.write(fetched.body, fetched.digest)
            content.append(fetched.digest)

            config_path = await self._blob(client, manifest.config, emit=None)
            content.append(manifest.config.digest)
            config = parse_config(config_path.read_bytes())
            if len(config.diff_ids) != len(manifest.layers):
                raise InvalidImage(f"{ref}: the manifest has {len(manifest.layers)} layers, the configuration "
                                   f"{len(config.diff_ids)} diff IDs")
            layer_sizes = await self._layers(client, manifest, config.diff_ids, emit)

        record = ImageRecord(
            id=manifest.config.digest,
            repo_tags=[ref.tagged] if ref.tag and not ref.digest else [],
            repo_digests=[ref.with_digest(top_digest)],
            size=manifest.size,
            config=config.config,
            diff_ids=config.diff_ids,
            manifest_digest=fetched.digest,
            os=config.os,
            architecture=config.architecture,
        )
        emit(PullProgress("Done", str(ref), manifest.size, manifest.size))
        return PulledImage(record=record, content=content, layer_sizes=layer_sizes)

    async def _layers(self, client: RegistryClient, manifest: Manifest, diff_ids: list[str],
                      emit: Emit) -> dict[str, int]:
        sizes: dict[str, int] = {}
        slots = asyncio.Semaphore(MAX_CONCURRENT_DOWNLOADS)

        async def one(descriptor: Descriptor, diff_id: str) -> None:
            if self.layers.exists(diff_id):
                emit(PullProgress("Already exists", descriptor.digest, descriptor.size, descriptor.size))
                return
            emit(PullProgress("Pulling fs layer", descriptor.digest, 0, descriptor.size))

            async def fetch() -> Path:
                async with slots:
                    path = await self._blob(client, descriptor, emit=emit)
                emit(PullProgress("Extracting", descriptor.digest, 0, descriptor.size))
                return path

            unpacked = await self.layers.ensure(diff_id, fetch)
            if unpacked is not None:
                sizes[diff_id] = unpacked
            # The compressed blob is of no use once its layer is unpacked.
            self.content.delete(descriptor.digest)
            emit(PullProgress("Pull complete", descriptor.digest, descriptor.size, descriptor.size))

        try:
            async with asyncio.TaskGroup() as group:
                for descriptor, diff_id in zip(manifest.layers, diff_ids, strict=True):
                    group.create_task(one(descriptor, diff_id))
        except BaseExceptionGroup as failed:
            # The first layer's failure is the pull's (the others were cancelled because of it).
            raise _first_error(failed) from None
        return sizes

    async def _blob(self, client: RegistryClient, descriptor: Descriptor, *, emit: Emit | None) -> Path:
        """The blob's path in the content store, downloading it first if needed (once for all callers)."""
        if self.content.exists(descriptor.digest):
            return self.content.path(descriptor.digest)
        return await self._blobs.do(descriptor.digest, lambda: self._download(client, descriptor, emit))

    async def _download(self, client: RegistryClient, descriptor: Descriptor, emit: Emit | None) -> Path:
        digest, total = descriptor.digest, descriptor.size
        async with Ingest(self.content, digest, expected_size=total) as ingest:
            if self.content.exists(digest):
                return self.content.path(digest)  # another process committed it while we waited
            for attempt in range(1, _ATTEMPTS + 1):
                resumed = ingest.offset > 0
                try:
                    if ingest.offset < total:
                        await self._fetch_into(client, ingest, descriptor, emit)
                    ingest.commit()
                    break
                except DigestMismatch:
                    # A resumed download whose prefix was bad: commit() discarded it; start over once.
                    if not resumed or attempt == _ATTEMPTS:
                        raise
                    log.warning("blob %s was corrupt after resuming; downloading it again", digest)
                except _STREAM_ERRORS as e:
                    if attempt == _ATTEMPTS:
                        raise RegistryError(f"downloading {digest} from {client.host} failed: {e}") from None
                    log.info("download of %s broke at %d bytes (%s); resuming", digest, ingest.offset, e)
        if emit is not None:
            emit(PullProgress("Download complete", digest, total, total))
        return self.content.path(digest)

    async def _fetch_into(self, client: RegistryClient, ingest: Ingest, descriptor: Descriptor,
                          emit: Emit | None) -> None:
        async with client.get_blob(descriptor.digest, offset=ingest.offset) as response:
            if response.start != ingest.offset:
                ingest.reset()  # the registry sent the whole blob: our partial file is no use
            elif response.start and emit is not None:
                emit(PullProgress("Resuming", descriptor.digest, response.start, descriptor.size))
            reported = ingest.offset
            async for chunk in response.chunks:
                ingest.write(chunk)
                if ingest.offset > descriptor.size:
                    raise DigestMismatch(f"blob {descriptor.digest} is larger than the {descriptor.size} bytes "
                                         "its descriptor says")
                if emit is not None and ingest.offset - reported >= _PROGRESS_STEP:
                    reported = ingest.offset
                    emit(PullProgress("Downloading", descriptor.digest, ingest.offset, descriptor.size))
            if emit is not None:
                emit(PullProgress("Downloading", descriptor.digest, ingest.offset, descriptor.size))


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            return _first_error(error)
        if not isinstance(error, asyncio.CancelledError):
            return error
    return group.exceptions[0]
