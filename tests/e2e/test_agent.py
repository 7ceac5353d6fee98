"""Issue 4 end to end: `kubelite server` with its node agent runs real runc containers, driven by the real
kubectl: a Deployment's pods run, `logs`, `exec` and `port-forward` work, a deleted pod's containers go.

The whole node lives in a network namespace the test creates (the CNI bridge, its masquerade rules and every
pod stay inside it); the namespace, containers, mounts and cgroups are removed at the end, also on failure.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import KUBECTL, Cluster
from .nodes import BUSYBOX, NODE_IP, REQUIREMENTS, real_node, wait_for

pytestmark = REQUIREMENTS


@pytest.fixture(scope="module")
def node() -> Iterator[Cluster]:
    with real_node() as cluster:
        yield cluster


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


def test_services_dns_and_ingress(node: Cluster) -> None:
    """A ClusterIP Service reached by name from a pod (cluster DNS + the nftables proxy), a NodePort from the
    node, and an Ingress routing by host name on the node's port 80."""
    script = "mkdir -p /www; echo hello-from-$(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www"
    node.kubectl("apply", "-f", "-", input=_deployment("svcweb", 2, ["sh", "-c", script]))
    node.kubectl("rollout", "status", "deploy/svcweb", "--timeout=90s")
    node.kubectl("expose", "deploy/svcweb", "--name=web", "--port=80", "--target-port=8080")
    svc = node.kubectl_json("get", "svc", "web")
    node.kubectl("create", "service", "nodeport", "web-np", "--tcp=80:8080", "--node-port=30080")
    node.kubectl("patch", "svc", "web-np", "-p", '{"spec":{"selector":{"app":"svcweb"}}}')
    pods = node.kubectl_json("get", "pods", "-l", "app=svcweb")["items"]
    client = pods[0]["metadata"]["name"]
    names = {p["metadata"]["name"] for p in pods}

    def fetch(url: str, *headers: str) -> str:
        got = node.kubectl("exec", client, "--", "wget", "-qO-",
                           *[h for header in headers for h in ("--header", header)], url, check=False)
        return got.stdout.strip()

    def every_backend_answers(url: str) -> bool:
        seen = {fetch(url) for _ in range(12)}
        return {f"hello-from-{n}" for n in names} <= seen

    wait_for(lambda: every_backend_answers(f"http://{svc['spec']['clusterIP']}/"), 30, "the ClusterIP to balance")
    wait_for(lambda: fetch("http://web.default.svc.cluster.local/").startswith("hello-from-"), 30,
             "the Service by its full DNS name")
    assert fetch("http://web/").startswith("hello-from-")  # the short name, through the search path
    lookup = node.kubectl("exec", client, "--", "busybox", "nslookup", "web.default.svc.cluster.local").stdout
    assert svc["spec"]["clusterIP"] in lookup

    def from_node(url: str, *headers: str) -> str:
        got = subprocess.run([*node.wrap, str(BUSYBOX), "wget", "-qO-",
                              *[h for header in headers for h in ("--header", header)], url],
                             capture_output=True, text=True)
        return got.stdout.strip()

    wait_for(lambda: from_node(f"http://{NODE_IP}:30080/").startswith("hello-from-"), 30, "the NodePort")

    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
               "spec": {"rules": [{"host": "web.example.test", "http": {"paths": [
                   {"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    node.kubectl("apply", "-f", "-", input=json.dumps(ingress))
    wait_for(lambda: from_node(f"http://{NODE_IP}/", "Host: web.example.test").startswith("hello-from-"), 30,
             "the Ingress by host name")
    unknown = subprocess.run([*node.wrap, str(BUSYBOX), "wget", "-S", "-qO-", "--header",
                              "Host: nobody.example.test", f"http://{NODE_IP}/"], capture_output=True, text=True)
    assert "404" in unknown.stderr
