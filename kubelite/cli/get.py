"""``kubelite get``: objects as the server's Tables (kubectl's columns), or as YAML, JSON or names.

kubectl's rules kept here:
- one table per kind, a blank line between kinds, ``kind/`` before names when several kinds are shown;
  a NAMESPACE column with ``-A`` (namespaced kinds only);
- ``-o yaml|json`` prints the object itself when one name of one kind was asked for, else a ``List``;
- nothing printed and nothing failed: ``No resources found in <ns> namespace.`` (or ``No resources
  found``) on stderr, exit 0; a name that does not exist: ``Error from server (NotFound): ...``, exit 1
  after printing what was found;
- ``-w`` prints the current table, then one row per change (a watch from the table's resourceVersion,
  resumed when the server ends it) until interrupted; only one kind at a time.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from kubelite.api.registry import Kind, by_kind
from kubelite.cli import jsonpath, reads, selection
from kubelite.cli.output import (
    TABLE_ACCEPT,
    TablePrinter,
    api_error_text,
    as_list,
    for_output,
    object_ref,
    resource_name,
    to_json,
    to_yaml,
)
from kubelite.cli.session import CliError, Session, run
from kubelite.client.rest import ApiException, NotFound

OUTPUTS = ("wide", "yaml", "json", "name")
OBJECT_OUTPUTS = ("yaml", "json", "name", "jsonpath")


def output_format(text: str) -> str:
    """``-o``: one of `OUTPUTS` or ``jsonpath=TEMPLATE`` (checked here, so that a typo fails at once)."""
    if text in ("", *OUTPUTS) or text.startswith("jsonpath="):
        if text.startswith("jsonpath="):
            try:
                jsonpath.parse(text[len("jsonpath="):])
            except jsonpath.JSONPathError as e:
                raise argparse.ArgumentTypeError(f"error parsing jsonpath {text[9:]}: {e}") from None
        return text
    raise argparse.ArgumentTypeError(f"unable to match a printer suitable for the output format \"{text}\", "
                                     f"allowed formats are: {','.join((*OUTPUTS, 'jsonpath'))}")


def _kind_of_output(args: argparse.Namespace) -> str:
    return "jsonpath" if args.output.startswith("jsonpath=") else args.output


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("get", parents=parents, help="display one or many resources",
                       description="Display one or many resources (kubectl get).")
    p.add_argument("resources", nargs="*", metavar="KIND[,KIND] [NAME...] | KIND/NAME...")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web,tier!=db")
    p.add_argument("--field-selector", default="", help="field selector, e.g. metadata.name=web")
    p.add_argument("-o", "--output", default="", type=output_format,
                   help="output format: wide, yaml, json, name or jsonpath=TEMPLATE")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    p.add_argument("--no-headers", action="store_true", help="do not print table headers")
    p.add_argument("--show-labels", action="store_true", help="show labels as the last column")
    p.add_argument("--ignore-not-found", action="store_true", help="do not fail on names that do not exist")
    p.set_defaults(func=lambda args: run(args, partial(get, args)))


async def get(args: argparse.Namespace, s: Session) -> int:
    selections = selection.parse(args.resources)
    named = any(sel.names for sel in selections)
    if named and (args.selector or args.field_selector):
        raise CliError("name cannot be provided when a selector is specified")
    if named and args.all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces")
    namespace = None if args.all_namespaces else s.namespace
    if args.watch:
        if len(selections) != 1 or len(selections[0].names) > 1:
            raise CliError("you may only specify a single resource type (and at most one name) with --watch")
        return await watch(args, s, selections[0], namespace)
    if _kind_of_output(args) in OBJECT_OUTPUTS:
        return await _print_objects(args, s, selections, namespace)
    return await _print_tables(args, s, selections, namespace)


async def _print_tables(args: argparse.Namespace, s: Session, selections: list[selection.Selection],
                        namespace: str | None) -> int:
    failures: list[str] = []
    printed = 0
    for sel in selections:
        printer = _table_printer(args, s, sel.kind, several_kinds=len(selections) > 1)
        if printed and not args.no_headers:
            printer.separator = "\n"
        if sel.names:
            for name in sel.names:
                try:
                    printer.print_table(await reads.get_table(s.client, sel.kind, name, namespace))
                except NotFound as e:
                    if not args.ignore_not_found:
                        failures.append(api_error_text(e))
        else:
            printer.print_table(await reads.list_table(s.client, sel.kind, namespace, label_selector=args.selector,
                                                       field_selector=args.field_selector))
        printed += printer.rows_printed
    return _finish(args, s, selections, printed, failures)


def _table_printer(args: argparse.Namespace, s: Session, kind: Kind, *, several_kinds: bool,
                   remember_widths: bool = False) -> TablePrinter:
    return TablePrinter(s.out, wide=args.output == "wide", no_headers=args.no_headers,
                        with_namespace=args.all_namespaces and kind.namespaced, show_labels=args.show_labels,
                        kind_prefix=resource_name(kind) if several_kinds else "",
                        remember_widths=remember_widths)


async def _print_objects(args: argparse.Namespace, s: Session, selections: list[selection.Selection],
                         namespace: str | None) -> int:
    failures: list[str] = []
    objects: list[dict[str, Any]] = []
    for sel in selections:
        if sel.names:
            for name in sel.names:
                try:
                    objects.append(await s.client.get(sel.kind, name, namespace))
                except NotFound as e:
                    if not args.ignore_not_found:
                        failures.append(api_error_text(e))
        else:
            found, _ = await reads.list_objects(s.client, sel.kind, namespace, label_selector=args.selector,
                                                field_selector=args.field_selector)
            objects.extend(found)
    single = len(selections) == 1 and len(selections[0].names) == 1
    printed = 0
    if args.output == "name":
        for obj in objects:
            s.out.write(_name_line(obj) + "\n")
        printed = len(objects)
    elif objects or not single:
        shown: Any = for_output(objects[0]) if single else as_list(for_output(o) for o in objects)
        s.out.write(_document(args, shown))
        printed = 1
    return _finish(args, s, selections, printed, failures)


def _document(args: argparse.Namespace, obj: Any) -> str:
    if args.output == "yaml":
        return to_yaml(obj)
    if args.output == "json":
        return to_json(obj)
    template = args.output[len("jsonpath="):]
    try:
        return jsonpath.render(template, obj)
    except jsonpath.JSONPathError as e:
        raise CliError(f"error executing jsonpath {template!r}: {e}") from None


def _name_line(obj: dict[str, Any]) -> str:
    kind = by_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
    return object_ref(kind, str((obj.get("metadata") or {}).get("name") or ""))


def _finish(args: argparse.Namespace, s: Session, selections: list[selection.Selection], printed: int,
            failures: list[str]) -> int:
    for line in failures:
        s.err.write(line + "\n")
    if not printed and not failures and not (args.ignore_not_found and any(sel.names for sel in selections)):
        if not args.all_namespaces and all(sel.kind.namespaced for sel in selections):
            s.err.write(f"No resources found in {s.namespace} namespace.\n")
        else:
            s.err.write("No resources found\n")
    return 1 if failures else 0


# --- watch -----------------------------------------------------------------------------------------

async def watch(args: argparse.Namespace, s: Session, sel: selection.Selection, namespace: str | None) -> int:
    """List, then print every change until cancelled (Ctrl-C); see the module doc."""
    kind = sel.kind
    field_selector = args.field_selector
    if sel.names:
        pin = f"metadata.name={sel.names[0]}"
        field_selector = f"{field_selector},{pin}" if field_selector else pin
    tables = args.output in ("", "wide")
    printer = _table_printer(args, s, kind, several_kinds=False, remember_widths=True)
    if tables:
        table = await reads.list_table(s.client, kind, namespace, label_selector=args.selector,
                                       field_selector=field_selector)
        printer.print_table(table)
        rv = str((table.get("metadata") or {}).get("resourceVersion") or "")
    else:
        objects, rv = await reads.list_objects(s.client, kind, namespace, label_selector=args.selector,
                                               field_selector=field_selector)
        for obj in objects:
            _print_watched(args, s, obj)
    if not printer.rows_printed and tables and not sel.names:
        _finish(args, s, [sel], 0, [])
    s.out.flush()
    while True:
        async for event in reads.watch_events(s.client, kind, namespace, rv, label_selector=args.selector,
                                              field_selector=field_selector,
                                              accept=TABLE_ACCEPT if tables else "application/json"):
            obj = event["object"]
            if event.get("type") == "ERROR":
                raise ApiException(int(obj.get("code") or 500), str(obj.get("reason") or ""),
                                   str(obj.get("message") or "watch failed"), obj)
            rv = _event_resource_version(obj) or rv
            if event.get("type") == "BOOKMARK":
                continue
            if tables:
                printer.print_table(obj)
            else:
                _print_watched(args, s, obj)
            s.out.flush()


def _event_resource_version(obj: dict[str, Any]) -> str:
    if obj.get("kind") == "Table":
        rows = obj.get("rows") or []
        row_obj = rows[-1].get("object") if rows else None
        if isinstance(row_obj, dict):
            return str((row_obj.get("metadata") or {}).get("resourceVersion") or "")
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _print_watched(args: argparse.Namespace, s: Session, obj: dict[str, Any]) -> None:
    if args.output == "name":
        s.out.write(_name_line(obj) + "\n")
    elif args.output == "yaml":
        s.out.write("---\n" + to_yaml(for_output(obj)))
    else:
        s.out.write(_document(args, for_output(obj)))
