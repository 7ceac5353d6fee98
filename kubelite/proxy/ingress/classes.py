"""Which Ingresses are ours: IngressClasses of the ``kubelite.io/ingress`` controller, and the class
kubelite installs as the cluster default (as k3s installs Traefik's).

An Ingress belongs to kubelite when the class it names (``spec.ingressClassName``, else the deprecated
``kubernetes.io/ingress.class`` annotation) is an IngressClass whose ``spec.controller`` is ours. An Ingress
naming no class is ours when the cluster's default IngressClass (annotation
``ingressclass.kubernetes.io/is-default-class: "true"``) is ours; with several defaults, only when all of
them are ours (Kubernetes' admission refuses class-less Ingresses then, so no controller may take them
for sure). Ingresses of other classes are ignored entirely: no routes, no events, no status.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kubelite.api.registry import by_resource
from kubelite.client.rest import Client, is_already_exists

log = logging.getLogger(__name__)

Obj = dict[str, Any]
INGRESS_CLASSES = by_resource("networking.k8s.io", "v1", "ingressclasses")
CONTROLLER = "kubelite.io/ingress"
CLASS_NAME = "kubelite"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def kubelite_ingress_class(name: str = CLASS_NAME, controller: str = CONTROLLER) -> Obj:
    """The IngressClass kubelite installs: ours, and the cluster default."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "IngressClass",
        "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
                     "labels": {"app.kubernetes.io/managed-by": "kubelite"}},
        "spec": {"controller": controller},
    }


async def ensure_ingress_class(client: Client, name: str = CLASS_NAME, controller: str = CONTROLLER) -> Obj:
    """Create kubelite's IngressClass (marked default) unless an IngressClass of that name exists; an
    existing one is returned untouched, so that an administrator's edits (say, no longer the default)
    stand."""
    try:
        return await client.create(INGRESS_CLASSES, kubelite_ingress_class(name, controller),
                                   field_manager="kubelite-ingress")
    except Exception as e:
        if not is_already_exists(e):
            raise
    existing = await client.get(INGRESS_CLASSES, name)
    if (existing.get("spec") or {}).get("controller") != controller:
        log.warning("IngressClass %s exists with controller %r, not %r: Ingresses of that class are not ours",
                    name, (existing.get("spec") or {}).get("controller"), controller)
    return existing


@dataclass(frozen=True, slots=True)
class ClassView:
    """The IngressClasses that matter for choosing Ingresses."""

    ours: frozenset[str]  # names of the classes whose controller is ours
    default_is_ours: bool  # whether an Ingress without a class is ours

    @staticmethod
    def of(classes: Iterable[Obj], controller: str = CONTROLLER) -> ClassView:
        ours: set[str] = set()
        defaults: list[bool] = []
        for cls in classes:
            metadata = cls.get("metadata") or {}
            mine = (cls.get("spec") or {}).get("controller") == controller
            if mine:
                ours.add(str(metadata.get("name") or ""))
            if (metadata.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
                defaults.append(mine)
        return ClassView(frozenset(ours), bool(defaults) and all(defaults))

    def owns(self, ingress: Obj) -> bool:
        """Whether ``ingress`` is handled by this controller."""
        name = (ingress.get("spec") or {}).get("ingressClassName")
        if not name:
            name = ((ingress.get("metadata") or {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION)
        if name:
            return name in self.ours
        return self.default_is_ours
