"""InterPodAffinity: required pod affinity / anti-affinity filter nodes by topology domain; preferred
terms (and other pods' terms about this pod) score them (framework/plugins/interpodaffinity).

PreFilter counts, per topology pair ``(topologyKey, value)``, the existing pods that (a) this pod's affinity
terms all match, (b) each of its anti-affinity terms matches, (c) have a required anti-affinity term that
matches this pod. The filter then turns every counted pair into a node mask through the label index: the
nodes of a domain share the label, so a whole domain is accepted or rejected at once.

Order of the checks on a node (the reason reported is the first that fails): affinity ("didn't match pod
affinity rules"), this pod's anti-affinity, existing pods' anti-affinity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.api.selectors import LabelSelector, label_selector_from_dict
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

NAME = "InterPodAffinity"
AFFINITY_REASON = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY_REASON = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1
_FILTER_KEY = "PreFilter" + NAME
_SCORE_KEY = "PreScore" + NAME
_TERMS_KEY = NAME + "/terms"

Obj = dict[str, Any]
Pair = tuple[str, str]
NamespaceLabels = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class AffinityTerm:
    namespaces: frozenset[str]
    namespace_selector: LabelSelector
    selector: LabelSelector
    topology_key: str

    def matches(self, pod: Obj, namespace_labels: NamespaceLabels) -> bool:
        """``AffinityTerm.Matches``: the pod is in one of the term's namespaces and has matching labels."""
        ns = meta.namespace(pod)
        if ns not in self.namespaces and (self.namespace_selector.matches_nothing
                                          or not self.namespace_selector.matches(namespace_labels(ns))):
            return False
        return self.selector.matches(meta.labels(pod))


@dataclass(frozen=True, slots=True)
class Terms:
    """A pod's parsed terms: required affinity / anti-affinity, and the weighted preferred ones."""

    affinity: tuple[AffinityTerm, ...]
    anti_affinity: tuple[AffinityTerm, ...]
    preferred_affinity: tuple[tuple[int, AffinityTerm], ...]
    preferred_anti_affinity: tuple[tuple[int, AffinityTerm], ...]


def _term(owner: Obj, raw: Mapping[str, Any]) -> AffinityTerm:
    namespaces = [str(n) for n in raw.get("namespaces") or []]
    ns_selector = raw.get("namespaceSelector")
    if not namespaces and ns_selector is None:
        namespaces = [meta.namespace(owner)]
    return AffinityTerm(frozenset(namespaces), label_selector_from_dict(ns_selector),
                        label_selector_from_dict(raw.get("labelSelector")), str(raw.get("topologyKey") or ""))


def terms_of(pod: PodInfo) -> Terms:
    """Parse once per pod version (memoised in ``pod.derived``); raises ValueError on a bad selector."""
    cached = pod.derived.get(_TERMS_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    affinity = (pod.pod.get("spec") or {}).get("affinity") or {}
    pa = affinity.get("podAffinity") or {}
    paa = affinity.get("podAntiAffinity") or {}

    def required(section: Mapping[str, Any]) -> tuple[AffinityTerm, ...]:
        return tuple(_term(pod.pod, t) for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or [])

    def preferred(section: Mapping[str, Any]) -> tuple[tuple[int, AffinityTerm], ...]:
        return tuple((int(w.get("weight") or 0), _term(pod.pod, w.get("podAffinityTerm") or {}))
                     for w in section.get("preferredDuringSchedulingIgnoredDuringExecution") or [])

    terms = Terms(required(pa), required(paa), preferred(pa), preferred(paa))
    pod.derived[_TERMS_KEY] = terms
    return terms


def _matches_all(terms: Iterable[AffinityTerm], pod: Obj, namespace_labels: NamespaceLabels) -> bool:
    return all(t.matches(pod, namespace_labels) for t in terms)


def _domains_mask(nodes: NodeTable, pairs: Iterable[Pair]) -> int:
    out = 0
    for key, value in pairs:
        out |= nodes.label_mask(key, value)
    return out


@dataclass(slots=True)
class _FilterState:
    terms: Terms
    affinity_counts: dict[Pair, int]
    anti_affinity_counts: dict[Pair, int]
    existing_anti_affinity_counts: dict[Pair, int]


def _no_namespace_labels(namespace: str) -> Mapping[str, str]:
    return {}


class InterPodAffinity:
    name = NAME
    events = frozenset({ClusterEvent.ASSIGNED_POD_ADD, ClusterEvent.ASSIGNED_POD_UPDATE,
                        ClusterEvent.ASSIGNED_POD_DELETE, ClusterEvent.NODE_ADD, ClusterEvent.NODE_LABEL,
                        ClusterEvent.NAMESPACE_CHANGE})

    def __init__(self, namespace_labels: NamespaceLabels = _no_namespace_labels) -> None:
        self.namespace_labels = namespace_labels

    # --- filter ------------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        try:
            terms = terms_of(pod)
        except ValueError as e:
            return error(f"parsing pod affinity terms: {e}")
        existing: dict[Pair, int] = {}
        affinity: dict[Pair, int] = {}
        anti: dict[Pair, int] = {}
        ns_labels = self.namespace_labels
        for slot in nodes.anti_affinity_slots:
            info = nodes.info(slot)
            if info.node is None:
                continue
            for other in info.pods_with_required_anti_affinity.values():
                for term in terms_of(other).anti_affinity:
                    value = info.labels.get(term.topology_key)
                    if value is not None and term.matches(pod.pod, ns_labels):
                        pair = (term.topology_key, value)
                        existing[pair] = existing.get(pair, 0) + 1
        if terms.affinity or terms.anti_affinity:
            for info in nodes.nodes():
                for other in info.pods.values():
                    _count_incoming(info, other.pod, terms, affinity, anti, ns_labels)
        if not (terms.affinity or terms.anti_affinity or existing):
            return SKIP
        state.write(_FILTER_KEY, _FilterState(terms, affinity, anti, existing))
        return SUCCESS

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        s: _FilterState = state.read(_FILTER_KEY)
        affinity_ok = nodes.present
        if s.terms.affinity:
            with_keys = nodes.present
            for term in s.terms.affinity:
                with_keys &= nodes.key_mask(term.topology_key)
            pods_exist = with_keys
            for term in s.terms.affinity:
                pods_exist &= _domains_mask(nodes, (p for p, n in s.affinity_counts.items()
                                                    if n > 0 and p[0] == term.topology_key))
            affinity_ok = pods_exist
            # The first pod of a group that has affinity to itself may go to any node with the keys.
            if not s.affinity_counts and _matches_all(s.terms.affinity, pod.pod, self.namespace_labels):
                affinity_ok = with_keys
        anti_bad = _domains_mask(nodes, (p for p, n in s.anti_affinity_counts.items() if n > 0))
        existing_bad = _domains_mask(nodes, (p for p, n in s.existing_anti_affinity_counts.items() if n > 0))

        def explain() -> list[tuple[str, int]]:
            return [(AFFINITY_REASON, ~affinity_ok), (ANTI_AFFINITY_REASON, affinity_ok & anti_bad),
                    (EXISTING_ANTI_AFFINITY_REASON, affinity_ok & ~anti_bad & existing_bad)]

        return MaskVerdict(affinity_ok & ~anti_bad & ~existing_bad, explain)

    # --- score -------------------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> Status:
        try:
            terms = terms_of(pod)
        except ValueError as e:
            return error(f"parsing pod affinity terms: {e}")
        has_preferred = bool(terms.preferred_affinity or terms.preferred_anti_affinity)
        scores: dict[str, dict[str, int]] = {}
        ns_labels = self.namespace_labels
        any_with_affinity = False
        infos = nodes.nodes() if has_preferred else (nodes.info(s) for s in sorted(nodes.affinity_slots))
        for info in infos:
            if info.node is None:
                continue
            candidates = info.pods if has_preferred else info.pods_with_affinity
            if not info.labels or not candidates:
                continue
            for other in candidates.values():
                other_terms = terms_of(other) if other.any_affinity else None
                any_with_affinity |= other_terms is not None
                for weight, term in terms.preferred_affinity:
                    _add(scores, info, term, other.pod, weight, ns_labels)
                for weight, term in terms.preferred_anti_affinity:
                    _add(scores, info, term, other.pod, -weight, ns_labels)
                if other_terms is None:
                    continue
                for term in other_terms.affinity:
                    _add(scores, info, term, pod.pod, HARD_POD_AFFINITY_WEIGHT, ns_labels)
                for weight, term in other_terms.preferred_affinity:
                    _add(scores, info, term, pod.pod, weight, ns_labels)
                for weight, term in other_terms.preferred_anti_affinity:
                    _add(scores, info, term, pod.pod, -weight, ns_labels)
        if not has_preferred and not any_with_affinity:
            return SKIP
        state.write(_SCORE_KEY, scores)
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        scores: dict[str, dict[str, int]] = state.read(_SCORE_KEY)
        out: list[int] = []
        for s in slots:
            labels = nodes.info(s).labels
            out.append(sum(by_value.get(labels[key], 0) for key, by_value in scores.items() if key in labels))
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        if not state.read(_SCORE_KEY) or not scores:
            return
        low, high = min(scores), max(scores)
        spread = high - low
        scores[:] = [int(MAX_NODE_SCORE * ((s - low) / spread)) if spread > 0 else 0 for s in scores]


def _count_incoming(info: NodeInfo, other: Obj, terms: Terms, affinity: dict[Pair, int], anti: dict[Pair, int],
                    ns_labels: NamespaceLabels) -> None:
    """Count ``other`` (on ``info``) for the incoming pod's required affinity and anti-affinity terms."""
    if terms.affinity and _matches_all(terms.affinity, other, ns_labels):
        for term in terms.affinity:
            value = info.labels.get(term.topology_key)
            if value is not None:
                pair = (term.topology_key, value)
                affinity[pair] = affinity.get(pair, 0) + 1
    for term in terms.anti_affinity:
        value = info.labels.get(term.topology_key)
        if value is not None and term.matches(other, ns_labels):
            pair = (term.topology_key, value)
            anti[pair] = anti.get(pair, 0) + 1


def _add(scores: dict[str, dict[str, int]], info: NodeInfo, term: AffinityTerm, pod: Obj, weight: int,
         ns_labels: NamespaceLabels) -> None:
    value = info.labels.get(term.topology_key)
    if value is None or not weight or not term.matches(pod, ns_labels):
        return
    by_value = scores.setdefault(term.topology_key, {})
    by_value[value] = by_value.get(value, 0) + weight
