"""Description text building blocks."""

from __future__ import annotations

from datetime import UTC, datetime

from kubelite.cli import describing
from kubelite.cli.describing import Writer


def test_header_aligns_and_lists_labels_one_per_line() -> None:
    w = Writer()
    describing.header(w, {"metadata": {"name": "web", "namespace": "shop", "labels": {"b": "2", "a": "1"},
                                       "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                                       "creationTimestamp": "2024-01-02T03:04:05Z"}}, namespaced=True)
    lines = w.text().splitlines()
    assert lines[:2] == ["Name:               web", "Namespace:          shop"]
    assert lines[2].startswith("CreationTimestamp:  ") and "2024" in lines[2]
    assert lines[3:] == ["Labels:             a=1", "                    b=2", "Annotations:        <none>"]


def test_smart_label() -> None:
    assert describing.smart_label("creationTimestamp") == "Creation Timestamp"
    assert describing.smart_label("apiVersion") == "API Version"
    assert describing.smart_label("uid") == "UID"
    assert describing.smart_label("app.conf") == "app.conf"


def test_unstructured_sections_sorted_with_skips() -> None:
    w = Writer()
    describing.unstructured(w, 0, {"kind": "ConfigMap", "data": {"key": "v"}, "metadata": {"name": "x", "uid": "u"},
                                   "list": ["a", {"b": 1}]}, frozenset({".metadata.name"}))
    # "  Key:" and "Kind:" are consecutive aligned lines: one column block, as in Go's tabwriter.
    assert w.text() == ("Data:\n  Key:  v\nKind:   ConfigMap\nList:\n  a\n  B:  1\nMetadata:\n  UID:  u\n")


def test_age() -> None:
    now = datetime(2024, 1, 1, 0, 10, 0, tzinfo=UTC)
    assert describing.age("2024-01-01T00:09:30Z", now) == "30s"
    assert describing.age("2024-01-01T00:04:55Z", now) == "5m5s"
    assert describing.age(None, now) == "<unknown>"
