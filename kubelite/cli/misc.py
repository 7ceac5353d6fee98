"""``kubelite version`` (client and server) and ``kubelite api-resources`` (from the server's discovery)."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from functools import partial
from typing import Any

from kubelite import __version__
from kubelite.cli.output import to_yaml
from kubelite.cli.session import Session, add_bool_flag, run
from kubelite.cli.tabwriter import TabWriter
from kubelite.client.rest import TransportError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    v = sub.add_parser("version", parents=parents, help="print the client and server versions")
    v.add_argument("--client", action="store_true", help="only the client version (no server needed)")
    v.add_argument("-o", "--output", default="", choices=("json", "yaml"), help="output format")
    v.set_defaults(func=_version_command)

    r = sub.add_parser("api-resources", parents=parents, help="print the resources the server serves",
                       description="Print the resource types the server serves, from its discovery documents.")
    r.add_argument("-o", "--output", default="", choices=("wide", "name"), help="output format")
    add_bool_flag(r, "--namespaced", default=None,
                  help="only namespaced (true) or only cluster-scoped (false) resources")
    r.add_argument("--api-group", default=None, help='only this API group ("" for the core group)')
    r.add_argument("--no-headers", action="store_true", help="do not print the header line")
    r.set_defaults(func=lambda args: run(args, partial(api_resources, args)))


# --- version ---------------------------------------------------------------------------------------

def client_version() -> dict[str, str]:
    """Shaped like Kubernetes' ``version.Info``, for kubelite's own release."""
    major, minor = [*__version__.split("."), "0"][:2]
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {"major": major, "minor": minor, "gitVersion": f"v{__version__}", "gitCommit": "", "gitTreeState": "",
            "buildDate": "", "goVersion": f"python{platform.python_version()}", "compiler": "cpython",
            "platform": f"{sys.platform}/{arch}"}


def _print_versions(args: argparse.Namespace, out: Any, versions: dict[str, Any]) -> None:
    if args.output == "json":
        out.write(json.dumps(versions, indent=2) + "\n")
    elif args.output == "yaml":
        out.write(to_yaml(versions))
    else:
        out.write(f"Client Version: {versions['clientVersion']['gitVersion']}\n")
        if "serverVersion" in versions:
            out.write(f"Server Version: {versions['serverVersion'].get('gitVersion', '')}\n")


def _version_command(args: argparse.Namespace) -> int:
    if args.client:
        _print_versions(args, sys.stdout, {"clientVersion": client_version()})
        return 0
    return run(args, partial(version, args))


async def version(args: argparse.Namespace, s: Session) -> int:
    versions: dict[str, Any] = {"clientVersion": client_version()}
    try:
        versions["serverVersion"] = await s.client.request("GET", "/version")
    except TransportError:
        # kubectl still shows what it knows before reporting the unreachable server.
        _print_versions(args, s.out, versions)
        raise
    _print_versions(args, s.out, versions)
    return 0


# --- api-resources ---------------------------------------------------------------------------------

async def discover(s: Session) -> list[dict[str, Any]]:
    """Every served resource (no subresources) of each group's preferred version, each with its
    ``group`` and ``groupVersion``, sorted by group then name (kubectl's default order)."""
    found: list[dict[str, Any]] = []
    core = await s.client.request("GET", "/api")
    group_versions = [("", v) for v in core.get("versions") or []]
    groups = await s.client.request("GET", "/apis")
    for g in groups.get("groups") or []:
        preferred = (g.get("preferredVersion") or {}).get("groupVersion")
        if preferred:
            group_versions.append((g.get("name", ""), preferred))
    for group, gv in group_versions:
        doc = await s.client.request("GET", f"/api/{gv}" if not group else f"/apis/{gv}")
        for r in doc.get("resources") or []:
            if "/" not in r.get("name", ""):
                found.append({**r, "group": group, "groupVersion": gv})
    return sorted(found, key=lambda r: (r["group"], r["name"]))


async def api_resources(args: argparse.Namespace, s: Session) -> int:
    resources = [r for r in await discover(s)
                 if (args.namespaced is None or bool(r.get("namespaced")) == args.namespaced)
                 and (args.api_group is None or r["group"] == args.api_group)]
    if args.output == "name":
        for r in resources:
            s.out.write(f"{r['name']}.{r['group']}\n" if r["group"] else f"{r['name']}\n")
        return 0
    wide = args.output == "wide"
    lines = [] if args.no_headers else [
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"] + (["VERBS", "CATEGORIES"] if wide else [])]
    for r in resources:
        row = [r["name"], ",".join(r.get("shortNames") or []), r["groupVersion"],
               "true" if r.get("namespaced") else "false", r.get("kind", "")]
        if wide:
            row += [",".join(r.get("verbs") or []), ",".join(r.get("categories") or [])]
        lines.append(row)
    if lines:
        s.out.write(TabWriter(minwidth=6, padding=3).format("".join("\t".join(line) + "\n" for line in lines)))
    return 0
