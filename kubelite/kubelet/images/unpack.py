"""Unpacking one layer (a tar stream, uncompressed, gzip or zstd) into its own directory, in the form
overlayfs reads as a lower layer.

Each layer is unpacked alone, into an empty directory: the runtime stacks the directories as overlay
``lowerdir``s, so a layer's deletions cannot be applied to the files below it here. They are written as
overlayfs writes them instead:

- ``.wh.<name>`` (a whiteout: ``name`` is deleted) becomes a character device 0/0 named ``name``;
- ``.wh..wh..opq`` (an opaque directory: nothing below it shows through) becomes the xattr
  ``trusted.overlay.opaque=y`` on its directory.

Both need root (CAP_MKNOD for the device on kernels before 5.8, CAP_SYS_ADMIN for ``trusted.*`` xattrs),
which the agent has. Run as another user the store writes ``user.overlay.opaque`` instead, which overlayfs
reads when mounted with ``userxattr`` (Linux 5.11+, as rootless runtimes mount it). Following the OCI image
spec, a whiteout hides only what lies in lower layers: an entry of the same layer with the same name wins.

Safety, since a layer comes from anywhere:
- no entry is written outside the layer directory: ``..`` that would climb above it is refused
  (UnsafeLayer), and symbolic links met on the way to an entry are followed as if the layer directory
  were ``/`` (the container's view), so a link to ``/etc`` leads to ``<layer>/etc``, never the host's;
- hard links must point at an entry already in the layer;
- symbolic links are created as they are, never followed when writing their own entry;
- device nodes are created only as root (skipped otherwise), FIFOs always;
- as root, ownership, modes (setuid included), modification times and the ``SCHILY.xattr`` extended
  attributes of the tarball are kept, except ``*.overlay.*`` ones, which only this module may set.

The digest of the uncompressed stream (the layer's diff ID) is computed while unpacking and checked
against the image configuration's.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, cast

from kubelite.kubelet.images.digest import HashingReader, Readable, parse_digest
from kubelite.kubelet.images.errors import DigestMismatch, InvalidImage, UnsafeLayer

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_AUFS_META_PREFIX = ".wh..wh."
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
_XATTR_PAX_PREFIX = "SCHILY.xattr."


def opaque_xattr() -> str:
    """The xattr marking an opaque directory: trusted.* as root, user.* (overlay's userxattr) otherwise."""
    return "trusted.overlay.opaque" if os.geteuid() == 0 else "user.overlay.opaque"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


@dataclass(frozen=True, slots=True)
class UnpackedLayer:
    diff_id: str
    # Bytes of regular file content written (for disk-usage estimates).
    size: int


def unpack_layer(blob: Path, dest: Path, *, expected_diff_id: str | None = None) -> UnpackedLayer:
    """Unpack the layer tarball ``blob`` into the existing, empty directory ``dest``.

    Raises DigestMismatch when the uncompressed stream does not hash to ``expected_diff_id``, UnsafeLayer
    for entries escaping ``dest``, InvalidImage for anything unreadable. On error ``dest`` is left
    half-written: the caller unpacks into a temporary directory and discards it.
    """
    algorithm = parse_digest(expected_diff_id)[0] if expected_diff_id else "sha256"
    with open(blob, "rb") as raw:
        reader = HashingReader(open_decompressed(raw), algorithm)
        extractor = _Extractor(dest)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                extractor.extract_all(tar)
            reader.drain()
        except (tarfile.TarError, EOFError, OSError, ValueError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise  # a local failure (disk full, permissions), not a bad layer
            raise InvalidImage(f"layer {expected_diff_id or blob.name} is not a valid tar stream: {e}") from None
    diff_id = reader.digester.digest()
    if expected_diff_id is not None and diff_id != expected_diff_id:
        raise DigestMismatch(f"layer diff ID mismatch: the image configuration says {expected_diff_id}, "
                             f"the layer is {diff_id}")
    return UnpackedLayer(diff_id=diff_id, size=extractor.size)


class Peekable(Readable, Protocol):
    def peek(self, size: int = 0, /) -> bytes: ...


def open_decompressed(raw: Peekable) -> Readable:
    """The uncompressed stream of a layer blob, whatever its compression (told by its magic bytes, which is
    what Docker does too, and works for ``docker save`` layers whose media type says nothing)."""
    magic = raw.peek(4)[:4]
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=cast(IO[bytes], raw), mode="rb")
    if magic == _ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError:
            raise InvalidImage("the layer is compressed with zstd, which needs the Python package 'zstandard' "
                               "(pip install zstandard)") from None
        return cast(Readable, zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], raw), read_across_frames=True))
    return raw


def clean_path(name: str) -> list[str]:
    """The components of a tar entry name relative to the layer root; UnsafeLayer if it climbs above it."""
    parts: list[str] = []
    for component in name.split("/"):
        if component in ("", "."):
            continue
        if component == "..":
            if not parts:
                raise UnsafeLayer(f"layer entry {name!r} escapes the layer directory")
            parts.pop()
        else:
            parts.append(component)
    return parts


class _Extractor:
    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.as_root = os.geteuid() == 0
        # Directory attributes are applied last, deepest first: writing into a directory changes its mtime,
        # and a read-only mode would stop the writes of a non-root user.
        self._dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.size = 0

    def extract_all(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self._extract(tar, member)
        for path, member in reversed(self._dirs):
            self._set_attributes(path, member)

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = clean_path(member.name)
        if not parts:
            return  # the layer root itself: overlay shows the top layer's root attributes
        name = parts[-1]
        parent = self._walk(parts[:-1], create=True)
        if name.startswith(WHITEOUT_PREFIX):
            if name == OPAQUE_MARKER:
                self._set_opaque(parent)
            elif not name.startswith(_AUFS_META_PREFIX) and len(name) > len(WHITEOUT_PREFIX):
                self._whiteout(os.path.join(parent, name[len(WHITEOUT_PREFIX):]))
            return
        path = os.path.join(parent, name)
        existing = _lstat(path)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                if existing is not None:
                    os.unlink(path)
                os.mkdir(path, 0o700)
                if existing is not None and is_whiteout(existing):
                    # Deleted and made again as a directory in one layer: hide what lies below it.
                    self._set_opaque(path)
            self._dirs.append((path, member))
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        if member.isreg():
            self._write_file(tar, member, path)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            self._hard_link(member, path)
            return  # the inode already has its attributes
        elif member.ischr() or member.isblk():
            if not self.as_root:
                return  # an unprivileged user cannot make device nodes; containers get /dev from the runtime
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            return  # GNU volume headers and other entries that are not files
        self._set_attributes(path, member)

    # -- paths -------------------------------------------------------------------------------------------

    def _walk(self, parts: list[str], *, create: bool) -> str:
        """Resolve directory components below the root as the container would (symbolic links followed,
        absolute ones from the layer root, ``..`` stopping at it), making missing directories if ``create``."""
        resolved: list[str] = []
        pending = deque(parts)
        links = 0
        while pending:
            component = pending.popleft()
            if component in ("", "."):
                continue
            if component == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *resolved, component)
            st = _lstat(candidate)
            if st is not None and stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise UnsafeLayer(f"too many levels of symbolic links below {'/'.join(parts)!r}")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    resolved = []
                pending.extendleft(reversed(target.split("/")))
                continue
            if st is None or not stat.S_ISDIR(st.st_mode):
                if not create:
                    raise UnsafeLayer(f"{'/'.join(parts)!r} is not a directory in the layer")
                if st is not None:
                    os.unlink(candidate)  # a file in the way of a directory of a later entry
                os.mkdir(candidate, 0o755)
                if st is not None and is_whiteout(st):
                    self._set_opaque(candidate)
            resolved.append(component)
        return os.path.join(self.root, *resolved)

    def _hard_link(self, member: tarfile.TarInfo, path: str) -> None:
        parts = clean_path(member.linkname)
        if not parts:
            raise UnsafeLayer(f"hard link {member.name!r} points at the layer root")
        target = os.path.join(self._walk(parts[:-1], create=False), parts[-1])
        if _lstat(target) is None:
            raise UnsafeLayer(f"hard link {member.name!r} points at {member.linkname!r}, which is not in the layer")
        os.link(target, path, follow_symlinks=False)

    # -- entries -----------------------------------------------------------------------------------------

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> None:
        source = tar.extractfile(member)
        if source is None:
            raise InvalidImage(f"layer entry {member.name!r} has no content")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        self.size += member.size

    def _whiteout(self, path: str) -> None:
        if _lstat(path) is not None:
            return  # the same layer has this entry: a whiteout only hides lower layers
        try:
            os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
        except PermissionError:
            raise InvalidImage(f"cannot create the overlay whiteout {path}: it needs root (or Linux 5.8+)") from None

    def _set_opaque(self, directory: str) -> None:
        try:
            os.setxattr(directory, opaque_xattr(), b"y", follow_symlinks=False)
        except OSError as e:
            raise InvalidImage(f"cannot mark {directory} opaque ({opaque_xattr()}): {e.strerror}") from None

    def _set_attributes(self, path: str, member: tarfile.TarInfo) -> None:
        if self.as_root:
            # chown first: it clears setuid bits and file capabilities, which chmod and the xattrs restore.
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
            for key, value in member.pax_headers.items():
                if key.startswith(_XATTR_PAX_PREFIX):
                    self._set_xattr(path, key[len(_XATTR_PAX_PREFIX):], value)
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    @staticmethod
    def _set_xattr(path: str, name: str, value: str) -> None:
        if ".overlay." in name:
            return  # overlay metadata from a tarball could redirect lookups: only whiteouts set it
        try:
            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"), follow_symlinks=False)
        except OSError:
            pass  # an xattr the filesystem does not support is not worth failing the image for


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
