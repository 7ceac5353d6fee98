"""The EndpointSlice controller: every Service with a selector gets EndpointSlices (discovery.k8s.io/v1) listing
the pods it selects (Kubernetes' pkg/controller/endpointslice and its reconciler, k8s.io/endpointslice).

One reconcile of Service S (key ``ns/name``), reading only the informer caches:

1. skip S when it has no selector or is an ExternalName: such Services get endpoints from elsewhere;
2. the desired endpoints (`plan_slices`): one per pod S selects that has an IP and is not terminal, with
   ``ready``/``serving``/``terminating`` conditions as Kubernetes sets them (``ready`` is always true under
   ``publishNotReadyAddresses``), ``nodeName``, ``targetRef``, the node's zone and the pod's hostname when its
   subdomain is S. Endpoints are grouped by their resolved port set: a named ``targetPort`` is looked up in
   each pod, so pods that number a port differently land in different slices;
3. diff against S's existing slices (labelled ``kubernetes.io/service-name`` and
   ``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io``, owned by S): slices keep the
   endpoints still wanted (updated in place when an endpoint changed), are topped up to 100 endpoints, new
   slices (``generateName: <svc>-``) take the rest, empty ones go; a slice that would be deleted while another
   is created is updated into it instead. A Service with no endpoints keeps one empty placeholder slice.
4. write: creates, updates (with the resourceVersion read) and deletes (uid and resourceVersion as
   preconditions). What was written is remembered (`ResourceVersionTracker`): a pass over a cache that does
   not show those writes yet waits instead of creating slices twice.

A pod on a node the cache does not know is left out (unless ``publishNotReadyAddresses``) and S is retried
with backoff, and again as soon as that node appears, as Kubernetes does.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.api.selectors import selector_from_set
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import ApiException, Conflict, NotFound, TransportError
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.controllers import endpointutil, podutil
from kubelite.controllers.context import ControllerContext
from kubelite.controllers.expectations import ResourceVersionTracker

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICES = by_resource("", "v1", "services")
PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
ENDPOINT_SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")
COMPONENT = "endpoint-slice-controller"
FIELD_MANAGER = "endpointslice-controller"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100
_RESERVED_LABELS = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, endpointutil.HEADLESS_LABEL)
# A change to a slice made by someone else is looked at after this long (Kubernetes'
# endpointSliceChangeMinSyncDelay), so that a burst of such changes costs one pass.
SLICE_CHANGE_SYNC_DELAY_SECONDS = 1.0
# A pass that finds the cache behind its own writes looks again after this long.
STALE_CACHE_RETRY_SECONDS = 0.1
# Slices of one Service, by "namespace/service name", for slices this controller manages.
SERVICE_INDEX = "endpointslice-controller/service"

PortKey = tuple[tuple[str, int, str, str], ...]
EndpointId = tuple[tuple[str, ...], str, str, str]


# --- the plan (pure) --------------------------------------------------------------------------------

def address_types(svc: Obj) -> list[str]:
    """The address types a Service's slices use: from ``ipFamilies``, else from its cluster IP, else both."""
    families = [f for f in (svc.get("spec") or {}).get("ipFamilies") or [] if f in ("IPv4", "IPv6")]
    if families:
        return list(dict.fromkeys(families))
    if endpointutil.is_service_ip_set(svc):
        return [endpointutil.ip_family(str(svc["spec"]["clusterIP"]))]
    return ["IPv4", "IPv6"]


def endpoint_ports(svc: Obj, pod: Obj) -> list[Obj]:
    """The slice ports for ``pod``: each Service port whose target the pod has (headless: none needed)."""
    ports: list[Obj] = []
    for sp in endpointutil.service_ports(svc):
        number = endpointutil.find_port(pod, sp)
        if number is None:
            continue
        port: Obj = {"name": str(sp.get("name") or ""), "port": number, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return ports


def port_key(ports: Iterable[Obj]) -> PortKey:
    """What slices are grouped by: the set of ports, order aside."""
    return tuple(sorted((str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol") or "TCP"),
                         str(p.get("appProtocol") or "")) for p in ports))


def pod_to_endpoint(pod: Obj, node: Obj | None, svc: Obj, address_type: str) -> Obj:
    """podToEndpoint: the endpoint a pod contributes to slices of ``address_type``."""
    serving = podutil.is_ready(pod)
    terminating = meta.is_being_deleted(pod)
    ready = endpointutil.publish_not_ready(svc) or (serving and not terminating)
    endpoint: Obj = {
        "addresses": [ip for ip in podutil.pod_ips(pod) if endpointutil.ip_family(ip) == address_type],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": meta.namespace(pod), "name": meta.name(pod), "uid": meta.uid(pod)},
    }
    if podutil.node_name(pod):
        endpoint["nodeName"] = podutil.node_name(pod)
    zone = meta.labels(node).get(ZONE_LABEL) if node is not None else None
    if zone:
        endpoint["zone"] = zone
    if endpointutil.should_set_hostname(pod, svc):
        endpoint["hostname"] = pod["spec"]["hostname"]
    return endpoint


def endpoint_id(endpoint: Obj) -> EndpointId:
    """Which desired endpoint an existing one stands for: same addresses, hostname and target."""
    ref = endpoint.get("targetRef") or {}
    return (tuple(endpoint.get("addresses") or ()), str(endpoint.get("hostname") or ""),
            str(ref.get("namespace") or ""), str(ref.get("name") or ""))


_ENDPOINT_FIELDS = ("addresses", "conditions", "targetRef", "nodeName", "zone", "hostname")
_CONDITIONS = ("ready", "serving", "terminating")
_TARGET_REF_FIELDS = ("kind", "namespace", "name", "uid")


def endpoint_view(endpoint: Obj) -> Obj:
    """The fields this controller sets, so that what the server stores compares equal to what was sent."""
    view = {k: endpoint[k] for k in _ENDPOINT_FIELDS if endpoint.get(k) not in (None, "")}
    conditions = endpoint.get("conditions") or {}
    view["conditions"] = {k: conditions[k] for k in _CONDITIONS if conditions.get(k) is not None}
    if "targetRef" in view:
        view["targetRef"] = {k: view["targetRef"][k] for k in _TARGET_REF_FIELDS if view["targetRef"].get(k)}
    return view


def slice_labels(existing: Obj | None, svc: Obj) -> tuple[dict[str, str], bool]:
    """setEndpointSliceLabels: the Service's labels (reserved keys aside) plus the controller's own; and
    whether the Service's labels differ from those ``existing`` carries."""
    current = {k: v for k, v in meta.labels(existing or {}).items() if k not in _RESERVED_LABELS}
    wanted = {k: v for k, v in meta.labels(svc).items() if k not in _RESERVED_LABELS}
    changed = current != wanted
    if not endpointutil.is_service_ip_set(svc):
        wanted[endpointutil.HEADLESS_LABEL] = ""
    wanted[SERVICE_NAME_LABEL] = meta.name(svc)
    wanted[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return wanted, changed


def service_ref(svc: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "name": meta.name(svc), "uid": meta.uid(svc),
            "controller": True, "blockOwnerDeletion": True}


def owned_by(slice_: Obj, svc: Obj) -> bool:
    return any(r.get("uid") == meta.uid(svc) and r.get("kind") == "Service" and r.get("apiVersion") == "v1"
               for r in meta.owner_references(slice_))


def new_slice(svc: Obj, ports: Sequence[Obj], address_type: str) -> Obj:
    prefix = f"{meta.name(svc)}-"
    labels, _ = slice_labels(None, svc)
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"generateName": prefix if len(prefix) <= 253 else meta.name(svc),
                         "namespace": meta.namespace(svc), "labels": labels, "ownerReferences": [service_ref(svc)]},
            "addressType": address_type, "endpoints": [], "ports": [dict(p) for p in ports]}


def _is_placeholder(slice_: Obj, svc: Obj, address_type: str) -> bool:
    """Whether an existing slice is the empty placeholder this controller would create."""
    labels, _ = slice_labels(None, svc)
    return (slice_.get("addressType") == address_type and not slice_.get("endpoints") and not slice_.get("ports")
            and meta.labels(slice_) == labels and owned_by(slice_, svc))


@dataclass
class SlicePlan:
    """Slices to create (no name yet), to update (carrying the resourceVersion read) and to delete; and the
    nodes some selected pods run on that the cache does not know (those pods were left out)."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    missing_nodes: list[tuple[str, str]] = field(default_factory=list)  # (pod name, node name)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


def plan_slices(svc: Obj, pods: Iterable[Obj], existing: Iterable[Obj], nodes: Mapping[str, Obj], *,
                max_endpoints: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """The writes that make ``existing`` (the Service's managed slices, none being deleted) represent ``pods``
    (the pods its selector matches); ``nodes`` maps node names to the cached Nodes."""
    plan = SlicePlan()
    types = address_types(svc)
    by_type: dict[str, list[Obj]] = {t: [] for t in types}
    for s in existing:
        if s.get("addressType") in by_type:
            by_type[str(s["addressType"])].append(s)
        else:
            plan.delete.append(s)
    candidates = sorted((p for p in pods if endpointutil.should_pod_be_in_endpoints(p, include_terminating=True)),
                        key=meta.name)
    for address_type in types:
        _plan_address_type(plan, svc, candidates, by_type[address_type], nodes, address_type, max_endpoints)
    if meta.is_being_deleted(svc):
        plan.create = []  # the garbage collector is removing slices; never race it with new ones
    return plan


def _plan_address_type(plan: SlicePlan, svc: Obj, pods: Sequence[Obj], existing: Sequence[Obj],
                       nodes: Mapping[str, Obj], address_type: str, max_endpoints: int) -> None:
    """reconcileByAddressType, adding to ``plan``."""
    creates: list[Obj] = []
    updates: list[Obj] = []
    deletes: list[Obj] = []
    existing_by_ports: dict[PortKey, list[Obj]] = {}
    for s in existing:
        if owned_by(s, svc):
            existing_by_ports.setdefault(port_key(s.get("ports") or []), []).append(s)
        else:
            deletes.append(s)

    desired: dict[PortKey, dict[EndpointId, Obj]] = {}
    ports_of: dict[PortKey, list[Obj]] = {}
    for pod in pods:
        ports = endpoint_ports(svc, pod)
        key = port_key(ports)
        group = desired.setdefault(key, {})
        ports_of.setdefault(key, ports)
        node = nodes.get(podutil.node_name(pod))
        if node is None and not endpointutil.publish_not_ready(svc):
            if address_type == address_types(svc)[0]:
                plan.missing_nodes.append((meta.name(pod), podutil.node_name(pod)))
            continue
        endpoint = pod_to_endpoint(pod, node, svc, address_type)
        if endpoint["addresses"]:
            group.setdefault(endpoint_id(endpoint), endpoint)

    for key, wanted in desired.items():
        c, u, d = _plan_port_group(svc, existing_by_ports.get(key, []), wanted, ports_of[key], address_type,
                                   max_endpoints)
        creates += c
        updates += u
        deletes += d
    for key, slices in existing_by_ports.items():
        if key not in desired:
            deletes += slices

    if len(existing) == len(deletes) and not creates:
        # No slice would be left: keep (or make) one empty placeholder, as Kubernetes does.
        if len(deletes) == 1 and _is_placeholder(deletes[0], svc, address_type):
            deletes = []
        else:
            creates.append(new_slice(svc, [], address_type))

    # Reuse slices about to be deleted for slices about to be created: one update instead of two writes.
    kept: list[Obj] = []
    for doomed in deletes:
        if creates and doomed.get("addressType") == address_type and owned_by(doomed, svc):
            fresh = creates.pop()
            reused = copy.deepcopy(doomed)
            reused["metadata"]["labels"] = fresh["metadata"]["labels"]
            reused["endpoints"] = fresh["endpoints"]
            reused["ports"] = fresh["ports"]
            updates.append(reused)
        else:
            kept.append(doomed)
    plan.create += creates
    plan.update += updates
    plan.delete += kept


def _plan_port_group(svc: Obj, existing: Sequence[Obj], wanted: dict[EndpointId, Obj], ports: Sequence[Obj],
                     address_type: str, max_endpoints: int) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """reconcileByPortMapping for the slices of one port set: (creates, updates, deletes)."""
    remaining = dict(wanted)
    updated: dict[str, Obj] = {}
    unchanged: dict[str, Obj] = {}
    deletes: list[Obj] = []
    for s in existing:
        current = s.get("endpoints") or []
        keep: list[Obj] = []
        changed = False
        for endpoint in current:
            want = remaining.pop(endpoint_id(endpoint), None)
            if want is not None:
                keep.append(want)
                changed = changed or endpoint_view(endpoint) != endpoint_view(want)
        labels, labels_changed = slice_labels(s, svc)
        if changed or len(keep) != len(current):
            if not keep:
                deletes.append(s)
                continue
            copy_ = copy.deepcopy(s)
            copy_["endpoints"] = keep
            copy_["metadata"]["labels"] = labels
            updated[meta.name(s)] = copy_
        elif labels_changed:
            copy_ = copy.deepcopy(s)
            copy_["metadata"]["labels"] = labels
            updated[meta.name(s)] = copy_
        else:
            unchanged[meta.name(s)] = s

    queue = list(remaining.values())
    # Top up the slices being written anyway, the fullest first.
    for s in sorted(updated.values(), key=lambda x: -len(x["endpoints"])):
        room = max_endpoints - len(s["endpoints"])
        if room > 0 and queue:
            s["endpoints"] += queue[:room]
            queue = queue[room:]

    creates: list[Obj] = []
    while queue:
        target: Obj | None = None
        if len(queue) < max_endpoints and unchanged:
            target = _slice_to_fill(list(unchanged.values()), len(queue), max_endpoints)
        if target is None:
            target = new_slice(svc, ports, address_type)
            creates.append(target)
        else:
            del unchanged[meta.name(target)]
            target = copy.deepcopy(target)
            updated[meta.name(target)] = target
        room = max_endpoints - len(target["endpoints"])
        target["endpoints"] = list(target["endpoints"]) + queue[:room]
        queue = queue[room:]
    return creates, list(updated.values()), deletes


def _slice_to_fill(slices: Sequence[Obj], count: int, max_endpoints: int) -> Obj | None:
    """getSliceToFill: the slice ``count`` more endpoints would bring closest to full without overflowing."""
    best: Obj | None = None
    best_gap = max_endpoints
    for s in slices:
        gap = max_endpoints - (count + len(s.get("endpoints") or []))
        if 0 <= gap < best_gap:
            best, best_gap = s, gap
            if gap == 0:
                break
    return best


# --- the controller (I/O) ---------------------------------------------------------------------------

def _service_key_of(slice_: Obj) -> str | None:
    """The key of the Service a slice this controller manages belongs to."""
    labels = meta.labels(slice_)
    name = labels.get(SERVICE_NAME_LABEL)
    if not name or labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME:
        return None
    return f"{meta.namespace(slice_)}/{name}"


def _service_index(slice_: Obj) -> list[str]:
    key = _service_key_of(slice_)
    return [key] if key else []


def _namespace_terminating(e: ApiException) -> bool:
    causes = e.details.get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


class NodeNotFound(Exception):
    """Some selected pods run on nodes the cache does not know; they were left out for now."""


class EndpointSliceController:
    """See the module docstring. Keys are ``namespace/name`` of Services."""

    name = "endpointslice"

    def __init__(self, ctx: ControllerContext, *, max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> None:
        self.client = ctx.client
        self.recorder = ctx.recorder(COMPONENT)
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("endpointslice")
        self.tracker = ResourceVersionTracker()
        # Services with pods on nodes the cache did not know yet, by node name.
        self._waiting_for_node: dict[str, set[str]] = {}
        self._services: SharedInformer | None = None
        self._pods: SharedInformer | None = None
        self._slices: SharedInformer | None = None
        self._nodes: SharedInformer | None = None

    def setup(self, factory: InformerFactory) -> None:
        self._services = factory.informer(SERVICES)
        self._pods = factory.informer(PODS)
        endpointutil.watch_services_and_pods(self.queue, self._services, self._pods)
        self._slices = factory.informer(ENDPOINT_SLICES)
        self._slices.add_indexers({SERVICE_INDEX: _service_index})
        self._slices.add_handler(self._slice_added, self._slice_updated, self._slice_deleted)
        self._nodes = factory.informer(NODES)
        self._nodes.add_handler(on_add=self._node_added)

    async def run(self, workers: int) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    @property
    def _caches(self) -> tuple[SharedInformer, SharedInformer, SharedInformer, SharedInformer]:
        if self._services is None or self._pods is None or self._slices is None or self._nodes is None:
            raise RuntimeError("EndpointSliceController.setup() was not called")
        return self._services, self._pods, self._slices, self._nodes

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _slice_added(self, slice_: Obj) -> None:
        key = _service_key_of(slice_)
        if key is not None and not self.tracker.is_own_write(key, slice_):
            self.queue.add_after(key, SLICE_CHANGE_SYNC_DELAY_SECONDS)

    def _slice_updated(self, old: Obj, new: Obj) -> None:
        old_key, new_key = _service_key_of(old), _service_key_of(new)
        if old_key != new_key:  # relabelled: both Services may need their slices again
            for key in (old_key, new_key):
                if key is not None:
                    self.queue.add_after(key, SLICE_CHANGE_SYNC_DELAY_SECONDS)
            return
        if new_key is not None and meta.resource_version(old) != meta.resource_version(new) \
                and not self.tracker.is_own_write(new_key, new):
            self.queue.add_after(new_key, SLICE_CHANGE_SYNC_DELAY_SECONDS)

    def _slice_deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        slice_ = object_of(gone)
        key = _service_key_of(slice_)
        if key is not None and not self.tracker.expected_deletion(key, slice_):
            self.queue.add_after(key, SLICE_CHANGE_SYNC_DELAY_SECONDS)

    def _node_added(self, node: Obj) -> None:
        for key in self._waiting_for_node.pop(meta.name(node), set()):
            self.queue.add(key)

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        """One pass over Service ``key``; returns when to look again (None: only on events)."""
        services, pods_cache, slices_cache, nodes_cache = self._caches
        svc = services.get(key)
        if svc is None:
            self.tracker.forget(key)  # its slices go with it (garbage collector: they are owned)
            return None
        if not endpointutil.wants_endpoints(svc):
            return None
        selector = selector_from_set(endpointutil.service_selector(svc))
        pods = [p for p in pods_cache.list(meta.namespace(svc)) if selector.matches(meta.labels(p))]
        slices = [s for s in slices_cache.by_index(SERVICE_INDEX, key) if not meta.is_being_deleted(s)]
        if self.tracker.is_stale(key, {meta.name(s): s for s in slices}, slices_cache.resource_version):
            return STALE_CACHE_RETRY_SECONDS
        nodes = {name: node for name in {podutil.node_name(p) for p in pods}
                 if (node := nodes_cache.get(name)) is not None}
        plan = plan_slices(svc, pods, slices, nodes, max_endpoints=self.max_endpoints_per_slice)
        retry = await self._apply(svc, key, plan)
        if plan.missing_nodes:
            for _, node_name in plan.missing_nodes:
                self._waiting_for_node.setdefault(node_name, set()).add(key)
            missing = "; ".join(f"skipping Pod {pod} for Service {key}: Node {node} Not Found"
                                for pod, node in plan.missing_nodes)
            self.recorder.warning(svc, "FailedToUpdateEndpointSlices",
                                  f"Error updating Endpoint Slices for Service {key}: {missing}")
            raise NodeNotFound(missing)  # retried with backoff, and when the node appears
        return STALE_CACHE_RETRY_SECONDS if retry else None

    async def _apply(self, svc: Obj, key: str, plan: SlicePlan) -> bool:
        """Write ``plan``; returns True when a write met a newer object (the cache was behind: look again)."""
        namespace = meta.namespace(svc)
        conflict = False
        try:
            for s in plan.create:
                try:
                    self.tracker.wrote(key, await self.client.create(ENDPOINT_SLICES, s, namespace,
                                                                     field_manager=FIELD_MANAGER))
                except ApiException as e:
                    if _namespace_terminating(e):
                        return False
                    raise
            for s in plan.update:
                try:
                    self.tracker.wrote(key, await self.client.update(ENDPOINT_SLICES, s, namespace,
                                                                     field_manager=FIELD_MANAGER))
                except Conflict:
                    conflict = True
            for s in plan.delete:
                try:
                    await self.client.delete(ENDPOINT_SLICES, meta.name(s), namespace, preconditions={
                        "uid": meta.uid(s), "resourceVersion": meta.resource_version(s)})
                except NotFound:
                    continue
                except Conflict:
                    conflict = True
                    continue
                self.tracker.deleted(key, s)
        except (ApiException, TransportError) as e:
            message = e.message if isinstance(e, ApiException) else str(e)
            self.recorder.warning(svc, "FailedToUpdateEndpointSlices",
                                  f"Error updating Endpoint Slices for Service {key}: {message}")
            raise
        if not plan.empty:
            log.debug("endpointslice %s: %d created, %d updated, %d deleted", key, len(plan.create),
                      len(plan.update), len(plan.delete))
        return conflict
