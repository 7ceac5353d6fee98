"""``/openapi/v3`` and ``/openapi/v3/{group-version}``: the OpenAPI documents kubectl reads.

Served like kube-openapi's handler3: the index lists each document's URL with its content hash; a request
carrying the current ``hash`` may be cached forever (``Cache-Control: public, immutable``, one-year
``Expires``), one carrying a stale hash is redirected (301) to the current URL, and the ``Etag`` (the hash)
answers ``If-None-Match`` with 304. The documents are JSON whatever the Accept header asks for; kubectl's
openapi3 client asks for JSON. An unknown group-version is a 404 ``Status``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from aiohttp import web

from kubelite.api.errors import APIError
from kubelite.apiserver.openapi import document, index

JSON = "application/json"


def _not_found() -> web.Response:
    status = APIError(404, "NotFound", "the server could not find the requested resource").to_status()
    return web.json_response(status, status=404)


async def openapi_v3_index(request: web.Request) -> web.Response:
    """``GET /openapi/v3``: ``{"paths": {"apis/apps/v1": {"serverRelativeURL": ...}, ...}}``."""
    return web.Response(body=index(), content_type=JSON)


async def openapi_v3_document(request: web.Request) -> web.StreamResponse:
    """``GET /openapi/v3/{path}``: one group-version document (``api/v1``, ``apis/apps/v1``)."""
    doc = document(request.match_info["path"])
    if doc is None:
        return _not_found()
    headers = {"Etag": f'"{doc.hash}"'}
    wanted = request.query.get("hash")
    if wanted is not None:
        if wanted != doc.hash:
            raise web.HTTPMovedPermanently(doc.url)
        # The answer depends on Accept, so a cache must key on it; with the hash in the URL the body
        # never changes, so it may be kept for good.
        expires = datetime.now(UTC) + timedelta(days=365)
        headers.update({"Vary": "Accept", "Cache-Control": "public, immutable",
                        "Expires": format_datetime(expires, usegmt=True)})
    if doc.hash in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, content_type=JSON, headers=headers)


def add_routes(app: web.Application) -> None:
    """Register ``GET /openapi/v3`` and ``GET /openapi/v3/{path:.*}`` (HEAD included) on ``app``."""
    app.router.add_get("/openapi/v3", openapi_v3_index)
    app.router.add_get("/openapi/v3/{path:.*}", openapi_v3_document)
