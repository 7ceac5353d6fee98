"""Nodes: a DNS-subdomain name, taints unique by (key, effect), pod CIDRs (one per IP family, immutable
once set), providerID immutable once set, and non-negative capacity/allocatable quantities."""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import Cause, duplicate, forbidden, invalid, not_supported, required

from . import formats, gofmt
from .common import Errs, as_dict, as_list, as_str, cidr, label_name
from .meta import name_is_dns_subdomain, object_meta, object_meta_update
from .resources import resource_list
from .scheduling import TAINT_EFFECTS

_POD_CIDR_IMMUTABLE = 'node updates may not change podCIDR except from "" to valid'


def validate_node(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=False, name_fn=name_is_dns_subdomain)
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    # Kubernetes reports taints under "metadata.taints" (it reuses the metadata path); kept for parity.
    _taints(errs, "metadata.taints", spec.get("taints"))
    resource_list(errs, "status.capacity", status.get("capacity"))
    resource_list(errs, "status.allocatable", status.get("allocatable"))
    _pod_cidrs(errs, [as_str(c) for c in as_list(spec.get("podCIDRs"))])
    if old is not None:
        object_meta_update(errs, obj, old)
        _update(errs, spec, status, as_dict(old.get("spec")))
    return errs


def _taints(errs: Errs, path: str, value: Any) -> None:
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(as_dict(t) for t in as_list(value)):
        at = f"{path}[{i}]"
        key, effect = as_str(taint.get("key")), as_str(taint.get("effect"))
        label_name(errs, f"{at}.key", key)
        reasons = formats.is_label_value(as_str(taint.get("value")))
        if reasons:
            errs.append(invalid(f"{at}.value", as_str(taint.get("value")), ";".join(reasons)))
        if not effect:
            errs.append(required(f"{at}.effect"))
        elif effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"{at}.effect", effect, TAINT_EFFECTS))
        if (key, effect) in seen:
            cause = duplicate(at, gofmt.raw(f"{key}={as_str(taint.get('value'))}:{effect}"))
            errs.append(Cause(cause.field, f"{cause.message}: taints must be unique by key and effect pair",
                              cause.reason))
            continue
        seen.add((key, effect))


def _pod_cidrs(errs: Errs, cidrs: list[str]) -> None:
    for i, value in enumerate(cidrs):
        cidr(errs, f"spec.podCIDRs[{i}]", value)
    if len(cidrs) > 1:
        families = {formats.parse_ip(c.partition("/")[0]).__class__ for c in cidrs}
        if len(families) != 2 or len(cidrs) > 2:
            errs.append(invalid("spec.podCIDRs", gofmt.string_list(cidrs),
                                "may specify no more than one CIDR for each IP family"))
        for i, value in enumerate(cidrs):
            if value in cidrs[:i]:
                errs.append(duplicate(f"spec.podCIDRs[{i}]", value))


def _update(errs: Errs, spec: dict[str, Any], status: dict[str, Any], old: dict[str, Any]) -> None:
    seen: list[Any] = []
    for i, address in enumerate(as_list(status.get("addresses"))):
        if address in seen:
            errs.append(duplicate(f"status.addresses[{i}]", gofmt.raw(address)))
        seen.append(address)
    old_cidrs = as_list(old.get("podCIDRs"))
    if old_cidrs and old_cidrs != as_list(spec.get("podCIDRs")):
        errs.append(forbidden("spec.podCIDRs", _POD_CIDR_IMMUTABLE))
    old_provider = as_str(old.get("providerID"))
    if old_provider and old_provider != as_str(spec.get("providerID")):
        errs.append(forbidden("spec.providerID", "node updates may not change providerID except from \"\" to valid"))
    if spec.get("externalID") != old.get("externalID"):
        errs.append(forbidden("spec.externalID", "may not be updated"))
