"""The Node IPAM controller: gives every Node a pod CIDR of its own (Kubernetes' pkg/controller/nodeipam, the
RangeAllocator).

The cluster CIDR (``--cluster-cidr``, one range, or one IPv4 and one IPv6 range separated by a comma) is cut
into subnets of ``node_cidr_mask_size`` bits (IPv6 subnets are /64, Kubernetes' default). A `CidrSet` per
range knows which subnets are taken and hands out the next free one after the last it gave (a rotating
pointer, as Kubernetes' cidrset does, so that a freed subnet is not reused at once by the next node).

Lifetime of the bookkeeping:

- when the controller starts (its caches have synced), every subnet named in some Node's ``spec.podCIDRs``
  is marked taken before any allocation, so that no two nodes ever get the same one;
- a Node without ``spec.podCIDRs`` gets the next free subnet of each range, written to ``spec.podCIDR`` and
  ``spec.podCIDRs`` in one PUT carrying the resourceVersion it was decided from. The subnet is reserved
  for that node until the write is seen or the node goes, so a retried write (409) proposes the same one;
- a range that is full records the event ``CIDRNotAvailable`` on the Node (Kubernetes' wording: "Node X
  status is now: CIDRNotAvailable") and the node is looked at again every `FULL_RETRY_SECONDS`, and at
  once when another node goes;
- a deleted Node frees its subnets.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import Client, NotFound
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from kubelite.controllers.context import ControllerContext

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NODES = by_resource("", "v1", "nodes")
COMPONENT = "cidrAllocator"
FIELD_MANAGER = "node-ipam-controller"
IPV6_NODE_MASK_SIZE = 64
# Kubernetes' cidrset refuses ranges cut into more than 2**16 subnets.
MAX_SUBNET_BITS = 16
FULL_RETRY_SECONDS = 30.0
EVENT_CIDR_NOT_AVAILABLE = "CIDRNotAvailable"


# --- the subnets of one range (pure) ----------------------------------------------------------------

class CidrSet:
    """The ``/mask_size`` subnets of ``cluster``: which are taken, and where the next search starts."""

    def __init__(self, cluster: Network, mask_size: int) -> None:
        if mask_size < cluster.prefixlen or mask_size > cluster.max_prefixlen:
            raise ValueError(f"node CIDR mask size {mask_size} does not fit in cluster CIDR {cluster}")
        if mask_size - cluster.prefixlen > MAX_SUBNET_BITS:
            raise ValueError(f"node CIDR mask size {mask_size} cuts {cluster} into more than "
                             f"2^{MAX_SUBNET_BITS} subnets")
        self.cluster = cluster
        self.mask_size = mask_size
        self.size = 1 << (mask_size - cluster.prefixlen)
        self._shift = cluster.max_prefixlen - mask_size
        self._used: set[int] = set()
        self._next = 0

    @property
    def used(self) -> int:
        return len(self._used)

    def subnet(self, index: int) -> Network:
        address = int(self.cluster.network_address) + (index << self._shift)
        return ipaddress.ip_network((address, self.mask_size))

    def allocate_next(self) -> Network | None:
        """Take the first free subnet at or after the pointer (wrapping around); None when all are taken."""
        for step in range(self.size):
            index = (self._next + step) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self.subnet(index)
        return None

    def occupy(self, cidr: Network) -> None:
        """Mark every subnet ``cidr`` overlaps as taken; ValueError when it is not inside the range."""
        for index in self._indices(cidr):
            self._used.add(index)

    def release(self, cidr: Network) -> None:
        for index in self._indices(cidr):
            self._used.discard(index)

    def contains(self, cidr: Network) -> bool:
        return cidr.version == self.cluster.version and cidr.subnet_of(self.cluster)  # type: ignore[arg-type]

    def _indices(self, cidr: Network) -> range:
        if not self.contains(cidr):
            raise ValueError(f"{cidr} is not inside the cluster CIDR {self.cluster}")
        base = int(self.cluster.network_address)
        first = (int(cidr.network_address) - base) >> self._shift
        last = (int(cidr.broadcast_address) - base) >> self._shift
        return range(first, last + 1)


def parse_cluster_cidrs(text: str, mask_size: int) -> list[CidrSet]:
    """One `CidrSet` per comma-separated range: at most one IPv4 and one IPv6 (dual stack)."""
    sets: list[CidrSet] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        network = ipaddress.ip_network(part, strict=True)
        sets.append(CidrSet(network, mask_size if network.version == 4 else IPV6_NODE_MASK_SIZE))
    if not sets:
        raise ValueError("a cluster CIDR is required")
    if len(sets) > 2 or len({s.cluster.version for s in sets}) != len(sets):
        raise ValueError(f"cluster CIDR {text!r}: at most one range per IP family")
    return sets


# --- decisions (pure) -------------------------------------------------------------------------------

def pod_cidrs(node: Obj) -> tuple[str, ...]:
    """The node's pod CIDRs: ``spec.podCIDRs``, else the older single ``spec.podCIDR``."""
    spec = node.get("spec") or {}
    cidrs = [str(c) for c in spec.get("podCIDRs") or [] if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return tuple(cidrs)


def with_pod_cidrs(node: Obj, cidrs: Sequence[str]) -> Obj:
    """A copy of ``node`` carrying ``cidrs`` (``spec.podCIDR`` is the first, as the API server keeps them)."""
    out = copy.deepcopy(node)
    spec = out.setdefault("spec", {})
    spec["podCIDR"] = cidrs[0]
    spec["podCIDRs"] = list(cidrs)
    return out


@dataclass(frozen=True, slots=True)
class Occupy:
    """The node already has ``cidrs``: mark them taken (and drop a different reservation)."""

    cidrs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Assign:
    """The node has none: write ``cidrs`` (the reservation, or new subnets when None)."""

    cidrs: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Release:
    """The node is gone: free what it held."""


Decision = Occupy | Assign | Release | None


def decide(node: Obj | None, held: tuple[str, ...] | None) -> Decision:
    """What to do for one node, given what it holds in our books (None: nothing)."""
    if node is None:
        return Release() if held else None
    current = pod_cidrs(node)
    if current:
        return None if current == held else Occupy(current)
    return Assign(held)


# --- the controller (I/O) ---------------------------------------------------------------------------

class NodeIpamController:
    """See the module docstring. Keys are node names."""

    name = "nodeipam"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client: Client = ctx.client
        self.recorder = ctx.recorder(COMPONENT)
        self.sets = parse_cluster_cidrs(ctx.options.cluster_cidr, ctx.options.node_cidr_mask_size)
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("nodeipam")
        self._nodes: SharedInformer | None = None
        # Node name -> the CIDRs it holds in our books (taken from the node, or reserved for it).
        self._held: dict[str, tuple[str, ...]] = {}

    def setup(self, factory: InformerFactory) -> None:
        self._nodes = factory.informer(NODES)
        self._nodes.add_handler(on_add=self._enqueue, on_update=self._updated, on_delete=self._deleted)

    async def run(self, workers: int) -> None:
        self.occupy_existing()
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    def occupy_existing(self) -> None:
        """Mark every subnet a cached Node holds as taken (before the first allocation)."""
        for node in self._informer().list():
            cidrs = pod_cidrs(node)
            if cidrs and self._occupy(meta.name(node), cidrs):
                self._held[meta.name(node)] = cidrs

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _enqueue(self, node: Obj) -> None:
        self.queue.add(meta.name(node))

    def _updated(self, old: Obj, new: Obj) -> None:
        if not pod_cidrs(new) or pod_cidrs(old) != pod_cidrs(new):
            self.queue.add(meta.name(new))

    def _deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        self.queue.add(meta.name(object_of(gone)))

    def _informer(self) -> SharedInformer:
        if self._nodes is None:
            raise RuntimeError("NodeIpamController.setup() was not called")
        return self._nodes

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, name: str) -> float | None:
        node = self._informer().get(name)
        decision = decide(node, self._held.get(name))
        if isinstance(decision, Release):
            self._release(name)
            self._wake_waiting()
            return None
        if isinstance(decision, Occupy):
            self._release(name)
            if self._occupy(name, decision.cidrs):
                self._held[name] = decision.cidrs
            return None
        if isinstance(decision, Assign) and node is not None:
            return await self._assign(node, decision.cidrs)
        return None

    async def _assign(self, node: Obj, reserved: tuple[str, ...] | None) -> float | None:
        name = meta.name(node)
        cidrs = reserved or self._allocate(name)
        if cidrs is None:
            self.recorder.normal(node, EVENT_CIDR_NOT_AVAILABLE, f"Node {name} status is now: "
                                 f"{EVENT_CIDR_NOT_AVAILABLE}")
            log.warning("nodeipam: no free /%s left in %s for node %s", self.sets[0].mask_size,
                        ", ".join(str(s.cluster) for s in self.sets), name)
            return FULL_RETRY_SECONDS
        self._held[name] = cidrs
        try:
            await self.client.update(NODES, with_pod_cidrs(node, cidrs), field_manager=FIELD_MANAGER)
        except NotFound:
            self._release(name)
            return None
        log.info("nodeipam: node %s gets pod CIDR %s", name, ",".join(cidrs))
        return None

    # --- the books ---------------------------------------------------------------------------------

    def _allocate(self, name: str) -> tuple[str, ...] | None:
        """The next free subnet of every range, or None (and nothing taken) when one range is full."""
        taken: list[tuple[CidrSet, Network]] = []
        for cidr_set in self.sets:
            subnet = cidr_set.allocate_next()
            if subnet is None:
                for s, net in taken:
                    s.release(net)
                return None
            taken.append((cidr_set, subnet))
        return tuple(str(net) for _, net in taken)

    def _occupy(self, name: str, cidrs: Sequence[str]) -> bool:
        """Mark ``cidrs`` taken; False (with a log) when one is not ours to manage."""
        try:
            for cidr in cidrs:
                net = ipaddress.ip_network(cidr, strict=False)
                self._set_for(net).occupy(net)
        except ValueError as e:
            log.warning("nodeipam: node %s has pod CIDRs %s outside the cluster CIDR: %s", name, list(cidrs), e)
            return False
        return True

    def _release(self, name: str) -> None:
        held = self._held.pop(name, None)
        if not held:
            return
        still_held = {c for cidrs in self._held.values() for c in cidrs}
        for cidr in held:
            if cidr in still_held:  # two nodes claimed it (written by someone else): keep it taken
                continue
            net = ipaddress.ip_network(cidr, strict=False)
            self._set_for(net).release(net)

    def _set_for(self, net: Network) -> CidrSet:
        for cidr_set in self.sets:
            if cidr_set.contains(net):
                return cidr_set
        raise ValueError(f"{net} is not inside any cluster CIDR")

    def _wake_waiting(self) -> None:
        """A subnet was freed: nodes still without one may get it now."""
        for node in self._informer().list():
            if not pod_cidrs(node) and not meta.is_being_deleted(node):
                self.queue.add(meta.name(node))
