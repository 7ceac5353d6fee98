"""``kubelite apply -f``: make the cluster match manifests, printing ``deployment.apps/web created`` /
``configured`` / ``unchanged`` per object.

Server-side apply (the default): GET (to know whether the object exists and its resourceVersion), then
``PATCH`` with ``application/apply-patch+yaml`` (a JSON body), ``fieldManager`` and ``force`` for
``--force-conflicts``. ``--server-side=false`` is kubectl's client-side apply with the last-applied
annotation and a three-way merge patch (`patches.three_way_merge_patch`); an object with nothing to
change gets no write at all.

``--dry-run=server`` sends ``dryRun=All`` (the server checks everything and stores nothing);
``--dry-run=client`` only reads. Their lines end in ``(server dry run)`` / ``(dry run)``.
"""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any

from kubelite.cli import patches
from kubelite.cli.batch import run_documents
from kubelite.cli.manifests import Target
from kubelite.cli.output import object_ref
from kubelite.cli.session import Session, add_bool_flag, run
from kubelite.client.rest import Client, NotFound

DRY_RUN_SUFFIX = {"none": "", "server": " (server dry run)", "client": " (dry run)"}


def add_file_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("-f", "--filename", action="append", required=True, metavar="FILE|DIR|-",
                   help=f"file, directory or - (stdin) holding the objects to {what} (repeatable)")
    p.add_argument("-R", "--recursive", action="store_true", help="also read the directories' subdirectories")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("apply", parents=parents, help="apply a configuration by file name or stdin",
                       description="Create or update objects from manifests (kubectl apply).")
    add_file_flags(p, "apply")
    add_bool_flag(p, "--server-side", default=True, help="apply on the server (server-side apply)")
    p.add_argument("--force-conflicts", action="store_true",
                   help="take over fields that other field managers own (server-side apply)")
    p.add_argument("--field-manager", default="kubelite", help="the field manager name (default kubelite)")
    p.add_argument("--dry-run", default="none", choices=tuple(DRY_RUN_SUFFIX),
                   help="server: validate on the server without storing; client: only read")
    p.set_defaults(func=lambda args: run(args, partial(apply, args)))


async def apply(args: argparse.Namespace, s: Session) -> int:
    return await run_documents(s, args.filename, args.recursive, partial(apply_one, s.client, args), verb="apply")


async def apply_one(client: Client, args: argparse.Namespace, target: Target) -> str:
    """Apply one object; returns its line, e.g. ``service/web configured``."""
    before = await get_or_none(client, target)
    if args.dry_run == "client":
        outcome = "created" if before is None else "configured"
    elif args.server_side:
        after = await client.patch(target.kind, target.name, target.obj, "apply", namespace=target.namespace,
                                   field_manager=args.field_manager, force=args.force_conflicts,
                                   dry_run=args.dry_run == "server")
        outcome = patches.apply_outcome(before, after, dry_run=args.dry_run == "server")
    else:
        outcome = await _client_side(client, args, target, before)
    return f"{object_ref(target.kind, target.name)} {outcome}{DRY_RUN_SUFFIX[args.dry_run]}"


async def _client_side(client: Client, args: argparse.Namespace, target: Target,
                       before: dict[str, Any] | None) -> str:
    modified = patches.with_last_applied(target.obj)
    dry_run = args.dry_run == "server"
    if before is None:
        await client.create(target.kind, modified, target.namespace, field_manager=args.field_manager,
                            dry_run=dry_run)
        return "created"
    patch = patches.three_way_merge_patch(patches.last_applied(before), modified, before)
    if not patch:
        return "unchanged"
    after = await client.patch(target.kind, target.name, patch, "merge", namespace=target.namespace,
                               field_manager=args.field_manager, dry_run=dry_run)
    return patches.apply_outcome(before, after, dry_run=dry_run)


async def get_or_none(client: Client, target: Target) -> dict[str, Any] | None:
    if not target.name:
        return None
    try:
        return await client.get(target.kind, target.name, target.namespace)
    except NotFound:
        return None
