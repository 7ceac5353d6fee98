"""Defaulting of every kind kubelite serves: ``apply_defaults(kind, obj)`` fills in, in place, what the
Kubernetes API server fills in before validation (the v1 ``SetDefaults_*`` functions, the generated
declarative defaults, and the few registry/admission steps clients observe: Secret ``stringData``
merging, Namespace finalizer and phase, pod priority, canonical quantities).

It runs on every create and update, so each default only fills what is missing and is idempotent.
It never allocates (cluster IPs, node ports, names): the server does that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubelite.api.registry import Kind

from . import apps, core, networking, pod

Defaulter = Callable[[dict[str, Any]], None]

DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    ("", "Pod"): pod.pod,
    ("", "Service"): core.service,
    ("", "Secret"): core.secret,
    ("", "Namespace"): core.namespace,
    ("", "Node"): core.node,
    ("", "Endpoints"): core.endpoints,
    ("", "Event"): core.event,
    ("apps", "Deployment"): apps.deployment,
    ("apps", "ReplicaSet"): apps.replica_set,
    ("networking.k8s.io", "IngressClass"): networking.ingress_class,
    ("discovery.k8s.io", "EndpointSlice"): networking.endpoint_slice,
}

__all__ = ["DEFAULTERS", "apply_defaults"]


def apply_defaults(kind: Kind, obj: dict[str, Any]) -> None:
    """Fill in ``obj``'s defaults in place. Kinds without defaults (ConfigMap, ServiceAccount, Ingress,
    Lease ...) are left untouched."""
    defaulter = DEFAULTERS.get((kind.group, kind.kind))
    if defaulter is not None:
        defaulter(obj)
