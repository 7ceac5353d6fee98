"""Resource metrics end to end: on a real node (runc, cgroups), a busybox pod burning a core shows in the real
``kubectl top pods`` and ``kubectl top nodes``, and in ``kubelite top``; an idle pod shows as idle."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from .conftest import Cluster
from .nodes import REQUIREMENTS, real_node, wait_for

pytestmark = REQUIREMENTS

ROW = re.compile(r"^(\S+)\s+(\d+)m\s+(\d+)Mi\s*$")


@pytest.fixture(scope="module")
def node() -> Iterator[Cluster]:
    with real_node(prefix="kubelite-top-") as cluster:
        yield cluster


def _pod(name: str, script: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "top"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": name, "image": "busybox:1.36", "imagePullPolicy": "Never",
                                     "command": ["sh", "-c", script]}]}}


def _rows(text: str) -> dict[str, tuple[int, int]]:
    """NAME -> (millicores, MiB) of a `top pods` table."""
    return {m[1]: (int(m[2]), int(m[3])) for line in text.splitlines()[1:] if (m := ROW.match(line))}


def test_top_shows_a_busy_pod(node: Cluster) -> None:
    pods = [_pod("burn", "while :; do :; done"), _pod("idle", "exec sleep 3600")]
    node.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(p) for p in pods))
    node.kubectl("wait", "--for=condition=Ready", "pod/burn", "pod/idle", "--timeout=90s")

    seen: dict[str, tuple[int, int]] = {}

    def both_measured() -> bool:
        nonlocal seen
        out = node.kubectl("top", "pods", "-l", "app=top", check=False)
        seen = _rows(out.stdout) if out.returncode == 0 else {}
        return {"burn", "idle"} <= seen.keys()

    wait_for(both_measured, 30, "both pods in kubectl top pods")
    # A busy loop takes a core (less when the machine is busy with something else); sleep takes nothing.
    assert seen["burn"][0] >= 300, seen
    assert seen["idle"][0] <= 50, seen

    containers = node.kubectl("top", "pods", "burn", "--containers").stdout.splitlines()
    assert containers[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert containers[1].split()[:2] == ["burn", "burn"]

    out = node.kubectl("top", "nodes").stdout.splitlines()
    assert out[0].split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    name, cpu, cpu_pct, memory, memory_pct = out[1].split()
    assert name == "node1" and int(cpu.removesuffix("m")) >= 300 and cpu_pct.endswith("%")
    assert int(memory.removesuffix("Mi")) > 0 and memory_pct.endswith("%")

    mine = node.kubelite("top", "pods", "-l", "app=top")
    assert _rows(mine.stdout).keys() == {"burn", "idle"} and _rows(mine.stdout)["burn"][0] >= 300
    assert node.kubelite("top", "nodes").stdout.splitlines()[1].split()[0] == "node1"
