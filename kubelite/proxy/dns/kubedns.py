"""The ``kube-system/kube-dns`` Service and its endpoints: how pods reach the cluster DNS, as with CoreDNS.

Pods' resolv.conf names the Service's fixed ClusterIP (10.96.0.10 by default, the kubelet's ``clusterDNS``);
the service proxy sends that traffic to the Service's endpoints. kubelite's DNS runs on the nodes rather
than in pods, so the Service has no selector and its endpoints are EndpointSlices written here, labelled
``endpointslice.kubernetes.io/managed-by: kubelite-dns`` (the EndpointSlice controller leaves slices of
Services without a selector, and slices managed by someone else, alone).

- `ensure_dns_service` creates the Service, or checks the one there: a different ClusterIP is an error
  (pods would ask an address nobody answers), a Service with a selector belongs to another DNS (a CoreDNS
  Deployment, say) and is left as it is, with a warning; otherwise its ports are brought up to date.
- `dns_endpoints` writes the slice(s) of one node, or of the whole cluster when no node is named: one
  endpoint per address, one slice per address family (a slice holds one family), owned by the Service so
  that deleting the Service removes them. `remove_dns_endpoints` deletes them (a node leaving).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.rest import AlreadyExists, Client, Conflict, Invalid, NotFound

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICES = by_resource("", "v1", "services")
ENDPOINT_SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")

DNS_NAMESPACE = "kube-system"
DNS_SERVICE_NAME = "kube-dns"
DEFAULT_CLUSTER_DNS_IP = "10.96.0.10"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGER = "kubelite-dns"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
FIELD_MANAGER = "kubelite-dns"
# What kubeadm's CoreDNS Service carries, so that tools looking for the cluster DNS find it.
SERVICE_LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "KubeliteDNS"}
_WRITE_ATTEMPTS = 5


class DNSServiceConflict(RuntimeError):
    """The kube-dns Service exists with a ClusterIP other than the one pods are told to use."""


def dns_ports(port: int) -> list[Obj]:
    """The Service's ports: ``dns`` (UDP) and ``dns-tcp`` (TCP), as CoreDNS's Service names them."""
    return [{"name": "dns", "protocol": "UDP", "port": 53, "targetPort": port},
            {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": port}]


async def ensure_dns_service(client: Client, cluster_ip: str = DEFAULT_CLUSTER_DNS_IP, *, port: int = 53,
                             namespace: str = DNS_NAMESPACE, name: str = DNS_SERVICE_NAME) -> Obj:
    """Create or check the DNS Service (see the module docstring); returns it as stored.

    ``port`` is where the DNS servers listen (the target port); the Service itself always serves port 53.
    Raises `DNSServiceConflict` for a different ClusterIP, and the API's error when the IP is taken by
    another Service or out of the service range.
    """
    desired: Obj = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(SERVICE_LABELS)},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "ports": dns_ports(port)},
    }
    for _ in range(_WRITE_ATTEMPTS):
        # Look first: creating it again would not get AlreadyExists but Invalid ("provided IP is already
        # allocated"), since the API server allocates the ClusterIP before it stores the Service.
        try:
            current = await client.get(SERVICES, name, namespace)
        except NotFound:
            try:
                return await client.create(SERVICES, desired, namespace, field_manager=FIELD_MANAGER)
            except AlreadyExists:
                continue
            except Invalid:
                if await _exists(client, namespace, name):
                    continue  # another node created it meanwhile
                raise
        spec = current.get("spec") or {}
        if spec.get("clusterIP") != cluster_ip:
            raise DNSServiceConflict(
                f"Service {namespace}/{name} has clusterIP {spec.get('clusterIP')!r}, not {cluster_ip}: pods "
                f"are told to use {cluster_ip}; delete the Service or configure that address as the cluster DNS")
        if spec.get("selector"):
            log.warning("dns: Service %s/%s selects pods: another DNS serves the cluster; leaving it alone",
                        namespace, name)
            return current
        if spec.get("ports") == dns_ports(port):
            return current
        spec["ports"] = dns_ports(port)
        try:
            return await client.update(SERVICES, current, namespace, field_manager=FIELD_MANAGER)
        except (Conflict, NotFound):
            continue
    raise RuntimeError(f"could not write Service {namespace}/{name}: it kept changing")


async def _exists(client: Client, namespace: str, name: str) -> bool:
    try:
        await client.get(SERVICES, name, namespace)
    except NotFound:
        return False
    return True


def slice_name(service: str, node_name: str | None, family: str) -> str:
    base = f"{service}-{node_name}" if node_name else f"{service}-{MANAGER}"
    return base if family == "IPv4" else f"{base}-ipv6"


def endpoint_slice(node_ips: Sequence[str], port: int, *, family: str, node_name: str | None,
                   namespace: str = DNS_NAMESPACE, service: str = DNS_SERVICE_NAME,
                   owner: Obj | None = None) -> Obj:
    """The slice listing ``node_ips`` (all of ``family``) as ready DNS endpoints on ``port``."""
    endpoint_extra: Obj = {"nodeName": node_name} if node_name else {}
    metadata: Obj = {
        "name": slice_name(service, node_name, family), "namespace": namespace,
        "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: MANAGER},
    }
    if owner is not None:
        metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Service", "name": meta.name(owner),
                                        "uid": meta.uid(owner)}]
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata,
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True, "serving": True, "terminating": False},
                       **endpoint_extra} for ip in node_ips],
        "ports": [{"name": "dns", "protocol": "UDP", "port": port},
                  {"name": "dns-tcp", "protocol": "TCP", "port": port}],
    }


async def dns_endpoints(client: Client, node_ips: Sequence[str], port: int = 53, *, node_name: str | None = None,
                        namespace: str = DNS_NAMESPACE, service: str = DNS_SERVICE_NAME) -> list[Obj]:
    """Publish ``node_ips`` as where DNS listens (on ``port``, UDP and TCP); returns the slices written.

    With ``node_name`` the slices are that node's own (``kube-dns-<node>``, endpoints with ``nodeName``), so
    every node agent can publish itself without touching the others'; without it, one set of slices lists
    the whole cluster's DNS addresses. An empty ``node_ips`` leaves empty slices (nothing to send DNS to).
    """
    by_family: dict[str, list[str]] = {"IPv4": [], "IPv6": []}
    for ip in node_ips:
        parsed = ipaddress.ip_address(ip)
        by_family["IPv4" if parsed.version == 4 else "IPv6"].append(str(parsed))
    try:
        owner: Obj | None = await client.get(SERVICES, service, namespace)
    except NotFound:
        owner = None
    wanted = [family for family, ips in by_family.items() if ips] or ["IPv4"]
    written = []
    for family, ips in by_family.items():
        if family not in wanted:
            await _delete_slice(client, slice_name(service, node_name, family), namespace)
            continue
        desired = endpoint_slice(ips, port, family=family, node_name=node_name, namespace=namespace,
                                 service=service, owner=owner)
        written.append(await _write_slice(client, desired, namespace))
    return written


async def remove_dns_endpoints(client: Client, *, node_name: str | None = None, namespace: str = DNS_NAMESPACE,
                               service: str = DNS_SERVICE_NAME) -> None:
    """Delete the slices `dns_endpoints` wrote for ``node_name`` (or the cluster-wide ones)."""
    for family in ("IPv4", "IPv6"):
        await _delete_slice(client, slice_name(service, node_name, family), namespace)


async def _write_slice(client: Client, desired: Obj, namespace: str) -> Obj:
    name = meta.name(desired)
    for _ in range(_WRITE_ATTEMPTS):
        try:
            return await client.create(ENDPOINT_SLICES, desired, namespace, field_manager=FIELD_MANAGER)
        except AlreadyExists:
            pass
        try:
            current = await client.get(ENDPOINT_SLICES, name, namespace)
        except NotFound:
            continue
        if current.get("addressType") != desired["addressType"]:
            await _delete_slice(client, name, namespace)  # addressType is immutable
            continue
        updated = dict(current)
        updated["metadata"] = {**current["metadata"], "labels": {**meta.labels(current),
                                                                 **desired["metadata"]["labels"]}}
        if "ownerReferences" in desired["metadata"]:
            updated["metadata"]["ownerReferences"] = desired["metadata"]["ownerReferences"]
        updated["endpoints"] = desired["endpoints"]
        updated["ports"] = desired["ports"]
        if updated == current:
            return current
        try:
            return await client.update(ENDPOINT_SLICES, updated, namespace, field_manager=FIELD_MANAGER)
        except (Conflict, NotFound):
            continue
    raise RuntimeError(f"could not write EndpointSlice {namespace}/{name}: it kept changing")


async def _delete_slice(client: Client, name: str, namespace: str) -> None:
    try:
        await client.delete(ENDPOINT_SLICES, name, namespace)
    except NotFound:
        pass
