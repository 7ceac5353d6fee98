from __future__ import annotations

import pytest

from kubelite.scheduler.resources import (
    DEFAULT_MEMORY_REQUEST,
    Resources,
    host_ports,
    node_allocatable,
    pod_requests,
    ports_conflict,
)

from .helpers import container, node, pod

Mi = 1024 * 1024


@pytest.mark.parametrize(("containers", "init", "overhead", "actual", "non_zero"), [
    pytest.param([container("100m", "100Mi")], [], None, (100, 100 * Mi), (100, 100 * Mi), id="one"),
    pytest.param([container("1", "1Gi"), container("500m")], [], None, (1500, 1024 * Mi),
                 (1500, 1024 * Mi + DEFAULT_MEMORY_REQUEST), id="sum, missing memory defaults when scoring"),
    pytest.param([container()], [], None, (0, 0), (100, DEFAULT_MEMORY_REQUEST), id="best effort"),
    # Kubernetes' own example: init 2 CPU/1G and 2 CPU/3G, app 2 CPU/1G + 1 CPU/1G -> 3 CPU, 3G.
    pytest.param([container("2", "1G"), container("1", "1G")], [container("2", "1G"), container("2", "3G")],
                 None, (3000, 3 * 10**9), (3000, 3 * 10**9), id="init containers: max(sum(app), max(init))"),
    pytest.param([container("1", "1Gi")], [container("500m", "100Mi", restart_policy="Always"),
                                           container("2", "10Mi")], None,
                 (2500, 1124 * Mi), (2500, 1124 * Mi), id="a sidecar adds up and runs beside later inits"),
    pytest.param([container("1", "1Gi")], [], {"cpu": "250m", "memory": "120Mi"}, (1250, 1144 * Mi),
                 (1250, 1144 * Mi), id="overhead on top"),
])
def test_pod_requests(containers: list[dict[str, object]], init: list[dict[str, object]],
                      overhead: dict[str, str] | None, actual: tuple[int, int], non_zero: tuple[int, int]) -> None:
    p = pod("p", containers=containers, init_containers=init)
    if overhead:
        p["spec"]["overhead"] = overhead
    r = pod_requests(p)
    assert (r.actual.milli_cpu, r.actual.memory) == actual
    assert (r.non_zero.milli_cpu, r.non_zero.memory) == non_zero


def test_node_allocatable_falls_back_to_capacity() -> None:
    n = node("n", cpu="2", memory="1Gi", pods="10", ephemeral="5Gi")
    assert node_allocatable(n) == Resources(2000, 1024 * Mi, 5 * 1024 * Mi, 10)
    n["status"]["allocatable"] = {"cpu": "1500m"}
    assert node_allocatable(n) == Resources(1500, 1024 * Mi, 5 * 1024 * Mi, 10)


def test_host_ports_and_conflicts() -> None:
    p = pod("p", containers=[container(ports=[{"containerPort": 80, "hostPort": 8080},
                                             {"containerPort": 53, "hostPort": 53, "protocol": "UDP",
                                              "hostIP": "10.0.0.1"},
                                             {"containerPort": 9000}])])
    assert host_ports(p) == [("0.0.0.0", "TCP", 8080), ("10.0.0.1", "UDP", 53)]
    assert ports_conflict(("0.0.0.0", "TCP", 80), ("10.0.0.1", "TCP", 80))
    assert ports_conflict(("10.0.0.1", "TCP", 80), ("10.0.0.1", "TCP", 80))
    assert not ports_conflict(("10.0.0.1", "TCP", 80), ("10.0.0.2", "TCP", 80))
    assert not ports_conflict(("0.0.0.0", "TCP", 80), ("0.0.0.0", "UDP", 80))
