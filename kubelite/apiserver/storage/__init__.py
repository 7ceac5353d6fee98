"""Storage: the `Store` contract (``interface``) and its two backends.

``open_store`` picks the backend the way ``kubelite server`` does: etcd when endpoints are given, else the
embedded SQLite file ``<data_dir>/state.db``. The etcd backend (and gRPC with it) is imported only when it
is used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    StorageError,
    Store,
    Unavailable,
)
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .etcd import EtcdStore

__all__ = [
    "Compacted",
    "EtcdStore",
    "Event",
    "FutureRevision",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "RevisionMismatch",
    "SQLiteStore",
    "StorageError",
    "Store",
    "Unavailable",
    "open_store",
]


def open_store(*, data_dir: str, etcd_endpoints: list[str] | None) -> Store:
    """The store ``kubelite server`` runs on, not yet started (``await store.start()``)."""
    if etcd_endpoints:
        from .etcd import EtcdStore

        return EtcdStore(etcd_endpoints)
    return SQLiteStore(os.path.join(data_dir, "state.db"))


def __getattr__(name: str) -> object:
    if name == "EtcdStore":
        from .etcd import EtcdStore

        return EtcdStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
