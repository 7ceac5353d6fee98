"""networking.k8s.io/v1 and discovery.k8s.io/v1 defaults. Ingresses have none in v1 (pathType is
required, not defaulted)."""

from __future__ import annotations

from typing import Any


def ingress_class(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    params = spec.get("parameters") if isinstance(spec, dict) else None
    if isinstance(params, dict) and params.get("scope") is None:
        params["scope"] = "Cluster"


def endpoint_slice(obj: dict[str, Any]) -> None:
    ports = obj.get("ports")
    for port in ports if isinstance(ports, list) else []:
        if isinstance(port, dict):
            if port.get("name") is None:
                port["name"] = ""
            if port.get("protocol") is None:
                port["protocol"] = "TCP"
