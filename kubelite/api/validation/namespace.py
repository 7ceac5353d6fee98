"""Namespaces (a DNS-1123 label name, cluster-scoped, known or qualified finalizers) and
ServiceAccounts (metadata only)."""

from __future__ import annotations

from typing import Any

from . import formats
from .common import Errs, as_dict, as_list, as_str, each_invalid
from .meta import (
    finalizer_name_is_standard_or_qualified,
    name_is_dns_label,
    name_is_dns_subdomain,
    object_meta,
    object_meta_update,
)


def validate_namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=False, name_fn=name_is_dns_label)
    for finalizer in as_list(as_dict(obj.get("spec")).get("finalizers")):
        name = as_str(finalizer)
        # Kubernetes reports spec finalizers on the list's path, without an index.
        each_invalid(errs, "spec.finalizers", name, formats.is_qualified_name(name))
        finalizer_name_is_standard_or_qualified(errs, "spec.finalizers", name)
    if old is not None:
        object_meta_update(errs, obj, old)
    return errs


def validate_service_account(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    if old is not None:
        object_meta_update(errs, obj, old)
    return errs
