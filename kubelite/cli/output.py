"""How the kubectl-like verbs print: resource names, YAML/JSON documents, Tables and errors, as kubectl does.

- Names: ``deployment.apps/web`` (``-o name``, apply/delete messages), ``deployments.apps "web"`` (errors).
- YAML and JSON: keys sorted (kubectl marshals maps, which Go sorts), JSON indented by 4 spaces, YAML in
  block style with go-yaml's quoting (double quotes for strings that would read as another type, ``|``
  blocks for multi-line strings); ``metadata.managedFields`` left out (kubectl's
  ``--show-managed-fields=false``).
- Tables: the server's ``meta.k8s.io/v1`` Table, decorated like kubectl's ``decorateTable`` (NAMESPACE
  first with ``-A``, LABELS last with ``--show-labels``, ``kind/`` before names when several kinds are
  shown), priority > 0 columns only with ``-o wide``, aligned through `TabWriter`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import yaml

from kubelite.api.registry import Kind
from kubelite.api.selectors import format_labels
from kubelite.cli.tabwriter import TabWriter
from kubelite.client.rest import ApiException

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
_CELL_BREAKS = "\f\n\r"


# --- names -----------------------------------------------------------------------------------------

def resource_name(kind: Kind) -> str:
    """The lower-case ``kind.group`` kubectl prints before a name: ``deployment.apps``, ``pod``."""
    return f"{kind.kind.lower()}.{kind.group}" if kind.group else kind.kind.lower()


def object_ref(kind: Kind, name: str) -> str:
    return f"{resource_name(kind)}/{name}"


def plural_ref(kind: Kind, name: str) -> str:
    """``deployments.apps "web"``, the form of Kubernetes' own messages (delete, NotFound)."""
    plural = f"{kind.plural}.{kind.group}" if kind.group else kind.plural
    return f'{plural} "{name}"'


# --- documents -------------------------------------------------------------------------------------

def for_output(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy without ``metadata.managedFields``, as kubectl shows objects by default."""
    out = copy.deepcopy(obj)
    md = out.get("metadata")
    if isinstance(md, dict):
        md.pop("managedFields", None)
    return out


def as_list(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The ``v1`` ``List`` kubectl prints for ``-o yaml|json`` of several objects."""
    return {"apiVersion": "v1", "items": list(items), "kind": "List", "metadata": {"resourceVersion": ""}}


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper with go-yaml's string styles (what kubectl's ``-o yaml`` shows)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    tag = "tag:yaml.org,2002:str"
    if "\n" in value:
        return dumper.represent_scalar(tag, value, style="|")
    # go-yaml double-quotes a string that would otherwise read back as a number, boolean or null.
    resolved = dumper.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if not value or resolved != tag:
        return dumper.represent_scalar(tag, value, style='"')
    return dumper.represent_scalar(tag, value)


_Dumper.add_representer(str, _represent_str)


def to_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, sort_keys=True, allow_unicode=True)


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


# --- errors ----------------------------------------------------------------------------------------

def api_error_text(e: ApiException) -> str:
    """kubectl's line for a failed request: ``Error from server (NotFound): pods "x" not found``."""
    message = e.message or str(e)
    if e.reason and e.reason != "Unknown":
        return f"Error from server ({e.reason}): {message}"
    return f"Error from server: {message}"


# --- tables ----------------------------------------------------------------------------------------

def cell_text(value: Any) -> str:
    """One Table cell as kubectl prints it: nothing for null, Go's spelling of booleans, strings cut at
    their first line break (with ``...``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    cut = min((i for i in (text.find(c) for c in _CELL_BREAKS) if i >= 0), default=-1)
    text = text[:cut] + "..." if cut >= 0 else text
    # A tab inside a cell would open a column of its own.
    return text.replace("\t", " ")


class TablePrinter:
    """Prints server Tables like kubectl's HumanReadablePrinter.

    One printer serves one kind: headers are printed once, with the first table that has rows, and again
    only if a later table brings different column definitions. A table without column definitions (a
    watch event) reuses the last ones. With ``remember_widths`` columns never shrink between calls, so
    rows printed as watch events line up with the first table.
    """

    def __init__(self, out: TextIO, *, wide: bool = False, no_headers: bool = False,
                 with_namespace: bool = False, show_labels: bool = False, kind_prefix: str = "",
                 remember_widths: bool = False, separator: str = "") -> None:
        self.out = out
        # Written once, before this printer's first output (the blank line between kinds).
        self.separator = separator
        self.wide = wide
        self.no_headers = no_headers
        self.with_namespace = with_namespace
        self.show_labels = show_labels
        self.kind_prefix = kind_prefix
        self.rows_printed = 0
        self._writer = TabWriter(minwidth=6, padding=3, remember_widths=remember_widths)
        self._columns: list[dict[str, Any]] = []
        self._printed_headers = False

    def print_table(self, table: Mapping[str, Any]) -> None:
        columns = list(table.get("columnDefinitions") or [])
        rows = list(table.get("rows") or [])
        if not columns:
            columns = self._columns
        elif columns != self._columns:
            self._columns = columns
            self._printed_headers = False
        if not rows:
            return
        lines: list[list[str]] = []
        if not self.no_headers and not self._printed_headers:
            lines.append(self._headers(columns))
        self._printed_headers = True
        lines.extend(self._cells(columns, row) for row in rows)
        if not self.rows_printed:
            self.out.write(self.separator)
        self.out.write(self._writer.format("".join("\t".join(line) + "\n" for line in lines)))
        self.rows_printed += len(rows)

    def _shown(self, columns: list[dict[str, Any]]) -> list[int]:
        return [i for i, c in enumerate(columns) if self.wide or not c.get("priority")]

    def _headers(self, columns: list[dict[str, Any]]) -> list[str]:
        names = [str(columns[i].get("name", "")).upper() for i in self._shown(columns)]
        if self.with_namespace:
            names.insert(0, "NAMESPACE")
        if self.show_labels:
            names.append("LABELS")
        return names

    def _cells(self, columns: list[dict[str, Any]], row: Mapping[str, Any]) -> list[str]:
        raw = list(row.get("cells") or [])
        obj = row.get("object")
        md = obj.get("metadata") if isinstance(obj, dict) else None
        md = md if isinstance(md, dict) else {}
        # Like decorateTable, only the first name-formatted column gets the kind prefix.
        name_column = next((i for i, c in enumerate(columns)
                            if c.get("format") == "name" and c.get("type") == "string"), -1)
        cells = []
        for i in self._shown(columns):
            text = cell_text(raw[i] if i < len(raw) else None)
            if self.kind_prefix and i == name_column:
                text = f"{self.kind_prefix}/{text}"
            cells.append(text)
        if self.with_namespace:
            cells.insert(0, str(md.get("namespace") or ""))
        if self.show_labels:
            cells.append(format_labels(md.get("labels")))
        return cells
