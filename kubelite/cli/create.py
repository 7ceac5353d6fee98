"""``kubelite create -f FILE`` (POST each object; an existing one is an error) and
``kubelite create namespace NAME``."""

from __future__ import annotations

import argparse
from functools import partial

from kubelite.api import meta
from kubelite.api.registry import by_kind
from kubelite.cli.batch import run_documents
from kubelite.cli.manifests import Target
from kubelite.cli.output import object_ref
from kubelite.cli.session import CliError, Session, global_flags, run
from kubelite.client.rest import Client

NAMESPACE = by_kind("v1", "Namespace")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("create", parents=parents, help="create objects from a file or stdin, or a namespace",
                       description="Create objects from manifests (kubectl create -f), or a namespace.")
    p.add_argument("-f", "--filename", action="append", metavar="FILE|DIR|-",
                   help="file, directory or - (stdin) holding the objects to create (repeatable)")
    p.add_argument("-R", "--recursive", action="store_true", help="also read the directories' subdirectories")
    p.add_argument("--field-manager", default="kubelite", help="the field manager name (default kubelite)")
    p.set_defaults(func=lambda args: run(args, partial(create_from_files, args)))
    inner = p.add_subparsers(dest="create_what", metavar="KIND")
    # Global flags given before the sub-command must survive the nested parser: no defaults there.
    ns = inner.add_parser("namespace", aliases=["ns"], parents=[global_flags(suppress_defaults=True)],
                          help="create a namespace")
    ns.add_argument("name", help="the namespace's name")
    ns.set_defaults(func=lambda args: run(args, partial(create_namespace, args)))


async def create_from_files(args: argparse.Namespace, s: Session) -> int:
    if not args.filename:
        raise CliError("must specify one of -f, or a kind to create (namespace)")
    return await run_documents(s, args.filename, args.recursive, partial(create_one, s.client, args),
                               verb="create", allow_generate_name=True)


async def create_one(client: Client, args: argparse.Namespace, target: Target) -> str:
    created = await client.create(target.kind, target.obj, target.namespace, field_manager=args.field_manager)
    return f"{object_ref(target.kind, meta.name(created))} created"


async def create_namespace(args: argparse.Namespace, s: Session) -> int:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.name}}
    created = await s.client.create(NAMESPACE, body, field_manager=args.field_manager)
    s.out.write(f"{object_ref(NAMESPACE, meta.name(created))} created\n")
    return 0
