"""PodTopologySpread: ``topologySpreadConstraints`` (framework/plugins/podtopologyspread).

DoNotSchedule constraints filter: for a node in domain ``v`` of ``topologyKey``, ``count(v) + selfMatch -
min(count)`` must not exceed ``maxSkew``, where ``count`` is the number of pods in the pod's namespace that
the constraint's selector matches, over the *eligible* nodes (they have every constraint's key, and match
the pod's node affinity when ``nodeAffinityPolicy`` is Honor and tolerate its taints when
``nodeTaintsPolicy`` is Honor); ``min`` is 0 when fewer than ``minDomains`` domains exist. A whole domain
passes or fails at once, so the filter is one label-mask union per failing domain. A node missing a key
fails with "(missing required label)".

ScheduleAnyway constraints score: ``count * log(domains + 2) + maxSkew - 1`` summed over constraints
(hostname domains count the node's own pods), then normalised so the emptiest domain scores 100. System
default constraints (for pods owned by Services / ReplicaSets) are not applied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kubelite.api import meta
from kubelite.api.selectors import EQUALS, LabelSelector, Requirement, label_selector_from_dict
from kubelite.scheduler import masks
from kubelite.scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    SUCCESS,
    ClusterEvent,
    CycleState,
    MaskVerdict,
    Status,
    error,
)
from kubelite.scheduler.nodeinfo import NodeInfo, NodeTable, PodInfo
from kubelite.scheduler.plugins.nodeaffinity import required_mask
from kubelite.scheduler.plugins.tainttoleration import tolerated_mask, tolerations_of

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
MISSING_LABEL_REASON = REASON + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
DO_NOT_SCHEDULE = "DoNotSchedule"
SCHEDULE_ANYWAY = "ScheduleAnyway"
_FILTER_KEY = "PreFilter" + NAME
_SCORE_KEY = "PreScore" + NAME
_CONSTRAINTS_KEY = NAME + "/constraints"


@dataclass(frozen=True, slots=True)
class Constraint:
    max_skew: int
    topology_key: str
    when_unsatisfiable: str
    selector: LabelSelector
    min_domains: int
    honor_node_affinity: bool
    honor_node_taints: bool


def constraints_of(pod: PodInfo) -> tuple[Constraint, ...]:
    """Parse once per pod version; ``matchLabelKeys`` adds ``key=<pod's value>`` to the selector."""
    cached = pod.derived.get(_CONSTRAINTS_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    labels = meta.labels(pod.pod)
    out: list[Constraint] = []
    for raw in (pod.pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        selector = label_selector_from_dict(raw.get("labelSelector"))
        extra = [Requirement(k, EQUALS, (labels[k],)) for k in raw.get("matchLabelKeys") or [] if k in labels]
        if extra and not selector.matches_nothing:
            selector = LabelSelector((*selector.requirements, *extra))
        out.append(Constraint(int(raw.get("maxSkew") or 1), str(raw.get("topologyKey") or ""),
                              str(raw.get("whenUnsatisfiable") or DO_NOT_SCHEDULE), selector,
                              int(raw.get("minDomains") or 1),
                              (raw.get("nodeAffinityPolicy") or "Honor") == "Honor",
                              (raw.get("nodeTaintsPolicy") or "Ignore") == "Honor"))
    result = tuple(out)
    pod.derived[_CONSTRAINTS_KEY] = result
    return result


def _count_matching(info: NodeInfo, selector: LabelSelector, namespace: str) -> int:
    return sum(1 for other in info.pods.values()
               if meta.namespace(other.pod) == namespace and not meta.is_being_deleted(other.pod)
               and selector.matches(meta.labels(other.pod)))


def _eligible(pod: PodInfo, nodes: NodeTable, constraints: Sequence[Constraint]) -> list[int]:
    """Per constraint, the nodes whose pods count: they have every key and pass the inclusion policies."""
    with_keys = nodes.present
    for c in constraints:
        with_keys &= nodes.key_mask(c.topology_key)
    affinity = required_mask(pod, nodes) if any(c.honor_node_affinity for c in constraints) else nodes.present
    taints = tolerated_mask(nodes, tolerations_of(pod)) if any(c.honor_node_taints for c in constraints) \
        else nodes.present
    return [with_keys & (affinity if c.honor_node_affinity else nodes.present)
            & (taints if c.honor_node_taints else nodes.present) for c in constraints]


@dataclass(slots=True)
class _FilterState:
    constraints: tuple[Constraint, ...]
    counts: list[dict[str, int]]  # per constraint: domain value -> matching pods


class PodTopologySpread:
    name = NAME
    events = frozenset({ClusterEvent.ASSIGNED_POD_ADD, ClusterEvent.ASSIGNED_POD_UPDATE,
                        ClusterEvent.ASSIGNED_POD_DELETE, ClusterEvent.NODE_ADD, ClusterEvent.NODE_LABEL,
                        ClusterEvent.NODE_TAINT, ClusterEvent.NODE_DELETE})

    def _parsed(self, pod: PodInfo) -> tuple[Constraint, ...] | Status:
        try:
            return constraints_of(pod)
        except ValueError as e:
            return error(f"parsing topology spread constraints: {e}")

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        parsed = self._parsed(pod)
        if isinstance(parsed, Status):
            return parsed
        hard = tuple(c for c in parsed if c.when_unsatisfiable == DO_NOT_SCHEDULE)
        if not hard:
            return SKIP
        namespace = meta.namespace(pod.pod)
        counts: list[dict[str, int]] = []
        for c, eligible in zip(hard, _eligible(pod, nodes, hard), strict=True):
            by_value: dict[str, int] = {}
            for slot in masks.slots_of(eligible, nodes.capacity):
                info = nodes.info(slot)
                value = info.labels[c.topology_key]
                by_value[value] = by_value.get(value, 0) + _count_matching(info, c.selector, namespace)
            counts.append(by_value)
        state.write(_FILTER_KEY, _FilterState(hard, counts))
        return SUCCESS

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        s: _FilterState = state.read(_FILTER_KEY)
        with_keys = nodes.present
        for c in s.constraints:
            with_keys &= nodes.key_mask(c.topology_key)
        labels = meta.labels(pod.pod)
        skewed = 0
        for c, by_value in zip(s.constraints, s.counts, strict=True):
            low = min(by_value.values(), default=0)
            if len(by_value) < c.min_domains:
                low = 0
            self_match = 1 if c.selector.matches(labels) else 0
            for value, mask in nodes.labels.get(c.topology_key, {}).items():
                if by_value.get(value, 0) + self_match - low > c.max_skew:
                    skewed |= mask

        def explain() -> list[tuple[str, int]]:
            return [(MISSING_LABEL_REASON, ~with_keys), (REASON, with_keys & skewed)]

        return MaskVerdict(with_keys & ~skewed, explain)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> Status:
        parsed = self._parsed(pod)
        if isinstance(parsed, Status):
            return parsed
        soft = tuple(c for c in parsed if c.when_unsatisfiable == SCHEDULE_ANYWAY)
        if not soft:
            return SKIP
        namespace = meta.namespace(pod.pod)
        ignored = {s for s in slots if any(c.topology_key not in nodes.info(s).labels for c in soft)}
        counts: list[dict[str, int]] = []
        weights: list[float] = []
        for c, eligible in zip(soft, _eligible(pod, nodes, soft), strict=True):
            by_value: dict[str, int] = {}
            if c.topology_key != HOSTNAME:
                for s in slots:
                    if s not in ignored:
                        by_value[nodes.info(s).labels[c.topology_key]] = 0
                for slot in masks.slots_of(eligible, nodes.capacity):
                    info = nodes.info(slot)
                    value = info.labels[c.topology_key]
                    if value in by_value:
                        by_value[value] += _count_matching(info, c.selector, namespace)
                size = len(by_value)
            else:
                size = len(slots) - len(ignored)
            counts.append(by_value)
            weights.append(math.log(size + 2))
        state.write(_SCORE_KEY, (soft, counts, weights, ignored))
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        soft, counts, weights, ignored = state.read(_SCORE_KEY)
        namespace = meta.namespace(pod.pod)
        out: list[int] = []
        for s in slots:
            if s in ignored:
                out.append(0)
                continue
            info = nodes.info(s)
            total = 0.0
            for c, by_value, weight in zip(soft, counts, weights, strict=True):
                value = info.labels.get(c.topology_key)
                if value is None:
                    continue
                n = _count_matching(info, c.selector, namespace) if c.topology_key == HOSTNAME \
                    else by_value.get(value, 0)
                total += n * weight + (c.max_skew - 1)
            out.append(math.floor(total + 0.5))  # Go's math.Round: halves away from zero
        state.write(_SCORE_KEY + "/slots", list(slots))
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        _, _, _, ignored = state.read(_SCORE_KEY)
        slots: list[int] = state.read(_SCORE_KEY + "/slots")
        kept = [sc for s, sc in zip(slots, scores, strict=True) if s not in ignored]
        if not kept:
            scores[:] = [0] * len(scores)
            return
        low, high = min(kept), max(kept)
        out: list[int] = []
        for s, sc in zip(slots, scores, strict=True):
            if s in ignored:
                out.append(0)
            elif high == 0:
                out.append(MAX_NODE_SCORE)
            else:
                out.append(MAX_NODE_SCORE * (high + low - sc) // high)
        scores[:] = out


