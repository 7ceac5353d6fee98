"""NodeResourcesFit (filter: requests fit what is left; score: LeastAllocated) and
NodeResourcesBalancedAllocation (score: cpu and memory used in equal shares), as
framework/plugins/noderesources does them.

The filter is one `Lanes.at_least` per requested resource over every node at once. A resource the pod does
not request is not checked; the pod count always is ("Too many pods"). Scores use the node's *non-zero*
requests for LeastAllocated and the actual ones for BalancedAllocation, as Kubernetes does; both are
memoised per node and request shape (`NodeTable.memo_scores`), so a burst of alike pods recomputes only
the nodes that changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from kubelite.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    SUCCESS,
    ClusterEvent,
    CycleState,
    MaskVerdict,
    Status,
)
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

FIT = "NodeResourcesFit"
BALANCED = "NodeResourcesBalancedAllocation"

TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"
INSUFFICIENT_EPHEMERAL = "Insufficient ephemeral-storage"

_FIT_EVENTS = frozenset({ClusterEvent.NODE_ADD, ClusterEvent.NODE_ALLOCATABLE, ClusterEvent.ASSIGNED_POD_DELETE,
                         ClusterEvent.ASSIGNED_POD_UPDATE})


class NodeResourcesFit:
    name = FIT
    events = _FIT_EVENTS

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        req = pod.requests.actual
        everything = nodes.present
        pods_ok = nodes.free_pods.at_least(1)
        cpu_ok = nodes.free_cpu.at_least(req.milli_cpu) if req.milli_cpu > 0 else everything
        memory_ok = nodes.free_memory.at_least(req.memory) if req.memory > 0 else everything
        eph_ok = nodes.free_ephemeral.at_least(req.ephemeral_storage) if req.ephemeral_storage > 0 else everything

        def explain() -> list[tuple[str, int]]:
            return [(TOO_MANY_PODS, ~pods_ok), (INSUFFICIENT_CPU, ~cpu_ok), (INSUFFICIENT_MEMORY, ~memory_ok),
                    (INSUFFICIENT_EPHEMERAL, ~eph_ok)]

        return MaskVerdict(pods_ok & cpu_ok & memory_ok & eph_ok, explain)

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        """LeastAllocated over cpu and memory (weight 1 each): ((allocatable - requested) * 100 /
        allocatable) per resource, averaged over the resources the node has."""
        want = pod.requests.non_zero
        pc, pm = want.milli_cpu, want.memory
        ac, am, rc, rm = nodes.alloc_cpu, nodes.alloc_memory, nodes.nz_cpu, nodes.nz_memory

        def one(s: int) -> int:
            a_cpu, a_mem = ac[s], am[s]
            r_cpu, r_mem = rc[s] + pc, rm[s] + pm
            cpu = (a_cpu - r_cpu) * MAX_NODE_SCORE // a_cpu if 0 < a_cpu and r_cpu <= a_cpu else 0
            mem = (a_mem - r_mem) * MAX_NODE_SCORE // a_mem if 0 < a_mem and r_mem <= a_mem else 0
            weights = (a_cpu > 0) + (a_mem > 0)
            return (cpu + mem) // weights if weights else 0

        return nodes.memo_scores((FIT, pc, pm), slots, one)


class NodeResourcesBalancedAllocation:
    name = BALANCED
    events = _FIT_EVENTS

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> Status:
        req = pod.requests.actual
        if req.milli_cpu == 0 and req.memory == 0:
            # Best-effort pods would all pile onto one node: Kubernetes skips them here.
            return SKIP
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        """(1 - std(cpu fraction, memory fraction)) * 100, fractions capped at 1."""
        req = pod.requests.actual
        pc, pm = req.milli_cpu, req.memory
        ac, am, rc, rm = nodes.alloc_cpu, nodes.alloc_memory, nodes.req_cpu, nodes.req_memory

        def one(s: int) -> int:
            a_cpu, a_mem = ac[s], am[s]
            if a_cpu and a_mem:
                f_cpu = min((rc[s] + pc) / a_cpu, 1.0)
                f_mem = min((rm[s] + pm) / a_mem, 1.0)
                std = abs(f_cpu - f_mem) / 2
            else:
                std = 0.0
            return int((1 - std) * MAX_NODE_SCORE)

        return nodes.memo_scores((BALANCED, pc, pm), slots, one)
