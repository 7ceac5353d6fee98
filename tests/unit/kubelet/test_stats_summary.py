"""The kubelet's Summary API: node figures from /proc, pods and containers from the runtime's stats, CPU
rates over the sample window, reuse of a recent summary, one measurement for concurrent callers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kubelite.kubelet.stats import host
from kubelite.kubelet.stats.summary import SummaryProvider
from tests.support.stats import BOOT, GIB, FakeStatsSource


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def source(tmp_path: Path) -> FakeStatsSource:
    return FakeStatsSource(tmp_path / "proc")


def provider(source: FakeStatsSource, monotonic: Clock | None = None) -> SummaryProvider:
    return SummaryProvider(source, node_name="node-a", window=0, proc=source.proc, clock=source.clock,
                           monotonic=monotonic or Clock())


def test_host_figures_from_proc(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text("cpu  100 5 20 9999 7 3 2 1 50 0\nbtime 1700000000\n")
    (proc / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 200 kB\nInactive(file): 300 kB\nAnonPages: 400 kB\n"
                                  "HugePages_Total: 0\n")
    tck = os.sysconf("SC_CLK_TCK")
    # user + nice + system + irq + softirq + steal; idle, iowait and guest (already in user) are not busy.
    assert host.cpu_time_ns(proc) == 131 * 1_000_000_000 // tck
    assert host.boot_time(proc) == 1_700_000_000
    assert host.memory(proc) == host.HostMemory(total=1_024_000, usage=819_200, working_set=512_000,
                                                rss=409_600, available=512_000)


async def test_summary_shape_and_rates(source: FakeStatsSource) -> None:
    source.add_pod("web", {"app": (0.25, 10 * 2**20), "sidecar": (0.002, 2**20)}, uid="u1")
    source.add_pod("db", {"pg": (1.5, GIB)}, namespace="data", uid="u2")
    summary = await provider(source).summary()

    node = summary["node"]
    assert node["nodeName"] == "node-a"
    assert node["startTime"] == "2023-11-14T19:26:40Z" and BOOT == 1_699_990_000
    # Two snapshots, one fake second apart: the rates are exact.
    assert node["cpu"]["usageNanoCores"] == 500_000_000
    assert node["cpu"]["time"] == "2023-11-14T22:13:22Z"
    assert node["memory"] == {"time": "2023-11-14T22:13:22Z", "availableBytes": 8 * GIB - (2 * GIB - GIB // 2),
                              "usageBytes": 2 * GIB, "workingSetBytes": 2 * GIB - GIB // 2,
                              "rssBytes": 2 * GIB - GIB // 2}

    assert [(p["podRef"]["namespace"], p["podRef"]["name"]) for p in summary["pods"]] == \
        [("data", "db"), ("default", "web")]
    web = summary["pods"][1]
    assert web["podRef"] == {"name": "web", "namespace": "default", "uid": "u1"}
    assert web["startTime"] == "2023-11-14T22:13:20Z"
    assert web["cpu"]["usageNanoCores"] == 252_000_000
    assert [c["name"] for c in web["containers"]] == ["app", "sidecar"]
    app = web["containers"][0]
    assert app["startTime"] == "2023-11-14T22:13:20Z"
    assert app["cpu"] == {"time": "2023-11-14T22:13:22Z", "usageCoreNanoSeconds": 500_000_000,
                          "usageNanoCores": 250_000_000}
    assert app["memory"] == {"time": "2023-11-14T22:13:22Z", "usageBytes": 10 * 2**20 + 4096,
                             "workingSetBytes": 10 * 2**20, "rssBytes": 5 * 2**20}
    assert web["containers"][1]["cpu"]["usageNanoCores"] == 2_000_000
    assert summary["pods"][0]["containers"][0]["cpu"]["usageNanoCores"] == 1_500_000_000


async def test_a_pod_new_since_the_first_snapshot_has_no_rate_yet(source: FakeStatsSource) -> None:
    source.add_pod("old", {"app": (0.1, 2**20)})
    source.add_pod("new", {"app": (0.1, 2**20)}, visible_from=1)
    pods = {p["podRef"]["name"]: p for p in (await provider(source).summary())["pods"]}
    assert "usageNanoCores" in pods["old"]["containers"][0]["cpu"]
    assert "usageNanoCores" not in pods["new"]["cpu"]
    assert "usageNanoCores" not in pods["new"]["containers"][0]["cpu"]
    assert pods["new"]["containers"][0]["memory"]["workingSetBytes"] == 2**20


async def test_recent_summary_is_reused_and_callers_share_one_measurement(source: FakeStatsSource) -> None:
    source.add_pod("web", {"app": (0.25, 2**20)})
    clock = Clock()
    p = provider(source, clock)
    first, second = await asyncio.gather(p.summary(), p.summary())
    assert first is second
    assert source.calls.count("ListPodSandbox") == 2  # one measurement: two snapshots
    clock.t += 0.5
    assert await p.summary() is first
    clock.t += 1.0
    assert await p.summary() is not first
    assert source.calls.count("ListPodSandbox") == 4


async def test_no_pods(source: FakeStatsSource) -> None:
    summary = await provider(source).summary()
    assert summary["pods"] == []
    assert summary["node"]["cpu"]["usageNanoCores"] == 500_000_000
