"""Services, EndpointSlices and pods as the API serves them, and a `ClusterView` over plain Indexers."""

from __future__ import annotations

from typing import Any

from kubelite.api import meta
from kubelite.client.informer import Indexer
from kubelite.proxy.dns.view import ClusterView

Obj = dict[str, Any]


def service(name: str, namespace: str = "default", *, cluster_ip: str | None = "10.96.0.20",
            ports: list[Obj] | None = None, **spec: Any) -> Obj:
    body: Obj = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    body.update(spec)
    return {"metadata": {"name": name, "namespace": namespace}, "spec": body}


def endpoint(ip: str, *, ready: bool | None = True, hostname: str | None = None) -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(svc: str, endpoints: list[Obj], *, namespace: str = "default", name: str | None = None,
                   address_type: str = "IPv4", ports: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": name or f"{svc}-abc", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def pod(name: str, ip: str, namespace: str = "default", *, phase: str = "Running") -> Obj:
    return {"metadata": {"name": name, "namespace": namespace},
            "status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}}


class Cluster:
    """Three Indexers and the view over them; `add`/`remove` change the stores as an informer would."""

    def __init__(self, *objs: Obj) -> None:
        self.services, self.slices, self.pods = Indexer(), Indexer(), Indexer()
        self.view = ClusterView(self.services, self.slices, self.pods)
        for obj in objs:
            self.add(obj)

    def _store(self, obj: Obj) -> Indexer:
        if "addressType" in obj:
            return self.slices
        if "podIP" in (obj.get("status") or {}):
            return self.pods
        return self.services

    def add(self, obj: Obj) -> None:
        self._store(obj).put(meta.key(obj), obj)
        self.view.touch(0)

    def remove(self, obj: Obj) -> None:
        self._store(obj).remove(meta.key(obj))
        self.view.touch(0)
