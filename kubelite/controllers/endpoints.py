"""The Endpoints controller: the legacy core/v1 Endpoints object of every Service with a selector, named like the
Service (Kubernetes' pkg/controller/endpoint/endpoints_controller.go).

One reconcile of Service S (key ``ns/name``), reading only the informer caches:

- S is gone: delete the Endpoints named like it (Endpoints have no owner reference; this is how they go);
- S has no selector or is an ExternalName: leave its Endpoints alone (someone else writes them);
- otherwise compute the subsets (`plan_endpoints`): each selected pod with an IP of S's first IP family that is
  not terminal (and not terminating, unless ``publishNotReadyAddresses``) is an address, under
  ``addresses`` when ready (or when S publishes not-ready addresses) and ``notReadyAddresses`` otherwise,
  once per Service port it serves (named target ports looked up per pod); the subsets are then repacked as
  Kubernetes' RepackSubsets does (addresses grouped by the exact set of ports they serve, "not ready" winning
  over "ready", everything sorted) and cut to 1000 addresses (``endpoints.kubernetes.io/over-capacity:
  truncated``). Labels are S's, plus ``service.kubernetes.io/headless`` for a Service without a cluster IP;
- create the Endpoints, or update them (with the resourceVersion read) when subsets, labels or the capacity
  annotation changed. What was written is remembered, so that a cache that has not caught up is waited for.

At start every cached Endpoints object is looked at once, so that those whose Service went while the
controller was down are deleted (except leader-election records).
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.api.selectors import selector_from_set
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import AlreadyExists, ApiException, Conflict, NotFound, TransportError
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.controllers import endpointutil, podutil
from kubelite.controllers.context import ControllerContext
from kubelite.controllers.expectations import ResourceVersionTracker

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICES = by_resource("", "v1", "services")
PODS = by_resource("", "v1", "pods")
ENDPOINTS = by_resource("", "v1", "endpoints")
COMPONENT = "endpoint-controller"
FIELD_MANAGER = "endpoint-controller"
MAX_CAPACITY = 1000
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
TRUNCATED = "truncated"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
# A pass that finds the cache behind its own writes looks again after this long.
STALE_CACHE_RETRY_SECONDS = 0.1

AddressKey = tuple[str, str]  # (ip, target uid)
PortKey = tuple[str, int, str, str] | None  # None: a headless Service without ports


# --- the plan (pure) --------------------------------------------------------------------------------

def endpoint_address(svc: Obj, pod: Obj) -> Obj | None:
    """podToEndpointAddressForService: the pod's address in the Service's (first) IP family, or None."""
    spec = svc.get("spec") or {}
    families = spec.get("ipFamilies") or []
    if families:
        family = str(families[0])
    elif endpointutil.is_service_ip_set(svc):
        family = endpointutil.ip_family(str(spec["clusterIP"]))
    else:
        ips = podutil.pod_ips(pod)
        family = endpointutil.ip_family(ips[0]) if ips else "IPv4"
    ip = next((ip for ip in podutil.pod_ips(pod) if endpointutil.ip_family(ip) == family), None)
    if ip is None:
        return None
    address: Obj = {"ip": ip}
    if endpointutil.should_set_hostname(pod, svc):
        address["hostname"] = pod["spec"]["hostname"]
    if podutil.node_name(pod):
        address["nodeName"] = podutil.node_name(pod)
    address["targetRef"] = {"kind": "Pod", "namespace": meta.namespace(pod), "name": meta.name(pod),
                            "uid": meta.uid(pod)}
    return address


def endpoint_port(service_port: Obj, number: int) -> Obj:
    port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def _port_key(port: Obj | None) -> PortKey:
    if port is None:
        return None
    return (str(port.get("name") or ""), int(port.get("port") or 0), str(port.get("protocol") or "TCP"),
            str(port.get("appProtocol") or ""))


def _address_key(address: Obj) -> AddressKey:
    return (str(address.get("ip") or ""), str((address.get("targetRef") or {}).get("uid") or ""))


def repack_subsets(entries: Iterable[tuple[Obj, Obj | None, bool]]) -> list[Obj]:
    """RepackSubsets over ``(address, port or None, ready)`` entries: one subset per distinct set of (address,
    readiness) pairs, with every port that set serves; an address not ready on a port is not ready there even
    if another entry says ready. Addresses sort by (ip, uid), ports and subsets deterministically."""
    addresses: dict[AddressKey, Obj] = {}
    ports: dict[PortKey, Obj | None] = {}
    readiness: dict[PortKey, dict[AddressKey, bool]] = {}
    for address, port, ready in entries:
        akey, pkey = _address_key(address), _port_key(port)
        addresses.setdefault(akey, address)
        ports.setdefault(pkey, port)
        seen = readiness.setdefault(pkey, {})
        if seen.get(akey, True):
            seen[akey] = ready
    groups: dict[frozenset[tuple[AddressKey, bool]], list[PortKey]] = {}
    for pkey, seen in readiness.items():
        groups.setdefault(frozenset(seen.items()), []).append(pkey)
    subsets: list[Obj] = []
    for members, pkeys in groups.items():
        subset: Obj = {}
        ready_keys = sorted(akey for akey, ok in members if ok)
        not_ready = sorted(akey for akey, ok in members if not ok)
        if ready_keys:
            subset["addresses"] = [copy.deepcopy(addresses[k]) for k in ready_keys]
        if not_ready:
            subset["notReadyAddresses"] = [copy.deepcopy(addresses[k]) for k in not_ready]
        real = sorted(k for k in pkeys if k is not None)
        if real:
            subset["ports"] = [dict(ports[k] or {}) for k in real]
        subsets.append(subset)
    return sorted(subsets, key=_subset_order)


def _subset_order(subset: Obj) -> tuple[list[PortKey], list[AddressKey]]:
    return ([_port_key(p) or ("", 0, "", "") for p in subset.get("ports") or []],
            [_address_key(a) for a in [*(subset.get("addresses") or []), *(subset.get("notReadyAddresses") or [])]])


def desired_subsets(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The Service's subsets for the pods its selector matches (before truncation)."""
    tolerate_unready = endpointutil.publish_not_ready(svc)
    service_ports = endpointutil.service_ports(svc)
    entries: list[tuple[Obj, Obj | None, bool]] = []
    for pod in sorted(pods, key=meta.name):
        if not endpointutil.should_pod_be_in_endpoints(pod, include_terminating=tolerate_unready):
            continue
        address = endpoint_address(svc, pod)
        if address is None:
            continue
        ready = tolerate_unready or podutil.is_ready(pod)
        if not service_ports:
            if endpointutil.is_headless(svc):  # a headless Service may have no ports at all
                entries.append((address, None, ready))
            continue
        for sp in service_ports:
            number = endpointutil.find_port(pod, sp)
            if number is not None:
                entries.append((address, endpoint_port(sp, number), ready))
    return repack_subsets(entries)


def truncate(subsets: list[Obj]) -> tuple[list[Obj], bool]:
    """truncateEndpoints: at most MAX_CAPACITY addresses, shared among subsets in proportion, ready ones
    first; returns the subsets and whether anything was cut."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return subsets, False
    truncate_ready = total_ready > MAX_CAPACITY
    budget = MAX_CAPACITY if truncate_ready else MAX_CAPACITY - total_ready
    total = total_ready if truncate_ready else total_not_ready
    left = budget
    out: list[Obj] = []
    for subset in subsets:
        subset = dict(subset)
        field = "addresses" if truncate_ready else "notReadyAddresses"
        members = subset.get(field) or []
        take = min(math.ceil(len(members) / total * budget), left) if total else 0
        subset[field] = members[:take]
        if truncate_ready:
            subset.pop("notReadyAddresses", None)
        left -= len(subset[field])
        if not subset[field]:
            del subset[field]
        out.append(subset)
    return out, True


def endpoints_labels(svc: Obj) -> dict[str, str]:
    labels = meta.labels(svc)
    if not endpointutil.is_service_ip_set(svc):
        labels[endpointutil.HEADLESS_LABEL] = ""
    else:
        labels.pop(endpointutil.HEADLESS_LABEL, None)
    return labels


def _without_target_versions(subsets: list[Obj]) -> list[Obj]:
    """Subsets with ``targetRef.resourceVersion`` dropped: a pod's unrelated changes are no reason to write."""
    out = copy.deepcopy(subsets)
    for subset in out:
        for field in ("addresses", "notReadyAddresses"):
            for address in subset.get(field) or []:
                (address.get("targetRef") or {}).pop("resourceVersion", None)
    return out


def plan_endpoints(svc: Obj, pods: Iterable[Obj], current: Obj | None) -> Obj | None:
    """The Endpoints object to write for ``svc`` (a create when it has no resourceVersion), or None when
    ``current`` already says the same."""
    subsets, truncated = truncate(desired_subsets(svc, pods))
    labels = endpoints_labels(svc)
    if current is not None:
        annotations = meta.annotations(current)
        if (_without_target_versions(current.get("subsets") or []) == subsets and meta.labels(current) == labels
                and (annotations.get(OVER_CAPACITY_ANNOTATION) == TRUNCATED) == truncated):
            return None
        new = copy.deepcopy(current)
    else:
        new = {"apiVersion": "v1", "kind": "Endpoints",
               "metadata": {"name": meta.name(svc), "namespace": meta.namespace(svc)}}
    md = new["metadata"]
    if subsets:
        new["subsets"] = subsets
    else:
        new.pop("subsets", None)
    if labels:
        md["labels"] = labels
    else:
        md.pop("labels", None)
    annotations = dict(md.get("annotations") or {})
    if truncated:
        annotations[OVER_CAPACITY_ANNOTATION] = TRUNCATED
    else:
        annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    if annotations:
        md["annotations"] = annotations
    else:
        md.pop("annotations", None)
    return new


# --- the controller (I/O) ---------------------------------------------------------------------------

def _namespace_terminating(e: ApiException) -> bool:
    causes = e.details.get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


class EndpointsController:
    """See the module docstring. Keys are ``namespace/name`` of Services (and of their Endpoints)."""

    name = "endpoints"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.recorder = ctx.recorder(COMPONENT)
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("endpoints")
        self.tracker = ResourceVersionTracker()
        self._services: SharedInformer | None = None
        self._pods: SharedInformer | None = None
        self._endpoints: SharedInformer | None = None

    def setup(self, factory: InformerFactory) -> None:
        self._services = factory.informer(SERVICES)
        self._pods = factory.informer(PODS)
        endpointutil.watch_services_and_pods(self.queue, self._services, self._pods)
        self._endpoints = factory.informer(ENDPOINTS)
        self._endpoints.add_handler(on_delete=self._endpoints_deleted)

    async def run(self, workers: int) -> None:
        # checkLeftoverEndpoints: Endpoints whose Service went while no controller was running.
        for ep in self._caches[2].list():
            if LEADER_ANNOTATION not in meta.annotations(ep):
                self.queue.add(meta.key(ep))
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    @property
    def _caches(self) -> tuple[SharedInformer, SharedInformer, SharedInformer]:
        if self._services is None or self._pods is None or self._endpoints is None:
            raise RuntimeError("EndpointsController.setup() was not called")
        return self._services, self._pods, self._endpoints

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _endpoints_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        ep = object_of(gone)
        self.tracker.expected_deletion(meta.key(ep), ep)
        self.queue.add(meta.key(ep))  # recreated if its Service still wants it

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """One pass over Service ``key``; returns when to look again (None: only on events)."""
        services, pods_cache, endpoints_cache = self._caches
        svc = services.get(key)
        current = endpoints_cache.get(key)
        if svc is None:
            return await self._delete(key, current)
        if not endpointutil.wants_endpoints(svc):
            return None
        cached = {meta.name(current): current} if current is not None else {}
        if self.tracker.is_stale(key, cached, endpoints_cache.resource_version):
            return STALE_CACHE_RETRY_SECONDS
        selector = selector_from_set(endpointutil.service_selector(svc))
        pods = [p for p in pods_cache.list(meta.namespace(svc)) if selector.matches(meta.labels(p))]
        new = plan_endpoints(svc, pods, current)
        if new is None:
            return None
        creating = current is None
        try:
            if creating:
                written = await self.client.create(ENDPOINTS, new, meta.namespace(svc), field_manager=FIELD_MANAGER)
            else:
                written = await self.client.update(ENDPOINTS, new, meta.namespace(svc), field_manager=FIELD_MANAGER)
        except (AlreadyExists, Conflict):
            return STALE_CACHE_RETRY_SECONDS  # the cache is behind: decide again over what it will show
        except (ApiException, TransportError) as e:
            if creating and isinstance(e, ApiException) and _namespace_terminating(e):
                return None
            message = e.message if isinstance(e, ApiException) else str(e)
            if creating:
                self.recorder.warning(new, "FailedToCreateEndpoint",
                                      f"Failed to create endpoint for service {key}: {message}")
            else:
                self.recorder.warning(new, "FailedToUpdateEndpoint", f"Failed to update endpoint {key}: {message}")
            raise
        self.tracker.wrote(key, written)
        return None

    async def _delete(self, key: str, current: Obj | None) -> float | None:
        """The Service is gone: so go its Endpoints (those the cache shows, guarded by uid and version)."""
        self.tracker.forget(key)
        if current is None or LEADER_ANNOTATION in meta.annotations(current):
            return None
        try:
            await self.client.delete(ENDPOINTS, meta.name(current), meta.namespace(current), preconditions={
                "uid": meta.uid(current), "resourceVersion": meta.resource_version(current)})
        except NotFound:
            return None
        except Conflict:
            return STALE_CACHE_RETRY_SECONDS
        log.info("endpoints %s deleted: its service is gone", key)
        return None
