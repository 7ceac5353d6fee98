"""Wiring of the API server's aiohttp application: middlewares, routes, and the lifetime of the store and
the watch cache. Nothing here knows an object's semantics (that is `resources.py`).

Middleware order, outermost first: access log → Status errors → authentication → authorization.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from kubelite.api import errors
from kubelite.api.registry import all_kinds, by_resource

from . import codec
from .allocators import ServiceAllocator
from .auth.authn import USER_KEY, RequestAuthenticator, authn_middleware, request_user
from .auth.authz import Attributes, Authorizer, forbidden
from .handlers import discovery, metrics, openapi, proxy
from .handlers.common import error_response, json_text
from .handlers.rest import RestHandler
from .resources import Resources, WriteOptions
from .storage.interface import StorageError, Store, Unavailable
from .watchcache import WatchCache

log = logging.getLogger("kubelite.apiserver")
access_log = logging.getLogger("kubelite.apiserver.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STORE_KEY = web.AppKey("store", Store)
CACHE_KEY = web.AppKey("cache", WatchCache)
RESOURCES_KEY = web.AppKey("resources", Resources)

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    start = time.perf_counter()
    status = 500
    try:
        resp = await handler(request)
        status = resp.status
        return resp
    finally:
        if access_log.isEnabledFor(logging.INFO):
            user = request.get(USER_KEY)
            access_log.info("%s", codec.dumps({
                "verb": request.method, "path": request.path_qs, "code": status,
                "ms": round((time.perf_counter() - start) * 1000, 2), "user": getattr(user, "name", None),
                "ua": request.headers.get("User-Agent", "")}))


@web.middleware
async def status_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a Kubernetes Status with the right code; a bug is a 500 with a log line,
    never a traceback to the client."""
    try:
        return await handler(request)
    except errors.APIError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        reason = {404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge"}.get(e.status, "BadRequest")
        message = "the server could not find the requested resource" if e.status == 404 else (e.text or e.reason)
        return error_response(errors.APIError(e.status, reason, message))
    except Unavailable as e:
        return error_response(errors.service_unavailable(f"storage is unavailable: {e}"))
    except StorageError as e:
        log.exception("storage error on %s %s", request.method, request.path)
        return error_response(errors.internal(str(e)))
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception as e:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(errors.internal(f"{type(e).__name__}: {e}"))


def authz_middleware(authorizer: Authorizer) -> Any:
    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        user = request_user(request)
        attrs = request_attributes(request)
        decision = authorizer.authorize(user, attrs)
        if not decision.allowed:
            raise forbidden(user, attrs, decision.reason)
        return await handler(request)

    return authorize


_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def request_attributes(request: web.Request) -> Attributes:
    """What kube-apiserver's RequestInfoFactory derives from a request, enough for authorization."""
    parts = [p for p in request.path.split("/") if p]
    verb = _VERBS.get(request.method, request.method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return Attributes(verb=verb, path=request.path)
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    group = "" if parts[0] == "api" else (parts[1] if len(parts) > 1 else "")
    if rest and rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if resource == "namespaces" and name:
        namespace = name
    if request.method == "GET" and not name:
        verb = "watch" if request.query.get("watch", "").lower() in ("1", "true") else "list"
    if request.method == "DELETE" and not name:
        verb = "deletecollection"
    return Attributes(verb=verb, api_group=group, resource=resource, subresource=sub, namespace=namespace,
                      name=name, path=request.path)


async def _health(request: web.Request) -> web.Response:
    cache = request.app[CACHE_KEY]
    if cache.failed is not None:
        return web.Response(status=500, text=f"[-]watch-cache failed: {cache.failed}\nhealthz check failed\n")
    if request.query.get("verbose") is not None:
        return web.Response(text="[+]ping ok\n[+]etcd ok\n[+]watch-cache ok\nhealthz check passed\n")
    return web.Response(text="ok")


async def _not_found(_request: web.Request) -> web.Response:
    return json_text(codec.dumps(errors.not_found("", "").to_status()), 404)


async def bootstrap(resources: Resources) -> None:
    """Objects every cluster has from the start: the system namespaces."""
    ns_kind = by_resource("", "v1", "namespaces")
    for name in SYSTEM_NAMESPACES:
        try:
            await resources.create(ns_kind, None, {"metadata": {"name": name}},
                                   WriteOptions(field_manager="kubelite-apiserver"))
        except errors.APIError as e:
            if e.code != 409:
                raise


def build_app(store: Store, *, authenticator: RequestAuthenticator | None = None,
              authorizer: Authorizer | None = None, service_cidr: str = "10.96.0.0/12",
              node_port_range: tuple[int, int] = (30000, 32767),
              kubelet_client_ssl: ssl.SSLContext | None = None, ca_pem: bytes = b"") -> web.Application:
    """The API server application over ``store``. Without an authenticator every request is anonymous
    admin (in-process tests only); the real server always passes one."""
    middlewares: list[Any] = [access_middleware, status_middleware]
    if authenticator is not None:
        middlewares.append(authn_middleware(authenticator))
        if authorizer is not None:
            middlewares.append(authz_middleware(authorizer))
    app = web.Application(middlewares=middlewares, client_max_size=codec.MAX_BODY_BYTES)
    cache = WatchCache(store, all_kinds())
    resources = Resources(store, cache, ServiceAllocator(store, service_cidr=service_cidr,
                                                         node_ports=node_port_range))
    app[STORE_KEY] = store
    app[CACHE_KEY] = cache
    app[RESOURCES_KEY] = resources

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await store.start()
        await cache.start()
        await bootstrap(resources)
        released = await resources.allocator.repair(
            e.obj for e in cache.cache(by_resource("", "v1", "services")).entries.values())
        if released:
            log.info("released %d service IP/port allocations that no Service holds", released)
        yield
        await cache.stop()
        await store.close()

    async def on_shutdown(_app: web.Application) -> None:
        # End every watch stream so that graceful shutdown does not wait for them.
        for kc in cache.caches.values():
            for w in list(kc.watchers):
                w.close()

    app.cleanup_ctx.append(lifetime)
    app.on_shutdown.append(on_shutdown)
    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, _health)
        app.router.add_get(path + "/{check:.*}", _health)
    if ca_pem:
        async def cacerts(_request: web.Request) -> web.Response:
            # Public, as k3s's: a joining agent checks it against the hash in its join token.
            return web.Response(body=ca_pem, content_type="application/x-pem-file")

        app.router.add_get("/cacerts", cacerts)
    discovery.add_routes(app)
    openapi.add_routes(app)
    RestHandler(resources, cache).add_routes(app)
    connector = proxy.KubeletConnector(kubelet_client_ssl)
    proxy.install(app, resources, connector)
    metrics.install(app, resources, connector)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app
