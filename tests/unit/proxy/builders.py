"""Services and EndpointSlices as the API server stores them, for the proxy's tests."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def service(name: str, cluster_ip: str = "10.96.0.10", *, namespace: str = "ns", ports: list[Obj] | None = None,
            **spec: Any) -> Obj:
    """A Service; ``ports`` default to one TCP port 80 named ``http``; extra keyword arguments go to spec."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}"},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}],
                     **spec}}


def endpoint(ip: str, *, node: str = "node-a", ready: bool | None = True, serving: bool | None = None,
             terminating: bool | None = None) -> Obj:
    conditions = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
                  if v is not None}
    return {"addresses": [ip], "conditions": conditions, "nodeName": node}


def endpoint_slice(service_name: str, endpoints: list[Obj], *, namespace: str = "ns", name: str | None = None,
                   ports: list[Obj] | None = None, address_type: str = "IPv4") -> Obj:
    """A slice of ``service_name``; ``ports`` default to ``http`` → 8080/TCP."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"namespace": namespace, "name": name or f"{service_name}-abc",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": address_type,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints}
