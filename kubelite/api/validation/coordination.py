"""Leases (coordination.k8s.io/v1): positive duration, non-negative transitions, a known or qualified
coordinated strategy, and no preferred holder without a strategy."""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import forbidden, invalid, not_supported

from . import formats
from .common import Errs, as_dict, as_str, each_invalid, is_int
from .meta import name_is_dns_subdomain, object_meta, object_meta_update

STRATEGIES = ["OldestEmulationVersion"]


def validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    duration, transitions = spec.get("leaseDurationSeconds"), spec.get("leaseTransitions")
    if is_int(duration) and duration <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    if is_int(transitions) and transitions < 0:
        errs.append(invalid("spec.leaseTransitions", transitions, "must be greater than or equal to 0"))
    strategy = spec.get("strategy")
    if strategy is not None:
        text = as_str(strategy)
        # Kubernetes appends "strategy" to a path that already ends in it; kept for parity.
        path = "spec.strategy.strategy"
        if "/" not in text:
            if text not in STRATEGIES:
                errs.append(not_supported(path, text, STRATEGIES))
        else:
            each_invalid(errs, path, text, formats.is_qualified_name(text))
    if as_str(spec.get("preferredHolder")) and not as_str(strategy):
        errs.append(forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"))
    if old is not None:
        object_meta_update(errs, obj, old)
    return errs
