"""Watch semantics: resume from a resourceVersion, initial events, streaming lists, filters, 410."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from kubelite.apiserver import watchcache
from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore

CMS = "/api/v1/namespaces/default/configmaps"


async def read_events(resp: ClientResponse, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(timeout):
        while len(out) < n:
            line = await resp.content.readline()
            if not line:
                break
            out.append(json.loads(line))
    return out


async def create_cm(api: TestClient, name: str, **labels: str) -> dict[str, Any]:
    r = await api.post(CMS, json={"metadata": {"name": name, "labels": labels}, "data": {"k": name}})
    assert r.status == 201
    return dict(await r.json())


async def test_watch_from_resource_version(api: TestClient) -> None:
    first = await create_cm(api, "a")
    rv = first["metadata"]["resourceVersion"]
    await create_cm(api, "b")
    resp = await api.get(f"{CMS}?watch=true&resourceVersion={rv}")
    await create_cm(api, "c")
    await api.delete(f"{CMS}/b")
    events = await read_events(resp, 3)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"), ("ADDED", "c"), ("DELETED", "b")]
    revs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert revs == sorted(revs)
    resp.close()


async def test_watch_without_rv_sends_current_state(api: TestClient) -> None:
    await create_cm(api, "a")
    resp = await api.get(f"{CMS}?watch=true")
    events = await read_events(resp, 1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    resp.close()


async def test_streaming_list_ends_with_bookmark(api: TestClient) -> None:
    await create_cm(api, "a")
    await create_cm(api, "b")
    resp = await api.get(f"{CMS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
                         "&resourceVersionMatch=NotOlderThan&fieldSelector=metadata.name%3Da")
    events = await read_events(resp, 2)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "a"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true"
    await api.patch(f"{CMS}/a", data=json.dumps({"data": {"k": "v2"}}),
                    headers={"Content-Type": "application/merge-patch+json"})
    events = await read_events(resp, 1)
    assert events[0]["type"] == "MODIFIED" and events[0]["object"]["data"]["k"] == "v2"
    resp.close()


async def test_label_filter_transitions(api: TestClient) -> None:
    first = await create_cm(api, "a", app="x")
    rv = first["metadata"]["resourceVersion"]
    resp = await api.get(f"{CMS}?watch=true&labelSelector=app%3Dx&resourceVersion={rv}")
    await api.patch(f"{CMS}/a", data=json.dumps({"metadata": {"labels": {"app": "y"}}}),
                    headers={"Content-Type": "application/merge-patch+json"})
    await api.patch(f"{CMS}/a", data=json.dumps({"metadata": {"labels": {"app": "x"}}}),
                    headers={"Content-Type": "application/merge-patch+json"})
    events = await read_events(resp, 2)
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    resp.close()


async def test_too_old_resource_version_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny event window makes old resumes go to the store, where compaction has removed them.
    monkeypatch.setattr(watchcache, "EVENT_WINDOW", 2)
    store = MemoryStore()
    async with TestClient(TestServer(build_app(store))) as api:
        a = await create_cm(api, "a")
        for i in range(3):
            await create_cm(api, f"x{i}")
        resp = await api.get(f"{CMS}?watch=true&resourceVersion={a['metadata']['resourceVersion']}")
        events = await read_events(resp, 3)
        assert [e["object"]["metadata"]["name"] for e in events] == ["x0", "x1", "x2"]
        resp.close()
        await store.compact(await store.current_revision())
        resp = await api.get(f"{CMS}?watch=true&resourceVersion={a['metadata']['resourceVersion']}")
        events = await read_events(resp, 1)
        assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
        resp.close()


async def test_table_watch(api: TestClient) -> None:
    await create_cm(api, "a")
    resp = await api.get(f"{CMS}?watch=true",
                         headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    events = await read_events(resp, 1)
    obj = events[0]["object"]
    assert obj["kind"] == "Table" and obj["rows"][0]["cells"][0] == "a"
    resp.close()
