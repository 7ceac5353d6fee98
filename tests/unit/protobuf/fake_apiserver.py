"""A throwaway API server that answers just enough discovery for kubectl and records what it posts.

It lets tests capture the exact protobuf bodies the real kubectl sends, without the real server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from kubelite.api import registry
from kubelite.api.errors import APIError
from kubelite.apiserver.protobuf import decode_k8s_protobuf

# Served here beyond kubelite's registry so that `kubectl create job|cronjob|role|...` find them.
_EXTRA = (
    registry.Kind("batch", "v1", "Job", "jobs", True),
    registry.Kind("batch", "v1", "CronJob", "cronjobs", True, ("cj",)),
    registry.Kind("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    registry.Kind("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    registry.Kind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    registry.Kind("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
)
_KINDS = (*registry.all_kinds(), *_EXTRA)


@dataclass
class Captured:
    """One write kubectl sent: method, path, query, content type and raw body."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: bytes


@dataclass
class FakeServer:
    url: str
    captured: list[Captured] = field(default_factory=list)

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "t"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                        "namespace": "default"}}],
        }))
        return path


def _resource_list(group: str, version: str) -> dict[str, Any]:
    kinds = [k for k in _KINDS if k.group == group and k.version == version]
    return {
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [{
            "name": k.plural, "singularName": k.singular, "namespaced": k.namespaced, "kind": k.kind,
            "verbs": list(k.verbs), "shortNames": list(k.short_names),
        } for k in kinds],
    }


def _app(server: FakeServer) -> web.Application:
    groups = sorted({k.group for k in _KINDS if k.group})

    async def version(_: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "37", "gitVersion": "v1.37.0"})

    async def api(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def apis(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"}} for g in groups]})

    async def core_resources(_: web.Request) -> web.Response:
        return web.json_response(_resource_list("", "v1"))

    async def group_resources(request: web.Request) -> web.Response:
        return web.json_response(_resource_list(request.match_info["group"], request.match_info["version"]))

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        server.captured.append(Captured(request.method, request.path, dict(request.query),
                                        request.headers.get("Content-Type", ""), body))
        try:
            obj = decode_k8s_protobuf(body) if "protobuf" in request.content_type else json.loads(body)
        except APIError as e:
            return web.json_response(e.to_status(), status=e.code)
        return web.json_response(obj, status=201)

    async def not_found(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404, "message": "not found"}, status=404)

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", core_resources)
    app.router.add_get("/apis/{group}/{version}", group_resources)
    app.router.add_post("/{tail:.*}", write)
    app.router.add_put("/{tail:.*}", write)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


@asynccontextmanager
async def fake_apiserver() -> AsyncIterator[FakeServer]:
    """Serve on an ephemeral loopback port until the block exits."""
    server = FakeServer("")
    runner = web.AppRunner(_app(server))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        server.url = f"http://127.0.0.1:{port}"
        yield server
    finally:
        await runner.cleanup()
