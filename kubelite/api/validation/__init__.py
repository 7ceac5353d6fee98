"""Validation of every kind kubelite serves: ``validate(kind, obj, old)`` returns the field causes that
make ``obj`` invalid, worded exactly as Kubernetes words them (``spec.containers[0].image: Required
value``); an empty list means valid.

``obj`` is the defaulted object about to be stored (``api.defaults.apply_defaults`` has run); ``old`` is
the stored object on update, None on create. One module per group of kinds; this module only
dispatches. Validators never raise on malformed JSON: a field of the wrong type reads as absent.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubelite.api.errors import Cause
from kubelite.api.registry import Kind

from .apps import validate_deployment, validate_replica_set
from .config import validate_config_map, validate_secret
from .coordination import validate_lease
from .discovery import validate_endpoint_slice
from .endpoints import validate_endpoints
from .event import validate_event
from .namespace import validate_namespace, validate_service_account
from .networking import validate_ingress, validate_ingress_class
from .node import validate_node
from .pod import validate_pod
from .service import validate_service

Validator = Callable[[dict[str, Any], dict[str, Any] | None], list[Cause]]

VALIDATORS: dict[tuple[str, str], Validator] = {
    ("", "Namespace"): validate_namespace,
    ("", "Node"): validate_node,
    ("", "Pod"): validate_pod,
    ("", "Service"): validate_service,
    ("", "Endpoints"): validate_endpoints,
    ("", "ConfigMap"): validate_config_map,
    ("", "Secret"): validate_secret,
    ("", "Event"): validate_event,
    ("", "ServiceAccount"): validate_service_account,
    ("apps", "Deployment"): validate_deployment,
    ("apps", "ReplicaSet"): validate_replica_set,
    ("networking.k8s.io", "Ingress"): validate_ingress,
    ("networking.k8s.io", "IngressClass"): validate_ingress_class,
    ("coordination.k8s.io", "Lease"): validate_lease,
    ("discovery.k8s.io", "EndpointSlice"): validate_endpoint_slice,
}

__all__ = ["VALIDATORS", "Validator", "validate"]


def validate(kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[Cause]:
    """The causes that make ``obj`` (a ``kind``) invalid, for a create (``old`` None) or an update.

    Raises ``LookupError`` for a kind without validation, which is a programming error: every served kind
    in the registry has an entry in ``VALIDATORS``."""
    validator = VALIDATORS.get((kind.group, kind.kind))
    if validator is None:
        raise LookupError(f"no validation for {kind.kind}.{kind.group or 'core'}")
    return validator(obj, old)
