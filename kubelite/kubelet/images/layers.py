"""Unpacked layers, one directory per layer shared by every image that has it:
``layers/<algorithm>-<hex of the diff ID>/``.

A layer is unpacked into ``layers/.tmp-<...>`` and renamed into place, so a layer directory that exists is
complete; when two processes unpack the same layer, the second rename fails and that copy is dropped.
Within one process concurrent requests for one layer share one unpack (`SingleFlight`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from kubelite.kubelet.images.digest import parse_digest
from kubelite.kubelet.images.singleflight import SingleFlight
from kubelite.kubelet.images.unpack import UnpackedLayer, unpack_layer

_TEMP_PREFIX = ".tmp-"


class LayerStore:
    def __init__(self, root: Path) -> None:
        self.root = root / "layers"
        self._flights: SingleFlight[str, int] = SingleFlight()

    def path(self, diff_id: str) -> Path:
        algorithm, encoded = parse_digest(diff_id)
        return self.root / f"{algorithm}-{encoded}"

    def exists(self, diff_id: str) -> bool:
        return self.path(diff_id).is_dir()

    async def ensure(self, diff_id: str, blob: Callable[[], Awaitable[Path]]) -> int | None:
        """Make sure the layer is unpacked: if it is not, await ``blob()`` for its tarball and unpack it (in a
        thread). Returns the bytes unpacked, or None when the layer was there already."""
        if self.exists(diff_id):
            return None

        async def work() -> int:
            if self.exists(diff_id):
                return 0
            path = await blob()
            unpacked = await asyncio.to_thread(self.unpack, path, diff_id)
            return unpacked.size

        return await self._flights.do(diff_id, work)

    def unpack(self, blob: Path, diff_id: str) -> UnpackedLayer:
        """Unpack ``blob`` as layer ``diff_id`` (verifying it), synchronously."""
        self.root.mkdir(parents=True, exist_ok=True)
        temp = self.root / f"{_TEMP_PREFIX}{uuid.uuid4().hex}"
        temp.mkdir(mode=0o755)
        try:
            unpacked = unpack_layer(blob, temp, expected_diff_id=diff_id)
            try:
                os.rename(temp, self.path(diff_id))
            except OSError:
                if not self.exists(diff_id):
                    raise
                # Another process unpacked it meanwhile: keep theirs.
            return unpacked
        finally:
            if temp.exists():
                remove_tree(temp)

    def delete(self, diff_id: str) -> int:
        """Remove a layer directory; return its size in bytes (0 if it was not there)."""
        path = self.path(diff_id)
        if not path.is_dir():
            return 0
        size = tree_size(path)
        remove_tree(path)
        return size

    def diff_ids(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            algorithm, sep, encoded = entry.name.partition("-")
            if sep and not entry.name.startswith(_TEMP_PREFIX):
                yield f"{algorithm}:{encoded}"

    def clear_temp(self) -> None:
        """Remove unpacks that were interrupted (only when nobody unpacks: under the sweep lock)."""
        if self.root.is_dir():
            for entry in self.root.glob(f"{_TEMP_PREFIX}*"):
                remove_tree(entry)


def tree_size(path: Path) -> int:
    """Bytes of the files below ``path`` (apparent sizes, hard links counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(folder, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size if not stat.S_ISDIR(st.st_mode) else 0
    return total


def remove_tree(path: Path) -> None:
    """rmtree that also removes what a non-root user made read-only (a layer keeps the tarball's modes)."""
    if os.geteuid() != 0 and not path.is_symlink():
        # Top-down: each folder is made writable and searchable before os.walk lists it.
        os.chmod(path, stat.S_IRWXU)
        for folder, dirs, _files in os.walk(path):
            for name in dirs:
                child = os.path.join(folder, name)
                if not os.path.islink(child):
                    os.chmod(child, stat.S_IRWXU)
    shutil.rmtree(path)
