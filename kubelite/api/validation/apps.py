"""Deployments and ReplicaSets (pkg/apis/apps/validation and the apps/v1 registry strategies).

Both need a non-empty selector that matches the template's labels, a valid pod template that restarts
Always and has no activeDeadlineSeconds, and non-negative counts. Deployments add the rollout strategy
and progressDeadlineSeconds > minReadySeconds. In apps/v1 the selector is immutable after creation.
"""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import forbidden, invalid, not_supported, required

from . import formats, gofmt
from .common import (
    FIELD_IMMUTABLE,
    Errs,
    as_dict,
    as_int,
    as_str,
    each_invalid,
    is_int,
    label_selector,
    nonnegative,
    selector_is_empty,
    selector_matches,
    semantic_equal,
)
from .meta import name_is_dns_subdomain, object_meta, object_meta_update
from .pod import pod_template

STRATEGY_TYPES = ["Recreate", "RollingUpdate"]


def validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    _replicated_spec(errs, spec, "deployment")
    _strategy(errs, "spec.strategy", as_dict(spec.get("strategy")))
    nonnegative(errs, "spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    if spec.get("rollbackTo") is not None:
        nonnegative(errs, "spec.rollback.version", as_dict(spec.get("rollbackTo")).get("revision"))
    deadline = spec.get("progressDeadlineSeconds")
    if is_int(deadline):
        nonnegative(errs, "spec.progressDeadlineSeconds", deadline)
        if deadline <= as_int(spec.get("minReadySeconds")):
            errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    _update(errs, obj, old)
    return errs


def validate_replica_set(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    _replicated_spec(errs, as_dict(obj.get("spec")), "deployment")
    _update(errs, obj, old)
    return errs


def _update(errs: Errs, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    if old is None:
        return
    object_meta_update(errs, obj, old)
    selector = as_dict(obj.get("spec")).get("selector")
    if not semantic_equal(selector, as_dict(old.get("spec")).get("selector")):
        errs.append(invalid("spec.selector", gofmt.label_selector(selector), FIELD_IMMUTABLE))


def _replicated_spec(errs: Errs, spec: dict[str, Any], owner: str) -> None:
    """What Deployments and ReplicaSets share: replicas, selector, template, minReadySeconds."""
    nonnegative(errs, "spec.replicas", spec.get("replicas"))
    nonnegative(errs, "spec.minReadySeconds", spec.get("minReadySeconds"))
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        label_selector(errs, "spec.selector", selector)
        if selector_is_empty(selector):
            # apimachinery says "deployment" for ReplicaSets too.
            errs.append(invalid("spec.selector", gofmt.label_selector(selector),
                                f"empty selector is invalid for {owner}"))
    template = as_dict(spec.get("template"))
    template_labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    matches = selector_matches(selector, template_labels)
    if matches is None:
        errs.append(invalid("spec.selector", gofmt.label_selector(selector), "invalid label selector"))
        return
    if not selector_is_empty(selector) and not matches:
        errs.append(invalid("spec.template.metadata.labels",
                            gofmt.string_map(as_dict(template.get("metadata")).get("labels")),
                            "`selector` does not match template `labels`"))
    pod_template(errs, "spec.template", template)
    template_spec = as_dict(template.get("spec"))
    restart = as_str(template_spec.get("restartPolicy"))
    if restart != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if template_spec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in ReplicaSet is not Supported"))


def _strategy(errs: Errs, path: str, strategy: dict[str, Any]) -> None:
    kind = as_str(strategy.get("type"))
    if kind == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            errs.append(forbidden(f"{path}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"))
    elif kind == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            errs.append(required(f"{path}.rollingUpdate", "this should be defaulted and never be nil"))
        else:
            _rolling_update(errs, f"{path}.rollingUpdate", as_dict(rolling))
    else:
        # Kubernetes shows the whole strategy struct here; its type is what matters to the reader.
        errs.append(not_supported(path, kind, STRATEGY_TYPES))


def _rolling_update(errs: Errs, path: str, rolling: dict[str, Any]) -> None:
    max_unavailable, max_surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    _int_or_percent(errs, f"{path}.maxUnavailable", max_unavailable)
    _int_or_percent(errs, f"{path}.maxSurge", max_surge)
    if _int_or_percent_value(max_unavailable) == 0 and _int_or_percent_value(max_surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", gofmt.raw(_shown(max_unavailable)),
                            "may not be 0 when `maxSurge` is 0"))
    percent = _percent(max_unavailable)
    if percent is not None and percent > 100:
        errs.append(invalid(f"{path}.maxUnavailable", gofmt.raw(max_unavailable), "must not be greater than 100%"))


def _shown(value: Any) -> Any:
    return 0 if value is None else value


def _int_or_percent(errs: Errs, path: str, value: Any) -> None:
    """An IntOrString that is a non-negative integer or a ``N%`` string (printed unquoted, via String())."""
    if isinstance(value, str):
        each_invalid(errs, path, gofmt.raw(value), formats.is_valid_percent(value))
    elif is_int(value):
        nonnegative(errs, path, value)
    elif value is not None:
        errs.append(invalid(path, gofmt.raw(value), "must be an integer or percentage (e.g '5%')"))


def _percent(value: Any) -> int | None:
    if isinstance(value, str) and not formats.is_valid_percent(value):
        return int(value[:-1])
    return None


def _int_or_percent_value(value: Any) -> int:
    percent = _percent(value)
    if percent is not None:
        return percent
    if is_int(value):
        return int(value)
    if isinstance(value, str):
        # IntOrString.IntValue() of a non-numeric string is 0.
        try:
            return int(value)
        except ValueError:
            return 0
    return 0
