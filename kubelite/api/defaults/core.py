"""core/v1 defaults other than pods: Services, Secrets, Namespaces, Nodes, Endpoints and Events."""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

from .quantities import canonical_list

DEFAULT_CLIENT_IP_AFFINITY_SECONDS = 10800
_METADATA_NAME_LABEL = "kubernetes.io/metadata.name"


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def service(obj: dict[str, Any]) -> None:
    """SetDefaults_Service, plus the clusterIP/clusterIPs sync and IP-family fields that the Service
    registry fills in. Cluster IPs and node ports are *not* allocated here: the server does that."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _dict((_dict(spec.get("sessionAffinityConfig")) or {}).get("clientIP"))
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": DEFAULT_CLIENT_IP_AFFINITY_SECONDS}}
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    kind = spec["type"]
    for port in _dicts(spec.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    if (kind in ("NodePort", "LoadBalancer") or spec.get("externalIPs")) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and kind in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
        for ingress in _dicts((_dict((_dict(obj.get("status")) or {}).get("loadBalancer")) or {}).get("ingress")):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"
    cluster_ips = _sync_cluster_ips(spec)
    if kind != "ExternalName":
        _ip_families(spec, cluster_ips)


def _sync_cluster_ips(spec: dict[str, Any]) -> Any:
    """clusterIP and clusterIPs[0] say the same thing; fill whichever the client left out."""
    cluster_ip, cluster_ips = spec.get("clusterIP"), spec.get("clusterIPs")
    if cluster_ip and not cluster_ips:
        spec["clusterIPs"] = cluster_ips = [cluster_ip]
    elif cluster_ips and isinstance(cluster_ips, list) and not cluster_ip:
        spec["clusterIP"] = cluster_ips[0]
    return cluster_ips


def _ip_families(spec: dict[str, Any], cluster_ips: Any) -> None:
    if spec.get("ipFamilyPolicy") is None:
        spec["ipFamilyPolicy"] = "SingleStack"
    if not spec.get("ipFamilies"):
        families = [_family(ip) for ip in (cluster_ips if isinstance(cluster_ips, list) else []) if isinstance(ip, str)]
        spec["ipFamilies"] = [f for f in families if f] or ["IPv4"]


def _family(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return ""  # "None" (headless) or not an IP: validation has the last word


def secret(obj: dict[str, Any]) -> None:
    """Type Opaque, and ``stringData`` merged into ``data`` (base64) as the API server's conversion does:
    stringData is write-only and never stored."""
    if not obj.get("type"):
        obj["type"] = "Opaque"
    string_data = obj.get("stringData")
    if isinstance(string_data, dict):
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            if isinstance(value, str):
                data[key] = base64.b64encode(value.encode()).decode()
        del obj["stringData"]


def namespace(obj: dict[str, Any]) -> None:
    """The ``kubernetes.io/metadata.name`` label always; on create (no status yet) phase Active and the
    ``kubernetes`` finalizer, which the namespace controller removes later and which must not come back."""
    meta = obj.setdefault("metadata", {})
    name = meta.get("name") if isinstance(meta, dict) else None
    if name:
        labels = meta.get("labels")
        if not isinstance(labels, dict):
            labels = meta["labels"] = {}
        labels[_METADATA_NAME_LABEL] = name
    status = obj.get("status")
    if isinstance(status, dict) and status.get("phase"):
        return
    obj["status"] = {**(status if isinstance(status, dict) else {}), "phase": "Active"}
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    finalizers = spec.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = spec["finalizers"] = []
    if "kubernetes" not in finalizers:
        finalizers.append("kubernetes")


def node(obj: dict[str, Any]) -> None:
    spec = _dict(obj.get("spec"))
    if spec is not None:
        # podCIDR is the first of podCIDRs (v1 conversion keeps them in step).
        cidrs = spec.get("podCIDRs")
        if spec.get("podCIDR") and not cidrs:
            spec["podCIDRs"] = [spec["podCIDR"]]
        elif isinstance(cidrs, list) and cidrs and not spec.get("podCIDR"):
            spec["podCIDR"] = cidrs[0]
    status = _dict(obj.get("status"))
    if status is None:
        return
    canonical_list(status.get("capacity"))
    canonical_list(status.get("allocatable"))
    if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def endpoints(obj: dict[str, Any]) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            if not port.get("protocol"):
                port["protocol"] = "TCP"


def event(obj: dict[str, Any]) -> None:
    # Non-pointer structs in Go, so always present on the wire (clients rely on involvedObject).
    for key in ("involvedObject", "source"):
        if obj.get(key) is None:
            obj[key] = {}
