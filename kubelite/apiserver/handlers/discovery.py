"""Discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/{group}[/{version}]``.

kubectl asks ``/api`` and ``/apis`` for aggregated discovery (``apidiscovery.k8s.io/v2``) and recognises the
answer only by its Content-Type; everyone else (the Python client) gets the legacy documents. All documents
are built once from the kind registry.
"""

from __future__ import annotations

import hashlib
import platform
from functools import cache
from typing import Any

from aiohttp import web

from kubelite import __version__
from kubelite.api import errors
from kubelite.api.registry import Kind, groups, kinds_in

from .. import codec
from . import metrics
from .common import json_text

KUBE_VERSION = (1, 37, 0)
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

_SUB_VERBS = {"status": ["get", "patch", "update"], "finalize": ["update"], "scale": ["get", "patch", "update"],
              "binding": ["create"], "eviction": ["create"], "log": ["get"], "exec": ["create", "get"],
              "portforward": ["create", "get"]}
_SUB_KIND = {"scale": ("autoscaling", "v1", "Scale"), "binding": ("", "v1", "Binding"),
             "eviction": ("policy", "v1", "Eviction"), "log": ("", "v1", "Pod"),
             "exec": ("", "v1", "PodExecOptions"), "portforward": ("", "v1", "PodPortForwardOptions")}


def version_info() -> dict[str, str]:
    major, minor, patch = KUBE_VERSION
    return {"major": str(major), "minor": str(minor), "emulationMajor": str(major), "emulationMinor": str(minor),
            "gitVersion": f"v{major}.{minor}.{patch}+kubelite-{__version__}", "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "2026-11-30T00:00:00Z",
            "goVersion": f"python{platform.python_version()}",
            "compiler": "cpython", "platform": f"linux/{_arch()}"}


def _arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


def _resource_entries(kind: Kind) -> list[dict[str, Any]]:
    base = {"name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
            "kind": kind.kind, "verbs": list(kind.verbs)}
    if kind.short_names:
        base["shortNames"] = list(kind.short_names)
    if kind.categories:
        base["categories"] = list(kind.categories)
    base["storageVersionHash"] = hashlib.sha256(f"{kind.api_version}/{kind.kind}".encode()).hexdigest()[:11]
    out = [base]
    for sub in kind.subresources:
        entry: dict[str, Any] = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                                 "kind": _SUB_KIND.get(sub, ("", "", kind.kind))[2], "verbs": _SUB_VERBS[sub]}
        group, version, _ = _SUB_KIND.get(sub, ("", "", ""))
        if group:
            entry["group"], entry["version"] = group, version
        out.append(entry)
    return out


@cache
def resource_list(group: str, version: str) -> str:
    kinds = kinds_in(group, version)
    if not kinds:
        return ""
    return codec.dumps({"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": f"{group}/{version}" if group else version,
                        "resources": [e for k in kinds for e in _resource_entries(k)]})


def _group_entry(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


@cache
def legacy_api() -> str:
    return codec.dumps({"kind": "APIVersions", "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]})


@cache
def legacy_apis() -> str:
    return codec.dumps({"kind": "APIGroupList", "apiVersion": "v1",
                        "groups": [*(_group_entry(g, vs) for g, vs in groups().items() if g),
                                   metrics.legacy_group()]})


def _aggregated_resource(kind: Kind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": kind.plural, "singularResource": kind.singular,
        "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "scope": "Namespaced" if kind.namespaced else "Cluster", "verbs": list(kind.verbs),
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    subs = []
    for sub in kind.subresources:
        g, v, k = _SUB_KIND.get(sub, (kind.group, kind.version, kind.kind))
        subs.append({"subresource": sub, "responseKind": {"group": g, "version": v, "kind": k},
                     "verbs": _SUB_VERBS[sub]})
    if subs:
        entry["subresources"] = subs
    return entry


@cache
def aggregated(core: bool) -> str:
    items = []
    for g, versions in groups().items():
        if (g == "") != core:
            continue
        items.append({"metadata": {"name": g, "creationTimestamp": None},
                      "versions": [{"version": v, "freshness": "Current",
                                    "resources": [_aggregated_resource(k) for k in kinds_in(g, v)]}
                                   for v in versions]})
    if not core:
        items.append(metrics.aggregated_group())
    return codec.dumps({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                        "metadata": {}, "items": items})


def _wants_aggregated(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "g=apidiscovery.k8s.io" in accept and "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def _aggregated_response(core: bool) -> web.Response:
    resp = web.Response(text=aggregated(core))
    resp.headers["Content-Type"] = AGGREGATED
    resp.headers["Vary"] = "Accept"
    return resp


async def version(_request: web.Request) -> web.Response:
    return json_text(codec.dumps(version_info()))


async def api(request: web.Request) -> web.Response:
    return _aggregated_response(True) if _wants_aggregated(request) else json_text(legacy_api())


async def apis(request: web.Request) -> web.Response:
    return _aggregated_response(False) if _wants_aggregated(request) else json_text(legacy_apis())


async def api_version(request: web.Request) -> web.Response:
    body = resource_list("", request.match_info["version"])
    if not body:
        raise errors.not_found("", "")
    return json_text(body)


async def group(request: web.Request) -> web.Response:
    name = request.match_info["group"]
    versions = groups().get(name)
    if not name or versions is None:
        raise errors.not_found("", "")
    return json_text(codec.dumps({"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, versions)}))


async def group_version(request: web.Request) -> web.Response:
    body = resource_list(request.match_info["group"], request.match_info["version"])
    if not body:
        raise errors.not_found("", "")
    return json_text(body)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/version", version)
    app.router.add_get("/version/", version)
    app.router.add_get("/api", api)
    app.router.add_get("/api/", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/apis/", apis)
    app.router.add_get("/api/{version}", api_version)
    app.router.add_get("/api/{version}/", api_version)
    app.router.add_get("/apis/{group}", group)
    app.router.add_get("/apis/{group}/", group)
    app.router.add_get("/apis/{group}/{version}", group_version)
    app.router.add_get("/apis/{group}/{version}/", group_version)
