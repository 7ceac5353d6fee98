from __future__ import annotations

from typing import Any

import pytest

from kubelite.scheduler.plugins.noderesources import NodeResourcesBalancedAllocation, NodeResourcesFit

from .helpers import cache_with, container, node, pod, run_filter, run_score

FIT_CASES = [
    pytest.param(pod("p", cpu="1", memory="1Gi"), {"a", "b", "c"}, {}, id="fits everywhere"),
    pytest.param(pod("p", cpu="3"), {"a", "c"}, {"b": {"Insufficient cpu"}}, id="cpu"),
    pytest.param(pod("p", cpu="3", memory="20Gi"), {"c"},
                 {"a": {"Insufficient memory"}, "b": {"Insufficient cpu", "Insufficient memory"}},
                 id="every reason of a node is kept"),
    pytest.param(pod("p", containers=[container(ephemeral="2Gi")]), {"a"},
                 {"b": {"Insufficient ephemeral-storage"}, "c": {"Insufficient ephemeral-storage"}},
                 id="ephemeral-storage (a node without it has none)"),
    pytest.param(pod("p"), {"a", "b", "c"}, {}, id="no requests: only the pod count matters"),
    pytest.param(pod("p", cpu="1", init_containers=[container("3500m")]), {"a", "c"},
                 {"b": {"Insufficient cpu"}}, id="an init container's peak"),
]


@pytest.mark.parametrize(("p", "passing", "why"), FIT_CASES)
def test_fit(p: dict[str, Any], passing: set[str], why: dict[str, set[str]]) -> None:
    cache = cache_with([node("a", cpu="4", memory="16Gi", ephemeral="10Gi"), node("b", cpu="4", memory="16Gi"),
                        node("c", cpu="8", memory="64Gi")],
                       [pod("x", cpu="2", node_name="b"), pod("y", cpu="500m", memory="8Gi", node_name="b")])
    assert run_filter(NodeResourcesFit(), p, cache.nodes) == (passing, why)


def test_fit_counts_pods() -> None:
    cache = cache_with([node("a", pods="2"), node("b", pods="3")],
                       [pod("x", node_name="a"), pod("y", node_name="a"), pod("z", node_name="b")])
    assert run_filter(NodeResourcesFit(), pod("p", cpu="100m"), cache.nodes) == ({"b"}, {"a": {"Too many pods"}})


def test_assumed_pods_count_so_a_burst_never_overcommits() -> None:
    cache = cache_with([node("a", cpu="1")])
    from dataclasses import replace

    from kubelite.scheduler.nodeinfo import PodInfo
    for i in range(2):
        info = PodInfo.of(pod(f"p{i}", cpu="500m"))
        assert run_filter(NodeResourcesFit(), info.pod, cache.nodes)[0] == {"a"}
        cache.assume_pod(replace(info, pod={**info.pod, "spec": {**info.pod["spec"], "nodeName": "a"}},
                                 node_name="a"))
    assert run_filter(NodeResourcesFit(), pod("p2", cpu="500m"), cache.nodes)[0] == set()


# Scores from Kubernetes' least_allocated_test.go / balanced_allocation_test.go: nodes of 4000m / 10000
# bytes and 6000m / 10000 bytes.
def _scoring_cache(*pods: dict[str, Any]) -> Any:
    return cache_with([node("m1", cpu="4", memory="10000"), node("m2", cpu="6", memory="10000")], pods)


@pytest.mark.parametrize(("p", "existing", "want"), [
    pytest.param(pod("p", containers=[container("0", "0")]), [], [100, 100], id="nothing requested"),
    # cpu (4000-3000)/4000*100=25, mem (10000-5000)/10000*100=50 -> 37; (6000-3000)/6000=50, 50 -> 50
    pytest.param(pod("p", containers=[container("1", "2000"), container("2", "3000")]), [], [37, 50],
                 id="requests"),
    pytest.param(pod("p", containers=[container("1", "2000"), container("2", "3000")]),
                 [pod("e", cpu="3", memory="5000", node_name="m2")], [37, 0], id="a full node scores 0"),
])
def test_least_allocated(p: dict[str, Any], existing: list[dict[str, Any]], want: list[int]) -> None:
    cache = _scoring_cache(*existing)
    assert run_score(NodeResourcesFit(), p, cache.nodes, ["m1", "m2"]) == want


@pytest.mark.parametrize(("p", "existing", "want"), [
    pytest.param(pod("p"), [], None, id="best effort pods are skipped"),
    # fractions 3000/4000=.75 and 5000/10000=.5 -> std .125 -> 87; 3000/6000=.5, .5 -> 100
    pytest.param(pod("p", containers=[container("1", "2000"), container("2", "3000")]), [], [87, 100],
                 id="requests"),
    pytest.param(pod("p", cpu="3", memory="5000"), [pod("e", cpu="6", memory="1000", node_name="m2")], [87, 80],
                 id="fractions capped at 1"),
])
def test_balanced_allocation(p: dict[str, Any], existing: list[dict[str, Any]], want: list[int] | None) -> None:
    cache = _scoring_cache(*existing)
    assert run_score(NodeResourcesBalancedAllocation(), p, cache.nodes, ["m1", "m2"]) == want


def test_memoised_scores_follow_node_changes() -> None:
    cache = _scoring_cache()
    p = pod("p", cpu="1", memory="1000")
    first = run_score(NodeResourcesFit(), p, cache.nodes, ["m1", "m2"])
    cache.add_pod(pod("e", cpu="2", memory="4000", node_name="m1"))
    second = run_score(NodeResourcesFit(), p, cache.nodes, ["m1", "m2"])
    assert first == [82, 86]  # (75 + 90) // 2 ; (83 + 90) // 2
    assert second == [37, 86]  # m1 changed: (25 + 50) // 2; m2 kept
