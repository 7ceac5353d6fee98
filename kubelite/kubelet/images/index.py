"""The store's index: which images exist, their names, what they keep, who holds them. One JSON file,
``index.json``, replaced atomically (write, fsync, rename) under an flock, so that the agent and a
``kubelite image`` command run beside it see each other's changes: every read checks whether the file
changed since it was loaded, every change re-reads it under the lock first.

Layout: ``{"version": 1, "images": {<id>: {"record": ImageRecord, "content": [digest...], "holders":
[...], "lastUsed": <unix time>}}, "layers": {<diff ID>: <bytes unpacked>}, "dropin": {<file:size:mtime>: [<id>...]}}``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubelite.kubelet.images.errors import ImageError
from kubelite.kubelet.images.locks import FileLock
from kubelite.kubelet.images.model import ImageRecord

VERSION = 1
T = TypeVar("T")


@dataclass
class StoredImage:
    record: ImageRecord
    # Blobs this image keeps (configuration, manifest, index); its layers are kept unpacked instead.
    content: list[str] = field(default_factory=list)
    # Who uses the image (container IDs, given to ImageStore.acquire); a held image is never removed.
    holders: list[str] = field(default_factory=list)
    last_used: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"record": self.record.to_json(), "content": self.content, "holders": self.holders,
                "lastUsed": self.last_used}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredImage:
        return cls(record=ImageRecord.from_json(data["record"]), content=list(data.get("content", [])),
                   holders=list(data.get("holders", [])), last_used=float(data.get("lastUsed", 0.0)))


@dataclass
class IndexState:
    images: dict[str, StoredImage] = field(default_factory=dict)
    # Bytes unpacked per layer (for garbage collection's estimates).
    layers: dict[str, int] = field(default_factory=dict)
    # Drop-in tarballs already imported: "<file name>:<size>:<mtime_ns>" -> IDs of the images it held.
    dropin: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "images": {k: v.to_json() for k, v in sorted(self.images.items())},
                "layers": dict(sorted(self.layers.items())), "dropin": dict(sorted(self.dropin.items()))}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexState:
        if data.get("version") != VERSION:
            raise ImageError(f"image index version {data.get('version')!r} is not supported")
        return cls(
            images={k: StoredImage.from_json(v) for k, v in data.get("images", {}).items()},
            layers={k: int(v) for k, v in data.get("layers", {}).items()},
            dropin={k: list(v) for k, v in data.get("dropin", {}).items()},
        )


class ImageIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._state = IndexState()
        self._stamp: tuple[int, int, int] | None = None

    def state(self) -> IndexState:
        """The index as the file holds it now (re-read only when the file changed). Do not mutate it:
        changes go through `update`."""
        self._reload()
        return self._state

    def update(self, change: Callable[[IndexState], T]) -> T:
        """Apply ``change`` to the current index and write it, all under the lock; returns what ``change``
        returns. If ``change`` raises, nothing is written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self._lock_path):
            self._reload()
            try:
                result = change(self._state)
            except BaseException:
                self._stamp = None  # the in-memory copy may be half-changed: re-read it next time
                raise
            self._write()
            return result

    def _reload(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._state, self._stamp = IndexState(), None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, json.JSONDecodeError) as e:
            raise ImageError(f"cannot read the image index {self.path}: {e}") from None
        self._state, self._stamp = IndexState.from_json(data), stamp

    def _write(self) -> None:
        data = json.dumps(self._state.to_json(), indent=1).encode()
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        st = os.stat(self.path)
        self._stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
