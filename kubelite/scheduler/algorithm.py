"""One scheduling decision, without I/O (kube-scheduler's schedule_one.go: schedulePod,
findNodesThatFitPod, prioritizeNodes, selectHost).

1. PreFilter; a failure rejects the pod on every node.
2. The mask filters judge every node at once; the per-node filters (if any plugin needs them) then walk
   the survivors from ``start`` round-robin. Like kube-scheduler, the walk stops once
   `num_feasible_nodes_to_find` nodes are feasible, and the next pod starts where this one stopped, so
   every node gets its turn.
3. No feasible node: diagnose which filter rejected each node and raise `FitError`.
4. One feasible node: take it. Otherwise score the feasible nodes and take the best, ties broken
   uniformly at random (reservoir sampling, as selectHost).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import islice

from kubelite.scheduler import masks
from kubelite.scheduler.framework import CycleState, Diagnosis, FitError, Framework
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


class NoNodesAvailable(Exception):
    """The cluster has no node at all."""

    def __init__(self) -> None:
        super().__init__("no nodes available to schedule pods")


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    node_name: str
    evaluated_nodes: int
    feasible_nodes: int
    # Where the next pod's walk starts.
    next_start: int


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes are enough: all below 100 nodes; else ``percentage`` of them (0 means
    adaptive: 50% minus 1% per 125 nodes, at least 5%), never fewer than 100."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage == 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


_RNG = random.Random()


def schedule_pod(fwk: Framework, nodes: NodeTable, pod: PodInfo, *, start: int = 0,
                 rng: random.Random = _RNG) -> ScheduleResult:
    """Pick a node for ``pod``; raises `FitError` (nothing fits) or `NoNodesAvailable`."""
    num_all = len(nodes)
    if num_all == 0:
        raise NoNodesAvailable()
    state = CycleState()
    status = fwk.run_pre_filter(state, pod, nodes)
    if not status.success:
        if status.rejected:
            diagnosis = Diagnosis(pre_filter_msg=status.message, unschedulable_plugins={status.plugin})
            fwk.run_post_filter(state, pod, diagnosis)
            raise FitError(pod.pod, num_all, diagnosis)
        raise RuntimeError(f"PreFilter plugin {status.plugin}: {status.message}")

    passed, verdicts = fwk.filter_mask(state, pod, nodes)
    wanted = num_feasible_nodes_to_find(fwk.percentage_of_nodes_to_score, num_all)
    capacity = nodes.capacity
    walk = masks.iter_slots(passed, capacity, start)
    if fwk.node_filters:
        walk = (s for s in walk if fwk.run_node_filters(state, pod, nodes.info(s)).success)
    feasible = list(islice(walk, wanted))

    if not feasible:
        diagnosis = fwk.diagnose(state, pod, nodes, verdicts)
        fwk.run_post_filter(state, pod, diagnosis)
        raise FitError(pod.pod, num_all, diagnosis)

    if len(feasible) < wanted:
        next_start = start % capacity  # every node was looked at
        evaluated = num_all
    else:
        next_start = (feasible[-1] + 1) % capacity
        evaluated = ((feasible[-1] - start) % capacity) + 1

    if len(feasible) == 1:
        return ScheduleResult(nodes.info(feasible[0]).name, evaluated, 1, next_start)
    totals = fwk.run_score(state, pod, nodes, feasible)
    chosen = select_host(feasible, totals, rng)
    return ScheduleResult(nodes.info(chosen).name, evaluated, len(feasible), next_start)


def select_host(slots: list[int], totals: list[int], rng: random.Random) -> int:
    """The slot with the highest total; among equals, each is chosen with equal probability."""
    best = max(totals)
    tied = [s for s, t in zip(slots, totals, strict=True) if t == best]
    if len(tied) == 1:
        return tied[0]
    return tied[rng.randrange(len(tied))]
