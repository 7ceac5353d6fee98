"""Server-side apply, ``application/apply-patch+yaml`` (``kubectl apply --server-side``).

An apply sends the whole configuration a manager wants; the server merges it into the live
object and records that the manager owns exactly those fields (an ``Apply`` entry in
``metadata.managedFields``). This follows kube-apiserver (k8s.io/apiserver ``fieldmanager`` and
sigs.k8s.io/structured-merge-diff ``merge.Updater.Apply``):

1. the configuration is merged into the live object (:func:`typed.merge`);
2. fields the manager applied last time and no longer applies are removed, unless some manager
   (any operation, the new configuration included) still owns them (``prune``);
3. fields another manager owns whose value the apply changes are conflicts: 409 Conflict listing
   them, unless ``force``, in which case they move to the applier. Fields set to the same value are
   shared, not conflicting;
4. ``kubectl`` only: conflicts with fields whose live value still equals the object's
   ``kubectl.kubernetes.io/last-applied-configuration`` are not conflicts (the upgrade path from
   client-side apply), and that annotation, if present, is rewritten to the new configuration.

The status of a kind with a status subresource is never taken from, nor owned by, an apply to the
main resource. An object that exists but has no managed fields first attributes its current
fields to ``before-first-apply``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from kubelite.api.errors import APIError, bad_request, invalid_object, required

from ._errors import plain_error
from ._json import go_json, json_type_name
from .fieldpath import FieldSet, render_path
from .managedfields import (
    BEFORE_FIRST_APPLY,
    STRIPPED,
    Conflicts,
    Entry,
    ManagerKey,
    Managers,
    cap_update_managers,
    decode_managed_fields,
    encode_managed_fields,
    ignored_fields,
    keep_unchanged_timestamps,
    object_content,
    record_update,
    take_over,
)
from .schema import Schema, schema_for, zero_object
from .typed import TypedError, compare, merge, remove_items, to_field_set

__all__ = ["LAST_APPLIED_ANNOTATION", "server_side_apply"]

LAST_APPLIED_ANNOTATION: Final = "kubectl.kubernetes.io/last-applied-configuration"
TOTAL_ANNOTATION_SIZE_LIMIT: Final = 256 * 1024
_UPGRADING_MANAGER: Final = "kubectl"  # only kubectl's own applies take over client-side apply


def server_side_apply(live: dict[str, Any] | None, applied: Any, *, manager: str, force: bool,
                      api_version: str, kind: str, now: str) -> dict[str, Any]:
    """Apply ``applied`` (the parsed request body) as ``manager`` to ``live`` (None: the object does
    not exist and the caller creates the result). Returns the object to store, with managed fields;
    inputs are left untouched and untouched subtrees are shared with them (the result's top level
    and ``metadata`` are fresh dicts).

    A result equal to ``live`` means the apply changed nothing, managed-field timestamps included
    (kube-apiserver keeps the old timestamps then), so the caller need not write.

    Raises APIError: 422 without a field manager; 400 for a body that is not an object, that sets
    ``metadata.managedFields`` or whose apiVersion/kind differ from the endpoint's; 409 Conflict
    (reason Conflict, causes of type FieldManagerConflict) unless ``force``; 500 for a keyed list
    item without its key or a repeated key.
    """
    _check_request(applied, manager, api_version, kind)
    schema = schema_for(api_version, kind)
    ignored = ignored_fields(api_version, kind, "")
    config = {k: v for k, v in applied.items() if ("f:" + k) not in ignored.members}
    try:
        config_fields = to_field_set(config, schema)
    except TypedError as exc:
        raise plain_error(f"failed to create typed patch object ({_describe(applied)}): {exc}") from exc
    writer = ManagerKey.of(manager, "Apply", api_version)
    try:
        merged, managers = _apply(live, config, config_fields, writer, force=force, schema=schema,
                                  ignored=ignored, api_version=api_version, kind=kind, now=now)
    except TypedError as exc:
        # The configuration was checked above: the live object does not fit its schema.
        raise plain_error(f"failed to create typed live object ({_describe(applied)}): {exc}") from exc
    managers = _finish_writer(managers, writer, api_version, now)
    result = dict(merged)
    metadata = result["metadata"] = dict(_metadata(merged))
    if manager == _UPGRADING_MANAGER:
        _update_last_applied(metadata, applied)
    entries = keep_unchanged_timestamps(live, result, encode_managed_fields(cap_update_managers(managers)))
    if entries:
        metadata["managedFields"] = entries
    else:
        metadata.pop("managedFields", None)
    return result


def _apply(live: dict[str, Any] | None, config: dict[str, Any], config_fields: FieldSet, writer: ManagerKey, *,
           force: bool, schema: Schema, ignored: FieldSet, api_version: str, kind: str,
           now: str) -> tuple[dict[str, Any], Managers]:
    """Merge, prune and take ownership; forgive what a client-side-applied object explains."""
    managers: Managers = {}
    if live is not None:
        managers = decode_managed_fields(_metadata(live).get("managedFields"))
        if not managers:
            managers = record_update({}, zero_object(api_version, kind), live,
                                     writer=ManagerKey.of(BEFORE_FIRST_APPLY, "Update", api_version),
                                     api_version=api_version, kind=kind, now=now)
    attempt = _Attempt(live, config, config_fields, managers, writer, schema, ignored, api_version, kind)
    try:
        return attempt.run(force=force)
    except Conflicts as exc:
        remaining = _unexplained_conflicts(exc.conflicts, live, writer.manager, schema)
        if remaining:
            raise _conflict_error(remaining) from None
        return attempt.run(force=True)


class _Attempt:
    """One run of the apply algorithm over fixed inputs (run again with ``force`` after an
    explained conflict, from the same starting point)."""

    def __init__(self, live: dict[str, Any] | None, config: dict[str, Any], config_fields: FieldSet,
                 managers: Managers, writer: ManagerKey, schema: Schema, ignored: FieldSet,
                 api_version: str, kind: str) -> None:
        self.live = object_content(live) if live is not None else None
        self.config, self.config_fields = config, config_fields
        self.managers, self.writer = managers, writer
        self.schema, self.ignored = schema, ignored
        self.api_version, self.kind = api_version, kind

    def run(self, *, force: bool) -> tuple[dict[str, Any], Managers]:
        merged = merge(self.live if self.live is not None else {}, self.config, self.schema)
        previous = self.managers.get(self.writer)
        managers = dict(self.managers)
        managers[self.writer] = Entry(self.api_version, previous.time if previous else None, self.config_fields)
        if previous is not None:
            merged = self._prune(merged, managers, previous.fields)
        before = self.live if self.live is not None else zero_object(self.api_version, self.kind)
        comparison = compare(before, merged, self.schema).without(self.ignored)
        return merged, take_over(managers, comparison, writer=self.writer, force=force)

    def _prune(self, merged: dict[str, Any], managers: Managers, last: FieldSet) -> dict[str, Any]:
        """Remove what the writer applied last time and nobody (new configuration included) owns."""
        owned = FieldSet()
        for entry in managers.values():
            owned = owned.union(entry.fields)
        unowned = last.with_fields_as_members().difference(owned.with_fields_as_members())
        if unowned.is_empty():
            return merged
        return remove_items(merged, unowned, self.schema)


def _check_request(applied: Any, manager: str, api_version: str, kind: str) -> None:
    if not manager:
        raise invalid_object("PatchOptions", "", [required("fieldManager", "is required for apply requests")],
                             group="meta.k8s.io")
    if not isinstance(applied, dict):
        raise bad_request(f"error decoding YAML: json: cannot unmarshal {json_type_name(applied)} "
                          f"into Go value of type map[string]interface {{}}")
    metadata = applied.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("managedFields"), list):
        raise bad_request("metadata.managedFields must be nil")
    if applied.get("apiVersion") != api_version or applied.get("kind") != kind:
        raise bad_request(f"invalid object type: {_gvk(applied)}")


def _gvk(obj: dict[str, Any]) -> str:
    """``GroupVersionKind.String()``: ``apps/v1, Kind=Deployment``, ``/v1, Kind=Pod``."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    api_version = api_version if isinstance(api_version, str) else ""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind if isinstance(kind, str) else ''}"


def _describe(obj: dict[str, Any]) -> str:
    metadata = _metadata(obj)
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}; {_gvk(obj)}"


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _finish_writer(managers: Managers, writer: ManagerKey, api_version: str, now: str) -> Managers:
    """The applier never owns bookkeeping fields, and its entry is stamped with the apply's time."""
    entry = managers.get(writer)
    if entry is None:
        return managers
    result = dict(managers)
    fields = entry.fields.difference(STRIPPED)
    if fields.is_empty():
        del result[writer]
    else:
        result[writer] = Entry(api_version, now, fields)
    return result


def _unexplained_conflicts(conflicts: dict[ManagerKey, FieldSet], live: dict[str, Any] | None, manager: str,
                           schema: Schema) -> dict[ManagerKey, FieldSet]:
    """The conflicts left after forgiving those a client-side-applied object explains (see module)."""
    allowed = _fields_still_as_last_applied(live, schema) if manager == _UPGRADING_MANAGER else None
    if allowed is None:
        return conflicts
    remaining = {key: fields.difference(allowed) for key, fields in conflicts.items()}
    return {key: fields for key, fields in remaining.items() if not fields.is_empty()}


def _fields_still_as_last_applied(live: dict[str, Any] | None, schema: Schema) -> FieldSet | None:
    """Fields of the last-applied configuration whose live value is still the applied one."""
    if live is None:
        return None
    annotations = _metadata(live).get("annotations")
    text = annotations.get(LAST_APPLIED_ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(text, str) or not text:
        return None
    try:
        last = json.loads(text)
        if not isinstance(last, dict):
            return None
        fields = to_field_set(last, schema, strict=False)
        drift = compare(last, object_content(live), schema)
    except (ValueError, TypedError):
        return None
    return fields.difference(drift.modified).difference(drift.added).difference(drift.removed)


def _conflict_error(conflicts: dict[ManagerKey, FieldSet]) -> APIError:
    """409 as ``NewConflictError`` renders it (managers sorted by identity, paths in set order)."""
    ordered = sorted(conflicts, key=lambda k: k.identifier())
    found = [(key, path) for key in ordered for path in conflicts[key].paths()]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {key.describe()}",
               "field": render_path(path)} for key, path in found]
    if len(found) == 1:
        key, path = found[0]
        message = f"Apply failed with 1 conflict: conflict with {key.describe()}: {render_path(path)}"
    else:
        lines: list[str] = []
        for key in ordered:
            lines.append(f"conflicts with {key.describe()}:")
            lines.extend(f"- {render_path(path)}" for path in conflicts[key].paths())
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return APIError(409, "Conflict", message, {"causes": causes})


def _update_last_applied(metadata: dict[str, Any], applied: dict[str, Any]) -> None:
    """Rewrite an existing last-applied annotation to the applied configuration (dropped if the
    annotations would exceed their 256 KiB total)."""
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict) or LAST_APPLIED_ANNOTATION not in annotations:
        return
    updated = dict(annotations)
    updated[LAST_APPLIED_ANNOTATION] = _last_applied_text(applied)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in updated.items() if isinstance(v, str))
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        del updated[LAST_APPLIED_ANNOTATION]
    if updated:
        metadata["annotations"] = updated
    else:
        metadata.pop("annotations", None)


def _last_applied_text(applied: dict[str, Any]) -> str:
    """The configuration without the annotation itself, encoded as Go encodes it (newline included)."""
    config = dict(applied)
    metadata = config.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            rest = {k: v for k, v in annotations.items() if k != LAST_APPLIED_ANNOTATION}
            metadata = {k: v for k, v in metadata.items() if k != "annotations"}
            if rest:
                metadata["annotations"] = rest
            config["metadata"] = metadata
    return go_json(config) + "\n"
