"""The image store of one node: what the runtime asks for images (see issue 4's interface).

On disk, under ``root`` (``AgentPaths.images``)::

    index.json          the images: names, configuration, what each keeps, holders (index.py)
    blobs/sha256/<hex>  manifests, indexes and configurations, by digest (content.py)
    ingest/             partial downloads, resumed by the next pull (content.py)
    layers/sha256-<hex> one unpacked layer per diff ID, shared by every image that has it (layers.py)
    sweep.lock          see below

Images are added by `pull` (registry.py, puller.py) and `import_tarball` (importer.py). Layers are
unpacked once, into overlay-ready directories (unpack.py); the compressed layer tarballs are dropped once
unpacked. `layer_dirs` gives the runtime an image's layer directories, lowest first, to mount as overlayfs
``lowerdir``s.

Consistency between pulls, imports (possibly by ``kubelite image import`` in another process) and the
removal of what no image keeps: every writer holds a *shared* flock on ``sweep.lock`` from its first
written byte until its image is in the index; a sweep (after `remove`, in `garbage_collect`) runs only
under the *exclusive* lock, taken without waiting — when a writer is busy the sweep is skipped and what it
would have removed goes at the next one. So a sweep never removes a blob or layer a pull is about to use.

Holders (`acquire`/`release`, by container ID) are persisted in the index, so that an image a running
container uses stays protected across agent restarts; `retain_holders` drops the ones that are gone.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import hashlib
import logging
import re
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from kubelite.kubelet.images import gc
from kubelite.kubelet.images.content import ContentStore
from kubelite.kubelet.images.digest import is_digest
from kubelite.kubelet.images.errors import ImageError, ImageInUse, ImageNotFound, InvalidImage, InvalidReference
from kubelite.kubelet.images.importer import ImportedImage, import_tarball
from kubelite.kubelet.images.index import ImageIndex, IndexState, StoredImage
from kubelite.kubelet.images.layers import LayerStore
from kubelite.kubelet.images.locks import FileLock
from kubelite.kubelet.images.manifest import Platform
from kubelite.kubelet.images.model import ImageRecord, PullProgress, RegistryAuth
from kubelite.kubelet.images.puller import Puller
from kubelite.kubelet.images.reference import parse_reference
from kubelite.kubelet.images.singleflight import SingleFlight

log = logging.getLogger(__name__)

Progress = Callable[[PullProgress], None]
# Tarballs `import_dropin` picks up (k3s's agent/images takes the same).
DROPIN_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst")
_HEX = re.compile(r"[a-f0-9]+")
_MIN_ID_PREFIX = 4


class ImageStore:
    """Images of one node under ``root``. ``platform`` (``os/arch[/variant]``) is the one chosen from
    multi-platform images (default: linux/<this machine>); ``insecure_registries`` are hosts spoken to over
    plain http (loopback registries always are)."""

    def __init__(self, root: Path, *, platform: str | None = None,
                 insecure_registries: Collection[str] = ()) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.platform = Platform.parse(platform) if platform else Platform.host()
        self.content = ContentStore(root)
        self.layers = LayerStore(root)
        self.index = ImageIndex(root / "index.json")
        self._sweep_lock = root / "sweep.lock"
        self._puller = Puller(self.content, self.layers, platform=self.platform,
                              insecure_registries=frozenset(insecure_registries))
        self._pulls: SingleFlight[str, ImageRecord] = SingleFlight()
        self._pull_listeners: dict[str, builtins.list[Progress]] = {}

    # -- adding images -----------------------------------------------------------------------------------

    async def pull(self, ref: str, *, auth: RegistryAuth | None = None,
                   progress: Progress | None = None) -> ImageRecord:
        """Pull ``ref`` (normalised: ``busybox`` is ``docker.io/library/busybox:latest``) and return its
        record. Concurrent pulls of one reference (with the same credentials) share one pull; each caller's
        ``progress`` sees its steps. Raises RegistryError (the registry's reason), InvalidReference,
        InvalidImage, DigestMismatch."""
        parsed = parse_reference(ref)
        key = f"{parsed}\0{_auth_key(auth)}"
        listeners = self._pull_listeners.setdefault(key, [])
        if progress is not None:
            listeners.append(progress)

        def emit(step: PullProgress) -> None:
            for listener in builtins.list(self._pull_listeners.get(key, ())):
                _notify(listener, step)

        async def work() -> ImageRecord:
            async with FileLock(self._sweep_lock, shared=True):
                pulled = await self._puller.pull(parsed, auth=auth, emit=emit)
                return self._add([ImportedImage(pulled.record, pulled.content, pulled.layer_sizes)])[0]

        try:
            return copy.deepcopy(await self._pulls.do(key, work))
        finally:
            if progress is not None:
                listeners.remove(progress)
            if not listeners and not self._pulls.running(key):
                self._pull_listeners.pop(key, None)

    async def import_tarball(self, path: Path, *, progress: Progress | None = None) -> builtins.list[ImageRecord]:
        """Import an OCI-layout or ``docker save`` tarball (see importer.py); return its images."""
        loop = asyncio.get_running_loop()

        def emit(step: PullProgress) -> None:  # called from the import's thread
            if progress is not None:
                loop.call_soon_threadsafe(_notify, progress, step)

        async with FileLock(self._sweep_lock, shared=True):
            result = await asyncio.to_thread(import_tarball, Path(path), self.content, self.layers,
                                             platform=self.platform, emit=emit)
            records = self._add(result.images)
            # Layer tarballs (now unpacked) and blobs of other platforms: nobody keeps them.
            kept = {d for image in self.index.state().images.values() for d in image.content}
            for digest in result.ingested - kept:
                self.content.delete(digest)
        return records

    async def import_dropin(self, folder: Path, *,
                            progress: Progress | None = None) -> builtins.list[ImageRecord]:
        """Import the tarballs in ``folder`` (``AgentPaths.images_dropin``), as k3s does at start. A file is
        imported again only when it changed or an image it held was removed. A tarball that fails is
        logged and skipped: one bad file must not keep the node from starting."""
        if not folder.is_dir():
            return []
        imported: builtins.list[ImageRecord] = []
        stamps: dict[str, str] = {}
        for path in sorted(folder.iterdir()):
            if not path.is_file() or not path.name.endswith(DROPIN_SUFFIXES):
                continue
            st = path.stat()
            stamp = stamps[path.name] = f"{path.name}:{st.st_size}:{st.st_mtime_ns}"
            state = self.index.state()
            if stamp in state.dropin and all(i in state.images for i in state.dropin[stamp]):
                continue
            try:
                records = await self.import_tarball(path, progress=progress)
            except (ImageError, OSError) as e:
                log.error("cannot import image tarball %s: %s", path, e)
                continue
            imported.extend(records)
            self._remember_dropin(stamp, [r.id for r in records])

        def forget_gone(state: IndexState) -> None:
            for stamp in builtins.list(state.dropin):
                if stamp not in stamps.values():
                    del state.dropin[stamp]

        self.index.update(forget_gone)
        return imported

    def _remember_dropin(self, stamp: str, image_ids: builtins.list[str]) -> None:
        def change(state: IndexState) -> None:
            state.dropin[stamp] = image_ids

        self.index.update(change)

    def _add(self, images: Iterable[ImportedImage]) -> builtins.list[ImageRecord]:
        """Index images (their content is in the store): names move to them from other images, as a
        ``docker tag`` moves a tag."""
        now = time.time()

        def change(state: IndexState) -> builtins.list[ImageRecord]:
            added = []
            for image in images:
                record = image.record
                for other in state.images.values():
                    if other.record.id != record.id:
                        other.record.repo_tags = [t for t in other.record.repo_tags if t not in record.repo_tags]
                stored = state.images.get(record.id)
                if stored is None:
                    stored = state.images[record.id] = StoredImage(record=record, content=image.content)
                else:
                    stored.record.repo_tags = _unique(stored.record.repo_tags + record.repo_tags)
                    stored.record.repo_digests = _unique(stored.record.repo_digests + record.repo_digests)
                    stored.content = _unique(stored.content + image.content)
                    if not stored.record.manifest_digest:
                        stored.record.manifest_digest = record.manifest_digest
                stored.last_used = now
                state.layers.update(image.layer_sizes)
                added.append(copy.deepcopy(stored.record))
            return added

        return self.index.update(change)

    # -- reading -----------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> ImageRecord | None:
        """The image named by ``ref``: an image ID (``sha256:<hex>``, the bare hex, or a unique prefix of at
        least 4 hex digits), ``name:tag`` or ``name@digest`` (normalised as `pull` normalises)."""
        stored = find_image(self.index.state(), ref)
        return copy.deepcopy(stored.record) if stored is not None else None

    def list(self) -> builtins.list[ImageRecord]:
        """Every image, sorted by first name (untagged ones last, by ID)."""
        records = [copy.deepcopy(s.record) for s in self.index.state().images.values()]
        return sorted(records, key=lambda r: (not r.repo_tags, r.repo_tags[:1], r.id))

    def layer_dirs(self, image: ImageRecord) -> builtins.list[Path]:
        """The image's unpacked layer directories, lowest first (reverse them for overlayfs' ``lowerdir``,
        which lists the top layer first). A layer that appears twice is kept at its highest place only,
        which shows the same tree. Raises InvalidImage when a layer is missing from disk."""
        positions = {diff_id: i for i, diff_id in enumerate(image.diff_ids)}
        dirs = []
        for i, diff_id in enumerate(image.diff_ids):
            if positions[diff_id] != i:
                continue
            path = self.layers.path(diff_id)
            if not path.is_dir():
                raise InvalidImage(f"layer {diff_id} of image {image.id} is missing: remove the image and pull "
                                   "it again")
            dirs.append(path)
        return dirs

    # -- holders -----------------------------------------------------------------------------------------

    def acquire(self, image_id: str, holder: str) -> None:
        """Record that ``holder`` (a container ID) uses the image: it is not removed or collected until
        released. Raises ImageNotFound."""
        now = time.time()

        def change(state: IndexState) -> None:
            stored = find_image(state, image_id)
            if stored is None:
                raise ImageNotFound(image_id)
            if holder not in stored.holders:
                stored.holders.append(holder)
            stored.last_used = now

        self.index.update(change)

    def release(self, image_id: str, holder: str) -> None:
        """Undo `acquire`; unknown images and holders are ignored."""
        now = time.time()

        def change(state: IndexState) -> None:
            stored = find_image(state, image_id)
            if stored is not None and holder in stored.holders:
                stored.holders.remove(holder)
                stored.last_used = now

        self.index.update(change)

    def retain_holders(self, live: Collection[str]) -> None:
        """Drop every holder not in ``live`` (the runtime calls it with its containers after a restart, so
        that a container removed while the agent was down no longer pins its image)."""

        def change(state: IndexState) -> None:
            for stored in state.images.values():
                stored.holders = [h for h in stored.holders if h in live]

        self.index.update(change)

    def holders(self, image_id: str) -> builtins.list[str]:
        stored = find_image(self.index.state(), image_id)
        return builtins.list(stored.holders) if stored is not None else []

    # -- removing ----------------------------------------------------------------------------------------

    async def remove(self, ref: str) -> None:
        """Remove an image. By ``name:tag`` when the image has other tags, only that tag goes (as ``docker
        rmi``); otherwise the image goes, with the blobs and layers no other image keeps. Raises
        ImageNotFound, or ImageInUse when a holder has it."""

        def change(state: IndexState) -> bool:
            stored = find_image(state, ref)
            if stored is None:
                raise ImageNotFound(ref)
            tag = _tag_of(ref)
            if tag in stored.record.repo_tags and len(stored.record.repo_tags) > 1:
                stored.record.repo_tags.remove(tag)
                return False
            if stored.holders:
                raise ImageInUse(ref, builtins.list(stored.holders))
            del state.images[stored.record.id]
            return True

        if self.index.update(change):
            await self._sweep(partials=False)

    async def garbage_collect(self, *, high_percent: int = 85, low_percent: int = 80,
                              min_age_seconds: float = 120.0) -> int:
        """When the images' filesystem is used at ``high_percent`` or more, remove unused images (not held,
        not used for ``min_age_seconds``), least recently used first, until usage would be at
        ``low_percent``; then remove what no image keeps, partial downloads included. Returns the bytes
        freed (0 below the threshold)."""
        to_free = gc.bytes_to_free(gc.disk_usage(self.root), high_percent=high_percent, low_percent=low_percent)
        if to_free == 0:
            return 0
        now = time.time()

        def change(state: IndexState) -> builtins.list[str]:
            victims = gc.plan(state, to_free=to_free, now=now, min_age=min_age_seconds)
            for image_id in victims:
                del state.images[image_id]
            return victims

        victims = self.index.update(change)
        freed = await self._sweep(partials=True)
        log.info("image garbage collection removed %d image(s) (%s), freed %d bytes", len(victims),
                 ", ".join(victims) or "none", freed)
        return freed

    async def _sweep(self, *, partials: bool) -> int:
        """Remove blobs and layers no image keeps, if no writer is busy (see the module doc). The index is
        only read and written here, in the event loop's thread; the deleting happens in a worker thread."""
        lock = FileLock(self._sweep_lock)
        if not lock.try_acquire():
            log.debug("image sweep skipped: a pull or import is in progress")
            return 0
        try:
            state = self.index.state()
            kept_blobs = {d for image in state.images.values() for d in image.content}
            kept_layers = {d for image in state.images.values() for d in image.record.diff_ids}
            freed = await asyncio.to_thread(self._delete_unkept, kept_blobs, kept_layers, partials=partials)

            def forget_layers(state: IndexState) -> None:
                state.layers = {d: size for d, size in state.layers.items() if d in kept_layers}

            self.index.update(forget_layers)
            return freed
        finally:
            lock.release()

    def _delete_unkept(self, kept_blobs: set[str], kept_layers: set[str], *, partials: bool) -> int:
        freed = 0
        for digest in builtins.list(self.content.digests()):
            if digest not in kept_blobs:
                freed += self.content.delete(digest)
        for diff_id in builtins.list(self.layers.diff_ids()):
            if diff_id not in kept_layers:
                freed += self.layers.delete(diff_id)
        self.layers.clear_temp()
        # Partial downloads are worth keeping for the next pull to resume, unless space is short.
        freed += self.content.clear_ingest(keep_partials=not partials)
        return freed


def find_image(state: IndexState, ref: str) -> StoredImage | None:
    """The image ``ref`` names in ``state`` (see `ImageStore.resolve`)."""
    if is_digest(ref) and ref in state.images:
        return state.images[ref]
    if len(ref) == 64 and _HEX.fullmatch(ref):
        return state.images.get(f"sha256:{ref}")
    try:
        parsed = parse_reference(ref)
    except InvalidReference:
        parsed = None
    if parsed is not None:
        for stored in state.images.values():
            if parsed.digest:
                if parsed.with_digest(parsed.digest) in stored.record.repo_digests:
                    return stored
            elif parsed.tagged in stored.record.repo_tags:
                return stored
    prefix = ref.removeprefix("sha256:")
    if len(prefix) >= _MIN_ID_PREFIX and _HEX.fullmatch(prefix):
        matches = [s for image_id, s in state.images.items() if image_id.removeprefix("sha256:").startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
    return None


def _tag_of(ref: str) -> str:
    try:
        return parse_reference(ref).tagged
    except InvalidReference:
        return ""


def _auth_key(auth: RegistryAuth | None) -> str:
    if auth is None:
        return ""
    secret = hashlib.sha256(f"{auth.password}\0{auth.token}".encode()).hexdigest()[:16]
    return f"{auth.username}:{secret}"


def _notify(listener: Progress, step: PullProgress) -> None:
    try:
        listener(step)
    except Exception:
        # A broken progress display must not fail the pull.
        log.exception("image progress callback failed")


def _unique(values: Iterable[str]) -> builtins.list[str]:
    return builtins.list(dict.fromkeys(values))
