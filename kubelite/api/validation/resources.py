"""Resource names and quantities: container ``resources`` and node ``capacity``/``allocatable``.

Follows pkg/apis/core/validation (validateResourceRequirements, ValidateResourceQuantityValue) and the
resource-name helpers of pkg/apis/core/helper. A quantity that does not parse is reported as an Invalid
cause carrying apimachinery's parse error (the real API server rejects it while decoding).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubelite.api.errors import Cause, duplicate, forbidden, invalid, required
from kubelite.api.quantity import Quantity

from . import formats, gofmt
from .common import Errs, as_dict, as_list, as_str, each_invalid, not_found

_STANDARD_CONTAINER = frozenset({"cpu", "memory", "ephemeral-storage"})
_STANDARD = frozenset({
    "cpu", "memory", "ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "pods", "resourcequotas", "services",
    "replicationcontrollers", "secrets", "configmaps", "persistentvolumeclaims", "storage",
    "requests.storage", "services.nodeports", "services.loadbalancers",
})
_INTEGER = frozenset({
    "pods", "resourcequotas", "services", "replicationcontrollers", "secrets", "configmaps",
    "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
})
_HUGEPAGES = "hugepages-"
_QOS_COMPUTE = frozenset({"cpu", "memory"})


def is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def is_hugepages(name: str) -> bool:
    return name.startswith(_HUGEPAGES)


def is_extended(name: str) -> bool:
    if is_native(name) or name.startswith("requests."):
        return False
    return not formats.is_qualified_name("requests." + name)


def overcommit_allowed(name: str) -> bool:
    return is_native(name) and not is_hugepages(name)


def _is_standard(name: str) -> bool:
    return name in _STANDARD or is_hugepages(name) or name.startswith("requests." + _HUGEPAGES)


def resource_name(errs: Errs, path: str, name: str) -> None:
    reasons = formats.is_qualified_name(name)
    each_invalid(errs, path, name, reasons)
    if not reasons and "/" not in name and not _is_standard(name):
        errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))


def container_resource_name(errs: Errs, path: str, name: str) -> None:
    resource_name(errs, path, name)
    if "/" not in name:
        if name not in _STANDARD_CONTAINER and not is_hugepages(name):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not is_native(name) and not is_extended(name):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))


def parse(errs: Errs, path: str, raw: Any) -> Quantity | None:
    """The quantity at ``path``, or None after recording why it is not one."""
    try:
        return Quantity.parse(raw)
    except ValueError as err:
        errs.append(invalid(path, raw if isinstance(raw, str) else gofmt.raw(raw), str(err)))
        return None


def quantity_value(errs: Errs, path: str, name: str, q: Quantity) -> None:
    """ValidateResourceQuantityValue: never negative; whole numbers for countable resources."""
    if q.value < 0:
        errs.append(invalid(path, str(q), "must be greater than or equal to 0"))
    if (name in _INTEGER or is_extended(name)) and (q.value * 1000) % 1000 != 0:
        errs.append(invalid(path, gofmt.raw(q), "must be an integer"))


def _hugepage_value(errs: Errs, path: str, name: str, q: Quantity) -> None:
    try:
        page = Quantity.parse(name[len(_HUGEPAGES):]).value
    except ValueError:
        page = Decimal(0)
    if page <= 0 or q.value % page != 0:
        errs.append(invalid(path, str(q), f"{q} is not positive integer multiple of {name}"))


def resource_requirements(errs: Errs, path: str, value: Any, pod_claims: set[str]) -> None:
    """A container's ``resources``: names, quantities, requests <= limits, hugepages, claims."""
    reqs = as_dict(value)
    limits_path, requests_path = f"{path}.limits", f"{path}.requests"
    limits: dict[str, Quantity] = {}
    has_compute = has_hugepages = False
    for name, raw in as_dict(reqs.get("limits")).items():
        at = f"{limits_path}[{name}]"
        container_resource_name(errs, at, name)
        q = parse(errs, at, raw)
        if q is None:
            continue
        limits[name] = q
        quantity_value(errs, at, name, q)
        if is_hugepages(name):
            has_hugepages = True
            _hugepage_value(errs, at, name, q)
        has_compute = has_compute or name in _QOS_COMPUTE
    for name, raw in as_dict(reqs.get("requests")).items():
        at = f"{requests_path}[{name}]"
        container_resource_name(errs, at, name)
        q = parse(errs, at, raw)
        if q is None:
            continue
        quantity_value(errs, at, name, q)
        limit = limits.get(name)
        if limit is not None:
            if q.value != limit.value and not overcommit_allowed(name):
                errs.append(invalid(requests_path, str(q), f"must be equal to {name} limit of {limit}"))
            elif q.value > limit.value:
                errs.append(invalid(requests_path, str(q), f"must be less than or equal to {name} limit of {limit}"))
        elif not overcommit_allowed(name) and name not in as_dict(reqs.get("limits")):
            errs.append(required(limits_path, "Limit must be set for non overcommitable resources"))
        if is_hugepages(name):
            has_hugepages = True
            _hugepage_value(errs, at, name, q)
        has_compute = has_compute or name in _QOS_COMPUTE
    if has_hugepages and not has_compute:
        errs.append(forbidden(path, "HugePages require cpu or memory"))
    _claims(errs, f"{path}.claims", reqs.get("claims"), pod_claims)


def _claims(errs: Errs, path: str, value: Any, pod_claims: set[str]) -> None:
    seen: set[str] = set()
    for i, claim in enumerate(as_dict(c) for c in as_list(value)):
        name = as_str(claim.get("name"))
        if not name:
            errs.append(required(f"{path}[{i}]"))
            continue
        if name in seen:
            errs.append(duplicate(f"{path}[{i}]", name))
        seen.add(name)
        if name not in pod_claims:
            detail = ("must be one of the names in pod.spec.resourceClaims"
                      + (": " + ", ".join(sorted(pod_claims)) if pod_claims else " which is empty"))
            cause = not_found(f"{path}[{i}]", name)
            errs.append(Cause(cause.field, f"{cause.message}: {detail}", cause.reason))


def resource_list(errs: Errs, path: str, value: Any) -> None:
    """Node capacity/allocatable: each quantity valid for its resource (keys are not name-checked)."""
    for name, raw in as_dict(value).items():
        at = f"{path}.{name}"
        q = parse(errs, at, raw)
        if q is not None:
            quantity_value(errs, at, name, q)
