"""A tiny aiohttp app for driving the real kubectl against the OpenAPI handlers: legacy discovery built
from the kind registry, the OpenAPI routes, and an in-memory object store that records each write and
applies ``fieldValidation=Strict`` with ``unknown_fields``/``strict_error``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubelite.api.registry import Kind, by_resource, groups, kinds_in
from kubelite.apiserver.handlers import openapi
from kubelite.apiserver.openapi import strict_error, unknown_fields


@dataclass
class Recorder:
    """Objects by (plural, name) and every write seen as (method, query, content type, body)."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, str], str, Any]] = field(default_factory=list)


def _resource(kind: Kind) -> dict[str, Any]:
    return {"name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
            "kind": kind.kind, "verbs": list(kind.verbs), "shortNames": list(kind.short_names)}


def _resource_list(group: str, version: str) -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [_resource(k) for k in kinds_in(group, version)]}


async def _version(request: web.Request) -> web.Response:
    return web.json_response({"major": "1", "minor": "37", "gitVersion": "v1.37.0"})


async def _api(request: web.Request) -> web.Response:
    return web.json_response({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})


async def _apis(request: web.Request) -> web.Response:
    out = []
    for group, versions in groups().items():
        if group:
            gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            out.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": out})


async def _core_resources(request: web.Request) -> web.Response:
    return web.json_response(_resource_list("", "v1"))


async def _group_resources(request: web.Request) -> web.Response:
    return web.json_response(_resource_list(request.match_info["group"], request.match_info["version"]))


def _objects(recorder: Recorder) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        info = request.match_info
        kind = by_resource(info.get("group", ""), info["version"], info["plural"])
        name = info.get("name", "")
        if request.method == "GET":
            obj = recorder.objects.get((kind.plural, name))
            if obj is None:
                return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                          "reason": "NotFound", "code": 404,
                                          "message": f'{kind.plural} "{name}" not found'}, status=404)
            return web.json_response(obj)
        body = await request.json()
        recorder.writes.append((request.method, dict(request.query), request.content_type, body))
        unknown = unknown_fields(kind, body) if request.method != "PATCH" else []
        if unknown and request.query.get("fieldValidation") == "Strict":
            return web.json_response(strict_error(kind, unknown).to_status(), status=400)
        if request.method == "POST":
            recorder.objects[(kind.plural, body["metadata"]["name"])] = body
            return web.json_response(body, status=201)
        return web.json_response(recorder.objects[(kind.plural, name)])

    return handle


def make_app(recorder: Recorder) -> web.Application:
    app = web.Application()
    openapi.add_routes(app)
    app.router.add_get("/version", _version)
    app.router.add_get("/api", _api)
    app.router.add_get("/apis", _apis)
    app.router.add_get("/api/v1", _core_resources)
    app.router.add_get("/apis/{group}/{version}", _group_resources)
    handle = _objects(recorder)
    for root in ("/api/{version}", "/apis/{group}/{version}"):
        app.router.add_route("*", root + "/namespaces/{namespace}/{plural}", handle)
        app.router.add_route("*", root + "/namespaces/{namespace}/{plural}/{name}", handle)
    return app

