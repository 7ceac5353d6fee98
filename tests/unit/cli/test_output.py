"""Printing helpers: names, YAML/JSON as kubectl prints them, Table decoration."""

from __future__ import annotations

import io
import json
from typing import Any

import yaml

from kubelite.api.registry import resolve
from kubelite.cli.output import (
    TablePrinter,
    api_error_text,
    as_list,
    cell_text,
    for_output,
    object_ref,
    plural_ref,
    resource_name,
    to_json,
    to_yaml,
)
from kubelite.client.rest import NotFound


def test_names() -> None:
    assert resource_name(resolve("deploy")) == "deployment.apps"
    assert resource_name(resolve("po")) == "pod"
    assert object_ref(resolve("ing"), "x") == "ingress.networking.k8s.io/x"
    assert plural_ref(resolve("deploy"), "web") == 'deployments.apps "web"'


def test_yaml_sorted_block_style_with_go_yaml_quoting() -> None:
    obj = {"metadata": {"name": "web", "resourceVersion": "12", "labels": {"enabled": "true", "on": "x"}},
           "apiVersion": "v1", "data": {"script": "line1\nline2\n", "empty": "", "port": 80}}
    text = to_yaml(obj)
    assert text.splitlines()[0] == "apiVersion: v1"
    assert 'resourceVersion: "12"' in text
    assert 'enabled: "true"' in text
    assert '"on": x' in text  # YAML 1.1 reads a bare on as a boolean; go-yaml quotes it too
    assert 'empty: ""' in text
    assert "port: 80" in text
    assert "script: |\n    line1\n    line2\n" in text
    assert yaml.safe_load(text) == obj


def test_yaml_lists_are_not_indented_under_their_key() -> None:
    text = to_yaml({"spec": {"containers": [{"name": "web", "image": "nginx"}]}})
    assert text == "spec:\n  containers:\n  - image: nginx\n    name: web\n"


def test_json_indent_four_sorted() -> None:
    text = to_json({"b": 1, "a": {"d": 2, "c": [1]}})
    assert text.startswith('{\n    "a": {\n        "c": [')
    assert json.loads(text) == {"b": 1, "a": {"d": 2, "c": [1]}}


def test_for_output_drops_managed_fields_without_touching_input() -> None:
    obj: dict[str, Any] = {"metadata": {"name": "x", "managedFields": [{"manager": "m"}]}}
    assert for_output(obj) == {"metadata": {"name": "x"}}
    assert "managedFields" in obj["metadata"]


def test_as_list() -> None:
    assert as_list([{"kind": "Pod"}]) == {"apiVersion": "v1", "items": [{"kind": "Pod"}], "kind": "List",
                                          "metadata": {"resourceVersion": ""}}


def test_cell_text() -> None:
    assert cell_text(None) == ""
    assert cell_text(True) == "true"
    assert cell_text(3) == "3"
    assert cell_text("a\nb") == "a..."


def test_api_error_text() -> None:
    e = NotFound(404, "NotFound", 'pods "x" not found')
    assert api_error_text(e) == 'Error from server (NotFound): pods "x" not found'


def _table(rows: list[tuple[str, str, str, str]], with_columns: bool = True) -> dict[str, Any]:
    columns = [
        {"name": "Name", "type": "string", "format": "name", "priority": 0},
        {"name": "Status", "type": "string", "format": "", "priority": 0},
        {"name": "IP", "type": "string", "format": "", "priority": 1},
    ]
    return {"kind": "Table", "columnDefinitions": columns if with_columns else [],
            "rows": [{"cells": [name, status, ip],
                      "object": {"metadata": {"name": name, "namespace": ns, "labels": {"app": name}}}}
                     for name, status, ip, ns in rows]}


def test_table_hides_wide_columns_and_uppercases_headers() -> None:
    out = io.StringIO()
    TablePrinter(out).print_table(_table([("web", "Running", "10.0.0.1", "default")]))
    assert out.getvalue() == "NAME   STATUS\nweb    Running\n"


def test_table_wide_namespace_labels_and_kind_prefix() -> None:
    out = io.StringIO()
    printer = TablePrinter(out, wide=True, with_namespace=True, show_labels=True, kind_prefix="pod")
    printer.print_table(_table([("web", "Running", "10.0.0.1", "shop")]))
    assert out.getvalue() == ("NAMESPACE   NAME      STATUS    IP         LABELS\n"
                              "shop        pod/web   Running   10.0.0.1   app=web\n")


def test_table_no_headers_and_empty_tables_print_nothing() -> None:
    out = io.StringIO()
    printer = TablePrinter(out, no_headers=True)
    printer.print_table(_table([]))
    assert out.getvalue() == ""
    printer.print_table(_table([("a", "b", "c", "d")]))
    assert out.getvalue() == "a     b\n"


def test_watch_tables_reuse_columns_and_print_headers_once() -> None:
    out = io.StringIO()
    printer = TablePrinter(out, remember_widths=True, separator="\n")
    printer.print_table(_table([("a-long-name", "Running", "", "")]))
    printer.print_table(_table([("b", "Pending", "", "")], with_columns=False))
    lines = out.getvalue().splitlines()
    assert lines[0] == ""  # the separator, once
    assert lines[1].startswith("NAME") and len(lines) == 4
    assert lines[2].index("Running") == lines[3].index("Pending")
    assert printer.rows_printed == 2
