"""What a controller expects its informer caches to show next, so that it never acts twice on a cache that has
not caught up with its own writes (Kubernetes' ``ControllerExpectations`` and the endpoint controllers' stale
cache trackers).

Two tools, both keyed by the controller's work-queue key (``ns/name`` of the owner):

`ControllerExpectations` (``controller.ControllerExpectations`` + ``UIDTrackingControllerExpectations``)
    counts creations and deletions in flight. Before creating N objects the controller calls
    ``expect_creations(key, N)``; every ADDED event of an object it controls calls ``creation_observed(key)``.
    Deletions are tracked by the deleted objects' keys, so that a graceful deletion (first an update with a
    ``deletionTimestamp``, later the DELETED event) is counted once. ``satisfied(key)`` is true when every
    expected event was seen, when nothing is expected, or when the expectations are older than ``ttl``
    (5 minutes, as in Kubernetes: a lost watch event must not put a controller to sleep for ever). While
    not satisfied, the controller must not create or delete anything for that key, only report status.

`ResourceVersionTracker` (the EndpointSlice tracker and the Endpoints ``staleEndpointsTracker``)
    remembers, per group of objects (e.g. every EndpointSlice of one Service), the resourceVersion of each
    object the controller wrote or deleted. ``is_stale(group, cached, cache_version)`` says whether the cache
    still shows something older than those writes; a cache whose own resourceVersion is past a write has seen
    it. It compares resourceVersions as integers (kubelite's are store revisions, global and ordered); an
    object whose resourceVersion is not an integer is never called stale.

Both are plain objects used from one event loop: informer handlers and reconciles call them between awaits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubelite.api import meta

# Kubernetes' ExpectationsTimeout.
EXPECTATIONS_TIMEOUT_SECONDS = 300.0

Obj = dict[str, Any]


@dataclass
class Expectation:
    """What one key still waits for: ``adds`` creations and the deletions of ``deleting`` (object keys)."""

    adds: int
    dels: int
    timestamp: float
    deleting: set[str] = field(default_factory=set)

    @property
    def fulfilled(self) -> bool:
        return self.adds <= 0 and self.dels <= 0


class ControllerExpectations:
    """See the module docstring. ``clock`` is monotonic seconds (injectable for tests)."""

    def __init__(self, *, ttl: float = EXPECTATIONS_TIMEOUT_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_key: dict[str, Expectation] = {}

    def get(self, key: str) -> Expectation | None:
        return self._by_key.get(key)

    def satisfied(self, key: str) -> bool:
        exp = self._by_key.get(key)
        if exp is None or exp.fulfilled:
            return True
        return self._clock() - exp.timestamp > self.ttl

    def expect_creations(self, key: str, adds: int) -> None:
        """Forget what ``key`` expected before; now expect ``adds`` creations."""
        self._by_key[key] = Expectation(adds, 0, self._clock())

    def expect_deletions(self, key: str, deleted_keys: Iterable[str]) -> None:
        """Forget what ``key`` expected before; now expect the deletion of each of ``deleted_keys``."""
        deleting = set(deleted_keys)
        self._by_key[key] = Expectation(0, len(deleting), self._clock(), deleting)

    def creation_observed(self, key: str) -> None:
        """One expected creation was seen (or will never happen: the create failed or was skipped)."""
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds -= 1

    def deletion_observed(self, key: str, deleted_key: str) -> None:
        """``deleted_key`` was seen being deleted (or its deletion failed); counted once per object."""
        exp = self._by_key.get(key)
        if exp is not None and deleted_key in exp.deleting:
            exp.deleting.discard(deleted_key)
            exp.dels -= 1

    def delete(self, key: str) -> None:
        """Drop everything about ``key`` (its owner is gone; a new owner with that name starts clean)."""
        self._by_key.pop(key, None)


def _rv(obj: Obj) -> int | None:
    try:
        return int(meta.resource_version(obj))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Written:
    resource_version: int
    deleted: bool


class ResourceVersionTracker:
    """See the module docstring. Groups and names are strings the caller chooses (e.g. a Service key and an
    EndpointSlice name)."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, _Written]] = {}

    def wrote(self, group: str, obj: Obj) -> None:
        """``obj`` is the object as the server returned it from a create or update."""
        rv = _rv(obj)
        if rv is not None:
            self._groups.setdefault(group, {})[meta.name(obj)] = _Written(rv, False)

    def deleted(self, group: str, obj: Obj) -> None:
        """``obj`` (the state the deletion was decided from) was deleted."""
        rv = _rv(obj)
        if rv is not None:
            self._groups.setdefault(group, {})[meta.name(obj)] = _Written(rv, True)

    def is_own_write(self, group: str, obj: Obj) -> bool:
        """Whether ``obj`` (from a watch event) is exactly the state this controller last wrote."""
        written = self._groups.get(group, {}).get(meta.name(obj))
        return written is not None and not written.deleted and written.resource_version == _rv(obj)

    def expected_deletion(self, group: str, obj: Obj) -> bool:
        """Whether this controller deleted ``obj`` (from a DELETED event); the record is then dropped."""
        entries = self._groups.get(group, {})
        written = entries.get(meta.name(obj))
        if written is None:
            return False
        rv = _rv(obj)
        if rv is not None and rv < written.resource_version:
            return False  # the deletion of an older incarnation: the record stands
        del entries[meta.name(obj)]
        return written.deleted

    def is_stale(self, group: str, cached: Mapping[str, Obj], cache_version: str = "") -> bool:
        """Whether ``cached`` (name → object, as the informer shows the group now) is older than what this
        controller wrote. ``cache_version``, the resourceVersion the whole cache is current to, settles every
        write at or below it (even of an object someone deleted since). Records the cache has caught up with
        are dropped."""
        entries = self._groups.get(group)
        if not entries:
            return False
        try:
            current_to = int(cache_version)
        except ValueError:
            current_to = -1
        stale = False
        for name, written in list(entries.items()):
            obj = cached.get(name)
            seen = _rv(obj) if obj is not None else None
            if written.deleted:
                behind = obj is not None and seen is not None and seen <= written.resource_version
            elif current_to >= written.resource_version:
                behind = False
            else:
                behind = obj is None or (seen is not None and seen < written.resource_version)
            if behind:
                stale = True
            else:
                del entries[name]
        if not entries:
            self._groups.pop(group, None)
        return stale

    def forget(self, group: str) -> None:
        self._groups.pop(group, None)
