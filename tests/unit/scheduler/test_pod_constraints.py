"""InterPodAffinity and PodTopologySpread: table-driven over a 2-zone, 4-node cluster."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.scheduler.plugins.interpodaffinity import InterPodAffinity
from kubelite.scheduler.plugins.podtopologyspread import PodTopologySpread

from .helpers import cache_with, node, pod, run_filter, run_score

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"
AFF = "node(s) didn't match pod affinity rules"
ANTI = "node(s) didn't match pod anti-affinity rules"
EXISTING = "node(s) didn't satisfy existing pods anti-affinity rules"
SPREAD = "node(s) didn't match pod topology spread constraints"
MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"


def _cluster(*pods: dict[str, Any]) -> Any:
    return cache_with([node("a1", labels={ZONE: "a"}), node("a2", labels={ZONE: "a"}),
                       node("b1", labels={ZONE: "b"}), node("b2", labels={ZONE: "b"}), node("bare")], pods)


def _term(key: str, **labels: str) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def _required(kind: str, *terms: dict[str, Any]) -> dict[str, Any]:
    return {kind: {"requiredDuringSchedulingIgnoredDuringExecution": list(terms)}}


INTER_CASES = [
    pytest.param(pod("p"), [], {"a1", "a2", "b1", "b2", "bare"}, {}, id="no terms"),
    pytest.param(pod("p", affinity=_required("podAffinity", _term(ZONE, app="db"))),
                 [pod("db", labels={"app": "db"}, node_name="b2")], {"b1", "b2"},
                 {"a1": {AFF}, "a2": {AFF}, "bare": {AFF}}, id="affinity: the zone of a matching pod"),
    pytest.param(pod("p", labels={"app": "web"}, affinity=_required("podAffinity", _term(ZONE, app="web"))),
                 [], {"a1", "a2", "b1", "b2"}, {"bare": {AFF}},
                 id="affinity to itself, first of its kind: any node with the key"),
    pytest.param(pod("p", affinity=_required("podAffinity", _term(ZONE, app="web"))), [], set(),
                 {n: {AFF} for n in ("a1", "a2", "b1", "b2", "bare")}, id="affinity to nobody"),
    pytest.param(pod("p", affinity=_required("podAntiAffinity", _term(HOST, app="db"))),
                 [pod("db", labels={"app": "db"}, node_name="a1")], {"a2", "b1", "b2", "bare"}, {"a1": {ANTI}},
                 id="anti-affinity by hostname"),
    pytest.param(pod("p", affinity=_required("podAntiAffinity", _term(ZONE, app="db"))),
                 [pod("db", labels={"app": "db"}, node_name="a1")], {"b1", "b2", "bare"},
                 {"a1": {ANTI}, "a2": {ANTI}}, id="anti-affinity by zone; a node without the key passes"),
    pytest.param(pod("p", labels={"app": "web"}),
                 [pod("db", node_name="b1", affinity=_required("podAntiAffinity", _term(ZONE, app="web")))],
                 {"a1", "a2", "bare"}, {"b1": {EXISTING}, "b2": {EXISTING}}, id="existing pods' anti-affinity"),
    pytest.param(pod("p", labels={"app": "web"}, namespace="other"),
                 [pod("db", node_name="b1", affinity=_required("podAntiAffinity", _term(ZONE, app="web")))],
                 {"a1", "a2", "b1", "b2", "bare"}, {}, id="terms apply to their own namespace"),
]


@pytest.mark.parametrize(("p", "existing", "passing", "why"), INTER_CASES)
def test_inter_pod_affinity_filter(p: dict[str, Any], existing: list[dict[str, Any]], passing: set[str],
                                   why: dict[str, set[str]]) -> None:
    assert run_filter(InterPodAffinity(), p, _cluster(*existing).nodes) == (passing, why)


def test_inter_pod_affinity_namespace_selector() -> None:
    term = {**_term(ZONE, app="db"), "namespaceSelector": {"matchLabels": {"team": "x"}}}
    p = pod("p", affinity=_required("podAffinity", term))
    cache = _cluster(pod("db", namespace="prod", labels={"app": "db"}, node_name="a1"))
    labels = {"prod": {"team": "x"}}
    assert run_filter(InterPodAffinity(lambda ns: labels.get(ns, {})), p, cache.nodes)[0] == {"a1", "a2"}
    assert run_filter(InterPodAffinity(), p, cache.nodes)[0] == set()


def test_inter_pod_affinity_score() -> None:
    preferred = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 10, "podAffinityTerm": _term(ZONE, app="db")}]},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": _term(HOST, app="db")}]}}
    cache = _cluster(pod("db", labels={"app": "db"}, node_name="a1"))
    # zone a: +10, host a1: -5 -> a1 5, a2 10, b 0: normalised by (max - min).
    assert run_score(InterPodAffinity(), pod("p", affinity=preferred), cache.nodes, ["a1", "a2", "b1"]) == \
        [50, 100, 0]
    assert run_score(InterPodAffinity(), pod("p"), cache.nodes, ["a1", "a2"]) is None


def test_existing_pods_required_affinity_attracts() -> None:
    cache = _cluster(pod("db", node_name="b1", affinity=_required("podAffinity", _term(ZONE, app="web"))))
    assert run_score(InterPodAffinity(), pod("p", labels={"app": "web"}), cache.nodes, ["a1", "b2"]) == [0, 100]


def _spread(max_skew: int, key: str, when: str = "DoNotSchedule", **extra: Any) -> dict[str, Any]:
    return {"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}, **extra}


def _web(name: str, node_name: str, namespace: str = "default") -> dict[str, Any]:
    return pod(name, labels={"app": "web"}, node_name=node_name, namespace=namespace)


SPREAD_CASES = [
    pytest.param([_spread(1, ZONE)], [_web("w1", "a1")], {"b1", "b2"},
                 {"a1": {SPREAD}, "a2": {SPREAD}, "bare": {MISSING}}, id="zone a is ahead"),
    pytest.param([_spread(2, ZONE)], [_web("w1", "a1")], {"a1", "a2", "b1", "b2"}, {"bare": {MISSING}},
                 id="within maxSkew"),
    pytest.param([_spread(1, HOST)], [_web("w1", "a1"), _web("w2", "a2"), _web("w3", "b1")], {"b2", "bare"},
                 {"a1": {SPREAD}, "a2": {SPREAD}, "b1": {SPREAD}}, id="by hostname: the bare node is a domain too"),
    pytest.param([_spread(1, ZONE)], [_web("w1", "a1", namespace="other")], {"a1", "a2", "b1", "b2"},
                 {"bare": {MISSING}}, id="only pods of the same namespace count"),
    pytest.param([_spread(1, ZONE, minDomains=3)], [_web("w1", "b1")], {"a1", "a2"},
                 {"b1": {SPREAD}, "b2": {SPREAD}, "bare": {MISSING}},
                 id="fewer domains than minDomains: the minimum is 0"),
    pytest.param([_spread(1, ZONE, "ScheduleAnyway")], [_web("w1", "a1")], {"a1", "a2", "b1", "b2", "bare"}, {},
                 id="ScheduleAnyway never filters"),
]


@pytest.mark.parametrize(("constraints", "existing", "passing", "why"), SPREAD_CASES)
def test_topology_spread_filter(constraints: list[dict[str, Any]], existing: list[dict[str, Any]],
                                passing: set[str], why: dict[str, set[str]]) -> None:
    p = pod("p", labels={"app": "web"}, topologySpreadConstraints=constraints)
    assert run_filter(PodTopologySpread(), p, _cluster(*existing).nodes) == (passing, why)


def test_topology_spread_honours_node_affinity() -> None:
    # Zone b is excluded by the pod's nodeSelector, so its pods do not count towards the minimum.
    p = pod("p", labels={"app": "web"}, topologySpreadConstraints=[_spread(1, HOST)],
            nodeSelector={ZONE: "a"})
    cache = _cluster(_web("w1", "a1"))
    assert run_filter(PodTopologySpread(), p, cache.nodes)[0] == {"a2", "b1", "b2", "bare"}


def test_topology_spread_score_prefers_the_emptier_domain() -> None:
    p = pod("p", labels={"app": "web"}, topologySpreadConstraints=[_spread(1, ZONE, "ScheduleAnyway")])
    cache = _cluster(_web("w1", "a1"), _web("w2", "a2"))
    # zone a: 2 matching pods -> 2 * log(2 + 2) = 2.77 -> 3; zone b: 0; the bare node is ignored.
    assert run_score(PodTopologySpread(), p, cache.nodes, ["a1", "b1", "bare"]) == [0, 100, 0]
    assert run_score(PodTopologySpread(), pod("q"), cache.nodes, ["a1"]) is None
