"""Small in-place changes: ``scale`` (merge patch on the ``scale`` subresource, as kubectl) and
``label`` / ``annotate`` (merge patch on ``metadata``), each printing ``deployment.apps/web scaled`` /
``pod/x labeled`` / ``pod/x annotated`` per object."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import Any

from kubelite.api import meta
from kubelite.cli import patches, reads, selection
from kubelite.cli.output import object_ref
from kubelite.cli.session import CliError, Session, run

_VERBS = {"labels": ("label", "labeled"), "annotations": ("annotate", "annotated")}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("scale", parents=parents, help="set the number of replicas",
                       description="Set a new size for a Deployment or ReplicaSet (kubectl scale).")
    p.add_argument("resources", nargs="+", metavar="KIND NAME... | KIND/NAME...")
    p.add_argument("--replicas", type=int, required=True, help="the new number of replicas")
    p.add_argument("--current-replicas", type=int, default=-1,
                   help="only scale if the current number of replicas is this")
    p.set_defaults(func=lambda args: run(args, partial(scale, args)))
    for field, (verb, _) in _VERBS.items():
        m = sub.add_parser(verb, parents=parents, help=f"update the {field} of objects",
                           description=f"Set (key=value) or remove (key-) {field} (kubectl {verb}).")
        m.add_argument("args", nargs="+", metavar="KIND NAME... | KIND/NAME... KEY=VALUE... KEY-...")
        m.add_argument("--overwrite", action="store_true", help="allow changing existing values")
        m.add_argument("-l", "--selector", default="", help="change the objects matching this label selector")
        m.add_argument("--all", action="store_true", help="change every object of the kind in the namespace")
        m.set_defaults(func=lambda args, field=field: run(args, partial(update_metadata, args, field)))


async def scale(args: argparse.Namespace, s: Session) -> int:
    if args.replicas < 0:
        raise CliError("The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    for sel in selection.parse(args.resources, verb="scale"):
        if "scale" not in sel.kind.subresources:
            raise CliError(f"{sel.kind.plural} cannot be scaled: they have no scale subresource")
        if not sel.names:
            raise CliError("resource(s) were provided, but no name was specified")
        for name in sel.names:
            if args.current_replicas >= 0:
                current = await s.client.request("GET", s.client.item_path(sel.kind, name, s.namespace, "scale"))
                have = int((current.get("spec") or {}).get("replicas") or 0)
                if have != args.current_replicas:
                    raise CliError(f"Expected replicas to be {args.current_replicas}, was {have}")
            await s.client.patch(sel.kind, name, {"spec": {"replicas": args.replicas}}, "merge",
                                 namespace=s.namespace, subresource="scale")
            s.out.write(f"{object_ref(sel.kind, name)} scaled\n")
    return 0


def split_args(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """kubectl's split of ``label``/``annotate`` arguments: ``k=v`` and ``k-`` are changes, the rest resources."""
    resources = [a for a in args if "=" not in a and not a.endswith("-")]
    changes = [a for a in args if "=" in a or a.endswith("-")]
    return resources, changes


async def update_metadata(args: argparse.Namespace, field: str, s: Session) -> int:
    verb, done = _VERBS[field]
    resources, changes = split_args(args.args)
    if not changes:
        raise CliError(f"at least one {'label' if field == 'labels' else 'annotation'} update is required")
    for sel in selection.parse(resources, verb=verb):
        if sel.names and (args.selector or args.all):
            raise CliError("name cannot be provided when a selector is specified")
        if sel.names:
            objects = [await s.client.get(sel.kind, name, s.namespace) for name in sel.names]
        elif args.selector or args.all:
            objects, _ = await reads.list_objects(s.client, sel.kind, s.namespace, label_selector=args.selector)
        else:
            raise CliError("resource(s) were provided, but no name was specified")
        for obj in objects:
            s.out.write(await _update_one(s, sel, obj, field, changes, args.overwrite, done) + "\n")
    return 0


async def _update_one(s: Session, sel: selection.Selection, obj: dict[str, Any], field: str,
                      changes: list[str], overwrite: bool, done: str) -> str:
    current = meta.labels(obj) if field == "labels" else meta.annotations(obj)
    try:
        patch = patches.metadata_map_patch(field, changes, current, overwrite=overwrite)
    except ValueError as e:
        raise CliError(str(e)) from None
    name = meta.name(obj)
    if field == "labels":
        for arg in changes:
            if arg.endswith("-") and "=" not in arg and arg[:-1] not in current:
                s.out.write(f'label "{arg[:-1]}" not found.\n')
    if not patch:
        # kubectl says "not labeled" for a no-op, but "annotated" whatever happened.
        return f"{object_ref(sel.kind, name)} {'not ' if field == 'labels' else ''}{done}"
    await s.client.patch(sel.kind, name, patch, "merge", namespace=meta.namespace(obj) or s.namespace)
    updates = patch["metadata"][field]
    # kubectl says "unlabeled" when labels were only removed.
    if field == "labels" and all(v is None for v in updates.values()):
        return f"{object_ref(sel.kind, name)} unlabeled"
    return f"{object_ref(sel.kind, name)} {done}"
