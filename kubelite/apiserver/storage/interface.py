"""The storage contract: a key-value store with etcd v3 semantics.

Both backends (``sqlite.py``, embedded and default; ``etcd.py``, a real etcd through aetcd) implement
`Store` and pass the same contract suite (tests/unit/storage/test_contract.py).

Semantics every backend keeps:
- One global, strictly increasing ``revision`` counts every write (create, update, delete) in the store.
  A key's ``mod_revision`` is the revision of its last write, ``create_revision`` the revision that
  created it. The API server exposes ``mod_revision`` as ``metadata.resourceVersion``.
- ``create`` fails with `KeyExists` if the key is present; ``update``/``delete`` with an
  ``expected_revision`` fail with `RevisionMismatch` (carrying the current value) when the key's
  ``mod_revision`` differs, and with `KeyNotFound` when the key is absent.
- ``list(prefix, revision)`` returns the keys under ``prefix`` as they were at ``revision`` (0 = now)
  together with the revision the read was made at; a revision older than the last compaction raises
  `Compacted`, one newer than the store's head raises `FutureRevision`.
- ``watch(prefix, start_revision)`` yields, in revision order and without gaps or repeats, every event
  with ``revision >= start_revision`` under ``prefix``; a DELETE event's ``kv`` has the deletion
  revision as ``mod_revision`` and the last value before deletion. ``start_revision`` older than the
  compaction raises `Compacted` from the iterator.
- ``compact(revision)`` drops history older than ``revision`` (never the latest value of a live key).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For PUT, ``kv`` is the new value and ``prev`` the old one (None on create).
    For DELETE, ``kv.value`` is the value just before deletion and ``kv.mod_revision`` the deletion
    revision."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


class StorageError(Exception):
    """Base of all storage errors."""


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatch(StorageError):
    """The key's mod_revision differs from the expected one; ``current`` is what is stored now."""

    def __init__(self, key: str, current: KeyValue) -> None:
        super().__init__(f"revision mismatch on {key}: now at {current.mod_revision}")
        self.key = key
        self.current = current


class Compacted(StorageError):
    """The requested revision has been compacted away."""

    def __init__(self, revision: int, compacted: int) -> None:
        super().__init__(f"revision {revision} is compacted (oldest kept: {compacted})")
        self.revision = revision
        self.compacted = compacted


class FutureRevision(StorageError):
    """The requested revision is newer than the store's head."""

    def __init__(self, revision: int, current: int) -> None:
        super().__init__(f"revision {revision} is in the future (current: {current})")
        self.revision = revision
        self.current = current


class Unavailable(StorageError):
    """The backend cannot be reached (etcd down, database closed)."""


class Store(Protocol):
    """The interface both backends implement. All methods are coroutine-safe."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def current_revision(self) -> int: ...

    async def compacted_revision(self) -> int: ...

    async def get(self, key: str) -> KeyValue | None: ...

    async def list(self, prefix: str, revision: int = 0) -> tuple[list[KeyValue], int]: ...

    async def count(self, prefix: str) -> int: ...

    async def create(self, key: str, value: bytes) -> KeyValue: ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue: ...

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue: ...

    # builtins.list: inside this class body, a bare `list` would name the method above.
    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[builtins.list[Event]]: ...

    async def compact(self, revision: int) -> None: ...
