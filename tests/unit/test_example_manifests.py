"""The example apps of manifests/ (the seed scenarios) keep the promises docs/examples.md makes about them:

- every stand-in folder (manifests/shop, manifests/site) and its real-image twin (``real/``) define the
  same Deployments, Services and Ingresses, so that either replaces the other;
- every server Deployment (one that a Service selects) has a readiness probe on each container, and every
  container states its resource requests; rolling updates never drop below the wanted replicas;
- the stand-ins run kubelite's local busybox image and never pull; the real ones never name it;
- the Ingresses route the documented hosts (shop.example.com with the cert-manager annotation;
  www.example.com with TLS from the Secret ``site-tls``).

They really run in tests/e2e/test_examples.py; these checks need no cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
SCENARIOS = ("shop", "site")
LOCAL_IMAGE = "kubelite.local/busybox:latest"
Obj = dict[str, Any]


def _objects(folder: Path) -> list[Obj]:
    """Every object of the folder's YAML files (not of its sub-folders), as kubectl apply -f reads them."""
    return [doc for path in sorted(folder.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def _folders() -> list[Path]:
    return [MANIFESTS / s / sub for s in SCENARIOS for sub in ("", "real")]


def _of(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def _selects(service: Obj, deployment: Obj) -> bool:
    selector = service["spec"].get("selector") or {}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _containers(deployment: Obj) -> list[Obj]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_stand_ins_and_real_images_define_the_same_objects(scenario: str) -> None:
    def names(folder: Path) -> set[tuple[str, str, str]]:
        return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in _objects(folder)
                if o["kind"] in ("Deployment", "Service", "Ingress", "Namespace")}

    assert names(MANIFESTS / scenario) == names(MANIFESTS / scenario / "real")


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_servers_have_readiness_probes_and_every_container_requests(folder: Path) -> None:
    objects = _objects(folder)
    services = _of(objects, "Service")
    deployments = _of(objects, "Deployment")
    assert deployments
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), (name, container["name"])
        if any(_selects(s, deployment) for s in services):
            for container in _containers(deployment):
                assert container.get("readinessProbe"), f"{name}/{container['name']} has no readiness probe"
            rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
            if deployment["spec"].get("replicas", 1) > 1:
                assert rolling.get("maxUnavailable") == 0, name


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_images(folder: Path) -> None:
    for deployment in _of(_objects(folder), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            if folder.name == "real":
                assert container["image"] != LOCAL_IMAGE
            else:
                assert (container["image"], container["imagePullPolicy"]) == (LOCAL_IMAGE, "Never")


def test_the_database_is_reached_by_its_service_name() -> None:
    stand_in = {o["metadata"]["name"]: o for o in _objects(MANIFESTS / "shop") if o["kind"] == "Deployment"}
    env = {e["name"]: e.get("value") for e in _containers(stand_in["api"])[0]["env"]}
    assert (env["DB_HOST"], env["DB_PORT"]) == ("postgres", "5432")
    real = {o["metadata"]["name"]: o for o in _objects(MANIFESTS / "shop" / "real") if o["kind"] == "Deployment"}
    env = {e["name"]: e.get("value") for e in _containers(real["api"])[0]["env"]}
    assert "@postgres:5432/" in env["DATABASE_URL"]
    for folder in (MANIFESTS / "shop", MANIFESTS / "shop" / "real"):
        [service] = [s for s in _of(_objects(folder), "Service") if s["metadata"]["name"] == "postgres"]
        assert service["spec"]["ports"][0]["port"] == 5432


@pytest.mark.parametrize("folder", _folders(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_ingress_hosts(folder: Path) -> None:
    [ingress] = _of(_objects(folder), "Ingress")
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    if folder.parts[-1] == "shop" or folder.parent.name == "shop":
        assert hosts == ["shop.example.com"]
        assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"]
    else:
        assert hosts == ["www.example.com"]
        assert ingress["spec"]["tls"] == [{"hosts": ["www.example.com"], "secretName": "site-tls"}]
    # The cluster's default IngressClass (kubelite's) takes them.
    assert "ingressClassName" not in ingress["spec"]
