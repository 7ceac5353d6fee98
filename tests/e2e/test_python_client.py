"""The official Kubernetes Python client against a real ``kubelite server``: CRUD, patch flavours, watch,
and the strict model parsing the client does on every response."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from .conftest import Cluster

kubernetes = pytest.importorskip("kubernetes", reason="the official kubernetes client is not installed")
from kubernetes import client, config, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


@pytest.fixture(scope="module")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    c = config.new_client_from_config(config_file=cluster.kubeconfig)
    try:
        yield c
    finally:
        c.close()


def _deployment(name: str, replicas: int = 1) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="app", image="busybox:1.36", command=["sleep", "3600"],
                    env=[client.V1EnvVar(name="A", value="1")],
                    resources=client.V1ResourceRequirements(requests={"cpu": "100m", "memory": "32Mi"}))]))))


def test_namespaces_and_configmaps(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    names = [n.metadata.name for n in core.list_namespace().items]
    assert "default" in names and "kube-system" in names
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    cm = core.create_namespaced_config_map("py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"),
                                                                     data={"k": "v"}))
    assert cm.metadata.uid and cm.metadata.resource_version
    assert core.read_namespaced_config_map("c", "py").data == {"k": "v"}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("py", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("missing", "py")
    assert e.value.status == 404
    assert core.list_namespaced_config_map("py", label_selector="nothing=here").items == []


def test_deployment_crud_and_patches(api_client: client.ApiClient) -> None:
    apps = client.AppsV1Api(api_client)
    created = apps.create_namespaced_deployment("default", _deployment("pyapp"))
    assert created.spec.strategy.type == "RollingUpdate"
    listed = apps.list_namespaced_deployment("default", label_selector="app=pyapp")
    assert [d.metadata.name for d in listed.items] == ["pyapp"]
    # A dict body is sent as a strategic merge patch.
    patched = apps.patch_namespaced_deployment("pyapp", "default", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3
    # A list body is sent as a JSON patch.
    image_op = {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "busybox:1.37"}
    patched = apps.patch_namespaced_deployment("pyapp", "default", [image_op])
    assert patched.spec.template.spec.containers[0].image == "busybox:1.37"
    # The deployment controller writes the object too (revision, status): read-modify-replace retries on 409,
    # as every Kubernetes client must.
    for _ in range(10):
        current = apps.read_namespaced_deployment("pyapp", "default")
        current.metadata.labels["replaced"] = "yes"
        try:
            replaced = apps.replace_namespaced_deployment("pyapp", "default", current)
            break
        except ApiException as e:
            if e.status != 409:
                raise
    else:
        raise AssertionError("replace kept conflicting")
    assert replaced.metadata.labels["replaced"] == "yes"
    scale = apps.read_namespaced_deployment_scale("pyapp", "default")
    assert scale.spec.replicas == 3
    apps.patch_namespaced_deployment_scale("pyapp", "default", {"spec": {"replicas": 1}})
    assert apps.read_namespaced_deployment("pyapp", "default").spec.replicas == 1
    apps.delete_namespaced_deployment("pyapp", "default")
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment("pyapp", "default")
    assert e.value.status == 404


def test_invalid_object_is_422_with_causes(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
           "spec": {"containers": [{"name": "c"}]}}
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", pod)
    assert e.value.status == 422
    assert "metadata.name" in e.value.body and "spec.containers[0].image" in e.value.body


def test_watch_stream(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pywatch")))
    core.create_namespaced_config_map("pywatch", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="first")))
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def writer() -> None:
        time.sleep(1.0)
        core.create_namespaced_config_map("pywatch", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="second")))
        core.patch_namespaced_config_map("second", "pywatch", {"data": {"x": "y"}})
        core.delete_namespaced_config_map("second", "pywatch")

    t = threading.Thread(target=writer)
    t.start()
    for event in w.stream(core.list_namespaced_config_map, "pywatch", timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if event["type"] == "DELETED":
            w.stop()
    t.join()
    assert seen[0] == ("ADDED", "first")
    assert seen[1:] == [("ADDED", "second"), ("MODIFIED", "second"), ("DELETED", "second")]


def test_dynamic_client_discovery(api_client: client.ApiClient) -> None:
    from kubernetes.dynamic import DynamicClient

    dyn = DynamicClient(api_client)
    ingresses = dyn.resources.get(api_version="networking.k8s.io/v1", kind="Ingress")
    assert ingresses.namespaced
    leases = dyn.resources.get(api_version="coordination.k8s.io/v1", kind="Lease")
    assert leases.get(namespace="kube-node-lease").items == []
