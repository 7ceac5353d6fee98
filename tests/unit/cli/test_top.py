"""``kubelite top``'s printing: kubectl's columns, rounding, sorting, <unknown> nodes, --sum; Go durations."""

from __future__ import annotations

from typing import Any

from kubelite.cli.tabwriter import TabWriter
from kubelite.cli.top import go_duration, node_lines, pod_lines


def _fmt(text: str) -> str:
    return TabWriter(minwidth=6, padding=3).format(text)


def _pod(ns: str, name: str, *containers: tuple[str, str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns},
            "containers": [{"name": c, "usage": {"cpu": cpu, "memory": mem}} for c, cpu, mem in containers]}


PODS = [_pod("default", "web", ("app", "250000001n", "10240Ki"), ("side", "1m", "1Mi")),
        _pod("kube-system", "dns", ("coredns", "3m", "20Mi"))]


def test_pods() -> None:
    # CPU is rounded up to a millicore (MilliValue), memory down to a MiB.
    assert _fmt(pod_lines(PODS[:1], containers=False, all_namespaces=False, no_headers=False, sort_by="",
                          total=False)) == \
        "NAME   CPU(cores)   MEMORY(bytes)   \nweb    252m         11Mi            \n"


def test_pods_all_namespaces_containers_sorted_by_memory() -> None:
    got = _fmt(pod_lines(PODS, containers=True, all_namespaces=True, no_headers=False, sort_by="memory",
                         total=False))
    assert got.splitlines() == [
        "NAMESPACE     POD   NAME      CPU(cores)   MEMORY(bytes)   ",
        "kube-system   dns   coredns   3m           20Mi            ",
        "default       web   app       251m         10Mi            ",
        "default       web   side      1m           1Mi             ",
    ]


def test_pods_sum() -> None:
    got = _fmt(pod_lines(PODS, containers=False, all_namespaces=False, no_headers=False, sort_by="cpu", total=True))
    assert got.splitlines() == [
        "NAME   CPU(cores)   MEMORY(bytes)   ",
        "web    252m         11Mi            ",
        "dns    3m           20Mi            ",
        "       ________     ________        ",
        "       255m         31Mi            ",
    ]


def test_nodes_with_percentages_and_unknown() -> None:
    items = [{"metadata": {"name": "n2"}, "usage": {"cpu": "1500m", "memory": "1Gi"}},
             {"metadata": {"name": "n1"}, "usage": {"cpu": "250000000n", "memory": "512Mi"}}]
    allocatable = {"n1": {"cpu": "2", "memory": "4Gi"}, "n2": {"cpu": "4", "memory": "8Gi"},
                   "n3": {"cpu": "1", "memory": "1Gi"}}
    got = _fmt(node_lines(items, allocatable, no_headers=False, sort_by=""))
    assert got.splitlines() == [
        "NAME   CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   ",
        "n1     250m         12%         512Mi           12%         ",
        "n2     1500m        37%         1024Mi          12%         ",
        "n3     <unknown>    <unknown>   <unknown>       <unknown>   ",
    ]
    assert _fmt(node_lines(items, {}, no_headers=True, sort_by="cpu")).splitlines() == [
        "n2    1500m   1024Mi   ", "n1    250m    512Mi    "]


def test_go_duration() -> None:
    assert [go_duration(s) for s in (0.5, 45.25, 180, 3723.000000001)] == ["0.5s", "45.25s", "3m0s", "1h2m3.000000001s"]
