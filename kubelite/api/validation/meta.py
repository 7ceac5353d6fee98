"""ObjectMeta validation shared by every kind (apimachinery's ValidateObjectMeta and rest.BeforeCreate).

Covered: the name (and ``generateName`` prefix) against the kind's name rule, the name as a URL path
segment, the namespace of namespaced kinds, labels, annotations (keys and the 256 KiB total), owner
references, finalizers and managed fields. On update: no new finalizers once deletion started.

Not covered here, on purpose: immutability of name/namespace/uid/creationTimestamp and resourceVersion
bookkeeping belong to the API server; a cluster-scoped object's stray ``metadata.namespace`` is cleared by
the server before validation, as Kubernetes does, so it is not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubelite.api.errors import forbidden, invalid, required, too_long

from . import formats, gofmt
from .common import Errs, annotation_map, as_dict, as_list, as_str, each_invalid, labels, nonnegative

NameFn = Callable[[str, bool], list[str]]

# Finalizers Kubernetes knows by their bare name.
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
_FIELD_MANAGER_MAX = 128
_SUBRESOURCE_MAX = 256


def _mask_trailing_dash(name: str) -> str:
    # apimachinery replaces the last *two* characters when the prefix ends in a dash; kept as-is.
    return name[:-2] + "a" if name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool) -> list[str]:
    return formats.is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool) -> list[str]:
    return formats.is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    return formats.is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def name_any(name: str, prefix: bool) -> list[str]:
    """Kinds whose names are only checked as URL path segments (core/v1 Events)."""
    return []


def object_meta(errs: Errs, obj: dict[str, Any], *, namespaced: bool, name_fn: NameFn,
                path: str = "metadata") -> None:
    meta = as_dict(obj.get("metadata"))
    generate_name = as_str(meta.get("generateName"))
    if generate_name:
        each_invalid(errs, f"{path}.generateName", generate_name, name_fn(generate_name, True))
    name = as_str(meta.get("name"))
    if not name:
        # kubelite's server generates the name from generateName after admission, so a bare
        # generateName is complete here (Kubernetes validates the generated name instead).
        if not generate_name:
            errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        each_invalid(errs, f"{path}.name", name, name_fn(name, False))
        each_invalid(errs, f"{path}.name", name, formats.is_path_segment_name(name))
    if namespaced:
        namespace = as_str(meta.get("namespace"))
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            each_invalid(errs, f"{path}.namespace", namespace, formats.is_dns1123_label(namespace))
    nonnegative(errs, f"{path}.generation", meta.get("generation"))
    labels(errs, f"{path}.labels", meta.get("labels"))
    annotation_map(errs, f"{path}.annotations", meta.get("annotations"))
    owner_references(errs, f"{path}.ownerReferences", meta.get("ownerReferences"))
    finalizers(errs, f"{path}.finalizers", meta.get("finalizers"))
    managed_fields(errs, f"{path}.managedFields", meta.get("managedFields"))


def object_meta_update(errs: Errs, obj: dict[str, Any], old: dict[str, Any], path: str = "metadata") -> None:
    new_meta, old_meta = as_dict(obj.get("metadata")), as_dict(old.get("metadata"))
    if old_meta.get("deletionTimestamp"):
        before = {as_str(f) for f in as_list(old_meta.get("finalizers"))}
        extra = sorted({as_str(f) for f in as_list(new_meta.get("finalizers"))} - before)
        if extra:
            errs.append(forbidden(f"{path}.finalizers", "no new finalizers can be added if the object is being "
                                  f"deleted, found new finalizers {gofmt.string_list(extra)}"))


def owner_references(errs: Errs, path: str, value: Any) -> None:
    first_controller = ""
    for ref in (as_dict(r) for r in as_list(value)):
        api_version, kind = as_str(ref.get("apiVersion")), as_str(ref.get("kind"))
        version = api_version.rpartition("/")[2]
        # apimachinery reports these on the list's path, without an index.
        if not version:
            errs.append(invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            errs.append(invalid(f"{path}.kind", kind, "must not be empty"))
        if not as_str(ref.get("name")):
            errs.append(invalid(f"{path}.name", as_str(ref.get("name")), "must not be empty"))
        if not as_str(ref.get("uid")):
            errs.append(invalid(f"{path}.uid", as_str(ref.get("uid")), "must not be empty"))
        if api_version == "v1" and kind == "Event":
            errs.append(invalid(path, gofmt.raw(ref), "/v1, Kind=Event is disallowed from being an owner"))
        if ref.get("controller") is True:
            current = f"{kind}/{as_str(ref.get('name'))}"
            if first_controller:
                errs.append(invalid(path, gofmt.raw(value), "Only one reference can have Controller set to true. "
                                    f'Found "true" in references for {first_controller} and {current}'))
            else:
                first_controller = current


def finalizers(errs: Errs, path: str, value: Any) -> None:
    names = [as_str(f) for f in as_list(value)]
    for name in names:
        each_invalid(errs, path, name, formats.is_qualified_name(name))
    if "orphan" in names and "foregroundDeletion" in names:
        errs.append(invalid(path, gofmt.string_list(names),
                            "finalizer orphan and foregroundDeletion cannot be both set"))
    for i, name in enumerate(names):
        finalizer_name_is_standard_or_qualified(errs, f"{path}[{i}]", name)


def finalizer_name_is_standard_or_qualified(errs: Errs, path: str, name: str) -> None:
    if "/" not in name and name not in STANDARD_FINALIZERS:
        errs.append(invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))


def managed_fields(errs: Errs, path: str, value: Any) -> None:
    for i, entry in enumerate(as_dict(e) for e in as_list(value)):
        at = f"{path}[{i}]"
        operation = as_str(entry.get("operation"))
        if operation not in ("Apply", "Update"):
            errs.append(invalid(f"{at}.operation", operation, "must be `Apply` or `Update`"))
        fields_type = as_str(entry.get("fieldsType"))
        if fields_type and fields_type != "FieldsV1":
            errs.append(invalid(f"{at}.fieldsType", fields_type, "must be `FieldsV1`"))
        manager = as_str(entry.get("manager"))
        if len(manager) > _FIELD_MANAGER_MAX:
            errs.append(too_long(f"{at}.manager", _FIELD_MANAGER_MAX))
        for pos, ch in enumerate(manager):
            if not ch.isprintable():
                errs.append(invalid(f"{at}.manager", manager,
                                    f"invalid character U+{ord(ch):04X} (at position {pos})"))
        if len(as_str(entry.get("subresource"))) > _SUBRESOURCE_MAX:
            errs.append(too_long(f"{at}.subresource", _SUBRESOURCE_MAX))


def template_meta(errs: Errs, template: dict[str, Any], path: str) -> None:
    """Metadata of a pod template: only labels and annotations, reported at ``<template>.labels`` (sic)."""
    meta = as_dict(template.get("metadata"))
    labels(errs, f"{path}.labels", meta.get("labels"))
    annotation_map(errs, f"{path}.annotations", meta.get("annotations"))
