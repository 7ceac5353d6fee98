"""kubelite's own verbs against a real server process, with the kubeconfig the server wrote."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cluster

APP = str(Path(__file__).parent / "manifests" / "app.yaml")


def test_apply_get_describe_delete(cluster: Cluster) -> None:
    cluster.kubelite("create", "namespace", "shop")
    out = cluster.kubelite("apply", "-f", APP).stdout
    assert "deployment.apps/web created" in out and "service/web created" in out
    assert "deployment.apps/web unchanged" in cluster.kubelite("apply", "-f", APP).stdout
    table = cluster.kubelite("get", "deploy", "-n", "shop").stdout
    assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    got = json.loads(cluster.kubelite("get", "svc", "web", "-n", "shop", "-o", "json").stdout)
    assert got["spec"]["ports"][0]["port"] == 80
    assert "web" in cluster.kubelite("describe", "deploy", "web", "-n", "shop").stdout
    assert "scaled" in cluster.kubelite("scale", "deploy/web", "-n", "shop", "--replicas", "3").stdout
    assert "deleted" in cluster.kubelite("delete", "-f", APP).stdout
    missing = cluster.kubelite("get", "deploy", "web", "-n", "shop", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_version_and_api_resources(cluster: Cluster) -> None:
    assert "Server Version" in cluster.kubelite("version").stdout
    assert "deployments" in cluster.kubelite("api-resources").stdout


def test_bad_manifest_names_file_and_document(cluster: Cluster, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\n"
                   "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\nspec:\n  ports: [{port: 80}]\n")
    out = cluster.kubelite("apply", "-f", str(bad), check=False)
    assert out.returncode != 0
    assert "bad.yaml" in out.stderr and "document 2" in out.stderr
