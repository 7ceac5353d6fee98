"""The scheduler's picture of every node, kept so that a whole-cluster filter is a few big-int operations.

`NodeInfo` is one node: its Node object, the pods counted on it (bound, or assumed by this scheduler), the
sums of their requests, the host ports they hold. `NodeTable` owns every NodeInfo by *slot* and keeps, next
to them, the same facts in vectorised form (see `masks`), updated incrementally on every change:

- free cpu / memory / ephemeral-storage / pod count per slot, as `Lanes` (``allocatable - requested``);
- allocatable, requested and non-zero requested per slot, as ``array('q')`` for the scorers;
- node masks: nodes present (a Node object is known), ``spec.unschedulable``, one mask per distinct list of
  taints, one per label ``key=value`` (and per key), one per used host port ``(protocol, port, hostIP)``.

A NodeInfo may exist without its Node (pods name a node the informer has not shown yet, or a node was
deleted while pods still sit on it): such slots are outside ``present`` and never offered to a pod.
Nothing here does I/O; every method runs between two awaits, so readers always see one consistent state.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelite.api import meta
from kubelite.scheduler import masks
from kubelite.scheduler.resources import (
    ZERO,
    HostPort,
    PodRequests,
    Resources,
    host_ports,
    node_allocatable,
    pod_requests,
)

Obj = dict[str, Any]
Taint = tuple[str, str, str]  # (key, value, effect)


@dataclass(slots=True)
class PodInfo:
    """A pod and what the scheduler derives from it once per version of the object: its requests, host
    ports and whether it carries pod (anti-)affinity. ``node_name`` is where it is bound or assumed."""

    pod: Obj
    node_name: str
    requests: PodRequests
    ports: list[HostPort]
    # Has required pod anti-affinity terms (other pods must check them), or any pod (anti-)affinity at all.
    required_anti_affinity: bool
    any_affinity: bool
    # What plugins parse from the pod once (affinity terms, spread constraints), by plugin-chosen key.
    derived: dict[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return meta.uid(self.pod)

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        affinity = (pod.get("spec") or {}).get("affinity") or {}
        anti = (affinity.get("podAntiAffinity") or {})
        return cls(pod, str((pod.get("spec") or {}).get("nodeName") or ""), pod_requests(pod), host_ports(pod),
                   bool(anti.get("requiredDuringSchedulingIgnoredDuringExecution")),
                   bool(affinity.get("podAffinity") or anti))


def node_taints(node: Obj) -> tuple[Taint, ...]:
    return tuple((str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
                 for t in (node.get("spec") or {}).get("taints") or [])


@dataclass(slots=True)
class NodeInfo:
    slot: int
    name: str
    node: Obj | None = None
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    allocatable: Resources = ZERO
    requested: Resources = ZERO
    non_zero_requested: Resources = ZERO
    pods: dict[str, PodInfo] = field(default_factory=dict)
    used_ports: Counter[HostPort] = field(default_factory=Counter)
    # Pods here with any pod (anti-)affinity / with required anti-affinity, by uid (InterPodAffinity).
    pods_with_affinity: dict[str, PodInfo] = field(default_factory=dict)
    pods_with_required_anti_affinity: dict[str, PodInfo] = field(default_factory=dict)


# How many request shapes keep memoised scores, and how long the change log may grow before memos reset.
_MEMO_KEYS = 32
_MEMO_LOG_FACTOR = 4
_MEMO_LOG_MIN = 1024


@dataclass(slots=True)
class _Memo:
    values: list[int]
    seen: int  # how much of the change log has been applied


class NodeTable:
    """Every NodeInfo by slot and by name, with the vectorised aggregates (module docstring)."""

    def __init__(self) -> None:
        self.capacity = 0
        self.infos: list[NodeInfo | None] = []
        self.by_name: dict[str, int] = {}
        self._free_slots: list[int] = []
        self.present = 0
        self.unschedulable = 0
        self.taint_groups: dict[tuple[Taint, ...], int] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self.label_keys: dict[str, int] = {}
        self.ports: dict[tuple[str, int], dict[str, int]] = {}
        # Slots holding pods with any pod (anti-)affinity / with required anti-affinity: what
        # InterPodAffinity must look at for every pod, so it never walks the whole cluster for nothing.
        self.affinity_slots: set[int] = set()
        self.anti_affinity_slots: set[int] = set()
        self.free_cpu = masks.Lanes()
        self.free_memory = masks.Lanes()
        self.free_ephemeral = masks.Lanes()
        self.free_pods = masks.Lanes()
        self.alloc_cpu: array[int] = array("q")
        self.alloc_memory: array[int] = array("q")
        self.alloc_ephemeral: array[int] = array("q")
        self.req_cpu: array[int] = array("q")
        self.req_memory: array[int] = array("q")
        self.req_ephemeral: array[int] = array("q")
        self.nz_cpu: array[int] = array("q")
        self.nz_memory: array[int] = array("q")
        self.pod_count: array[int] = array("q")
        # Bumped on every change: lets callers tell whether anything moved between two looks.
        self.generation = 0
        # Slots changed, in order (see `memo_scores`); trimmed by dropping every memo.
        self._changed: list[int] = []
        self._memos: dict[Hashable, _Memo] = {}

    # --- lookups -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Nodes present (with a Node object)."""
        return self.present.bit_count()

    def get(self, name: str) -> NodeInfo | None:
        slot = self.by_name.get(name)
        return None if slot is None else self.infos[slot]

    def info(self, slot: int) -> NodeInfo:
        info = self.infos[slot]
        if info is None:
            raise KeyError(f"no node in slot {slot}")
        return info

    def nodes(self) -> Iterator[NodeInfo]:
        """Every NodeInfo with a Node object, in slot order."""
        for info in self.infos:
            if info is not None and info.node is not None:
                yield info

    def label_mask(self, key: str, value: str) -> int:
        return self.labels.get(key, {}).get(value, 0)

    def key_mask(self, key: str) -> int:
        return self.label_keys.get(key, 0)

    def name_mask(self, name: str) -> int:
        slot = self.by_name.get(name)
        if slot is None:
            return 0
        return masks.bit(slot) & self.present

    # --- nodes -------------------------------------------------------------------------------------

    def _slot_for(self, name: str) -> NodeInfo:
        slot = self.by_name.get(name)
        if slot is not None:
            info = self.infos[slot]
            assert info is not None
            return info
        if self._free_slots:
            slot = self._free_slots.pop()
        else:
            slot = self.capacity
            self.capacity += 1
            self.infos.append(None)
            for lanes in (self.free_cpu, self.free_memory, self.free_ephemeral, self.free_pods):
                lanes.grow(self.capacity)
            for arr in self._arrays():
                arr.append(0)
        info = NodeInfo(slot, name)
        self.infos[slot] = info
        self.by_name[name] = slot
        return info

    def _arrays(self) -> tuple[array[int], ...]:
        return (self.alloc_cpu, self.alloc_memory, self.alloc_ephemeral, self.req_cpu, self.req_memory,
                self.req_ephemeral, self.nz_cpu, self.nz_memory, self.pod_count)

    def set_node(self, node: Obj) -> NodeInfo:
        """Add or update a Node object."""
        info = self._slot_for(meta.name(node))
        bit = masks.bit(info.slot)
        if info.node is not None:
            self._unindex_node(info)
        info.node = node
        info.labels = meta.labels(node)
        info.taints = node_taints(node)
        info.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        info.allocatable = node_allocatable(node)
        self.present |= bit
        if info.unschedulable:
            self.unschedulable |= bit
        self.taint_groups[info.taints] = self.taint_groups.get(info.taints, 0) | bit
        for key, value in info.labels.items():
            values = self.labels.setdefault(key, {})
            values[value] = values.get(value, 0) | bit
            self.label_keys[key] = self.label_keys.get(key, 0) | bit
        a = info.allocatable
        self.alloc_cpu[info.slot] = a.milli_cpu
        self.alloc_memory[info.slot] = a.memory
        self.alloc_ephemeral[info.slot] = a.ephemeral_storage
        self._refresh_free(info)
        self._touch(info.slot)
        return info

    def remove_node(self, name: str) -> None:
        """Forget the Node object; the slot stays while pods are still counted on it."""
        info = self.get(name)
        if info is None or info.node is None:
            return
        self._unindex_node(info)
        info.node = None
        info.labels = {}
        info.taints = ()
        info.unschedulable = False
        info.allocatable = ZERO
        for arr in (self.alloc_cpu, self.alloc_memory, self.alloc_ephemeral):
            arr[info.slot] = 0
        self._refresh_free(info)
        self._touch(info.slot)
        self._release_if_empty(info)

    def _unindex_node(self, info: NodeInfo) -> None:
        keep = ~masks.bit(info.slot)
        self.present &= keep
        self.unschedulable &= keep
        group = self.taint_groups.get(info.taints, 0) & keep
        if group:
            self.taint_groups[info.taints] = group
        else:
            self.taint_groups.pop(info.taints, None)
        for key, value in info.labels.items():
            values = self.labels[key]
            left = values[value] & keep
            if left:
                values[value] = left
            else:
                del values[value]
            key_left = self.label_keys[key] & keep
            if key_left:
                self.label_keys[key] = key_left
            else:
                del self.label_keys[key]
                del self.labels[key]

    def _release_if_empty(self, info: NodeInfo) -> None:
        if info.node is None and not info.pods:
            self.infos[info.slot] = None
            del self.by_name[info.name]
            self._free_slots.append(info.slot)

    # --- pods --------------------------------------------------------------------------------------

    def add_pod(self, entry: PodInfo) -> None:
        info = self._slot_for(entry.node_name)
        uid = meta.uid(entry.pod)
        if uid in info.pods:
            self._remove_entry(info, info.pods[uid])
        info.pods[uid] = entry
        info.requested = info.requested + entry.requests.actual
        info.non_zero_requested = info.non_zero_requested + entry.requests.non_zero
        for port in entry.ports:
            info.used_ports[port] += 1
            if info.used_ports[port] == 1:
                ips = self.ports.setdefault((port[1], port[2]), {})
                ips[port[0]] = ips.get(port[0], 0) | masks.bit(info.slot)
        if entry.any_affinity:
            info.pods_with_affinity[uid] = entry
            self.affinity_slots.add(info.slot)
        if entry.required_anti_affinity:
            info.pods_with_required_anti_affinity[uid] = entry
            self.anti_affinity_slots.add(info.slot)
        self._refresh_requested(info)

    def remove_pod(self, entry: PodInfo) -> None:
        info = self.get(entry.node_name)
        if info is None:
            return
        counted = info.pods.get(meta.uid(entry.pod))
        if counted is None:
            return
        self._remove_entry(info, counted)
        self._refresh_requested(info)
        self._release_if_empty(info)

    def _remove_entry(self, info: NodeInfo, entry: PodInfo) -> None:
        uid = meta.uid(entry.pod)
        del info.pods[uid]
        info.pods_with_affinity.pop(uid, None)
        info.pods_with_required_anti_affinity.pop(uid, None)
        if not info.pods_with_affinity:
            self.affinity_slots.discard(info.slot)
        if not info.pods_with_required_anti_affinity:
            self.anti_affinity_slots.discard(info.slot)
        a, nz = entry.requests.actual, entry.requests.non_zero
        r, n = info.requested, info.non_zero_requested
        info.requested = Resources(r.milli_cpu - a.milli_cpu, r.memory - a.memory,
                                   r.ephemeral_storage - a.ephemeral_storage)
        info.non_zero_requested = Resources(n.milli_cpu - nz.milli_cpu, n.memory - nz.memory,
                                            n.ephemeral_storage - nz.ephemeral_storage)
        for port in entry.ports:
            info.used_ports[port] -= 1
            if info.used_ports[port] <= 0:
                del info.used_ports[port]
                ips = self.ports[(port[1], port[2])]
                left = ips[port[0]] & ~masks.bit(info.slot)
                if left:
                    ips[port[0]] = left
                else:
                    del ips[port[0]]
                    if not ips:
                        del self.ports[(port[1], port[2])]

    def _refresh_requested(self, info: NodeInfo) -> None:
        s = info.slot
        self.req_cpu[s] = info.requested.milli_cpu
        self.req_memory[s] = info.requested.memory
        self.req_ephemeral[s] = info.requested.ephemeral_storage
        self.nz_cpu[s] = info.non_zero_requested.milli_cpu
        self.nz_memory[s] = info.non_zero_requested.memory
        self.pod_count[s] = len(info.pods)
        self._refresh_free(info)
        self._touch(s)

    def _refresh_free(self, info: NodeInfo) -> None:
        a, r, s = info.allocatable, info.requested, info.slot
        self.free_cpu.set(s, a.milli_cpu - r.milli_cpu)
        self.free_memory.set(s, a.memory - r.memory)
        self.free_ephemeral.set(s, a.ephemeral_storage - r.ephemeral_storage)
        self.free_pods.set(s, a.pods - len(info.pods))

    # --- memoised per-node scores ------------------------------------------------------------------

    def _touch(self, slot: int) -> None:
        self.generation += 1
        if self._memos:
            self._changed.append(slot)
            if len(self._changed) > _MEMO_LOG_FACTOR * self.capacity + _MEMO_LOG_MIN:
                self._memos.clear()
                self._changed.clear()

    def memo_scores(self, key: Hashable, slots: Sequence[int], compute: Callable[[int], int]) -> list[int]:
        """``[compute(s) for s in slots]``, remembering each value until slot ``s`` changes.

        ``key`` must capture everything ``compute`` depends on besides the slot's own state (e.g. the
        pod's requests): a burst of identical pods then scores each node once, plus once per change of
        that node, instead of once per pod."""
        memo = self._memos.get(key)
        if memo is None:
            if len(self._memos) >= _MEMO_KEYS:
                self._memos.pop(next(iter(self._memos)))
            memo = self._memos[key] = _Memo([-1] * self.capacity, len(self._changed))
        values = memo.values
        if len(values) < self.capacity:
            values.extend([-1] * (self.capacity - len(values)))
        for slot in self._changed[memo.seen:]:
            values[slot] = -1
        memo.seen = len(self._changed)
        out = [values[s] for s in slots]
        if -1 in out:
            for i, s in enumerate(slots):
                if out[i] < 0:
                    out[i] = values[s] = compute(s)
        return out

    # --- derived masks -----------------------------------------------------------------------------

    def port_conflicts(self, wanted: HostPort) -> int:
        """The node mask of nodes where ``wanted`` clashes with a port in use (see `ports_conflict`)."""
        ip, protocol, port = wanted
        ips = self.ports.get((protocol, port))
        if not ips:
            return 0
        if ip == "0.0.0.0":
            out = 0
            for mask in ips.values():
                out |= mask
            return out
        return ips.get(ip, 0) | ips.get("0.0.0.0", 0)
