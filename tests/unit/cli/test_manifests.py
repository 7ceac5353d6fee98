"""Manifest loading: files, directories, stdin, multi-document YAML, JSON, Lists; ordering and resolving."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from kubelite.cli import manifests
from kubelite.cli.manifests import Document, ManifestError

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
"""
NS = """apiVersion: v1
kind: Namespace
metadata:
  name: shop
"""


def test_multi_document_yaml_skips_empty_documents_and_keeps_positions() -> None:
    docs, errors = manifests.parse("app.yaml", f"---\n{DEPLOY}---\n---\n# only a comment\n---\n{NS}")
    assert errors == []
    assert [(d.index, d.obj["kind"]) for d in docs] == [(1, "Deployment"), (4, "Namespace")]
    assert docs[0].label() == "app.yaml (document 1, Deployment/web)"


def test_json_and_lists_are_expanded() -> None:
    text = '{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", ' \
           '"metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}'
    docs, errors = manifests.parse("list.json", text)
    assert errors == [] and [d.obj["metadata"]["name"] for d in docs] == ["a", "b"]


def test_parse_error_names_file_document_and_line_and_keeps_earlier_documents() -> None:
    docs, errors = manifests.parse("bad.yaml", f"{DEPLOY}---\nkind: [unclosed\n")
    assert [d.obj["kind"] for d in docs] == ["Deployment"]
    assert len(errors) == 1 and errors[0].startswith("bad.yaml (document 2): invalid YAML (line ")


def test_non_object_documents_are_reported() -> None:
    docs, errors = manifests.parse("x.yaml", "- a\n- b\n")
    assert docs == [] and errors == ["x.yaml (document 1): expected an object, got a list"]


def test_directories_in_name_order_recursive_only_with_flag(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(NS)
    (tmp_path / "a.yml").write_text(DEPLOY)
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}')
    docs, errors = manifests.load([str(tmp_path)], False, io.StringIO())
    assert errors == [] and [d.source for d in docs] == [str(tmp_path / "a.yml"), str(tmp_path / "b.yaml")]
    docs, _ = manifests.load([str(tmp_path)], True, io.StringIO())
    assert [Path(d.source).name for d in docs] == ["a.yml", "b.yaml", "c.json"]


def test_stdin_and_missing_paths() -> None:
    docs, errors = manifests.load(["-"], False, io.StringIO(DEPLOY))
    assert errors == [] and docs[0].source == "STDIN"
    docs, errors = manifests.load(["/nonexistent/x.yaml"], False, io.StringIO())
    assert docs == [] and errors == ['the path "/nonexistent/x.yaml" does not exist']


def test_namespaces_first_keeps_file_order_otherwise() -> None:
    docs = [Document("f", i, {"apiVersion": v, "kind": k}) for i, (v, k) in
            enumerate([("apps/v1", "Deployment"), ("v1", "Namespace"), ("v1", "Service"), ("v1", "Namespace")])]
    assert [d.index for d in manifests.namespaces_first(docs)] == [1, 3, 0, 2]


def _doc(obj: dict[str, object]) -> Document:
    return Document("app.yaml", 2, obj)


def test_resolve_fills_the_default_namespace_without_touching_the_document() -> None:
    doc = _doc({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}})
    t = manifests.resolve(doc, "dev", False)
    assert (t.kind.kind, t.name, t.namespace, t.obj["metadata"]["namespace"]) == ("Deployment", "web", "dev", "dev")
    assert "namespace" not in doc.obj["metadata"]


def test_resolve_keeps_the_objects_namespace_and_refuses_a_different_explicit_one() -> None:
    doc = _doc({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}})
    assert manifests.resolve(doc, "default", False).namespace == "shop"
    with pytest.raises(ManifestError, match="does not match the namespace \"dev\""):
        manifests.resolve(doc, "dev", True)


def test_resolve_cluster_scoped_drops_namespace() -> None:
    t = manifests.resolve(_doc({"apiVersion": "v1", "kind": "Namespace",
                                "metadata": {"name": "x", "namespace": "y"}}), "default", False)
    assert t.namespace is None and "namespace" not in t.obj["metadata"]


@pytest.mark.parametrize(("obj", "message"), [
    pytest.param({"metadata": {"name": "x"}}, "error validating data: [apiVersion not set, kind not set]",
                 id="no-type"),
    pytest.param({"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "x"}},
                 'no matches for kind "Widget" in version "v1"', id="unknown-kind"),
    pytest.param({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, "resource name may not be empty",
                 id="no-name"),
])
def test_resolve_errors_name_file_and_document(obj: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestError) as e:
        manifests.resolve(_doc(obj), "default", False)
    assert str(e.value).startswith("app.yaml (document 2, ") and str(e.value).endswith(message)


def test_generate_name_allowed_for_create() -> None:
    doc = _doc({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cm-"}})
    assert manifests.resolve(doc, "default", False, allow_generate_name=True).name == ""
