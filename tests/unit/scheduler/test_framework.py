from __future__ import annotations

import random
from typing import Any

import pytest

from kubelite.scheduler.algorithm import NoNodesAvailable, num_feasible_nodes_to_find, schedule_pod, select_host
from kubelite.scheduler.config import ConfigError, PluginSpec, build_framework, load_profile, merge_plugin_set
from kubelite.scheduler.framework import Diagnosis, FitError, fit_error_message
from kubelite.scheduler.nodeinfo import PodInfo
from kubelite.scheduler.plugins import Handle

from .helpers import cache_with, node, pod

HANDLE = Handle(lambda ns: {})


@pytest.mark.parametrize(("counts", "pre", "post", "message"), [
    ({"Insufficient cpu": 2, "node(s) had untolerated taint {node.kubernetes.io/unreachable: }": 1}, "", "",
     "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, "
     "2 Insufficient cpu."),
    ({"Insufficient cpu": 10, "Too many pods": 2}, "", "",
     "0/12 nodes are available: 10 Insufficient cpu, 2 Too many pods."),  # sorted as strings, like Go
    ({}, "node(s) didn't match pod affinity rules", "", "0/12 nodes are available: node(s) didn't match pod "
     "affinity rules."),
    ({"Insufficient memory": 12}, "", "preemption: 0/12 nodes are available: 12 Preemption is not helpful.",
     "0/12 nodes are available: 12 Insufficient memory. preemption: 0/12 nodes are available: 12 Preemption is "
     "not helpful."),
])
def test_fit_error_message(counts: dict[str, int], pre: str, post: str, message: str) -> None:
    total = sum(counts.values()) or 12
    assert fit_error_message(total, Diagnosis(dict(counts), set(), pre, post)) == message


def test_a_node_counts_under_the_first_filter_that_rejects_it() -> None:
    fwk = build_framework(load_profile(None), HANDLE)
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    cache = cache_with([node("small", cpu="1"), node("down", cpu="1", taints=[unreachable]),
                        node("busy", cpu="1", pods="1")], [pod("x", node_name="busy")])
    with pytest.raises(FitError) as e:
        schedule_pod(fwk, cache.nodes, PodInfo.of(pod("p", cpu="2")))
    assert str(e.value) == ("0/3 nodes are available: 1 Too many pods, "
                            "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient cpu.")
    assert e.value.diagnosis.unschedulable_plugins == {"TaintToleration", "NodeResourcesFit"}


def test_no_nodes() -> None:
    fwk = build_framework(load_profile(None), HANDLE)
    with pytest.raises(NoNodesAvailable, match="no nodes available to schedule pods"):
        schedule_pod(fwk, cache_with([]).nodes, PodInfo.of(pod("p")))


@pytest.mark.parametrize(("nodes", "percentage", "wanted"), [
    (50, 0, 50), (100, 0, 100), (1000, 0, 420), (5000, 0, 500), (6000, 0, 300), (20000, 0, 1000),
    (1000, 30, 300), (200, 10, 100),
])
def test_num_feasible_nodes_to_find(nodes: int, percentage: int, wanted: int) -> None:
    assert num_feasible_nodes_to_find(percentage, nodes) == wanted


def test_sampling_walks_round_robin() -> None:
    fwk = build_framework(load_profile({"percentageOfNodesToScore": 1}), HANDLE)
    cache = cache_with([node(f"n{i:03}") for i in range(250)])
    first = schedule_pod(fwk, cache.nodes, PodInfo.of(pod("p", cpu="1")), start=0)
    assert first.feasible_nodes == 100 and first.next_start == 100
    second = schedule_pod(fwk, cache.nodes, PodInfo.of(pod("q", cpu="1")), start=first.next_start)
    assert second.next_start == 200
    third = schedule_pod(fwk, cache.nodes, PodInfo.of(pod("r", cpu="1")), start=second.next_start)
    assert third.next_start == 50  # wrapped around


def test_picks_the_least_allocated_node() -> None:
    fwk = build_framework(load_profile(None), HANDLE)
    cache = cache_with([node("a"), node("b"), node("c")], [pod("x", cpu="2", memory="8Gi", node_name="a"),
                                                             pod("y", cpu="1", memory="4Gi", node_name="c")])
    assert schedule_pod(fwk, cache.nodes, PodInfo.of(pod("p", cpu="1", memory="1Gi"))).node_name == "b"


def test_ties_are_broken_at_random() -> None:
    rng = random.Random(1)
    picks = {select_host([1, 2, 3, 4], [5, 9, 9, 1], rng) for _ in range(50)}
    assert picks == {2, 3}


def test_merge_plugin_set_as_kubernetes() -> None:
    defaults = [PluginSpec("A", 1), PluginSpec("B", 2), PluginSpec("C", 3)]
    assert merge_plugin_set(defaults, {"disabled": [{"name": "B"}], "enabled": [{"name": "C", "weight": 7},
                                                                                 {"name": "D", "weight": 1}]}) == (
        PluginSpec("A", 1), PluginSpec("C", 7), PluginSpec("D", 1))
    assert merge_plugin_set(defaults, {"disabled": [{"name": "*"}], "enabled": [{"name": "B"}]}) == (
        PluginSpec("B", 0),)


def test_profile_from_configuration() -> None:
    raw: dict[str, Any] = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
                           "percentageOfNodesToScore": 20,
                           "profiles": [{"schedulerName": "mine", "plugins": {
                               "filter": {"disabled": [{"name": "NodePorts"}]},
                               "score": {"disabled": [{"name": "*"}],
                                         "enabled": [{"name": "NodeResourcesFit", "weight": 4}]}}}]}
    profile = load_profile(raw)
    assert profile.scheduler_name == "mine" and profile.percentage_of_nodes_to_score == 20
    assert "NodePorts" not in [p.name for p in profile.filter]
    assert profile.score == (PluginSpec("NodeResourcesFit", 4),)
    fwk = build_framework(profile, HANDLE)
    assert [w.plugin.name for w in fwk.scores] == ["NodeResourcesFit"]
    with pytest.raises(ConfigError, match="unknown plugin"):
        load_profile({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]})
