"""The aiohttp handlers: index, documents, hash-pinned caching, redirects and 404s."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kubelite.apiserver.handlers.openapi import add_routes
from kubelite.apiserver.openapi import document


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    add_routes(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_index_points_at_every_document(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/openapi/v3")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    paths = (await resp.json())["paths"]
    for key, entry in paths.items():
        doc = await client.get(entry["serverRelativeURL"])
        assert doc.status == 200, key
        assert doc.headers["Cache-Control"] == "public, immutable"
        assert doc.headers["Vary"] == "Accept"
        assert "Expires" in doc.headers
        assert (await doc.read()) == document(key).body  # type: ignore[union-attr]


async def test_document_without_hash_is_not_pinned(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/openapi/v3/apis/apps/v1")
    assert resp.status == 200
    assert "Cache-Control" not in resp.headers
    doc = document("apis/apps/v1")
    assert doc is not None
    assert resp.headers["Etag"] == f'"{doc.hash}"'
    assert (await resp.json())["openapi"] == "3.0.0"


async def test_stale_hash_redirects_to_the_current_url(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/openapi/v3/api/v1?hash=OLD", allow_redirects=False)
    assert resp.status == 301
    doc = document("api/v1")
    assert doc is not None
    assert resp.headers["Location"] == doc.url


async def test_matching_etag_is_not_modified(client: TestClient[web.Request, web.Application]) -> None:
    doc = document("api/v1")
    assert doc is not None
    resp = await client.get("/openapi/v3/api/v1", headers={"If-None-Match": f'"{doc.hash}"'})
    assert resp.status == 304


async def test_unknown_group_version_is_a_404_status(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.get("/openapi/v3/apis/batch/v1")
    assert resp.status == 404
    body = await resp.json()
    assert body["kind"] == "Status"
    assert body["reason"] == "NotFound"
    assert body["code"] == 404
