"""The content-addressed blob store: ``blobs/<algorithm>/<hex>``, written only through `Ingest`, which
verifies the digest before a blob becomes visible.

A blob being downloaded lives in ``ingest/<algorithm>-<hex>.partial`` under an exclusive flock of its own, so
that a second downloader (another process) waits instead of writing the same file (and then finds the blob
committed), and so that an interrupted download is resumed from where it stopped (the registry is asked for
the rest with a Range request). Writers also hold the store's shared sweep lock (see ``store.py``), so the
ingest folder is only ever cleared when nobody writes. Committing renames the verified partial file into
``blobs/``, which is atomic: a blob that exists is complete.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from kubelite.kubelet.images.digest import CHUNK, Digester, Readable, parse_digest
from kubelite.kubelet.images.errors import DigestMismatch, InvalidImage
from kubelite.kubelet.images.locks import FileLock


class ContentStore:
    """Blobs by digest under ``root``. Safe for many processes: writers go through `Ingest`."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.ingest_dir = root / "ingest"

    def path(self, digest: str) -> Path:
        algorithm, encoded = parse_digest(digest)
        return self.blobs / algorithm / encoded

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        """The whole blob (for manifests and configurations, which are small)."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise InvalidImage(f"blob {digest} is missing from the store") from None

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return 0

    def write(self, data: bytes, digest: str) -> None:
        """Store a small blob already in memory, after checking that it hashes to ``digest``."""
        if self.exists(digest):
            return
        with Ingest(self, digest) as ingest:
            ingest.reset()
            ingest.write(data)
            ingest.commit()

    def ingest_stream(self, reader: Readable, *, expected: str | None = None) -> tuple[str, int]:
        """Copy a stream into the store; return (digest, size). With ``expected`` the stream must hash to it
        (DigestMismatch otherwise); without, the blob is named by the sha256 of what was read."""
        if expected is not None:
            with Ingest(self, expected) as ingest:
                ingest.reset()
                while chunk := reader.read(CHUNK):
                    ingest.write(chunk)
                ingest.commit()
                return expected, ingest.offset
        self.ingest_dir.mkdir(parents=True, exist_ok=True)
        temp = self.ingest_dir / f"stream-{os.getpid()}-{id(reader)}.partial"
        digester = Digester()
        try:
            with open(temp, "wb") as out:
                while chunk := reader.read(CHUNK):
                    digester.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = digester.digest()
            final = self.path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, final)
            return digest, digester.size
        finally:
            temp.unlink(missing_ok=True)

    def delete(self, digest: str) -> int:
        """Remove a blob; return the bytes freed (0 if it was not there)."""
        path = self.path(digest)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def digests(self) -> Iterator[str]:
        """Every blob in the store."""
        if not self.blobs.is_dir():
            return
        for algorithm_dir in self.blobs.iterdir():
            for blob in algorithm_dir.iterdir():
                yield f"{algorithm_dir.name}:{blob.name}"

    def clear_ingest(self, *, keep_partials: bool) -> int:
        """Remove lock files and unfinished stream copies, and the partial downloads too unless
        ``keep_partials``; return the bytes freed. Only for a caller that holds the store's exclusive sweep
        lock, which no writer holds at the same time."""
        freed = 0
        if not self.ingest_dir.is_dir():
            return 0
        for entry in self.ingest_dir.iterdir():
            if keep_partials and entry.name.endswith(".partial") and not entry.name.startswith("stream-"):
                continue
            try:
                freed += entry.stat().st_size
                entry.unlink()
            except FileNotFoundError:
                pass
        return freed


class Ingest:
    """Writing one blob: the partial file, its lock, the running digest.

    Use: ``async with`` (or ``with``) takes the lock; `offset` is what a previous attempt left (already
    hashed); `reset` starts over; `write` appends; `commit` verifies (size too, when ``expected_size`` is
    given) and publishes. Leaving without commit keeps the partial file for a later resume.
    """

    def __init__(self, store: ContentStore, digest: str, *, expected_size: int | None = None) -> None:
        self.store = store
        self.digest = digest
        self.expected_size = expected_size
        algorithm, encoded = parse_digest(digest)
        self.algorithm = algorithm
        self.partial = store.ingest_dir / f"{algorithm}-{encoded}.partial"
        self._lock = FileLock(store.ingest_dir / f"{algorithm}-{encoded}.lock")
        self._file: BinaryIO | None = None
        self._hash = hashlib.new(algorithm)
        self.offset = 0

    # -- the lock ----------------------------------------------------------------------------------------

    def _opened(self) -> None:
        self._file = open(self.partial, "ab+")  # closed by close()
        self._file.seek(0)
        while chunk := self._file.read(CHUNK):
            self._hash.update(chunk)
            self.offset += len(chunk)
        if self.expected_size is not None and self.offset > self.expected_size:
            self.reset()

    def __enter__(self) -> Ingest:
        self.store.ingest_dir.mkdir(parents=True, exist_ok=True)
        self._lock.acquire_blocking()
        self._opened()
        return self

    async def __aenter__(self) -> Ingest:
        self.store.ingest_dir.mkdir(parents=True, exist_ok=True)
        await self._lock.acquire()
        try:
            self._opened()
        except BaseException:
            self._lock.release()
            raise
        return self

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock.release()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Discard what was written so far."""
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.new(self.algorithm)
        self.offset = 0

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)
        self._hash.update(data)
        self.offset += len(data)

    def commit(self) -> None:
        """Verify and publish the blob; on a mismatch the partial file is discarded and DigestMismatch
        raised (a resumed download that went wrong must start over, not resume again)."""
        assert self._file is not None
        actual = f"{self.algorithm}:{self._hash.hexdigest()}"
        if actual != self.digest or (self.expected_size is not None and self.offset != self.expected_size):
            size = self.offset
            self.reset()
            if actual != self.digest:
                raise DigestMismatch(f"digest mismatch for blob {self.digest}: got {actual}")
            raise DigestMismatch(f"size mismatch for blob {self.digest}: expected {self.expected_size} "
                                 f"bytes, got {size}")
        self._file.flush()
        os.fsync(self._file.fileno())
        final = self.store.path(self.digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.partial, final)
        self._file.close()
        self._file = None
