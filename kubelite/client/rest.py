"""An async REST client for the Kubernetes API, keyed by `kubelite.api.registry.Kind`.

`Client` wraps one `aiohttp.ClientSession` (one connection pool) per API server and user. Objects go in
and come out as plain JSON dicts, exactly the Kubernetes wire form.

Namespaces: item operations (get, create, update, patch, delete) and delete_collection on a namespaced
kind use the namespace given, else the object's own (create/update), else the config's namespace.
``list`` and ``watch_raw`` with ``namespace=None`` span all namespaces. Cluster-scoped kinds ignore it.

Errors: a non-2xx answer raises `ApiException` (or the subclass for its reason, e.g. `NotFound`), built
from the `Status` body the server sent. A connection failure or a broken stream raises `TransportError`.
A 429, or a 5xx carrying Retry-After, is retried after the delay the server asked for, up to
``max_retries`` times (client-go's rule), then raised.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
from yarl import URL

from kubelite.api import meta
from kubelite.api.registry import Kind
from kubelite.client.kubeconfig import Config

log = logging.getLogger(__name__)

PatchType = Literal["merge", "json", "strategic", "apply"]
PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    # Server-side apply's body is YAML by media type; JSON is valid YAML.
    "apply": "application/apply-patch+yaml",
}
JSON = "application/json"
MAX_RETRY_AFTER_SECONDS = 60.0
# A watch that asked the server to end it after N seconds and has heard nothing for N + this long is
# talking to a server that is gone without closing the connection (no FIN): give up on it.
WATCH_SILENCE_GRACE_SECONDS = 60.0


# --- errors ----------------------------------------------------------------------------------------

class ApiException(Exception):
    """A non-2xx answer. ``body`` is the Status object (or ``{}`` when the server sent none)."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"({status} {reason}) {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body: dict[str, Any] = body or {}

    @property
    def details(self) -> dict[str, Any]:
        details = self.body.get("details")
        return details if isinstance(details, dict) else {}


class NotFound(ApiException):
    pass


class AlreadyExists(ApiException):
    pass


class Conflict(ApiException):
    """409 for a stale resourceVersion (reason Conflict); AlreadyExists has its own class."""


class Gone(ApiException):
    """410: the requested resourceVersion (or continue token) is older than the server keeps."""


class Invalid(ApiException):
    pass


class TooManyRequests(ApiException):
    pass


class TransportError(Exception):
    """The API server could not be reached, or a response/stream broke before it was complete."""


_BY_REASON: dict[str, type[ApiException]] = {
    "NotFound": NotFound, "AlreadyExists": AlreadyExists, "Conflict": Conflict, "Gone": Gone,
    "Expired": Gone, "Invalid": Invalid, "TooManyRequests": TooManyRequests,
}
_BY_STATUS: dict[int, type[ApiException]] = {
    404: NotFound, 409: Conflict, 410: Gone, 422: Invalid, 429: TooManyRequests,
}
# What apimachinery's client reports when a non-2xx answer carries no Status body.
_REASON_FOR_STATUS: dict[int, str] = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "Conflict", 410: "Gone", 413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
    503: "ServiceUnavailable", 504: "Timeout",
}


def api_exception(status: int, body: bytes) -> ApiException:
    """Build the exception for a non-2xx answer from its raw body."""
    parsed: Any = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        pass
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        reason = str(parsed.get("reason") or _REASON_FOR_STATUS.get(status, "Unknown"))
        message = str(parsed.get("message") or "")
        cls = _BY_REASON.get(reason) or _BY_STATUS.get(status, ApiException)
        return cls(int(parsed.get("code") or status), reason, message, parsed)
    reason = _REASON_FOR_STATUS.get(status, "Unknown")
    text = body.decode("utf-8", "replace").strip()
    message = text or f"the server responded with status {status}"
    return _BY_STATUS.get(status, ApiException)(status, reason, message, {})


def is_not_found(e: BaseException) -> bool:
    return isinstance(e, ApiException) and e.status == 404


def is_already_exists(e: BaseException) -> bool:
    return isinstance(e, ApiException) and e.status == 409 and e.reason == "AlreadyExists"


def is_conflict(e: BaseException) -> bool:
    """A stale-resourceVersion conflict (not AlreadyExists, which is also a 409)."""
    return isinstance(e, ApiException) and e.status == 409 and e.reason != "AlreadyExists"


def is_gone(e: BaseException) -> bool:
    return isinstance(e, ApiException) and e.status == 410


def is_invalid(e: BaseException) -> bool:
    return isinstance(e, ApiException) and e.status == 422


def is_forbidden(e: BaseException) -> bool:
    return isinstance(e, ApiException) and e.status == 403


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    """Seconds to wait when the answer asks for a retry (429, or 5xx with Retry-After), else None."""
    if resp.status != 429 and resp.status < 500:
        return None
    header = resp.headers.get("Retry-After")
    if header is None:
        return None
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return None


def _params(**values: str | int | bool | None) -> dict[str, str]:
    """Query parameters as strings, dropping the unset ones (aiohttp accepts str values only)."""
    out: dict[str, str] = {}
    for k, v in values.items():
        if v is None or v is False:
            continue
        out[k] = "true" if v is True else str(v)
    return out


# --- the client ------------------------------------------------------------------------------------

class Client:
    """An async context manager owning one HTTP session to the API server described by ``config``."""

    def __init__(
        self,
        config: Config,
        *,
        max_retries: int = 5,
        request_timeout: float | None = 60.0,
        connect_timeout: float = 30.0,
        pool_size: int = 100,
        user_agent: str = "kubelite",
    ) -> None:
        self.config = config
        self._max_retries = max_retries
        # Streams (watch, follow) do not use the total timeout: they last as long as they last.
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, sock_connect=connect_timeout)
        self._pool_size = pool_size
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def open(self) -> None:
        """Create the session (done by ``async with``); must run inside the event loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._pool_size,
                                             ssl=self.config.ssl_context or True)
            self._session = aiohttp.ClientSession(connector=connector,
                                                  headers={"User-Agent": self._user_agent})

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    # --- paths -------------------------------------------------------------------------------------

    def namespace_for(self, kind: Kind, namespace: str | None, obj: meta.Obj | None = None) -> str | None:
        """The namespace an item operation addresses (see module docstring); None when cluster-scoped."""
        if not kind.namespaced:
            return None
        return namespace or (meta.namespace(obj) if obj is not None else "") or self.config.namespace

    def item_path(self, kind: Kind, name: str, namespace: str | None, subresource: str | None = None) -> str:
        if not name:
            raise ValueError(f"a {kind.kind} name is required")
        path = f"{kind.base_path(self.namespace_for(kind, namespace))}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path

    # --- typed verbs -------------------------------------------------------------------------------

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        return await self._json("GET", self.item_path(kind, name, namespace))

    async def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        *,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """The `<Kind>List` (``items`` and ``metadata.resourceVersion``/``continue``)."""
        params = _params(labelSelector=label_selector, fieldSelector=field_selector, limit=limit,
                         resourceVersion=resource_version,
                         **{"continue": continue_token})
        return await self._json("GET", kind.base_path(namespace if kind.namespaced else None), params=params)

    async def create(
        self,
        kind: Kind,
        obj: meta.Obj,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        path = kind.base_path(self.namespace_for(kind, namespace, obj))
        params = _params(fieldManager=field_manager, dryRun="All" if dry_run else None)
        return await self._json("POST", path, params=params, body=obj)

    async def update(
        self,
        kind: Kind,
        obj: meta.Obj,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT the whole object; its metadata.resourceVersion makes it a compare-and-swap (409 if stale)."""
        return await self._put(kind, obj, namespace, None, field_manager, dry_run)

    async def update_status(
        self,
        kind: Kind,
        obj: meta.Obj,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        return await self._put(kind, obj, namespace, "status", field_manager, dry_run)

    async def _put(self, kind: Kind, obj: meta.Obj, namespace: str | None, subresource: str | None,
                   field_manager: str | None, dry_run: bool) -> dict[str, Any]:
        path = self.item_path(kind, meta.name(obj), self.namespace_for(kind, namespace, obj), subresource)
        params = _params(fieldManager=field_manager, dryRun="All" if dry_run else None)
        return await self._json("PUT", path, params=params, body=obj)

    async def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        patch_type: PatchType = "merge",
        namespace: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PATCH in one of the four flavours; ``apply`` (server-side apply) needs a ``field_manager``."""
        content_type = PATCH_CONTENT_TYPES.get(patch_type)
        if content_type is None:
            raise ValueError(f"unknown patch type {patch_type!r}; one of {sorted(PATCH_CONTENT_TYPES)}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply (patch_type='apply') requires a field_manager")
        params = _params(fieldManager=field_manager, force=force if patch_type == "apply" else None,
                         dryRun="All" if dry_run else None)
        return await self._json("PATCH", self.item_path(kind, name, namespace, subresource), params=params,
                                body=patch, content_type=content_type)

    async def delete(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """DELETE; returns the object (when finalizers keep it) or a Success Status.

        ``preconditions`` is DeleteOptions' ``{"uid": ..., "resourceVersion": ...}``.
        """
        options = _delete_options(propagation_policy, grace_period_seconds, preconditions, dry_run)
        return await self._json("DELETE", self.item_path(kind, name, namespace), body=options)

    async def delete_collection(
        self,
        kind: Kind,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        params = _params(labelSelector=label_selector, fieldSelector=field_selector)
        options = _delete_options(propagation_policy, grace_period_seconds, None, dry_run)
        return await self._json("DELETE", kind.base_path(self.namespace_for(kind, namespace)),
                                params=params, body=options)

    # --- raw access --------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = JSON,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any path (discovery, /version, subresources such as scale, binding or log).

        ``body`` is sent as JSON unless it is ``bytes``/``str``. Returns the decoded JSON when the answer
        is JSON, else its text (e.g. ``pods/log``).
        """
        async with self._response(method, path, params=params, body=body, content_type=content_type,
                                  accept=accept, headers=headers) as resp:
            raw = await self._read(resp)
            if "json" in resp.headers.get("Content-Type", ""):
                return _decode(raw)
            return raw.decode("utf-8", "replace")

    async def stream(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        accept: str = "*/*",
    ) -> AsyncGenerator[bytes, None]:
        """GET a long-lived response (``pods/x/log?follow=true``) and yield its bytes as they come."""
        async with self._response("GET", path, params=params, accept=accept, streaming=True) as resp:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except (TimeoutError, aiohttp.ClientError) as e:
                raise TransportError(f"stream {path} broke: {e}") from e

    async def watch_raw(
        self,
        kind: Kind,
        namespace: str | None = None,
        resource_version: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        allow_bookmarks: bool = True,
        timeout_seconds: int | None = None,
        accept: str = JSON,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Open a watch and yield each event dict (``{"type": ..., "object": ...}``) as it arrives.

        The stream has no total timeout; it ends when the server closes it (``timeout_seconds`` asks the
        server to, and a stream silent for longer than that plus a grace period raises `TransportError`).
        An ERROR event is yielded like any other: interpreting it is the caller's job
        (`kubelite.client.watch.Watcher` does). Close the generator (``contextlib.aclosing``) to stop.
        ``accept`` may ask for Table rows (``application/json;as=Table;v=v1;g=meta.k8s.io``), as
        ``kubectl get -w`` does.
        """
        params = _params(watch=True, resourceVersion=resource_version, labelSelector=label_selector,
                         fieldSelector=field_selector, allowWatchBookmarks=allow_bookmarks or None,
                         timeoutSeconds=timeout_seconds)
        path = kind.base_path(namespace if kind.namespaced else None)
        silence = None if timeout_seconds is None else timeout_seconds + WATCH_SILENCE_GRACE_SECONDS
        async with self._response("GET", path, params=params, accept=accept, streaming=True,
                                  read_timeout=silence) as resp:
            buffer = b""
            try:
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield _event(line)
            except (TimeoutError, aiohttp.ClientError) as e:
                raise TransportError(f"watch {path} broke: {e}") from e
            if buffer.strip():
                yield _event(buffer)

    # --- plumbing ----------------------------------------------------------------------------------

    async def _json(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                    body: Any = None, content_type: str = JSON) -> dict[str, Any]:
        async with self._response(method, path, params=params, body=body, content_type=content_type) as resp:
            decoded = _decode(await self._read(resp))
        if not isinstance(decoded, dict):
            raise TransportError(f"{method} {path}: expected a JSON object, got {type(decoded).__name__}")
        return decoded

    @staticmethod
    async def _read(resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except (TimeoutError, aiohttp.ClientError) as e:
            raise TransportError(f"{resp.method} {resp.url}: reading the response failed: {e}") from e

    @asynccontextmanager
    async def _response(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = JSON,
        headers: Mapping[str, str] | None = None,
        streaming: bool = False,
        read_timeout: float | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send one request (retrying as the server asks) and yield its 2xx response; raise otherwise."""
        if self._session is None:
            raise RuntimeError("Client is not open: use 'async with Client(config) as client'")
        data: bytes | None = None
        if body is not None:
            data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) \
                else json.dumps(body).encode()
        req_headers = {"Accept": accept, **self.config.auth_headers(), **(headers or {})}
        if data is not None:
            req_headers["Content-Type"] = content_type
        url = URL(self.config.server + path, encoded=True)
        timeout = self._timeout
        if streaming:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.sock_connect,
                                            sock_read=read_timeout)
        attempt = 0
        while True:
            try:
                resp = await self._session.request(
                    method, url, params=params, data=data, headers=req_headers,
                    timeout=timeout,
                    server_hostname=self.config.tls_server_name)
            except (TimeoutError, aiohttp.ClientError, OSError) as e:
                raise TransportError(f"{method} {self.config.server}{path}: {e or type(e).__name__}") from e
            try:
                if resp.status < 300:
                    yield resp
                    return
                delay = _retry_after(resp)
                raw = await self._read(resp)
            finally:
                resp.release()
            if delay is None or attempt >= self._max_retries:
                raise api_exception(resp.status, raw)
            attempt += 1
            log.debug("%s %s: %d, retrying in %.1fs (attempt %d)", method, path, resp.status, delay, attempt)
            await asyncio.sleep(delay)


def _delete_options(propagation_policy: str | None, grace_period_seconds: int | None,
                    preconditions: Mapping[str, str] | None, dry_run: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
    if propagation_policy:
        options["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if preconditions:
        options["preconditions"] = dict(preconditions)
    if dry_run:
        options["dryRun"] = ["All"]
    return options


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError as e:
        raise TransportError(f"the server sent invalid JSON: {raw[:200]!r}") from e


def _event(line: bytes) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError as e:
        raise TransportError(f"malformed watch event: {line[:200]!r}") from e
    if not isinstance(event, dict) or "type" not in event:
        raise TransportError(f"malformed watch event: {line[:200]!r}")
    return event
