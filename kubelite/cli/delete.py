"""``kubelite delete``: by file (``-f``), by name (``KIND NAME...``, ``KIND/NAME...``) or by selection
(``KIND -l SELECTOR``, ``KIND --all``; with ``-A`` across namespaces).

Each object gets one ``DELETE`` with ``propagationPolicy`` from ``--cascade`` and prints kubectl 1.37's
line: ``deployment.apps "web" deleted from default namespace`` (``namespace "x" deleted`` for cluster-scoped
objects). With ``--wait`` (the default) the command then waits until every deleted object is gone (not
merely marked for deletion), watching each by name; ``--timeout`` bounds that wait.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import Kind
from kubelite.cli import reads, selection
from kubelite.cli.batch import Order, run_documents
from kubelite.cli.manifests import Target
from kubelite.cli.output import api_error_text, resource_name
from kubelite.cli.session import CliError, Session, add_bool_flag, run
from kubelite.client.rest import ApiException, Client, Gone, NotFound

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan",
           "true": "Background", "false": "Orphan"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Deleted:
    """An object whose DELETE was accepted but that still exists (finalizers, graceful deletion)."""

    kind: Kind
    name: str
    namespace: str | None
    uid: str


def parse_duration(text: str) -> float:
    """Seconds from Go's duration syntax (``30s``, ``1m30s``, ``500ms``) or a bare number of seconds;
    0 means no limit, as in kubectl."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f'invalid duration "{text}"')
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("delete", parents=parents, help="delete resources by file, name or selector",
                       description="Delete objects by file, by name, or by label selector (kubectl delete).")
    p.add_argument("resources", nargs="*", metavar="KIND [NAME...] | KIND/NAME...")
    p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-",
                   help="file, directory or - (stdin) holding the objects to delete (repeatable)")
    p.add_argument("-R", "--recursive", action="store_true", help="also read the directories' subdirectories")
    p.add_argument("-l", "--selector", default="", help="delete the objects matching this label selector")
    p.add_argument("--all", action="store_true", help="delete every object of the kind in the namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="with -l or --all: in every namespace")
    p.add_argument("--cascade", default="background", choices=tuple(CASCADE),
                   help="what happens to dependents: background (default), foreground or orphan")
    add_bool_flag(p, "--wait", default=True, help="wait until the objects are gone")
    p.add_argument("--timeout", default=0.0, type=parse_duration,
                   help="how long to wait (e.g. 30s; 0 waits forever)")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds given to the object to terminate (-1: its own default)")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--ignore-not-found", action="store_true", help="objects that do not exist are no error")
    p.set_defaults(func=lambda args: run(args, partial(delete, args)))


async def delete(args: argparse.Namespace, s: Session) -> int:
    pending: list[Deleted] = []
    if args.filename:
        if args.resources:
            raise CliError("when paths, URLs, or stdin is provided as input, you may not specify resources "
                           "by arguments as well")
        code = await run_documents(s, args.filename, args.recursive,
                                   partial(_delete_target, s, args, pending), verb="delete",
                                   order=Order.NAMESPACES_LAST)
    else:
        code = await _delete_selected(args, s, pending)
    if args.wait and pending:
        code = max(code, await _wait_all(args, s, pending))
    return code


async def _delete_target(s: Session, args: argparse.Namespace, pending: list[Deleted], target: Target) -> str | None:
    try:
        return await delete_one(s.client, args, target.kind, target.name, target.namespace, pending)
    except NotFound:
        if args.ignore_not_found:
            return None
        raise


async def _delete_selected(args: argparse.Namespace, s: Session, pending: list[Deleted]) -> int:
    selections = selection.parse(args.resources, verb="delete")
    named = any(sel.names for sel in selections)
    if named and (args.selector or args.all):
        raise CliError("name cannot be provided when a selector is specified")
    if not named and not (args.selector or args.all):
        raise CliError("resource(s) were provided, but no name was specified")
    failed = False
    found = 0
    for sel in selections:
        if sel.names:
            namespace: str | None = s.namespace
            items = [(name, namespace) for name in sel.names]
        else:
            namespace = None if args.all_namespaces else s.namespace
            objects, _ = await reads.list_objects(s.client, sel.kind, namespace, label_selector=args.selector)
            items = [(meta.name(o), meta.namespace(o) or None) for o in objects]
        found += len(items)
        for name, ns in items:
            try:
                line = await delete_one(s.client, args, sel.kind, name, ns, pending)
            except NotFound as e:
                if not args.ignore_not_found:
                    s.err.write(api_error_text(e) + "\n")
                    failed = True
                continue
            s.out.write(line + "\n")
            s.out.flush()
    if not found:
        where = "" if args.all_namespaces else f" in {s.namespace} namespace"
        s.err.write(f"No resources found{where}.\n" if where else "No resources found\n")
    return 1 if failed else 0


async def delete_one(client: Client, args: argparse.Namespace, kind: Kind, name: str, namespace: str | None,
                     pending: list[Deleted]) -> str:
    """DELETE one object; remember it in ``pending`` if it still exists afterwards. Returns its line."""
    grace = 1 if args.now else (args.grace_period if args.grace_period >= 0 else None)
    answer = await client.delete(kind, name, namespace, propagation_policy=CASCADE[args.cascade],
                                 grace_period_seconds=grace)
    ns = client.namespace_for(kind, namespace)
    if answer.get("kind") != "Status" and meta.uid(answer):
        pending.append(Deleted(kind, name, ns, meta.uid(answer)))
    where = f" from {ns} namespace" if ns else ""
    return f"{_singular_ref(kind, name)} deleted{where}"


def _singular_ref(kind: Kind, name: str) -> str:
    """kubectl names the deleted object by its lower-case kind: ``deployment.apps "web"``."""
    return f'{resource_name(kind)} "{name}"'


async def _wait_all(args: argparse.Namespace, s: Session, pending: list[Deleted]) -> int:
    try:
        async with asyncio.timeout(args.timeout or None):
            for d in pending:
                await wait_deleted(s.client, d)
    except TimeoutError:
        left = [d for d in pending if not await _gone(s.client, d)]
        for d in left:
            s.error(f"timed out waiting for the condition on {_singular_ref(d.kind, d.name)}")
        return 1 if left else 0
    return 0


async def _gone(client: Client, d: Deleted) -> bool:
    try:
        obj = await client.get(d.kind, d.name, d.namespace)
    except NotFound:
        return True
    return meta.uid(obj) != d.uid


async def wait_deleted(client: Client, d: Deleted) -> None:
    """Return once the object with ``d.uid`` no longer exists (a new object of the same name does not count)."""
    while True:
        try:
            obj: dict[str, Any] = await client.get(d.kind, d.name, d.namespace)
        except NotFound:
            return
        if meta.uid(obj) != d.uid:
            return
        stream = reads.watch_events(client, d.kind, d.namespace, meta.resource_version(obj),
                                    field_selector=f"metadata.name={d.name}")
        try:
            async with aclosing(stream) as events:
                async for event in events:
                    if event.get("type") == "DELETED" and meta.uid(event["object"]) == d.uid:
                        return
                    if event.get("type") == "ERROR":
                        break  # e.g. the resourceVersion expired: read the object again
        except (Gone, ApiException):
            await asyncio.sleep(0.5)
