"""Field ownership: ``metadata.managedFields`` and how every write moves fields between managers.

Each entry of ``metadata.managedFields`` records, for one *manager identity* — manager name,
operation (``Apply`` or ``Update``), for updates the API version, and the subresource — the set of
fields it owns (FieldsV1) and when it last took one. Kubernetes' rules (k8s.io/apiserver
``fieldmanager`` over sigs.k8s.io/structured-merge-diff), implemented here:

- every create/update/patch that is not an apply (:func:`update_managed_fields`) compares the old
  and new object; the fields it added or modified move to the writer's ``Update`` entry (which keeps
  the fields it already had), other managers lose them, and removed fields are dropped from
  everybody. Applies do the same with conflict detection (``apply.py``);
- an object that exists but has no managed fields (or was reset with ``managedFields: []``) stays
  untracked by updates; the first apply attributes its current fields to ``before-first-apply``;
- bookkeeping fields (``apiVersion``, ``kind``, ``metadata.name``, ``namespace``, ``uid``,
  ``resourceVersion``, ``generation``, ``creationTimestamp``, ``selfLink``, ``managedFields``)
  are never owned; writes to the main resource of a kind with a status subresource do not own
  ``status``, and writes to ``/status`` do not own ``spec``;
- at most 10 ``Update`` entries are kept: the oldest are folded into ``ancient-changes`` per version;
- when a write changes nothing but managed-field timestamps, the old timestamps are kept, so
  that the write is a no-op (kube-apiserver's ``IgnoreManagedFieldsTimestampsTransformer``).

Entries are encoded as kube-apiserver does: keys in ``ManagedFieldsEntry`` order, sorted by
operation, time, manager, API version, subresource.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from .fieldpath import FieldSet
from .schema import has_status_subresource, schema_for, zero_object
from .typed import Comparison, TypedError, compare

__all__ = [
    "ANCIENT_CHANGES",
    "BEFORE_FIRST_APPLY",
    "MAX_UPDATE_MANAGERS",
    "STRIPPED",
    "Conflicts",
    "Entry",
    "ManagerKey",
    "Managers",
    "cap_update_managers",
    "decode_managed_fields",
    "encode_managed_fields",
    "ignored_fields",
    "keep_unchanged_timestamps",
    "manager_from_user_agent",
    "object_content",
    "record_update",
    "take_over",
    "update_managed_fields",
]

_log = logging.getLogger(__name__)

BEFORE_FIRST_APPLY: Final = "before-first-apply"
ANCIENT_CHANGES: Final = "ancient-changes"
MAX_UPDATE_MANAGERS: Final = 10
FIELD_MANAGER_MAX_LENGTH: Final = 128

STRIPPED: Final = FieldSet.of(
    ("f:apiVersion",), ("f:kind",), ("f:metadata",),
    *(("f:metadata", f"f:{name}") for name in (
        "name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation",
        "managedFields", "resourceVersion")),
)
_STATUS: Final = FieldSet.of(("f:status",))
_SPEC: Final = FieldSet.of(("f:spec",))
_NOTHING: Final = FieldSet()


@dataclass(frozen=True, slots=True)
class ManagerKey:
    """A manager identity: what ``BuildManagerIdentifier`` keeps (no API version for appliers)."""

    manager: str
    operation: str
    api_version: str = ""
    subresource: str = ""

    @classmethod
    def of(cls, manager: str, operation: str, api_version: str, subresource: str = "") -> ManagerKey:
        return cls(manager, operation, "" if operation == "Apply" else api_version, subresource)

    def identifier(self) -> str:
        """The JSON identifier kube-apiserver keys managers by (and sorts conflict messages by)."""
        parts: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.api_version:
            parts["apiVersion"] = self.api_version
        if self.subresource:
            parts["subresource"] = self.subresource
        return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)

    def describe(self) -> str:
        """How conflict messages name the manager: ``"kubectl-edit" using apps/v1``."""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


class Entry:
    """One manager's field set, the API version it was recorded with, and its time.

    The FieldsV1 form read from the object is decoded on first use and written back unchanged
    when the set did not change, so untouched entries cost nothing.
    """

    __slots__ = ("_encoded", "_fields", "api_version", "time")

    def __init__(self, api_version: str, time: str | None, fields: FieldSet | None = None,
                 encoded: Mapping[str, Any] | None = None) -> None:
        self.api_version = api_version
        self.time = time
        self._fields = fields
        self._encoded = encoded

    @property
    def fields(self) -> FieldSet:
        if self._fields is None:
            self._fields = FieldSet.from_fields_v1(self._encoded or {})
        return self._fields

    def encoded(self) -> Mapping[str, Any]:
        if self._encoded is None:
            self._encoded = self.fields.to_fields_v1()
        return self._encoded

    def with_fields(self, fields: FieldSet) -> Entry:
        if fields is self._fields:
            return self
        return Entry(self.api_version, self.time, fields)


Managers = dict[ManagerKey, Entry]
_CURRENT_OPERATION: Final = ManagerKey("", "current-operation")


class Conflicts(Exception):
    """Fields other managers own that a write would change: manager → the contested fields."""

    def __init__(self, conflicts: dict[ManagerKey, FieldSet]) -> None:
        super().__init__(f"{sum(1 for s in conflicts.values() for _ in s.paths())} conflicts")
        self.conflicts = conflicts


# -- encoding --------------------------------------------------------------------------------------


def decode_managed_fields(entries: Any) -> Managers:
    """Decode ``metadata.managedFields``; entries that are not FieldsV1 objects are dropped and
    repeated identities merged (validation is the server's job, ownership must not fail on it)."""
    managers: Managers = {}
    if not isinstance(entries, list):
        return managers
    for raw in entries:
        if not isinstance(raw, dict) or raw.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        manager, operation = raw.get("manager", ""), raw.get("operation", "")
        api_version, subresource = raw.get("apiVersion", ""), raw.get("subresource", "")
        fields = raw.get("fieldsV1") or {}
        time = raw.get("time")
        if not all(isinstance(v, str) for v in (manager, operation, api_version, subresource)):
            continue
        if not isinstance(fields, dict) or not (time is None or isinstance(time, str)):
            continue
        key = ManagerKey.of(manager, operation, api_version, subresource)
        entry = Entry(api_version, time, encoded=fields)
        previous = managers.get(key)
        if previous is not None:
            entry = Entry(api_version, max(previous.time or "", time or "") or None,
                          previous.fields.union(entry.fields))
        managers[key] = entry
    return managers


def encode_managed_fields(managers: Managers) -> list[dict[str, Any]]:
    """Encode as ``metadata.managedFields``, sorted like kube-apiserver sorts them."""
    entries: list[dict[str, Any]] = []
    for key, entry in managers.items():
        encoded: dict[str, Any] = {"manager": key.manager, "operation": key.operation}
        if entry.api_version:
            encoded["apiVersion"] = entry.api_version
        if entry.time:
            encoded["time"] = entry.time
        encoded["fieldsType"] = "FieldsV1"
        encoded["fieldsV1"] = entry.encoded()
        if key.subresource:
            encoded["subresource"] = key.subresource
        entries.append(encoded)
    entries.sort(key=lambda e: (e["operation"], _seconds(e.get("time")), e["manager"],
                                e.get("apiVersion", ""), e.get("subresource", "")))
    return entries


def _seconds(time: str | None) -> float:
    if not time:
        return 0.0
    try:
        return datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp() // 1
    except ValueError:
        return 0.0


# -- the ownership algebra -----------------------------------------------------------------------


def ignored_fields(api_version: str, kind: str, subresource: str) -> FieldSet:
    """Fields a write through this endpoint never owns (the strategy resets them)."""
    if subresource == "status":
        return _SPEC
    if not subresource and has_status_subresource(api_version, kind):
        return _STATUS
    return _NOTHING


def take_over(managers: Managers, comparison: Comparison, *, writer: ManagerKey, force: bool) -> Managers:
    """Other managers lose the fields ``comparison`` changed (or raise :class:`Conflicts` unless
    ``force``) and everybody but ``writer`` loses the removed fields; empty entries disappear."""
    changed, removed = comparison.changed(), comparison.removed
    if changed.is_empty() and removed.is_empty():
        return managers
    conflicts: dict[ManagerKey, FieldSet] = {}
    for key, entry in managers.items():
        if key != writer:
            contested = entry.fields.intersection(changed)
            if not contested.is_empty():
                conflicts[key] = contested
    if conflicts and not force:
        raise Conflicts(conflicts)
    result: Managers = {}
    for key, entry in managers.items():
        fields = entry.fields
        if key != writer:
            if key in conflicts:
                fields = fields.difference(conflicts[key])
            fields = fields.difference(removed)
        if not fields.is_empty():
            result[key] = entry.with_fields(fields)
    return result


def record_update(managers: Managers, before: dict[str, Any], after: dict[str, Any], *, writer: ManagerKey,
                  api_version: str, kind: str, now: str) -> Managers:
    """The managers after ``writer`` turned ``before`` into ``after`` with a non-apply write."""
    ignored = ignored_fields(api_version, kind, writer.subresource)
    comparison = compare(object_content(before), object_content(after), schema_for(api_version, kind)).without(ignored)
    # Like kube-apiserver, first let an anonymous "current operation" take the changed fields, so that
    # the writer's own previous entry is treated like everybody else's, then fold them into it.
    result = take_over(managers, comparison, writer=_CURRENT_OPERATION, force=True)
    taken = comparison.changed().difference(STRIPPED)
    if not taken.is_empty():
        previous = result.get(writer)
        fields = taken if previous is None else taken.union(previous.fields)
        result[writer] = Entry(api_version, now, fields)
    return cap_update_managers(result)


def cap_update_managers(managers: Managers) -> Managers:
    """Fold the oldest ``Update`` entries into ``ancient-changes`` (one per API version)."""
    updaters = [k for k in managers if k.operation != "Apply"]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return managers
    result = dict(managers)
    updaters.sort(key=lambda k: (_seconds(managers[k].time), k.identifier()))
    first_by_version: dict[str, ManagerKey] = {}
    count = len(updaters)
    for key in updaters:
        if count <= MAX_UPDATE_MANAGERS:
            break
        entry = result[key]
        version = entry.api_version
        first = first_by_version.get(version)
        if first is None:
            first_by_version[version] = key
            continue
        bucket = ManagerKey.of(ANCIENT_CHANGES, "Update", version)
        if key == bucket:
            continue
        if bucket not in result:
            result[bucket] = result.pop(first)
        result[bucket] = Entry(version, entry.time, entry.fields.union(result[bucket].fields))
        del result[key]
        count -= 1
    return result


def object_content(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without ``metadata.managedFields`` (which is never owned and only costs time)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return obj
    return {**obj, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


def keep_unchanged_timestamps(old: dict[str, Any] | None, new: dict[str, Any],
                              entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` for ``new``, or the old entries if only their timestamps would change and the
    rest of the object is equal, so that a no-op write stays a no-op."""
    if old is None or not entries:
        return entries
    old_metadata = old.get("metadata")
    old_entries = old_metadata.get("managedFields") if isinstance(old_metadata, dict) else None
    if not isinstance(old_entries, list) or len(old_entries) != len(entries):
        return entries
    if all(isinstance(o, dict) and o.get("time") == n.get("time") for o, n in zip(old_entries, entries, strict=True)):
        return entries
    for old_entry, entry in zip(old_entries, entries, strict=True):
        if not isinstance(old_entry, dict) or _timeless(old_entry) != _timeless(entry):
            return entries
    if object_content(old) != object_content(new):
        return entries
    return old_entries


def _timeless(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "time"}


# -- entry points ----------------------------------------------------------------------------------


def update_managed_fields(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str, api_version: str,
                          now: str, operation: str = "Update", subresource: str = "") -> None:
    """Record in ``new["metadata"]["managedFields"]`` that ``manager`` turned ``old`` into ``new``.

    Call after every create (``old`` is None), update and non-apply patch, with the final object
    (defaults applied). ``api_version`` is the version the request used; for a subresource write
    (``status``, ``scale``) pass the parent objects, the parent's version and the subresource.
    ``now`` is an RFC 3339 timestamp. The managed fields of a subresource request body are ignored;
    for the main resource a ``managedFields`` sent by the client replaces the stored one (``[]``
    clears it) and an absent one keeps it. Only ``new["metadata"]["managedFields"]`` is assigned
    (a new list; no existing list or entry is mutated). Never raises: an object that does not fit
    its schema (a keyed list item without its key) loses its managed fields instead, as in Kubernetes.
    """
    metadata = new.get("metadata")
    if not isinstance(metadata, dict):
        return
    managers = _live_or_new(old, new, ignore_new=bool(subresource))
    if not managers and old is not None:
        metadata.pop("managedFields", None)  # an untracked object stays untracked until applied to
        return
    kind = str(new.get("kind") or (old or {}).get("kind") or "")
    before = old if old is not None else zero_object(api_version, kind)
    writer = ManagerKey.of(manager, operation, api_version, subresource)
    try:
        result = record_update(managers, before, new, writer=writer, api_version=api_version, kind=kind, now=now)
    except TypedError:
        # Like kube-apiserver's UpdateNoErrors: never fail a write over bookkeeping, and keep no garbage.
        _log.exception("failed to update managedFields of %s %s", kind, metadata.get("name"))
        metadata.pop("managedFields", None)
        return
    entries = keep_unchanged_timestamps(old, new, encode_managed_fields(result))
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)


def _live_or_new(old: dict[str, Any] | None, new: dict[str, Any], *, ignore_new: bool) -> Managers:
    old_metadata = old.get("metadata") if old is not None else None
    stored = decode_managed_fields(old_metadata.get("managedFields")) if isinstance(old_metadata, dict) else {}
    if ignore_new:
        return stored
    sent = new["metadata"].get("managedFields")
    if isinstance(sent, list) and (not sent or sent == [{}]):
        return {}  # an explicit reset
    managers = decode_managed_fields(sent)
    return managers or stored


def manager_from_user_agent(user_agent: str) -> str:
    """The default field manager of a request without ``fieldManager``: the user agent up to the
    first ``/``, printable characters only, at most 128 bytes (``kubectl/v1.37.0 (...)`` → ``kubectl``)."""
    out: list[str] = []
    size = 0
    for char in user_agent.split("/", 1)[0]:
        if not char.isprintable():  # Python's notion matches Go's unicode.IsPrint
            continue
        length = len(char.encode())
        if size + length > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(char)
        size += length
    return "".join(out)
