"""A small in-process API server, just enough of Kubernetes' REST semantics to test the client against.

Implements, for every kind in the registry: list (label selectors with =, ==, !=, exists, !exists;
field selectors on metadata.name/namespace), get, create (409 AlreadyExists), update/status (409
Conflict on a stale resourceVersion), merge patch (other patch types are recorded and answered with
the object unchanged), delete, deletecollection, pods/log (text from `logs`), and watch from a
resourceVersion with bookmarks, timeoutSeconds and 410 Gone (as an HTTP answer or as an ERROR event)
for a compacted resourceVersion.

Test controls: `create`/`update`/`delete` directly (synchronously, no HTTP), `compact()`,
`send_bookmark()`, `drop_watches()`, `fail_next()` to inject error answers, and `requests`, a log of
what arrived.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubelite.api import errors, meta
from kubelite.api.registry import Kind, UnknownKind, by_resource

Obj = dict[str, Any]
_CLOSE = object()


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Event:
    rv: int
    type: str
    kind: Kind
    obj: Obj


@dataclass(eq=False)  # identity-hashed: kept in a set
class _Sub:
    kind: Kind
    namespace: str | None
    selector: str | None
    bookmarks: bool
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


@dataclass
class _Failure:
    method: str | None
    path_contains: str
    status: int
    body: Obj
    headers: dict[str, str]
    times: int


def selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in (t.strip() for t in (selector or "").split(",")):
        if not term:
            continue
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def field_matches(selector: str | None, obj: Obj) -> bool:
    values = {"metadata.name": meta.name(obj), "metadata.namespace": meta.namespace(obj)}
    for term in (t.strip() for t in (selector or "").split(",")):
        if not term:
            continue
        negate = "!=" in term
        k, v = term.replace("!=", "=").replace("==", "=").split("=", 1)
        if (values.get(k.strip(), "") == v.strip()) == negate:
            return False
    return True


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


class FakeApiServer:
    def __init__(self, *, gone_as_event: bool = True, require_token: str | None = None) -> None:
        self.gone_as_event = gone_as_event
        self.require_token = require_token
        self.revision = 1
        self.compacted = 0
        self.objects: dict[str, Obj] = {}
        self.log: list[_Event] = []
        self.requests: list[Recorded] = []
        self.logs: dict[str, str] = {}  # "ns/pod" -> what GET .../pods/pod/log answers
        self._subs: set[_Sub] = set()
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, handle_signals=False,
                                    handler_cancellation=True)  # a client hanging up ends its watch
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test controls -----------------------------------------------------------------------------

    def compact(self, revision: int | None = None) -> None:
        """Forget history up to ``revision`` (default: all): older watches get 410."""
        self.compacted = self.revision if revision is None else revision
        self.log = [e for e in self.log if e.rv > self.compacted]

    def send_bookmark(self) -> None:
        for sub in self._subs:
            if sub.bookmarks:
                bookmark = {"kind": sub.kind.kind, "apiVersion": sub.kind.api_version,
                            "metadata": {"resourceVersion": str(self.revision)}}
                sub.queue.put_nowait({"type": "BOOKMARK", "object": bookmark})

    def drop_watches(self) -> None:
        for sub in self._subs:
            sub.queue.put_nowait(_CLOSE)

    @property
    def watch_count(self) -> int:
        return len(self._subs)

    def fail_next(self, status: int, *, method: str | None = None, path_contains: str = "",
                  times: int = 1, reason: str = "", headers: dict[str, str] | None = None) -> None:
        body = errors.APIError(status, reason or "InternalError", f"injected {status}").to_status()
        self._failures.append(_Failure(method, path_contains, status, body, headers or {}, times))

    def create(self, kind: Kind, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        md = obj.setdefault("metadata", {})
        if not kind.namespaced:
            md.pop("namespace", None)
        skey = kind.key(meta.namespace(obj), meta.name(obj))
        if skey in self.objects:
            raise errors.already_exists(kind.plural, meta.name(obj), kind.group)
        self.revision += 1
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        md.update(uid=str(uuid.uuid4()), resourceVersion=str(self.revision),
                  creationTimestamp=meta.now_rfc3339(), generation=1)
        self.objects[skey] = obj
        self._emit("ADDED", kind, obj)
        return copy.deepcopy(obj)

    def update(self, kind: Kind, obj: Obj, *, status_only: bool = False) -> Obj:
        skey = kind.key(meta.namespace(obj), meta.name(obj))
        current = self.objects.get(skey)
        if current is None:
            raise errors.not_found(kind.plural, meta.name(obj), kind.group)
        rv = meta.resource_version(obj)
        if rv and rv != meta.resource_version(current):
            raise errors.conflict(kind.plural, meta.name(obj), kind.group)
        new = copy.deepcopy(current)
        if status_only:
            new["status"] = copy.deepcopy(obj.get("status"))
        else:
            new = copy.deepcopy(obj)
            new["metadata"] = {**current["metadata"], **obj.get("metadata", {})}
            new["apiVersion"], new["kind"] = kind.api_version, kind.kind
        self.revision += 1
        new["metadata"]["resourceVersion"] = str(self.revision)
        self.objects[skey] = new
        self._emit("MODIFIED", kind, new)
        return copy.deepcopy(new)

    def delete(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        skey = kind.key(namespace, name)
        obj = self.objects.pop(skey, None)
        if obj is None:
            raise errors.not_found(kind.plural, name, kind.group)
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        self._emit("DELETED", kind, obj)
        return copy.deepcopy(obj)

    def get(self, kind: Kind, namespace: str | None, name: str) -> Obj | None:
        return self.objects.get(kind.key(namespace, name))

    def _emit(self, etype: str, kind: Kind, obj: Obj) -> None:
        ev = _Event(self.revision, etype, kind, copy.deepcopy(obj))
        self.log.append(ev)
        for sub in self._subs:
            if self._sub_matches(sub, ev):
                sub.queue.put_nowait({"type": etype, "object": ev.obj})

    @staticmethod
    def _sub_matches(sub: _Sub, ev: _Event) -> bool:
        return (ev.kind == sub.kind and (not sub.namespace or meta.namespace(ev.obj) == sub.namespace)
                and selector_matches(sub.selector, meta.labels(ev.obj)))

    # --- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      dict(request.headers), body))
        for f in self._failures:
            if (f.method in (None, request.method) and f.path_contains in request.path) and f.times > 0:
                f.times -= 1
                return web.json_response(f.body, status=f.status, headers=f.headers)
        if self.require_token and request.headers.get("Authorization") != f"Bearer {self.require_token}":
            return _error(errors.unauthorized())
        try:
            return await self._route(request, body)
        except errors.APIError as e:
            return _error(e)

    async def _route(self, request: web.Request, body: bytes) -> web.StreamResponse:
        path = request.path.rstrip("/")
        if path == "/version":
            return web.json_response({"major": "1", "minor": "37", "gitVersion": "v1.37.0"})
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        try:
            kind = by_resource(group, version, rest[0])
        except (UnknownKind, IndexError):
            raise errors.APIError(404, "NotFound",
                                  "the server could not find the requested resource") from None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        q = request.query
        m = request.method
        if name is None:
            if m == "GET" and q.get("watch") in ("true", "1"):
                return await self._watch(request, kind, namespace)
            if m == "GET":
                return self._list(kind, namespace, q.get("labelSelector"), q.get("fieldSelector"))
            if m == "POST":
                obj = json.loads(body)
                if kind.namespaced:
                    obj.setdefault("metadata", {}).setdefault("namespace", namespace)
                return web.json_response(self.create(kind, obj), status=201)
            if m == "DELETE":
                selected = self._select(kind, namespace, q.get("labelSelector"), q.get("fieldSelector"))
                deleted = [self.delete(kind, meta.namespace(o), meta.name(o)) for o in selected]
                return web.json_response(self._list_body(kind, deleted))
        else:
            if m == "GET" and sub == "log":
                return web.Response(text=self.logs.get(meta.make_key(namespace, name), ""),
                                    content_type="text/plain")
            if m == "GET" and sub is None:
                obj = self.get(kind, namespace, name)
                if obj is None:
                    raise errors.not_found(kind.plural, name, kind.group)
                return web.json_response(obj)
            if m == "PUT":
                obj = json.loads(body)
                if kind.namespaced:
                    obj.setdefault("metadata", {}).setdefault("namespace", namespace)
                return web.json_response(self.update(kind, obj, status_only=sub == "status"))
            if m == "PATCH":
                current = self.get(kind, namespace, name)
                if current is None:
                    raise errors.not_found(kind.plural, name, kind.group)
                patched = copy.deepcopy(current)
                if request.content_type == "application/merge-patch+json":
                    patched = merge_patch(current, json.loads(body))
                    patched["metadata"]["resourceVersion"] = meta.resource_version(current)
                return web.json_response(self.update(kind, patched))
            if m == "DELETE":
                return web.json_response(self.delete(kind, namespace, name))
        raise errors.method_not_allowed(f"{m} is not supported here")

    def _select(self, kind: Kind, namespace: str | None, label_selector: str | None,
                field_selector: str | None) -> list[Obj]:
        return [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                if k.startswith(kind.prefix(namespace)) and selector_matches(label_selector, meta.labels(o))
                and field_matches(field_selector, o)]

    def _list_body(self, kind: Kind, items: list[Obj]) -> Obj:
        for item in items:  # as the real server does, items carry no kind/apiVersion
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {"kind": kind.list_kind, "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self.revision)}, "items": items}

    def _list(self, kind: Kind, namespace: str | None, label_selector: str | None,
              field_selector: str | None) -> web.Response:
        return web.json_response(self._list_body(kind, self._select(kind, namespace, label_selector,
                                                                    field_selector)))

    async def _watch(self, request: web.Request, kind: Kind, namespace: str | None) -> web.StreamResponse:
        q = request.query
        rv_text = q.get("resourceVersion", "")
        rv = int(rv_text) if rv_text not in ("", "0") else None
        expired = rv is not None and rv < self.compacted
        if expired and not self.gone_as_event:
            return _error(errors.gone(f"too old resource version: {rv} ({self.compacted})"))
        sub = _Sub(kind, namespace, q.get("labelSelector"), q.get("allowWatchBookmarks") == "true")
        if rv is None:
            current = self._select(kind, namespace, sub.selector, None)
            backlog = [{"type": "ADDED", "object": o} for o in current]
        else:
            backlog = [{"type": e.type, "object": e.obj} for e in self.log
                       if e.rv > rv and self._sub_matches(sub, e)]
        self._subs.add(sub)  # subscribed in the same step as the backlog was taken: no gap
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            if expired:
                status = errors.gone(f"too old resource version: {rv} ({self.compacted})").to_status()
                await resp.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                return resp
            for ev in backlog:
                await resp.write(json.dumps(ev).encode() + b"\n")
            timeout = float(q["timeoutSeconds"]) if "timeoutSeconds" in q else None
            async with asyncio.timeout(timeout):
                while True:
                    item = await sub.queue.get()
                    if item is _CLOSE:
                        break
                    await resp.write(json.dumps(item).encode() + b"\n")
        except (TimeoutError, ConnectionResetError):
            pass
        finally:
            self._subs.discard(sub)
        return resp


def _error(e: errors.APIError) -> web.Response:
    return web.json_response(e.to_status(), status=e.code, headers=e.headers)
