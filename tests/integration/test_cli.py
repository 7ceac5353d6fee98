"""The kubectl-like verbs end to end: ``kubelite.cli.main.main([...])`` against the API server in this process.

The server runs on the test's event loop (aiohttp's TestServer, plain http on loopback, the in-memory
store); each command runs in a worker thread with its own loop, reading a kubeconfig that points at it,
with stdout/stderr captured. ``get -w`` runs as a task on the test's loop and is cancelled at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.cli import get as get_verb
from kubelite.cli import session
from kubelite.cli.main import build_parser, main

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80, name: http}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
"""
CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {tier: backend}
data:
  mode: production
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cluster:
    """An API server in this process plus a way to run ``kubelite`` commands against it."""

    def __init__(self, api: TestClient[web.Request, web.Application], kubeconfig: Path, tmp: Path) -> None:
        self.api = api
        self.kubeconfig = kubeconfig
        self.tmp = tmp

    async def run(self, *argv: str, stdin: str = "") -> Result:
        out, err = io.StringIO(), io.StringIO()

        def call() -> int:
            saved = sys.stdin
            sys.stdin = io.StringIO(stdin)
            try:
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                    return main(list(argv))
            finally:
                sys.stdin = saved

        # sys.stdout is process-wide: commands run one at a time (each test awaits each command).
        code = await asyncio.wait_for(asyncio.to_thread(call), 30)
        return Result(code, out.getvalue(), err.getvalue())

    def write(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    async def get_json(self, path: str) -> tuple[int, Any]:
        r = await self.api.get(path)
        return r.status, await r.json()


@pytest.fixture
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    async with TestClient(TestServer(build_app(MemoryStore()), host="127.0.0.1")) as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": str(api.make_url("")).rstrip("/")}}],
            "users": [{"name": "admin", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        }))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        yield Cluster(api, kubeconfig, tmp_path)


# --- apply -----------------------------------------------------------------------------------------

async def test_apply_creates_namespace_first_then_reports_unchanged_and_configured(cluster: Cluster) -> None:
    path = cluster.write("app.yaml", APP)
    r = await cluster.run("apply", "-f", path)
    assert r.code == 0, r.err
    assert r.out.splitlines() == ["namespace/shop created", "deployment.apps/web created", "service/web created"]
    status, deploy = await cluster.get_json("/apis/apps/v1/namespaces/shop/deployments/web")
    assert status == 200 and any(m["manager"] == "kubelite" for m in deploy["metadata"]["managedFields"])

    r = await cluster.run("apply", "-f", path)
    assert r.code == 0 and r.out.splitlines() == [
        "namespace/shop unchanged", "deployment.apps/web unchanged", "service/web unchanged"]

    r = await cluster.run("apply", "-f", cluster.write("app.yaml", APP.replace("replicas: 2", "replicas: 3")))
    assert r.code == 0 and "deployment.apps/web configured" in r.out.splitlines()
    _, deploy = await cluster.get_json("/apis/apps/v1/namespaces/shop/deployments/web")
    assert deploy["spec"]["replicas"] == 3


async def test_apply_reports_failing_documents_by_file_and_index_and_goes_on(cluster: Cluster) -> None:
    bad = CONFIGMAP + "---\napiVersion: v1\nkind: Widget\nmetadata: {name: w}\n---\n" \
        "apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec: {ports: [{port: 99999}]}\n" \
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\n"
    path = cluster.write("bad.yaml", bad)
    r = await cluster.run("apply", "-f", path)
    assert r.code == 1
    assert r.out.splitlines() == ["configmap/settings created", "configmap/after created"]
    errors = r.err.splitlines()
    assert errors[0] == f'error: {path} (document 2, Widget/w): no matches for kind "Widget" in version "v1"'
    assert errors[1].startswith(f"error: {path} (document 3, Service/broken): ") and "99999" in errors[1]


async def test_apply_default_namespace_stdin_directory_and_namespace_mismatch(cluster: Cluster) -> None:
    r = await cluster.run("apply", "-f", "-", "-n", "kube-public", stdin=CONFIGMAP)
    assert r.code == 0 and r.out == "configmap/settings created\n"
    status, _ = await cluster.get_json("/api/v1/namespaces/kube-public/configmaps/settings")
    assert status == 200

    cluster.write("dir/a.yaml", CONFIGMAP.replace("settings", "a"))
    cluster.write("dir/sub/b.yml", CONFIGMAP.replace("settings", "b"))
    r = await cluster.run("apply", "-f", str(cluster.tmp / "dir"))
    assert r.out == "configmap/a created\n"
    r = await cluster.run("apply", "-R", "-f", str(cluster.tmp / "dir"))
    assert r.out == "configmap/a unchanged\nconfigmap/b created\n"

    r = await cluster.run("apply", "-f", cluster.write("app.yaml", APP), "-n", "default")
    assert r.code == 1 and 'the namespace from the provided object "shop" does not match' in r.err


async def test_apply_dry_run_and_client_side(cluster: Cluster) -> None:
    path = cluster.write("cm.yaml", CONFIGMAP)
    r = await cluster.run("apply", "-f", path, "--dry-run=server")
    assert r.code == 0 and r.out == "configmap/settings created (server dry run)\n"
    status, _ = await cluster.get_json("/api/v1/namespaces/default/configmaps/settings")
    assert status == 404

    r = await cluster.run("apply", "-f", path, "--server-side=false")
    assert r.code == 0 and r.out == "configmap/settings created\n"
    _, cm = await cluster.get_json("/api/v1/namespaces/default/configmaps/settings")
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]
    r = await cluster.run("apply", "-f", path, "--server-side=false")
    assert r.out == "configmap/settings unchanged\n"
    r = await cluster.run("apply", "-f", cluster.write("cm.yaml", CONFIGMAP.replace("labels: {tier: backend}\n", "")),
                          "--server-side=false")
    assert r.out == "configmap/settings configured\n"
    _, cm = await cluster.get_json("/api/v1/namespaces/default/configmaps/settings")
    assert "tier" not in (cm["metadata"].get("labels") or {})


# --- create ----------------------------------------------------------------------------------------

async def test_create_namespace_and_files(cluster: Cluster) -> None:
    r = await cluster.run("create", "namespace", "dev")
    assert r.code == 0 and r.out == "namespace/dev created\n"
    r = await cluster.run("create", "namespace", "dev")
    assert r.code == 1 and r.err == 'Error from server (AlreadyExists): namespaces "dev" already exists\n'

    path = cluster.write("cm.yaml", CONFIGMAP)
    r = await cluster.run("create", "-f", path, "-n", "dev")
    assert r.code == 0 and r.out == "configmap/settings created\n"
    r = await cluster.run("create", "-f", path, "-n", "dev")
    assert r.code == 1
    assert r.err == f'error: {path} (document 1, ConfigMap/settings): configmaps "settings" already exists\n'


# --- get -------------------------------------------------------------------------------------------

async def test_get_tables_like_kubectl(cluster: Cluster) -> None:
    await cluster.run("apply", "-f", cluster.write("app.yaml", APP))
    r = await cluster.run("get", "deploy", "-n", "shop")
    assert r.code == 0
    header, row = r.out.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:2] == ["web", "0/2"]
    assert header.index("READY") == row.index("0/2")

    r = await cluster.run("get", "deployments", "-A", "-o", "wide", "--show-labels")
    header, row = r.out.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"] and "CONTAINERS" in header and header.endswith("LABELS")
    assert row.startswith("shop") and row.endswith("app=web")

    r = await cluster.run("get", "deploy,svc", "-n", "shop")
    lines = r.out.splitlines()
    assert lines[1].startswith("deployment.apps/web") and lines[2] == "" and lines[4].startswith("service/web")
    r = await cluster.run("get", "deploy,svc", "-n", "shop", "--no-headers")
    assert [line.split()[0] for line in r.out.splitlines()] == ["deployment.apps/web", "service/web"]

    r = await cluster.run("get", "all", "-n", "shop", "-o", "name")
    assert r.out.splitlines() == ["service/web", "deployment.apps/web"]


async def test_get_objects_as_yaml_json_and_errors(cluster: Cluster) -> None:
    await cluster.run("apply", "-f", cluster.write("cm.yaml", CONFIGMAP))
    r = await cluster.run("get", "cm", "settings", "-o", "yaml")
    obj = yaml.safe_load(r.out)
    assert obj["kind"] == "ConfigMap" and obj["data"] == {"mode": "production"}
    assert "managedFields" not in obj["metadata"]
    assert r.out.startswith("apiVersion: v1\ndata:\n")

    r = await cluster.run("get", "configmaps", "-l", "tier=backend", "-o", "json")
    listed = json.loads(r.out)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["settings"]
    assert listed["items"][0]["kind"] == "ConfigMap"

    r = await cluster.run("get", "cm", "-o", "jsonpath={.items[*].metadata.name}")
    assert r.code == 0 and r.out == "settings"
    r = await cluster.run("get", "cm", "settings", "-o", "jsonpath={.data.mode}")
    assert r.out == "production"
    r = await cluster.run("get", "cm", "settings", "-o", "jsonpath={.nothing}")
    assert r.code == 1 and "is not found" in r.err

    r = await cluster.run("get", "cm", "settings", "missing")
    assert r.code == 1 and r.out.splitlines()[1].startswith("settings")
    assert r.err == 'Error from server (NotFound): configmaps "missing" not found\n'

    r = await cluster.run("get", "pods")
    assert r.code == 0 and r.out == "" and r.err == "No resources found in default namespace.\n"
    r = await cluster.run("get", "widgets")
    assert r.code == 1 and r.err == 'error: the server doesn\'t have a resource type "widgets"\n'


async def test_get_watch_prints_changes(cluster: Cluster) -> None:
    await cluster.run("apply", "-f", cluster.write("cm.yaml", CONFIGMAP))
    args = build_parser().parse_args(["get", "cm", "-w"])
    out, err = io.StringIO(), io.StringIO()
    task = asyncio.create_task(session.run_async(args, partial(get_verb.get, args), out=out, err=err))
    try:
        await _until(lambda: "settings" in out.getvalue())
        r = await cluster.api.post("/api/v1/namespaces/default/configmaps",
                                   json={"metadata": {"name": "second"}, "data": {}})
        assert r.status == 201
        await _until(lambda: "second" in out.getvalue())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"] and lines[1].startswith("settings")
    assert lines[2].startswith("second") and lines[1].index("1") == lines[2].index("0")


async def _until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


# --- describe --------------------------------------------------------------------------------------

async def test_describe(cluster: Cluster) -> None:
    await cluster.run("apply", "-f", cluster.write("app.yaml", APP))
    await cluster.run("apply", "-f", cluster.write("cm.yaml", CONFIGMAP))
    r = await cluster.run("describe", "deploy", "web", "-n", "shop")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["Name:", "web"] and lines[1].split() == ["Namespace:", "shop"]
    assert any(line.startswith("Selector:") and line.endswith("app=web") for line in lines)
    assert any(line.startswith("Replicas:") and "2 desired" in line for line in lines)
    assert "Pod Template:" in lines and any("nginx:1.25" in line for line in lines)
    assert lines[-1].split() == ["Events:", "<none>"]

    r = await cluster.run("describe", "svc/web", "-n", "shop")
    assert any(line.split()[:2] == ["Type:", "ClusterIP"] for line in r.out.splitlines())

    r = await cluster.run("describe", "configmap", "sett")  # kubectl's prefix match
    assert r.code == 0 and "\nData\n====\nmode:\n----\nproduction\n\n" in r.out

    await cluster.run("apply", "-f", "-", stdin="apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: robot}\n")
    r = await cluster.run("describe", "sa", "robot")  # no describer of its own: kubectl's generic one
    lines = r.out.splitlines()
    assert lines[0].split() == ["Name:", "robot"] and "API Version:        v1" in lines
    assert "Kind:               ServiceAccount" in lines and "Metadata:" in lines

    r = await cluster.run("describe", "ns", "shop")
    assert "Status:" in r.out and "Active" in r.out

    r = await cluster.run("describe", "cm", "nothing")
    assert r.code == 1 and "NotFound" in r.err


# --- delete ----------------------------------------------------------------------------------------

async def test_delete_by_name_selector_and_file(cluster: Cluster) -> None:
    path = cluster.write("app.yaml", APP)
    await cluster.run("apply", "-f", path)
    for name in ("a", "b", "c"):
        await cluster.run("apply", "-f", "-", stdin=CONFIGMAP.replace("settings", name))

    r = await cluster.run("delete", "cm", "a")
    assert r.code == 0 and r.out == 'configmap "a" deleted from default namespace\n'
    status, _ = await cluster.get_json("/api/v1/namespaces/default/configmaps/a")
    assert status == 404
    r = await cluster.run("delete", "cm", "a")
    assert r.code == 1 and r.err == 'Error from server (NotFound): configmaps "a" not found\n'

    r = await cluster.run("delete", "cm", "-l", "tier=backend")
    assert r.code == 0 and sorted(r.out.splitlines()) == [
        'configmap "b" deleted from default namespace', 'configmap "c" deleted from default namespace']

    # No controllers run here: a namespace is never finalized, so do not wait for it.
    r = await cluster.run("delete", "-f", path, "--wait=false")
    assert r.code == 0, r.err
    assert r.out.splitlines() == ['deployment.apps "web" deleted from shop namespace',
                                  'service "web" deleted from shop namespace', 'namespace "shop" deleted']
    status, _ = await cluster.get_json("/apis/apps/v1/namespaces/shop/deployments/web")
    assert status == 404

    r = await cluster.run("delete", "cm")
    assert r.code == 1 and r.err == "error: resource(s) were provided, but no name was specified\n"


async def test_delete_waits_for_finalizers_until_timeout(cluster: Cluster) -> None:
    cm = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {}}
    assert (await cluster.api.post("/api/v1/namespaces/default/configmaps", json=cm)).status == 201
    r = await cluster.run("delete", "cm", "held", "--timeout=1s")
    assert r.code == 1 and r.out == 'configmap "held" deleted from default namespace\n'
    assert r.err == 'error: timed out waiting for the condition on configmap "held"\n'

    async def release() -> None:
        await asyncio.sleep(0.3)
        r = await cluster.api.patch("/api/v1/namespaces/default/configmaps/held",
                                    json={"metadata": {"finalizers": None}},
                                    headers={"Content-Type": "application/merge-patch+json"})
        assert r.status == 200, await r.text()

    releasing = asyncio.create_task(release())
    r = await cluster.run("delete", "cm", "held", "--ignore-not-found")
    await releasing
    assert r.code == 0, r.err
    status, _ = await cluster.get_json("/api/v1/namespaces/default/configmaps/held")
    assert status == 404


# --- scale, label, annotate ------------------------------------------------------------------------

async def test_scale_label_annotate(cluster: Cluster) -> None:
    await cluster.run("apply", "-f", cluster.write("app.yaml", APP))
    r = await cluster.run("scale", "deployment/web", "--replicas", "5", "-n", "shop")
    assert r.code == 0 and r.out == "deployment.apps/web scaled\n"
    _, deploy = await cluster.get_json("/apis/apps/v1/namespaces/shop/deployments/web")
    assert deploy["spec"]["replicas"] == 5

    r = await cluster.run("label", "svc", "web", "env=prod", "-n", "shop")
    assert r.code == 0 and r.out == "service/web labeled\n"
    r = await cluster.run("label", "svc", "web", "env=dev", "-n", "shop")
    assert r.code == 1 and "'env' already has a value (prod), and --overwrite is false" in r.err
    r = await cluster.run("label", "svc/web", "env-", "-n", "shop")
    assert r.out == "service/web unlabeled\n"
    r = await cluster.run("annotate", "deploy", "web", "owner=team-a", "-n", "shop")
    assert r.out == "deployment.apps/web annotated\n"
    _, deploy = await cluster.get_json("/apis/apps/v1/namespaces/shop/deployments/web")
    assert deploy["metadata"]["annotations"]["owner"] == "team-a"


# --- version, api-resources ------------------------------------------------------------------------

async def test_version_and_api_resources(cluster: Cluster) -> None:
    r = await cluster.run("version")
    assert r.code == 0 and r.out.startswith("Client Version: v") and "Server Version: v1.37" in r.out
    r = await cluster.run("version", "-o", "json")
    versions = json.loads(r.out)
    assert set(versions) == {"clientVersion", "serverVersion"} and versions["serverVersion"]["major"] == "1"

    r = await cluster.run("api-resources")
    lines = r.out.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert ["deployments", "deploy", "apps/v1", "true", "Deployment"] in [line.split() for line in lines]
    assert not any("/" in line.split()[0] for line in lines[1:])  # no subresources
    r = await cluster.run("api-resources", "--namespaced=false", "-o", "name")
    assert "namespaces" in r.out.splitlines() and "pods" not in r.out.splitlines()


async def test_missing_kubeconfig_and_unreachable_server(cluster: Cluster, tmp_path: Path) -> None:
    r = await cluster.run("get", "pods", "--kubeconfig", str(tmp_path / "nope"))
    assert r.code == 1 and r.err.startswith("error: kubeconfig ") and "does not exist" in r.err
    cluster.kubeconfig.write_text(cluster.kubeconfig.read_text().replace(
        str(cluster.api.make_url("")).rstrip("/"), "http://127.0.0.1:1"))
    r = await cluster.run("get", "pods")
    assert r.code == 1 and r.err.startswith("Unable to connect to the server")
