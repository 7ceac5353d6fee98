"""Field sets: the FieldsV1 codec, set algebra and how paths print in conflict messages."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.apiserver.patch.fieldpath import FieldSet, key_element, render_path, value_element

# A real FieldsV1 of `kubectl apply --server-side` on a Deployment.
APPLIED: dict[str, Any] = {
    "f:spec": {
        "f:replicas": {},
        "f:selector": {},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                ".": {}, "f:image": {}, "f:name": {},
                "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}},
        },
    },
}


def test_fields_v1_round_trip() -> None:
    fields = FieldSet.from_fields_v1(APPLIED)
    assert fields.to_fields_v1() == APPLIED
    assert fields.has(("f:spec", "f:replicas"))
    assert fields.has(("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"nginx"}'))
    assert not fields.has(("f:spec",)) and not fields.has(("f:spec", "f:template", "f:spec", "f:containers"))


def test_fields_v1_keys_are_sorted_like_kubernetes() -> None:
    fields = FieldSet.of(("f:b",), ("f:a", 'k:{"name":"z"}'), ("f:a", 'k:{"name":"b"}'), ("f:a", "f:x"),
                         ("f:a",), ("f:f", "v:3"), ("f:f", "v:10"), ("f:f", 'v:"s"'))
    encoded = fields.to_fields_v1()
    assert list(encoded) == ["f:a", "f:b", "f:f"]
    assert list(encoded["f:a"]) == [".", "f:x", 'k:{"name":"b"}', 'k:{"name":"z"}']
    assert list(encoded["f:f"]) == ["v:3", "v:10", 'v:"s"']


def test_stored_keys_are_canonicalised() -> None:
    fields = FieldSet.from_fields_v1({'k:{"protocol": "TCP", "containerPort": 80}': {}})
    assert fields.has(('k:{"containerPort":80,"protocol":"TCP"}',))


def test_paths_iterate_members_first_then_children() -> None:
    fields = FieldSet.of(("f:spec", "f:template", "f:x"), ("f:spec", "f:replicas"), ("f:metadata", "f:labels"))
    assert list(fields.paths()) == [("f:metadata", "f:labels"), ("f:spec", "f:replicas"),
                                    ("f:spec", "f:template", "f:x")]


@pytest.mark.parametrize(("path", "text"), [
    pytest.param(("f:spec", "f:replicas"), ".spec.replicas", id="fields"),
    pytest.param(("f:spec", "f:containers", key_element({"name": "nginx"}), "f:image"),
                 '.spec.containers[name="nginx"].image', id="key"),
    pytest.param(("f:ports", key_element({"protocol": "TCP", "containerPort": 80})),
                 '.ports[containerPort=80,protocol="TCP"]', id="two-keys"),
    pytest.param(("f:metadata", "f:finalizers", value_element("example.com/x")),
                 '.metadata.finalizers[="example.com/x"]', id="set-value"),
    pytest.param(("f:items", "i:3"), ".items[3]", id="index"),
])
def test_render_path(path: tuple[str, ...], text: str) -> None:
    assert render_path(path) == text


def test_algebra() -> None:
    a = FieldSet.of(("f:x", "f:y"), ("f:x",), ("f:z",))
    b = FieldSet.of(("f:x",), ("f:w",))
    assert a.union(b) == FieldSet.of(("f:x", "f:y"), ("f:x",), ("f:z",), ("f:w",))
    assert a.difference(b) == FieldSet.of(("f:x", "f:y"), ("f:z",))  # exact: a parent leaves its children
    assert a.recursive_difference(b) == FieldSet.of(("f:z",))  # ... unless removed recursively
    assert a.intersection(b) == FieldSet.of(("f:x",))
    assert FieldSet.of(("f:x", "f:y", "f:z")).with_fields_as_members() == FieldSet.of(
        ("f:x",), ("f:x", "f:y"), ("f:x", "f:y", "f:z"))
    items = FieldSet.of(("f:list", 'k:{"name":"a"}', "f:v"))
    assert items.with_fields_as_members() == FieldSet.of(("f:list",), ("f:list", 'k:{"name":"a"}', "f:v"))
    assert FieldSet().is_empty() and not a.is_empty()
