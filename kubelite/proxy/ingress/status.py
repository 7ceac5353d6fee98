"""Writing ``status.loadBalancer.ingress`` of our Ingresses: the addresses the gateway answers on.

Every node runs a gateway, so the addresses are those of every Ready Node (its InternalIP, else its
ExternalIP), as k3s's ServiceLB publishes Traefik's; ``publish_addresses`` replaces them (ingress-nginx's
``--publish-status-address``), and a cluster without Node objects gets the gateway's own address. Each
gateway computes the same list from the same objects, so gateways on several nodes agree instead of
taking turns. A write happens only when the status differs, carries the resourceVersion it read, and is
retried with backoff on a conflict.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any

from kubelite.api.registry import by_resource
from kubelite.client.informer import SharedInformer
from kubelite.client.rest import Client, is_not_found
from kubelite.client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
INGRESSES = by_resource("networking.k8s.io", "v1", "ingresses")
FIELD_MANAGER = "kubelite-ingress"


def node_addresses(nodes: Iterable[Obj]) -> list[str]:
    """The InternalIP (else ExternalIP) addresses of the Ready nodes, sorted, without repeats."""
    found: set[str] = set()
    for node in nodes:
        status = node.get("status") or {}
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        if not ready:
            continue
        addresses = status.get("addresses") or []
        for kind in ("InternalIP", "ExternalIP"):
            chosen = [str(a.get("address")) for a in addresses if a.get("type") == kind and a.get("address")]
            if chosen:
                found.update(chosen)
                break
    return sorted(found, key=_address_order)


def load_balancer_ingress(addresses: Iterable[str]) -> list[Obj]:
    """``status.loadBalancer.ingress`` for ``addresses``: ``ip`` for an IP, ``hostname`` otherwise."""
    out: list[Obj] = []
    for address in sorted(set(addresses), key=_address_order):
        try:
            ipaddress.ip_address(address)
            out.append({"ip": address})
        except ValueError:
            out.append({"hostname": address})
    return out


def current_status(ingress: Obj) -> list[Obj]:
    return list(((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [])


def _address_order(address: str) -> tuple[int, Any]:
    try:
        ip = ipaddress.ip_address(address)
        return (ip.version, ip.packed)
    except ValueError:
        return (10, address.encode())


class StatusWriter:
    """Keeps the status of the Ingresses it is told about (`enqueue`) equal to ``addresses()``.
    ``owns(ingress)`` re-checks, when the write comes, that the Ingress is still ours."""

    def __init__(self, client: Client, ingresses: SharedInformer, *, addresses: Callable[[], list[str]],
                 owns: Callable[[Obj], bool]) -> None:
        self.client = client
        self.ingresses = ingresses
        self.addresses = addresses
        self.owns = owns
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("ingress-status")

    def enqueue(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.queue.add(key)

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers=2)
        finally:
            self.queue.shutdown()

    async def reconcile(self, key: str) -> None:
        ingress = self.ingresses.get(key)
        if ingress is None or not self.owns(ingress):
            return
        desired = load_balancer_ingress(self.addresses())
        if current_status(ingress) == desired:
            return
        updated = copy.deepcopy(ingress)
        updated.setdefault("status", {})["loadBalancer"] = {"ingress": desired} if desired else {}
        try:
            await self.client.update_status(INGRESSES, updated, field_manager=FIELD_MANAGER)
        except Exception as e:
            if is_not_found(e):
                return
            raise
        log.info("ingress %s: status.loadBalancer set to %s", key, ", ".join(
            str(a.get("ip") or a.get("hostname")) for a in desired) or "nothing")
