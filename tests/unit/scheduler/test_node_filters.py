"""NodeName, NodeUnschedulable, TaintToleration, NodeAffinity and NodePorts: table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.scheduler.plugins.nodeaffinity import NodeAffinity
from kubelite.scheduler.plugins.nodename import NodeName
from kubelite.scheduler.plugins.nodeports import NodePorts
from kubelite.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from kubelite.scheduler.plugins.tainttoleration import TaintToleration, tolerates

from .helpers import cache_with, container, node, pod, run_filter, run_score

UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
GPU = {"key": "gpu", "value": "true", "effect": "NoSchedule"}
SOFT = {"key": "spot", "value": "yes", "effect": "PreferNoSchedule"}


def test_node_name() -> None:
    cache = cache_with([node("a"), node("b")])
    assert run_filter(NodeName(), pod("p"), cache.nodes) == ({"a", "b"}, {})
    assert run_filter(NodeName(), pod("p", node_name="b"), cache.nodes) == (
        {"b"}, {"a": {"node(s) didn't match the requested node name"}})


@pytest.mark.parametrize(("tolerations", "passing"), [
    pytest.param([], {"a"}, id="cordoned node refused"),
    pytest.param([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}],
                 {"a", "b"}, id="tolerating the unschedulable taint"),
    pytest.param([{"operator": "Exists"}], {"a", "b"}, id="tolerating everything"),
])
def test_node_unschedulable(tolerations: list[dict[str, str]], passing: set[str]) -> None:
    cache = cache_with([node("a"), node("b", unschedulable=True)])
    got, why = run_filter(NodeUnschedulable(), pod("p", tolerations=tolerations), cache.nodes)
    assert got == passing
    assert why == ({} if "b" in passing else {"b": {"node(s) were unschedulable"}})


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}, ("gpu", "true", "NoSchedule"),
     True),
    ({"key": "gpu", "value": "true"}, ("gpu", "true", "NoExecute"), True),
    ({"key": "gpu", "value": "false"}, ("gpu", "true", "NoSchedule"), False),
    ({"key": "gpu", "operator": "Exists"}, ("gpu", "x", "NoSchedule"), True),
    ({"operator": "Exists", "effect": "NoExecute"}, ("gpu", "x", "NoSchedule"), False),
    ({"operator": "Exists"}, ("anything", "", "NoExecute"), True),
    ({"key": "gpu", "operator": "Gt", "value": "1"}, ("gpu", "2", "NoSchedule"), False),
])
def test_tolerates(toleration: dict[str, str], taint: tuple[str, str, str], expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


@pytest.mark.parametrize(("tolerations", "passing", "why"), [
    pytest.param([], {"plain", "soft"}, {"down": {"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"},
                                          "gpu": {"node(s) had untolerated taint {gpu: true}"}}, id="none"),
    pytest.param([{"key": "gpu", "operator": "Equal", "value": "true"}], {"plain", "soft", "gpu"},
                 {"down": {"node(s) had untolerated taint {node.kubernetes.io/unreachable: }"}}, id="gpu"),
    pytest.param([{"operator": "Exists"}], {"plain", "soft", "gpu", "down"}, {}, id="all"),
])
def test_taint_toleration_filter(tolerations: list[dict[str, str]], passing: set[str],
                                 why: dict[str, set[str]]) -> None:
    cache = cache_with([node("plain"), node("soft", taints=[SOFT]), node("gpu", taints=[GPU]),
                        node("down", taints=[UNREACHABLE, GPU])])
    assert run_filter(TaintToleration(), pod("p", tolerations=tolerations), cache.nodes) == (passing, why)


def test_taint_toleration_score_prefers_nodes_without_untolerated_soft_taints() -> None:
    two_soft = [SOFT, {"key": "old", "value": "", "effect": "PreferNoSchedule"}]
    cache = cache_with([node("plain"), node("soft", taints=[SOFT]), node("softer", taints=two_soft)])
    nodes = ["plain", "soft", "softer"]
    assert run_score(TaintToleration(), pod("p"), cache.nodes, nodes) == [100, 50, 0]
    tolerant = pod("p", tolerations=[{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert run_score(TaintToleration(), tolerant, cache.nodes, nodes) == [100, 100, 0]
    assert run_score(TaintToleration(), pod("p"), cache_with([node("x")]).nodes, ["x"]) is None


def _affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}}


def _expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


AFFINITY_CASES = [
    pytest.param({}, {"a", "b", "c", "d"}, id="nothing asked"),
    pytest.param({"nodeSelector": {"zone": "z1"}}, {"a", "b"}, id="nodeSelector"),
    pytest.param({"nodeSelector": {"zone": "z1", "disk": "ssd"}}, {"a"}, id="nodeSelector: every label"),
    pytest.param({"affinity": _affinity(_expr("zone", "In", "z2", "z3"))}, {"c"}, id="In"),
    pytest.param({"affinity": _affinity(_expr("zone", "NotIn", "z1"))}, {"c", "d"}, id="NotIn: missing key passes"),
    pytest.param({"affinity": _affinity(_expr("disk", "Exists"))}, {"a", "c"}, id="Exists"),
    pytest.param({"affinity": _affinity(_expr("disk", "DoesNotExist"))}, {"b", "d"}, id="DoesNotExist"),
    pytest.param({"affinity": _affinity(_expr("cores", "Gt", "4"))}, {"b", "c"}, id="Gt"),
    pytest.param({"affinity": _affinity(_expr("cores", "Lt", "8"))}, {"a"}, id="Lt (non-numbers never match)"),
    pytest.param({"affinity": _affinity(_expr("zone", "In", "z1"), _expr("disk", "In", "hdd"))}, {"a", "b", "c"},
                 id="terms are ORed"),
    pytest.param({"affinity": _affinity({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]},
                                                              {"key": "disk", "operator": "Exists"}]})},
                 {"a"}, id="expressions are ANDed"),
    pytest.param({"affinity": _affinity({"matchFields": [{"key": "metadata.name", "operator": "In",
                                                          "values": ["d"]}]})}, {"d"}, id="matchFields"),
    pytest.param({"affinity": _affinity({})}, set(), id="an empty term matches nothing"),
    pytest.param({"affinity": _affinity(_expr("cores", "Gt", "x"))}, set(), id="an invalid term matches nothing"),
    pytest.param({"nodeSelector": {"zone": "z1"}, "affinity": _affinity(_expr("disk", "DoesNotExist"))}, {"b"},
                 id="nodeSelector AND affinity"),
]


@pytest.mark.parametrize(("spec", "passing"), AFFINITY_CASES)
def test_node_affinity_filter(spec: dict[str, Any], passing: set[str]) -> None:
    cache = cache_with([node("a", labels={"zone": "z1", "disk": "ssd", "cores": "4"}),
                        node("b", labels={"zone": "z1", "cores": "8"}),
                        node("c", labels={"zone": "z2", "disk": "hdd", "cores": "16"}),
                        node("d", labels={"cores": "many"})])
    got, why = run_filter(NodeAffinity(), pod("p", **spec), cache.nodes)
    assert got == passing
    assert why == {n: {"node(s) didn't match Pod's node affinity/selector"} for n in "abcd" if n not in passing}


def test_node_affinity_score() -> None:
    cache = cache_with([node("a", labels={"zone": "z1"}), node("b", labels={"zone": "z2", "disk": "ssd"}),
                        node("c")])
    preferred = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 2, "preference": _expr("zone", "In", "z1")},
        {"weight": 5, "preference": _expr("disk", "Exists")}]}}
    assert run_score(NodeAffinity(), pod("p", affinity=preferred), cache.nodes, ["a", "b", "c"]) == [40, 100, 0]
    assert run_score(NodeAffinity(), pod("p"), cache.nodes, ["a", "b", "c"]) is None


@pytest.mark.parametrize(("ports", "passing"), [
    pytest.param([], {"a", "b", "c"}, id="no host ports"),
    pytest.param([{"containerPort": 80, "hostPort": 8080}], {"c"}, id="wildcard clashes with any IP"),
    pytest.param([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.2"}], {"b", "c"},
                 id="another IP of the same port"),
    pytest.param([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}], {"a", "b", "c"}, id="UDP"),
    pytest.param([{"containerPort": 80, "hostPort": 9090}], {"a", "b", "c"}, id="another port"),
])
def test_node_ports(ports: list[dict[str, Any]], passing: set[str]) -> None:
    cache = cache_with([node("a"), node("b"), node("c")], [
        pod("x", node_name="a", containers=[container(ports=[{"containerPort": 1, "hostPort": 8080}])]),
        pod("y", node_name="b", containers=[container(ports=[{"containerPort": 1, "hostPort": 8080,
                                                             "hostIP": "10.0.0.1"}])])])
    got, why = run_filter(NodePorts(), pod("p", containers=[container(ports=ports)]), cache.nodes)
    assert got == passing
    assert why == {n: {"node(s) didn't have free ports for the requested pod ports"} for n in "abc"
                   if n not in passing}


def test_node_ports_freed_when_the_pod_goes() -> None:
    holder = pod("x", node_name="a", containers=[container(ports=[{"containerPort": 1, "hostPort": 8080}])])
    cache = cache_with([node("a")], [holder])
    want = pod("p", containers=[container(ports=[{"containerPort": 80, "hostPort": 8080}])])
    assert run_filter(NodePorts(), want, cache.nodes)[0] == set()
    cache.remove_pod(holder)
    assert run_filter(NodePorts(), want, cache.nodes)[0] == {"a"}
