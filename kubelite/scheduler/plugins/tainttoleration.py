"""TaintToleration: NoSchedule/NoExecute taints a pod does not tolerate keep it off a node; untolerated
PreferNoSchedule taints lower the node's score (framework/plugins/tainttoleration).

Nodes are grouped by their exact list of taints (`NodeTable.taint_groups`): a pod's tolerations are
checked once per distinct list, not once per node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from kubelite.scheduler import masks
from kubelite.scheduler.framework import (
    SKIP,
    SUCCESS,
    ClusterEvent,
    CycleState,
    MaskVerdict,
    Status,
    default_normalize,
)
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo, Taint

NAME = "TaintToleration"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
_STATE_KEY = "PreScore" + NAME


def untolerated_reason(taint: Taint) -> str:
    return f"node(s) had untolerated taint {{{taint[0]}: {taint[1]}}}"


def tolerates(toleration: Mapping[str, Any], taint: Taint) -> bool:
    """``Toleration.ToleratesTaint``: an empty effect or key matches any; Exists ignores the value."""
    key, value, effect = taint
    t_effect = toleration.get("effect") or ""
    if t_effect and t_effect != effect:
        return False
    t_key = toleration.get("key") or ""
    if t_key and t_key != key:
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == value
    return False


def tolerations_of(pod: PodInfo) -> list[Mapping[str, Any]]:
    return list((pod.pod.get("spec") or {}).get("tolerations") or [])


def first_untolerated(taints: Iterable[Taint], tolerations: Sequence[Mapping[str, Any]],
                      effects: Iterable[str] = (NO_SCHEDULE, NO_EXECUTE)) -> Taint | None:
    wanted = set(effects)
    for taint in taints:
        if taint[2] in wanted and not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def tolerated_mask(nodes: NodeTable, tolerations: Sequence[Mapping[str, Any]]) -> int:
    """Nodes whose NoSchedule/NoExecute taints are all tolerated."""
    out = 0
    for taints, group in nodes.taint_groups.items():
        if first_untolerated(taints, tolerations) is None:
            out |= group
    return out


class TaintToleration:
    name = NAME
    events = frozenset({ClusterEvent.NODE_ADD, ClusterEvent.NODE_TAINT})

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        tolerations = tolerations_of(pod)
        passed = 0
        failing: list[tuple[str, int]] = []
        for taints, group in nodes.taint_groups.items():
            taint = first_untolerated(taints, tolerations)
            if taint is None:
                passed |= group
            else:
                failing.append((untolerated_reason(taint), group))
        return MaskVerdict(passed, lambda: failing)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> Status:
        prefer = [t for t in tolerations_of(pod) if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]
        counted: list[tuple[int, int]] = []
        for taints, group in nodes.taint_groups.items():
            n = sum(1 for taint in taints
                    if taint[2] == PREFER_NO_SCHEDULE and not any(tolerates(t, taint) for t in prefer))
            if n:
                counted.append((n, group))
        if not counted:
            return SKIP  # every node would score the same
        state.write(_STATE_KEY, counted)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        counted: list[tuple[int, int]] = state.read(_STATE_KEY)
        return [sum(n for n, group in counted if masks.has(group, s)) for s in slots]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
