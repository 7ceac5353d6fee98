"""The /openapi/v3 index and group-version documents: structure kubectl's openapi3 client relies on."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from kubelite.api.registry import Kind, all_kinds, groups
from kubelite.apiserver.openapi import documents
from kubelite.apiserver.openapi.schemas import REF_PREFIX, schemas

ROOT = Path(__file__).resolve().parents[3]
METHODS = ("get", "put", "post", "patch", "delete")


def _doc(group: str, version: str) -> dict[str, Any]:
    doc = documents.document(documents.index_key(group, version))
    assert doc is not None
    loaded: dict[str, Any] = json.loads(doc.body)
    return loaded


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if "$ref" in node else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _supports_field_validation(doc: dict[str, Any], gvk: dict[str, str]) -> bool:
    """kubectl's queryParamVerifierV3: the first PATCH for the GVK must take a fieldValidation query param."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if op is None or op.get("x-kubernetes-group-version-kind") != gvk:
            continue
        return any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op.get("parameters", []))
    return False


GROUP_VERSIONS = [pytest.param(g, v, id=documents.index_key(g, v)) for g, vs in groups().items() for v in vs]
KINDS = [pytest.param(k, id=f"{k.api_version}/{k.kind}") for k in all_kinds()]


def test_index_lists_every_group_version_with_its_hash() -> None:
    index = json.loads(documents.index())
    expected = {documents.index_key(g, v) for g, vs in groups().items() for v in vs}
    assert set(index["paths"]) == expected
    for key, entry in index["paths"].items():
        doc = documents.document(key)
        assert doc is not None
        assert entry["serverRelativeURL"] == f"/openapi/v3/{key}?hash={doc.hash}"
        assert doc.hash == hashlib.sha512(doc.body).hexdigest().upper()


def test_hashes_are_stable_across_builds() -> None:
    for key, doc in documents.all_documents().items():
        group, version = (key.split("/")[1:] if key.startswith("apis/") else ["", key.split("/")[1]])
        rebuilt = json.dumps(documents.build_document(group, version), separators=(",", ":")).encode()
        assert hashlib.sha512(rebuilt).hexdigest().upper() == doc.hash, key


def test_unknown_group_version_has_no_document() -> None:
    assert documents.document("apis/batch/v1") is None
    assert documents.document("") is None


@pytest.mark.parametrize(("group", "version"), GROUP_VERSIONS)
def test_document_is_structurally_valid(group: str, version: str) -> None:
    doc = _doc(group, version)
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"] == "Kubernetes"
    components = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith(REF_PREFIX)
        assert ref[len(REF_PREFIX):] in components, ref
    for path, item in doc["paths"].items():
        assert path.startswith("/api/v1/" if not group else f"/apis/{group}/{version}/")
        params = item.get("parameters", [])
        for placeholder in ("{name}", "{namespace}"):
            if placeholder in path:
                assert any(p["in"] == "path" and f"{{{p['name']}}}" == placeholder for p in params), path
        ops = {m: op for m, op in item.items() if m in METHODS}
        assert ops, path
        for method, op in ops.items():
            assert op["x-kubernetes-action"] in ("get", "list", "put", "patch", "post", "delete",
                                                 "deletecollection", "connect"), (path, method)
            gvk = op["x-kubernetes-group-version-kind"]
            assert set(gvk) == {"group", "version", "kind"}
            assert op["responses"]["200"]["content"], (path, method)
            if method == "patch":
                assert "application/strategic-merge-patch+json" in op["requestBody"]["content"]
                names = {p["name"] for p in op["parameters"]}
                assert {"fieldValidation", "fieldManager", "dryRun", "force"} <= names
            if method in ("put", "post") and op["x-kubernetes-action"] != "connect":
                assert {"fieldValidation", "fieldManager", "dryRun"} <= {p["name"] for p in op["parameters"]}
    # $ref never has siblings: Kubernetes wraps it in allOf when it carries a description.
    for schema in components.values():
        for prop in schema.get("properties", {}).values():
            assert "$ref" not in prop or set(prop) == {"$ref"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_served_kind_has_schema_gvk_and_strict_patch(kind: Kind) -> None:
    doc = _doc(kind.group, kind.version)
    gvk = {"group": kind.group, "kind": kind.kind, "version": kind.version}
    declaring = [s for s in doc["components"]["schemas"].values()
                 if gvk in s.get("x-kubernetes-group-version-kind", [])]
    assert len(declaring) == 1
    assert {"apiVersion", "kind", "metadata"} <= set(declaring[0]["properties"])
    assert declaring[0]["properties"]["metadata"]["description"].startswith("Standard object's metadata")
    assert _supports_field_validation(doc, gvk)


@pytest.mark.parametrize("kind", KINDS)
def test_paths_follow_scope_verbs_and_subresources(kind: Kind) -> None:
    paths = _doc(kind.group, kind.version)["paths"]
    root = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
    collection = f"{root}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"{root}/{kind.plural}"
    item = f"{collection}/{{name}}"
    assert paths[collection]["get"]["x-kubernetes-action"] == "list"
    assert paths[collection]["post"]["x-kubernetes-action"] == "post"
    assert ("delete" in paths[collection]) == ("deletecollection" in kind.verbs)
    assert {"get", "put", "patch", "delete"} <= set(paths[item])
    if kind.namespaced:
        assert paths[f"{root}/{kind.plural}"]["get"]["operationId"].endswith("ForAllNamespaces")
    for sub in ("status", "scale"):
        assert (f"{item}/{sub}" in paths) == (sub in kind.subresources)
    if "scale" in kind.subresources:
        scale = paths[f"{item}/scale"]["patch"]
        assert scale["x-kubernetes-group-version-kind"] == {"group": "autoscaling", "kind": "Scale",
                                                            "version": "v1"}
        assert scale["operationId"] == f"patch{kind.group.capitalize()}V1Namespaced{kind.kind}Scale"


def test_pod_subresources_and_operation_ids() -> None:
    paths = _doc("", "v1")["paths"]
    pod = "/api/v1/namespaces/{namespace}/pods/{name}"
    assert paths[pod]["get"]["operationId"] == "readCoreV1NamespacedPod"
    assert paths[pod + "/status"]["patch"]["operationId"] == "patchCoreV1NamespacedPodStatus"
    assert paths[pod + "/binding"]["post"]["x-kubernetes-group-version-kind"]["kind"] == "Binding"
    assert paths[pod + "/eviction"]["post"]["x-kubernetes-group-version-kind"] == {
        "group": "policy", "kind": "Eviction", "version": "v1"}
    assert paths[pod + "/log"]["get"]["responses"]["200"]["content"]["text/plain"]
    assert paths[pod + "/exec"]["post"]["x-kubernetes-action"] == "connect"
    assert paths["/api/v1/namespaces/{name}"]["get"]["operationId"] == "readCoreV1Namespace"


def test_schemas_carry_kubernetes_markers() -> None:
    table = schemas()
    spec = table["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["required"] == ["selector", "template"]
    assert spec["properties"]["template"] == {"$ref": REF_PREFIX + "io.k8s.api.core.v1.PodTemplateSpec"}
    assert "Number of desired pods" in spec["properties"]["replicas"]["description"]
    containers = table["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-map-keys"] == ["name"]
    assert containers["items"] == {"$ref": REF_PREFIX + "io.k8s.api.core.v1.Container"}
    volumes = table["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]
    assert volumes["x-kubernetes-patch-strategy"] == "merge,retainKeys"
    ports = table["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-list-map-keys"] == ["port", "protocol"]
    target = table["io.k8s.api.core.v1.ServicePort"]["properties"]["targetPort"]
    assert target["allOf"] == [{"$ref": REF_PREFIX + "io.k8s.apimachinery.pkg.util.intstr.IntOrString"}]
    limits = table["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"$ref": REF_PREFIX + "io.k8s.apimachinery.pkg.api.resource.Quantity"}
    created = table["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["creationTimestamp"]
    assert created["allOf"] == [{"$ref": REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.Time"}]
    renew = table["io.k8s.api.coordination.v1.LeaseSpec"]["properties"]["renewTime"]
    assert renew["allOf"] == [{"$ref": REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime"}]
    assert table["io.k8s.api.core.v1.EndpointPort"] != table["io.k8s.api.discovery.v1.EndpointPort"]
    assert table["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"] == [
        {"group": "autoscaling", "kind": "Scale", "version": "v1"}]
    assert table["io.k8s.api.core.v1.PodList"]["required"] == ["items"]


def test_checked_in_definitions_match_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen_openapi", ROOT / "scripts" / "gen_openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.generate()
    current = (ROOT / "kubelite" / "apiserver" / "openapi" / "definitions.json").read_text()
    assert generated == current, "definitions.json is stale: run .venv/bin/python scripts/gen_openapi.py"
