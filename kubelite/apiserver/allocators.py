"""ClusterIP and NodePort allocation for Services, as the API server does it in Kubernetes.

Each allocated IP or port is a key in the store (``/allocations/serviceips/<ip>``,
``/allocations/nodeports/<port>``) created with create-if-absent, so two API servers on one etcd can never
hand out the same one. The keys live outside ``/registry/`` and so stay out of the watch cache.
`repair` releases allocations no Service holds (a crash between allocating and storing the Service).

Rules (Kubernetes'): ``clusterIP: None`` is headless and ExternalName Services get no IP; a requested IP
must lie in the range and be free; an empty one gets a random free address (never the network address, and
the first host address is kept for the ``kubernetes`` Service); NodePort and LoadBalancer Services get a
node port per port (requested ones must be free and in range); an update that leaves ``clusterIP`` empty
keeps the old one; changing the type away from NodePort releases the ports.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from typing import Any

from kubelite.api import errors

from .storage.interface import KeyExists, KeyNotFound, Store

Obj = dict[str, Any]

IP_PREFIX = "/allocations/serviceips/"
PORT_PREFIX = "/allocations/nodeports/"
_NEEDS_NODE_PORTS = ("NodePort", "LoadBalancer")
_ATTEMPTS = 64


class ServiceAllocator:
    def __init__(self, store: Store, *, service_cidr: str = "10.96.0.0/12",
                 node_ports: tuple[int, int] = (30000, 32767)) -> None:
        self.store = store
        self.network = ipaddress.ip_network(service_cidr)
        self.node_ports = node_ports

    @property
    def first_ip(self) -> str:
        """The address of the ``kubernetes`` Service (the first host address of the range)."""
        return str(self.network.network_address + 1)

    # ---- the three moments of a Service's life ----------------------------------------------------------
    async def on_create(self, svc: Obj, *, dry_run: bool) -> list[str]:
        """Fill in spec.clusterIP(s) and nodePorts; return the keys taken (to release if the create fails)."""
        spec = svc.setdefault("spec", {})
        owner = _owner(svc)
        taken: list[str] = []
        try:
            taken += await self._assign_ip(spec, owner, dry_run)
            taken += await self._assign_node_ports(spec, owner, set(), dry_run)
        except BaseException:
            await self.release(taken)
            raise
        return taken

    async def on_update(self, old: Obj, new: Obj, *, dry_run: bool) -> tuple[list[str], list[str]]:
        """Keep or adjust allocations for an update. Returns (keys newly taken, keys to release once the update
        is stored)."""
        old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
        owner = _owner(new)
        taken: list[str] = []
        freed: list[str] = []
        try:
            if spec.get("type") != "ExternalName" and not spec.get("clusterIP") and old_spec.get("clusterIP"):
                spec["clusterIP"] = old_spec["clusterIP"]
                spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
            old_ip = old_spec.get("clusterIP")
            if spec.get("clusterIP") != old_ip:
                if _is_ip(old_ip):
                    freed.append(IP_PREFIX + str(old_ip))
                taken += await self._assign_ip(spec, owner, dry_run)
            old_ports = {p.get("nodePort") for p in old_spec.get("ports") or [] if p.get("nodePort")}
            if spec.get("type") in _NEEDS_NODE_PORTS:
                if old_spec.get("type") in _NEEDS_NODE_PORTS:
                    for port, old_port in zip(spec.get("ports") or [], old_spec.get("ports") or [], strict=False):
                        if not port.get("nodePort") and old_port.get("nodePort") and \
                                port.get("port") == old_port.get("port"):
                            port["nodePort"] = old_port["nodePort"]
                taken += await self._assign_node_ports(spec, owner, old_ports, dry_run)
            else:
                for port in spec.get("ports") or []:
                    port.pop("nodePort", None)
            kept = {p.get("nodePort") for p in spec.get("ports") or [] if p.get("nodePort")}
            freed += [PORT_PREFIX + str(p) for p in old_ports - kept]
        except BaseException:
            await self.release(taken)
            raise
        return taken, freed

    def held_by(self, svc: Obj) -> list[str]:
        """The allocation keys a stored Service holds (released when it is deleted)."""
        spec = svc.get("spec") or {}
        keys = [IP_PREFIX + ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if _is_ip(ip)]
        keys += [PORT_PREFIX + str(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")]
        return keys

    async def release(self, keys: Iterable[str]) -> None:
        for key in keys:
            try:
                await self.store.delete(key)
            except KeyNotFound:
                pass

    async def repair(self, services: Iterable[Obj]) -> int:
        """Release allocations that no Service holds; return how many."""
        held = {k for svc in services for k in self.held_by(svc)}
        released = 0
        for prefix in (IP_PREFIX, PORT_PREFIX):
            kvs, _ = await self.store.list(prefix)
            stale = [kv.key for kv in kvs if kv.key not in held]
            await self.release(stale)
            released += len(stale)
        return released

    # ---- allocation ---------------------------------------------------------------------------------------
    async def _assign_ip(self, spec: Obj, owner: str, dry_run: bool) -> list[str]:
        if spec.get("type") == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return []
        wanted = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
            return []
        if wanted:
            try:
                ip = ipaddress.ip_address(wanted)
            except ValueError:
                return []  # validation names the bad value
            if ip not in self.network:
                raise _ip_error(owner, wanted, f"failed to allocate IP {wanted}: the provided IP ({wanted}) is not "
                                f"in the valid range. The range of valid IPs is {self.network}")
            if not await self._take(IP_PREFIX + str(ip), owner, dry_run):
                raise _ip_error(owner, wanted, f"failed to allocate IP {wanted}: provided IP is already allocated")
            spec["clusterIP"], spec["clusterIPs"] = str(ip), [str(ip)]
            return [] if dry_run else [IP_PREFIX + str(ip)]
        size = self.network.num_addresses
        # KEP-3070: random picks come from above a low band kept for fixed addresses (kube-dns's 10.96.0.10),
        # and fall back to the whole range when the upper part is full. The network address and the first host
        # address (the kubernetes Service) are never handed out.
        static_band = min(max(16, size // 16), 256)
        for attempt in range(_ATTEMPTS):
            low = static_band if attempt < _ATTEMPTS // 2 and size > static_band + 2 else 2
            ip = self.network.network_address + random.randrange(low, max(size - 1, low + 1))
            if await self._take(IP_PREFIX + str(ip), owner, dry_run):
                spec["clusterIP"], spec["clusterIPs"] = str(ip), [str(ip)]
                return [] if dry_run else [IP_PREFIX + str(ip)]
        raise errors.APIError(500, "InternalError", f"Internal error occurred: failed to allocate a serviceIP: "
                              f"range {self.network} is full")

    async def _assign_node_ports(self, spec: Obj, owner: str, already: set[Any], dry_run: bool) -> list[str]:
        if spec.get("type") not in _NEEDS_NODE_PORTS:
            return []
        low, high = self.node_ports
        taken: list[str] = []
        for i, port in enumerate(spec.get("ports") or []):
            wanted = port.get("nodePort")
            if wanted:
                if wanted in already:
                    continue
                if not isinstance(wanted, int) or not low <= wanted <= high:
                    raise errors.invalid_object("Service", owner.split("/")[-1], [errors.invalid(
                        f"spec.ports[{i}].nodePort", wanted, f"provided port is not in the valid range. The range "
                        f"of valid ports is {low}-{high}")])
                if not await self._take(PORT_PREFIX + str(wanted), owner, dry_run):
                    raise errors.invalid_object("Service", owner.split("/")[-1], [errors.invalid(
                        f"spec.ports[{i}].nodePort", wanted, "provided port is already allocated")])
                taken.append(PORT_PREFIX + str(wanted))
                continue
            for _ in range(_ATTEMPTS):
                candidate = random.randint(low, high)
                if await self._take(PORT_PREFIX + str(candidate), owner, dry_run):
                    port["nodePort"] = candidate
                    taken.append(PORT_PREFIX + str(candidate))
                    break
            else:
                raise errors.APIError(500, "InternalError", "Internal error occurred: failed to allocate a nodePort: "
                                      "range is full")
        return [] if dry_run else taken

    async def _take(self, key: str, owner: str, dry_run: bool) -> bool:
        if dry_run:
            return await self.store.get(key) is None
        try:
            await self.store.create(key, owner.encode())
        except KeyExists:
            return False
        return True


def _owner(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str) or value in ("", "None"):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _ip_error(owner: str, value: str, detail: str) -> errors.APIError:
    return errors.invalid_object("Service", owner.split("/")[-1], [errors.invalid("spec.clusterIPs", [value], detail)])
