"""Request parsing and response rendering shared by every REST handler.

`parse_path` turns a Kubernetes REST path into a `RequestInfo` (kind, namespace, name, subresource), the
way kube-apiserver's RequestInfoFactory does; `respond` renders an object as JSON or, when the client asked
for ``as=Table``, as a ``meta.k8s.io/v1`` Table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubelite.api import errors
from kubelite.api.registry import Kind, UnknownKind, by_resource

from .. import codec
from ..openapi.fields import warning_header

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class RequestInfo:
    kind: Kind
    namespace: str | None
    name: str
    subresource: str
    all_namespaces: bool


def parse_path(group: str, version: str, segments: list[str]) -> RequestInfo:
    """Resolve ``{plural}[/{name}[/{sub}]]`` or ``namespaces/{ns}/{plural}[/{name}[/{sub}]]``."""
    segs = [s for s in segments if s]
    if not segs:
        raise errors.not_found("", "")
    try:
        if segs[0] == "namespaces" and len(segs) >= 3:
            try:
                kind = by_resource(group, version, segs[2])
            except UnknownKind:
                kind = None
            if kind is not None and kind.namespaced:
                return _info(kind, segs[1], segs[3:])
            if group or version != "v1":
                raise UnknownKind(segs[2])
        kind = by_resource(group, version, segs[0])
    except UnknownKind:
        raise errors.not_found("", "") from None
    if kind.namespaced:
        if len(segs) > 1:
            raise errors.not_found("", "")
        return RequestInfo(kind, None, "", "", True)
    return _info(kind, None, segs[1:])


def _info(kind: Kind, namespace: str | None, rest: list[str]) -> RequestInfo:
    if len(rest) > 2:
        raise errors.not_found("", "")
    name = rest[0] if rest else ""
    sub = rest[1] if len(rest) > 1 else ""
    if sub and sub not in kind.subresources:
        raise errors.not_found(f"{kind.plural}/{sub}", name, kind.group)
    return RequestInfo(kind, namespace, name, sub, False)


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def check_acceptable(request: web.Request) -> None:
    """We answer JSON (and Tables as JSON). A client that accepts nothing JSON-like gets 406."""
    accept = request.headers.get("Accept", "")
    if not accept:
        return
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("application/json", "*/*", "application/*", "") or media.endswith("+json"):
            return
    raise errors.not_acceptable(f"only the following media types are accepted: application/json (asked: {accept})")


def json_text(text: str, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(text=text, status=status, content_type=JSON)
    for w in warnings or ():
        resp.headers.add("Warning", warning_header(w))
    return resp


def json_response(obj: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    return json_text(codec.dumps(obj), status, warnings)


def error_response(err: errors.APIError) -> web.Response:
    resp = json_response(err.to_status(), err.code)
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


def success_status(kind: Kind, name: str, code: int = 200) -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": kind.plural}
    if kind.group:
        details["group"] = kind.group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code,
            "details": details}


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true", "yes")


def query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.bad_request(f'{name}: invalid value "{raw}": must be an integer') from None


async def read_json_body(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > codec.MAX_BODY_BYTES:
        raise errors.too_large(f"the request body is {request.content_length} bytes, over the limit of "
                               f"{codec.MAX_BODY_BYTES}")
    raw = bytearray()
    # read(n) returns what has arrived so far, not n bytes: keep reading to the end of the body.
    while chunk := await request.content.read(codec.MAX_BODY_BYTES + 1 - len(raw)):
        raw += chunk
        if len(raw) > codec.MAX_BODY_BYTES:
            break
    return codec.read_body(bytes(raw), request.headers.get("Content-Type", ""))
