"""The jsonpath template subset of ``get -o jsonpath=...``."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.cli.jsonpath import JSONPathError, render

PODS: dict[str, Any] = {"kind": "List", "items": [
    {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}},
     "spec": {"containers": [{"image": "nginx"}, {"image": "sidecar"}]},
     "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}],
                "ready": True}},
    {"metadata": {"name": "b", "labels": {}}, "spec": {"containers": [{"image": "redis"}]},
     "status": {"conditions": [{"type": "Ready", "status": "False"}], "ready": False}},
]}


@pytest.mark.parametrize(("template", "expected"), [
    pytest.param("{.items[*].metadata.name}", "a b", id="wildcard"),
    pytest.param("{.items[0].metadata.labels['app.kubernetes.io/name']}", "web", id="quoted-key"),
    pytest.param("{.items[-1].metadata.name}", "b", id="negative-index"),
    pytest.param("{.items[0:1].metadata.name}", "a", id="slice"),
    pytest.param("{..image}", "nginx sidecar redis", id="recursive"),
    pytest.param('{.items[*].status.conditions[?(@.type=="Ready")].status}', "True False", id="filter"),
    pytest.param("{.items[1].status.ready}", "false", id="boolean"),
    pytest.param('{range .items[*]}{.metadata.name}{"\\t"}{.spec.containers[0].image}{"\\n"}{end}',
                 "a\tnginx\nb\tredis\n", id="range"),
    pytest.param("names: {.items[*].metadata.name}!", "names: a b!", id="text"),
    pytest.param("{.items[1].metadata.labels}", "{}", id="map-as-json"),
])
def test_render(template: str, expected: str) -> None:
    assert render(template, PODS) == expected


@pytest.mark.parametrize("template", ["{.items[0].nothing}", "{range .items[*]}{.metadata.name}", "{.items[}"])
def test_errors(template: str) -> None:
    with pytest.raises(JSONPathError):
        render(template, PODS)
