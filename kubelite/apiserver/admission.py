"""Admission: what happens to an object between the request and the store.

The order is Kubernetes': field validation of the request body (unknown fields), then mutation (defaults,
then mutating plugins such as ClusterIP allocation), then validation. Each step is a plain function over the
JSON dict, so new plugins are one function in ``MUTATORS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from kubelite.api import errors
from kubelite.api.defaults import apply_defaults
from kubelite.api.registry import Kind
from kubelite.api.validation import validate

from .openapi.fields import strict_error, unknown_fields

Operation = Literal["CREATE", "UPDATE"]
Mutator = Callable[[Kind, dict[str, Any], dict[str, Any] | None, Operation], None]

DEFAULT_TOLERATION_SECONDS = 300
_NODE_PROBLEM_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def default_toleration_seconds(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None, op: Operation) -> None:
    """Kubernetes' DefaultTolerationSeconds plugin: a new pod tolerates a not-ready or unreachable node for
    300 s (then the node lifecycle controller evicts it), unless it already says otherwise."""
    if op != "CREATE" or kind.kind != "Pod" or kind.group:
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    for taint in _NODE_PROBLEM_TAINTS:
        if any(isinstance(t, dict) and (t.get("key") == taint or (not t.get("key") and t.get("operator") == "Exists"))
               and t.get("effect") in (None, "", "NoExecute") for t in tolerations):
            continue
        tolerations.append({"key": taint, "operator": "Exists", "effect": "NoExecute",
                            "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    spec["tolerations"] = tolerations


# Mutating plugins, run after defaulting. Each may change the object in place.
MUTATORS: list[Mutator] = [default_toleration_seconds]


def check_fields(kind: Kind, body: dict[str, Any], mode: str) -> list[str]:
    """Apply the request's ``fieldValidation`` (Strict, Warn, Ignore; kubectl sends Strict).

    Strict raises 400 BadRequest naming every unknown field; Warn returns the warnings to send back in
    ``Warning`` headers; Ignore returns nothing."""
    mode = (mode or "Warn").capitalize()
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{mode}"')
    if mode == "Ignore":
        return []
    unknown = unknown_fields(kind, body)
    if not unknown:
        return []
    if mode == "Strict":
        raise strict_error(kind, unknown)
    return [f'unknown field "{f}"' for f in unknown]


def admit(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None, op: Operation) -> None:
    """Default, mutate and validate ``obj`` in place; raise 422 Invalid with one cause per bad field."""
    apply_defaults(kind, obj)
    for mutate in MUTATORS:
        mutate(kind, obj, old, op)
    causes = validate(kind, obj, old)
    if causes:
        raise errors.invalid_object(kind.kind, (obj.get("metadata") or {}).get("name", ""), causes, kind.group)
