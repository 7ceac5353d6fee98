"""Builders of Ingresses, Services, EndpointSlices and Secrets for the ingress tests, and a dict-backed
`routes.Cluster`."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

Obj = dict[str, Any]


def backend(service: str, port: int | str = 80) -> Obj:
    return {"service": {"name": service, "port": {"number": port} if isinstance(port, int) else {"name": port}}}


def path(p: str | None, service: str, port: int | str = 80, path_type: str = "Prefix") -> Obj:
    item: Obj = {"pathType": path_type, "backend": backend(service, port)}
    if p is not None:
        item["path"] = p
    return item


def rule(host: str | None, *paths: Obj) -> Obj:
    r: Obj = {"http": {"paths": list(paths)}}
    if host:
        r["host"] = host
    return r


def ingress(name: str, *rules: Obj, namespace: str = "default", created: str = "2024-01-01T00:00:00Z",
            default: Obj | None = None, tls: list[Obj] | None = None, class_name: str | None = None,
            annotations: dict[str, str] | None = None, uid: str | None = None) -> Obj:
    spec: Obj = {}
    if rules:
        spec["rules"] = list(rules)
    if default is not None:
        spec["defaultBackend"] = default
    if tls is not None:
        spec["tls"] = tls
    if class_name is not None:
        spec["ingressClassName"] = class_name
    metadata: Obj = {"name": name, "namespace": namespace, "creationTimestamp": created,
                     "uid": uid or f"uid-{namespace}-{name}", "generation": 1}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec}


def service(name: str, *ports: tuple[str, int], namespace: str = "default", type_: str = "ClusterIP",
            external_name: str = "") -> Obj:
    spec: Obj = {"type": type_, "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}
    if external_name:
        spec["externalName"] = external_name
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoint_slice(service_name: str, addresses: Sequence[str | tuple[str, bool]], *ports: tuple[str, int],
                   namespace: str = "default", name: str | None = None, address_type: str = "IPv4") -> Obj:
    endpoints = []
    for a in addresses:
        address, ready = (a, True) if isinstance(a, str) else a
        endpoints.append({"addresses": [address], "conditions": {"ready": ready}})
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-abc", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}


def tls_secret(name: str, chain_pem: bytes, key_pem: bytes, namespace: str = "default") -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(chain_pem).decode(), "tls.key": base64.b64encode(key_pem).decode()}}


class FakeCluster:
    """A `routes.Cluster` over plain lists."""

    def __init__(self, *objects: Obj) -> None:
        self.objects = list(objects)

    def _find(self, kind: str, namespace: str, name: str) -> Obj | None:
        for o in self.objects:
            if o["kind"] == kind and o["metadata"]["namespace"] == namespace and o["metadata"]["name"] == name:
                return o
        return None

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._find("Service", namespace, name)

    def endpoint_slices(self, namespace: str, service: str) -> list[Obj]:
        return [o for o in self.objects if o["kind"] == "EndpointSlice" and o["metadata"]["namespace"] == namespace
                and o["metadata"]["labels"].get("kubernetes.io/service-name") == service]

    def secret(self, namespace: str, name: str) -> Obj | None:
        return self._find("Secret", namespace, name)
