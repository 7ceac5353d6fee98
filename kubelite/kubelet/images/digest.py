"""Content digests (``sha256:<hex>``): parsing, computing and verifying them as bytes stream by."""

from __future__ import annotations

import hashlib
import re
from typing import Protocol

from kubelite.kubelet.images.errors import DigestMismatch, InvalidImage

# The algorithms the OCI image spec registers, with the length of their hex encoding.
_ALGORITHMS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")
CHUNK = 1 << 20


def parse_digest(digest: str) -> tuple[str, str]:
    """Split ``algorithm:hex``; raise InvalidImage unless it is a well-formed sha256 or sha512 digest."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or algorithm not in _ALGORITHMS:
        raise InvalidImage(f"unsupported digest {digest!r}: expected sha256:<hex> or sha512:<hex>")
    if len(encoded) != _ALGORITHMS[algorithm] or not _HEX.fullmatch(encoded):
        raise InvalidImage(f"invalid digest {digest!r}")
    return algorithm, encoded


def is_digest(value: str) -> bool:
    try:
        parse_digest(value)
    except InvalidImage:
        return False
    return True


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, expected: str, *, what: str) -> None:
    """Raise DigestMismatch unless ``data`` hashes to ``expected``."""
    algorithm, encoded = parse_digest(expected)
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != encoded:
        raise DigestMismatch(f"digest mismatch for {what}: expected {expected}, got {algorithm}:{actual}")


class Readable(Protocol):
    """Anything with a binary ``read`` (a file, a decompressor, a tar member)."""

    def read(self, size: int = -1, /) -> bytes: ...


class Digester:
    """Hashes bytes as they are written or read, counting them."""

    def __init__(self, algorithm: str = "sha256") -> None:
        self.algorithm = algorithm
        self._hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> str:
        return f"{self.algorithm}:{self._hash.hexdigest()}"


class HashingReader:
    """A read-only file object that hashes everything read through it (for a layer's diff ID, which is the
    digest of the uncompressed tar stream, trailing padding included: call `drain` at the end)."""

    def __init__(self, raw: Readable, algorithm: str = "sha256") -> None:
        self._raw = raw
        self.digester = Digester(algorithm)

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.digester.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass
