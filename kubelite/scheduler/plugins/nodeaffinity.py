"""NodeAffinity: ``spec.nodeSelector`` and required node affinity filter nodes; preferred node affinity
scores them (framework/plugins/nodeaffinity, component-helpers' nodeaffinity).

Every requirement becomes a node mask from the table's label index (``key=value`` → nodes): ``In`` is the
union of its values' masks, ``NotIn`` the complement of that (nodes without the key match), ``Exists`` /
``DoesNotExist`` the key's mask or its complement, ``Gt`` / ``Lt`` the union over the key's values that
compare. Requirements of a term are intersected, terms are united; a term with no requirement matches
nothing, and so does a term with an invalid requirement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
_STATE_KEY = "PreScore" + NAME


class _Invalid(ValueError):
    """A requirement Kubernetes would fail to parse: its term matches no node."""


def _node_affinity(pod: PodInfo) -> Mapping[str, Any]:
    return ((pod.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def requirement_mask(req: Mapping[str, Any], nodes: NodeTable) -> int:
    key = str(req.get("key") or "")
    operator = req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    by_value = nodes.labels.get(key, {})
    if operator == "In":
        if not values:
            raise _Invalid("In needs values")
        out = 0
        for v in values:
            out |= by_value.get(v, 0)
        return out
    if operator == "NotIn":
        if not values:
            raise _Invalid("NotIn needs values")
        out = 0
        for v in values:
            out |= by_value.get(v, 0)
        return nodes.present & ~out
    if operator == "Exists":
        return nodes.key_mask(key)
    if operator == "DoesNotExist":
        return nodes.present & ~nodes.key_mask(key)
    if operator in ("Gt", "Lt"):
        if len(values) != 1:
            raise _Invalid(f"{operator} needs one value")
        try:
            bound = int(values[0])
        except ValueError:
            raise _Invalid(f"{operator} needs an integer") from None
        out = 0
        for v, mask in by_value.items():
            try:
                number = int(v)
            except ValueError:
                continue
            if (number > bound) if operator == "Gt" else (number < bound):
                out |= mask
        return out
    raise _Invalid(f"unknown operator {operator!r}")


def field_mask(req: Mapping[str, Any], nodes: NodeTable) -> int:
    """``matchFields``: only ``metadata.name`` with In / NotIn is supported, as in Kubernetes."""
    if req.get("key") != "metadata.name":
        raise _Invalid("only metadata.name is a supported field")
    names = [str(v) for v in req.get("values") or []]
    out = 0
    for name in names:
        out |= nodes.name_mask(name)
    if req.get("operator") == "In":
        return out
    if req.get("operator") == "NotIn":
        return nodes.present & ~out
    raise _Invalid("matchFields supports In and NotIn")


def term_mask(term: Mapping[str, Any], nodes: NodeTable) -> int:
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return 0
    out = nodes.present
    try:
        for req in expressions:
            out &= requirement_mask(req, nodes)
        for req in fields:
            out &= field_mask(req, nodes)
    except _Invalid:
        return 0
    return out


def required_mask(pod: PodInfo, nodes: NodeTable) -> int:
    """Nodes matching the pod's nodeSelector and required node affinity (every node if it has neither)."""
    spec = pod.pod.get("spec") or {}
    out = nodes.present
    for key, value in (spec.get("nodeSelector") or {}).items():
        out &= nodes.label_mask(str(key), str(value))
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None:
        any_term = 0
        for term in required.get("nodeSelectorTerms") or []:
            any_term |= term_mask(term, nodes)
        out &= any_term
    return out


def has_required(pod: PodInfo) -> bool:
    spec = pod.pod.get("spec") or {}
    return bool(spec.get("nodeSelector")) or \
        _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution") is not None


class NodeAffinity:
    name = NAME
    events = frozenset({ClusterEvent.NODE_ADD, ClusterEvent.NODE_LABEL})

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        return SUCCESS if has_required(pod) else SKIP

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        passed = required_mask(pod, nodes)
        return MaskVerdict(passed, lambda: [(REASON, ~passed)])

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> Status:
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
        weighted = [(int(p.get("weight") or 0), term_mask(p.get("preference") or {}, nodes)) for p in preferred]
        weighted = [(w, m) for w, m in weighted if w and m]
        if not weighted:
            return SKIP
        state.write(_STATE_KEY, weighted)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        weighted: list[tuple[int, int]] = state.read(_STATE_KEY)
        return [sum(w for w, mask in weighted if masks.has(mask, s)) for s in slots]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=False)
