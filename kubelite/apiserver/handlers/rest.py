"""The REST verbs on every served kind: get, list, watch, create, update, patch, delete, deletecollection,
and the status, scale and binding subresources.

Paths are resolved with `common.parse_path`; object semantics live in `resources.Resources`; lists and
watches come from the watch cache (`watch.py`). Handlers only translate between HTTP and those calls.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from kubelite.api import errors, printers
from kubelite.api.registry import Kind
from kubelite.api.selectors import (
    parse_field_selector,
    parse_label_selector,
    validate_field_selector,
)

from .. import codec
from ..patch import apply_json_patch, apply_merge_patch, manager_from_user_agent
from ..resources import PATCH_TYPES, Resources, WriteOptions, scale_of
from ..storage.interface import Compacted
from ..watchcache import Predicate, WatchCache
from . import proxy, watch
from .common import (
    RequestInfo,
    check_acceptable,
    json_response,
    json_text,
    parse_path,
    query_bool,
    query_int,
    read_json_body,
    success_status,
    wants_table,
)


class RestHandler:
    """aiohttp handlers for ``/api/{version}/...`` and ``/apis/{group}/{version}/...``."""

    def __init__(self, resources: Resources, cache: WatchCache) -> None:
        self.resources = resources
        self.cache = cache

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{version}/{tail:.+}", self.core)
        app.router.add_route("*", "/apis/{group}/{version}/{tail:.+}", self.grouped)

    async def core(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, "", request.match_info["version"])

    async def grouped(self, request: web.Request) -> web.StreamResponse:
        return await self._dispatch(request, request.match_info["group"], request.match_info["version"])

    async def _dispatch(self, request: web.Request, group: str, version: str) -> web.StreamResponse:
        segments = request.match_info["tail"].split("/")
        legacy_watch = segments[0] == "watch"
        if legacy_watch:
            segments = segments[1:]
        info = parse_path(group, version, segments)
        if info.subresource in proxy.SUBRESOURCES:
            return await proxy.serve(request, info)
        check_acceptable(request)
        method = request.method
        if method == "GET":
            if info.name and not legacy_watch:
                return await self._get(request, info)
            if info.name:
                return await self._watch(request, info, single_name=info.name)
            if legacy_watch or query_bool(request, "watch"):
                return await self._watch(request, info)
            return await self._list(request, info)
        if method == "POST":
            if info.subresource == "binding":
                return await self._bind(request, info)
            if info.name:
                raise errors.method_not_allowed(f"POST is not supported on {info.kind.plural}/{info.name}")
            return await self._create(request, info)
        if method == "PUT":
            return await self._update(request, info)
        if method == "PATCH":
            return await self._patch(request, info)
        if method == "DELETE":
            if info.name:
                return await self._delete(request, info)
            return await self._delete_collection(request, info)
        raise errors.method_not_allowed(f"the server does not allow {method} on this path")

    # ---- reads -------------------------------------------------------------------------------------
    async def _get(self, request: web.Request, info: RequestInfo) -> web.Response:
        kind = info.kind
        obj = await self.resources.get(kind, info.namespace, info.name)
        if info.subresource == "scale":
            return json_response(scale_of(obj))
        if wants_table(request):
            return json_response(printers.table(kind, [obj], resource_version=obj["metadata"]["resourceVersion"],
                                                include_object=_include_object(request)))
        return json_response(obj)

    def _predicate(self, request: web.Request, info: RequestInfo) -> Predicate:
        kind = info.kind
        ns = info.namespace if kind.namespaced else None
        try:
            labels = parse_label_selector(request.query.get("labelSelector", ""))
        except ValueError as e:
            raise errors.bad_request(str(e)) from None
        try:
            fields = parse_field_selector(request.query.get("fieldSelector", ""))
            validate_field_selector(kind.kind, fields)
        except ValueError as e:
            raise errors.bad_request(str(e)) from None
        label_empty = not request.query.get("labelSelector")
        field_empty = not request.query.get("fieldSelector")

        def matches(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            if ns and meta.get("namespace") != ns:
                return False
            if not label_empty and not labels.matches(meta.get("labels") or {}):
                return False
            return field_empty or fields.matches(obj)

        return matches

    async def _list(self, request: web.Request, info: RequestInfo) -> web.Response:
        kind = info.kind
        matches = self._predicate(request, info)
        limit = query_int(request, "limit") or 0
        token = request.query.get("continue", "")
        rv_param = request.query.get("resourceVersion", "")
        prefix = kind.prefix(info.namespace if kind.namespaced else None)
        if token:
            revision, start = _decode_continue(token)
            try:
                kvs, _ = await self.resources.store.list(prefix, revision)
            except Compacted:
                raise errors.gone("The provided continue parameter is too old to display a consistent list "
                                  "result. You can start a new list without the continue parameter.") from None
            candidates = (codec.decode(kv) for kv in kvs if kv.key >= start)
            items_json, next_key = _page((o for o in candidates if matches(o)), limit, kind, revision)
        else:
            if rv_param in ("", None):
                revision = await self.cache.sync()
            else:
                try:
                    wanted = int(rv_param)
                except ValueError:
                    raise errors.bad_request(f'invalid resourceVersion "{rv_param}"') from None
                if not await self.cache.wait_for(wanted):
                    raise errors.timeout(f"Too large resource version: {wanted}, current: {self.cache.revision}")
                revision = self.cache.revision
            entries = (e for e in self.cache.cache(kind).objects(prefix) if matches(e.obj))
            items_json, next_key = _page(entries, limit, kind, revision, cached=True)
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if next_key:
            meta["continue"] = _encode_continue(revision, next_key)
        if wants_table(request):
            objs = [json.loads(i) for i in items_json]
            table = printers.table(kind, objs, resource_version=str(revision),
                                   include_object=_include_object(request),
                                   continue_token=meta.get("continue", ""))
            return json_response(table)
        head = codec.dumps({"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": meta})
        return json_text(head[:-1] + ',"items":[' + ",".join(items_json) + "]}")

    async def _watch(self, request: web.Request, info: RequestInfo, single_name: str = "") -> web.StreamResponse:
        matches = self._predicate(request, info)
        if single_name:
            inner = matches

            def matches(obj: dict[str, Any]) -> bool:
                return bool(obj["metadata"].get("name") == single_name and inner(obj))

        return await watch.serve(request, self.cache, self.resources.store, info.kind,
                                 info.namespace if info.kind.namespaced else None, matches)

    # ---- writes ------------------------------------------------------------------------------------
    def _options(self, request: web.Request) -> WriteOptions:
        dry = request.query.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise errors.bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
        return WriteOptions(
            field_manager=request.query.get("fieldManager")
            or manager_from_user_agent(request.headers.get("User-Agent", "")),
            manager_given=bool(request.query.get("fieldManager")),
            field_validation=request.query.get("fieldValidation", "Warn"),
            dry_run=bool(dry),
            force=query_bool(request, "force"),
        )

    def _render(self, request: web.Request, kind: Kind, obj: dict[str, Any], status: int,
                warnings: list[str]) -> web.Response:
        if wants_table(request):
            return json_response(printers.table(kind, [obj], resource_version=obj["metadata"].get(
                "resourceVersion", ""), include_object=_include_object(request)), status, warnings)
        return json_response(obj, status, warnings)

    async def _create(self, request: web.Request, info: RequestInfo) -> web.Response:
        if info.all_namespaces and info.kind.namespaced:
            raise errors.method_not_allowed(f"create of {info.kind.plural} needs a namespace in the path")
        opts = self._options(request)
        body = await read_json_body(request)
        obj = await self.resources.create(info.kind, info.namespace, body, opts)
        return self._render(request, info.kind, obj, 201, opts.warnings)

    async def _update(self, request: web.Request, info: RequestInfo) -> web.Response:
        if not info.name:
            raise errors.method_not_allowed("PUT needs an object name in the path")
        opts = self._options(request)
        body = await read_json_body(request)
        kind = info.kind
        if info.subresource == "scale":
            rv = ((body.get("metadata") or {}).get("resourceVersion") or "") if isinstance(body, dict) else ""
            scale = await self.resources.update_scale(kind, info.namespace, info.name, lambda _cur: body, opts, rv)
            return json_response(scale, 200, opts.warnings)
        if info.subresource not in ("", "status", "finalize"):
            raise errors.method_not_allowed(f"PUT is not supported on {kind.plural}/{info.subresource}")
        obj = await self.resources.update(kind, info.namespace, info.name, body, opts, info.subresource)
        return self._render(request, kind, obj, 200, opts.warnings)

    async def _patch(self, request: web.Request, info: RequestInfo) -> web.Response:
        if not info.name:
            raise errors.method_not_allowed("PATCH needs an object name in the path")
        media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        patch_type = PATCH_TYPES.get(media)
        if patch_type is None:
            raise errors.APIError(415, "UnsupportedMediaType", f'the server does not support the patch type '
                                  f'"{media}"; use one of {", ".join(PATCH_TYPES)}')
        opts = self._options(request)
        body = await read_json_body(request)
        kind = info.kind
        if info.subresource == "scale":
            if patch_type == "apply":
                raise errors.APIError(415, "UnsupportedMediaType", "apply is not supported on the scale subresource")

            def change(cur: dict[str, Any]) -> dict[str, Any]:
                patched = apply_json_patch(cur, body) if patch_type == "json" else apply_merge_patch(cur, body)
                if not isinstance(patched, dict):
                    raise errors.bad_request("the patch did not produce a Scale object")
                return patched

            rv = ((body.get("metadata") or {}).get("resourceVersion") or "") if isinstance(body, dict) else ""
            scale = await self.resources.update_scale(kind, info.namespace, info.name, change, opts, rv)
            return json_response(scale, 200, opts.warnings)
        if info.subresource not in ("", "status"):
            raise errors.method_not_allowed(f"PATCH is not supported on {kind.plural}/{info.subresource}")
        result = await self.resources.patch(kind, info.namespace, info.name, body, patch_type, opts,
                                            info.subresource)
        return self._render(request, kind, result.obj, 201 if result.created else 200, opts.warnings)

    async def _bind(self, request: web.Request, info: RequestInfo) -> web.Response:
        opts = self._options(request)
        body = await read_json_body(request)
        name = info.name or ((body or {}).get("metadata") or {}).get("name", "")
        await self.resources.bind(info.kind, info.namespace or "default", name, body, opts)
        return json_response(success_status(info.kind, name, 201), 201)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        body: Any = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                body = codec.read_body(raw, request.headers.get("Content-Type", ""))
        if not isinstance(body, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        options: dict[str, Any] = dict(body)
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        grace = query_int(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if "orphanDependents" in request.query:
            options["orphanDependents"] = query_bool(request, "orphanDependents")
        return options

    async def _delete(self, request: web.Request, info: RequestInfo) -> web.Response:
        if info.subresource:
            raise errors.method_not_allowed(f"DELETE is not supported on {info.kind.plural}/{info.subresource}")
        opts = self._options(request)
        options = await self._delete_options(request)
        obj, gone = await self.resources.delete(info.kind, info.namespace, info.name, options, opts)
        # 200 when the object is gone, 202 when it is only marked (finalizers, graceful termination).
        return json_response(obj, 200 if gone else 202)

    async def _delete_collection(self, request: web.Request, info: RequestInfo) -> web.Response:
        kind = info.kind
        if "deletecollection" not in kind.verbs:
            raise errors.method_not_allowed(f"deletecollection is not supported on {kind.plural}")
        matches = self._predicate(request, info)
        opts = self._options(request)
        options = await self._delete_options(request)
        await self.cache.sync()
        prefix = kind.prefix(info.namespace if kind.namespaced else None)
        targets = [e.obj for e in self.cache.cache(kind).objects(prefix) if matches(e.obj)]
        deleted = []
        for obj in targets:
            meta = obj["metadata"]
            try:
                obj, _ = await self.resources.delete(kind, meta.get("namespace"), meta["name"], options, opts)
                deleted.append(obj)
            except errors.APIError as e:
                if e.code != 404:
                    raise
        return json_response({"kind": kind.list_kind, "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(self.cache.revision)}, "items": deleted})


def _include_object(request: web.Request) -> str:
    return request.query.get("includeObject", "Object")


def _page(source: Any, limit: int, kind: Kind, revision: int, cached: bool = False) -> tuple[list[str], str]:
    """Up to ``limit`` items as JSON, and the key to continue from (empty when the list is complete)."""
    out: list[str] = []
    for item in source:
        obj = item.obj if cached else item
        if limit and len(out) == limit:
            meta = obj["metadata"]
            return out, kind.key(meta.get("namespace"), meta["name"])
        out.append(item.json if cached else codec.dumps(item))
    return out, ""


def _encode_continue(revision: int, start: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: the token could not be decoded") from None

