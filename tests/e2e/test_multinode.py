"""Two hosts: the API server in one network namespace, a node joined with `kubelite agent --server --token`
in another, linked by a veth pair. The node registers, runs a real runc pod, and the API server reaches its
kubelet over the link for `kubectl logs` and `exec`. Everything is removed at the end, also on failure."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cluster, start_server, stop_server
from .nodes import IMAGE, REQUIREMENTS, cleanup_node, import_busybox, node_ready, sandbox_records, wait_for

pytestmark = REQUIREMENTS

SERVER_IP = "192.168.240.1"
WORKER_IP = "192.168.240.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[str, str]]:
    suffix = secrets.token_hex(3)
    server, worker = f"klsrv-{suffix}", f"klwrk-{suffix}"
    try:
        for ns in (server, worker):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", server, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", worker)
        for ns, ip in ((server, SERVER_IP), (worker, WORKER_IP)):
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "dev", "eth0")
        yield server, worker
    finally:
        for ns in (server, worker):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-multinode-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        worker_data = tmp / "worker"
        stack.callback(cleanup_node, worker_data)
        server_ns, worker_ns = stack.enter_context(two_hosts())
        (tmp / "server").mkdir()
        server = start_server(tmp / "server", "--bind-address", "0.0.0.0",
                             wrap=("nsenter", f"--net=/run/netns/{server_ns}"))
        stack.callback(stop_server, server)
        import_busybox(tmp, worker_data)
        token = (Path(server.data_dir) / "node-token").read_text().strip()
        port = server.url.rsplit(":", 1)[1]
        log = stack.enter_context(open(tmp / "agent.log", "wb"))
        agent = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{worker_ns}", sys.executable, "-m", "kubelite.cli.main", "agent",
             "--server", f"https://{SERVER_IP}:{port}", "--token", token, "--data-dir", str(worker_data),
             "--node-name", "worker", "--disable", "ingress"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        stack.callback(_stop_agent, agent, server, worker_data)
        wait_for(lambda: node_ready(server, "worker") or agent.poll() is not None, 60, "the worker Ready")
        assert agent.poll() is None, (tmp / "agent.log").read_text()[-3000:]
        yield server


def _stop_agent(agent: subprocess.Popen[bytes], server: Cluster, data_dir: Path) -> None:
    server.kubectl("delete", "pods", "--all", "--grace-period=1", "--timeout=60s", check=False)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not sandbox_records(data_dir), 20, "the worker's sandboxes removed")
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(15)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()


def test_a_joined_node_runs_pods_the_server_reaches(cluster: Cluster) -> None:
    node = cluster.kubectl_json("get", "node", "worker")
    assert {"type": "InternalIP", "address": WORKER_IP} in node["status"]["addresses"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "remote"},
           "spec": {"nodeName": "worker", "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": IMAGE, "imagePullPolicy": "Never",
                                    "command": ["sh", "-c", "echo up on $(hostname); exec sleep 3600"]}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/remote", "--timeout=60s")
    assert "up on remote" in cluster.kubectl("logs", "remote").stdout
    assert cluster.kubectl("exec", "remote", "--", "cat", "/etc/hostname").stdout.strip() == "remote"
    # A wrong token is refused before anything is trusted.
    bad = subprocess.run([sys.executable, "-m", "kubelite.cli.main", "agent", "--server", "https://127.0.0.1:1",
                          "--token", "K10" + "0" * 64 + "::nope", "--data-dir", "/nonexistent"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "cannot reach" in bad.stderr
