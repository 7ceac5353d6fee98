"""``kubelite describe KIND [NAME...]``: a readable, multi-section description of objects, as kubectl's.

Each description: the common header (Name, Namespace, Labels, Annotations, CreationTimestamp), then the
kind's own sections (`describers.DESCRIBERS`) or, for other kinds, kubectl's generic rendering of every
field, then the object's Events (``events?fieldSelector=involvedObject.name=...,involvedObject.uid=...``).

As kubectl: a NAME that matches no object exactly describes the objects whose names start with it;
without NAME every object of the kind (``-l`` narrows them) is described; descriptions are separated by
two blank lines.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import Kind, by_kind
from kubelite.cli import describing, reads, selection
from kubelite.cli.describers import DESCRIBERS
from kubelite.cli.describing import Writer
from kubelite.cli.output import api_error_text
from kubelite.cli.session import Session, add_bool_flag, run
from kubelite.client.rest import ApiException, Client, NotFound

EVENT = by_kind("v1", "Event")
_GENERIC_SKIP = frozenset({".metadata.managedFields", ".metadata.name", ".metadata.namespace", ".metadata.labels",
                           ".metadata.annotations", ".metadata.creationTimestamp"})


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("describe", parents=parents, help="show details of a resource or group of resources",
                       description="Show details of objects, with their events (kubectl describe).")
    p.add_argument("resources", nargs="+", metavar="KIND [NAME...] | KIND/NAME...")
    p.add_argument("-l", "--selector", default="", help="describe the objects matching this label selector")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="look in every namespace")
    add_bool_flag(p, "--show-events", default=True, help="show the objects' events")
    p.set_defaults(func=lambda args: run(args, partial(describe, args)))


async def describe(args: argparse.Namespace, s: Session) -> int:
    namespace = None if args.all_namespaces else s.namespace
    failed = False
    first = True
    for sel in selection.parse(args.resources, verb="describe"):
        objects: list[dict[str, Any]] = []
        if sel.names:
            for name in sel.names:
                try:
                    objects.extend(await _find(s.client, sel.kind, name, namespace))
                except NotFound as e:
                    s.err.write(api_error_text(e) + "\n")
                    failed = True
        else:
            objects, _ = await reads.list_objects(s.client, sel.kind, namespace, label_selector=args.selector)
        for obj in objects:
            text = await render(s.client, sel.kind, obj, show_events=args.show_events)
            s.out.write(text if first else "\n\n" + text)
            first = False
    if first and not failed:
        s.err.write(f"No resources found in {s.namespace} namespace.\n")
    return 1 if failed else 0


async def _find(client: Client, kind: Kind, name: str, namespace: str | None) -> list[dict[str, Any]]:
    """The object named ``name``, else those whose names start with it (kubectl's prefix match)."""
    try:
        return [await client.get(kind, name, namespace)]
    except NotFound as e:
        items, _ = await reads.list_objects(client, kind, namespace)
        matched = [o for o in items if meta.name(o).startswith(name)]
        if not matched:
            raise e from None
        return matched


async def render(client: Client, kind: Kind, obj: dict[str, Any], *, show_events: bool = True) -> str:
    """The whole description of one object."""
    w = Writer()
    describing.header(w, obj, namespaced=kind.namespaced)
    describer = DESCRIBERS.get((kind.api_version, kind.kind))
    if describer is not None:
        await describer(client, obj, w)
    else:
        describing.unstructured(w, 0, obj, _GENERIC_SKIP)
    if show_events:
        events_section(w, await events_for(client, kind, obj))
    return w.text()


async def events_for(client: Client, kind: Kind, obj: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The events about ``obj``, oldest first; None when they cannot be read."""
    terms = [f"involvedObject.name={meta.name(obj)}", f"involvedObject.kind={kind.kind}"]
    ns = meta.namespace(obj) or None
    if ns:
        terms.append(f"involvedObject.namespace={ns}")
    if meta.uid(obj):
        terms.append(f"involvedObject.uid={meta.uid(obj)}")
    try:
        events, _ = await reads.list_objects(client, EVENT, ns, field_selector=",".join(terms))
    except ApiException:
        return None
    return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def events_section(w: Writer, events: list[dict[str, Any]] | None) -> None:
    if events is None:
        return
    if not events:
        w.line(0, "Events:", describing.NONE)
        return
    w.line(0, "Events:")
    w.line(1, "Type", "Reason", "Age", "From", "Message")
    w.line(1, "----", "------", "----", "----", "-------")
    for e in events:
        count = int(e.get("count") or 0)
        if count > 1:
            when = (f"{describing.age(e.get('lastTimestamp'))} (x{count} over "
                    f"{describing.age(e.get('firstTimestamp'))})")
        else:
            when = describing.age(e.get("firstTimestamp") or e.get("eventTime"))
        source = (e.get("source") or {}).get("component") or e.get("reportingComponent") or ""
        w.line(1, e.get("type") or "", e.get("reason") or "", when, source, str(e.get("message") or "").strip())
