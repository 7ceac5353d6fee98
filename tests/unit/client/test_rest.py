from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import (
    PATCH_CONTENT_TYPES,
    AlreadyExists,
    ApiException,
    Client,
    Conflict,
    Gone,
    NotFound,
    TooManyRequests,
    TransportError,
    api_exception,
    is_already_exists,
    is_conflict,
    is_gone,
    is_not_found,
)
from tests.unit.client.fake_apiserver import FakeApiServer

POD = resolve("pods")
NS = resolve("namespaces")
DEPLOY = resolve("deployments")


def pod(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        md["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": {"containers": [{"name": "c"}]}}


async def test_crud_round_trip(client: Client, fake: FakeApiServer) -> None:
    created = await client.create(POD, pod("web", "prod"))
    assert meta.namespace(created) == "prod" and meta.uid(created)
    got = await client.get(POD, "web", "prod")
    assert got == created

    got["metadata"]["labels"] = {"app": "web"}
    updated = await client.update(POD, got)
    assert meta.labels(updated) == {"app": "web"}
    assert int(meta.resource_version(updated)) > int(meta.resource_version(created))

    updated["status"] = {"phase": "Running"}
    with_status = await client.update_status(POD, updated)
    assert with_status["status"] == {"phase": "Running"}
    assert fake.requests[-1].path == "/api/v1/namespaces/prod/pods/web/status"

    patched = await client.patch(POD, "web", {"metadata": {"labels": {"tier": "front"}}}, namespace="prod")
    assert meta.labels(patched) == {"app": "web", "tier": "front"}

    await client.delete(POD, "web", "prod", propagation_policy="Background", grace_period_seconds=0)
    assert json.loads(fake.requests[-1].body) == {
        "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background", "gracePeriodSeconds": 0}
    with pytest.raises(NotFound) as info:
        await client.get(POD, "web", "prod")
    assert is_not_found(info.value)
    assert info.value.message == 'pods "web" not found'
    assert info.value.body["kind"] == "Status" and info.value.details["name"] == "web"


async def test_namespace_defaults(client: Client, fake: FakeApiServer) -> None:
    await client.create(POD, pod("a"))  # neither argument nor object: the config's namespace
    assert fake.requests[-1].path == "/api/v1/namespaces/default/pods"
    await client.create(POD, pod("b", "team"))  # the object's own namespace
    assert fake.requests[-1].path == "/api/v1/namespaces/team/pods"
    await client.get(POD, "a")
    assert fake.requests[-1].path == "/api/v1/namespaces/default/pods/a"
    await client.create(NS, {"metadata": {"name": "team"}}, namespace="ignored")  # cluster-scoped
    assert fake.requests[-1].path == "/api/v1/namespaces"
    everywhere = await client.list(POD)  # list without a namespace spans all of them
    assert fake.requests[-1].path == "/api/v1/pods"
    assert sorted(meta.name(p) for p in everywhere["items"]) == ["a", "b"]


async def test_list_selectors_and_params(client: Client, fake: FakeApiServer) -> None:
    for name, app in (("a", "web"), ("b", "web"), ("c", "db")):
        fake.create(POD, pod(name, "default", {"app": app}))
    listed = await client.list(POD, "default", label_selector="app=web", limit=500)
    assert listed["kind"] == "PodList"
    assert listed["metadata"]["resourceVersion"] == str(fake.revision)
    assert [meta.name(p) for p in listed["items"]] == ["a", "b"]
    assert fake.requests[-1].query == {"labelSelector": "app=web", "limit": "500"}
    by_name = await client.list(POD, "default", field_selector="metadata.name=c")
    assert [meta.name(p) for p in by_name["items"]] == ["c"]
    empty = await client.list(DEPLOY, "default")
    assert empty["items"] == [] and empty["kind"] == "DeploymentList"
    assert fake.requests[-1].path == "/apis/apps/v1/namespaces/default/deployments"


async def test_write_params(client: Client, fake: FakeApiServer) -> None:
    await client.create(POD, pod("x"), field_manager="kubelite", dry_run=True)
    assert fake.requests[-1].query == {"fieldManager": "kubelite", "dryRun": "All"}
    assert fake.requests[-1].headers["Content-Type"] == "application/json"
    await client.delete_collection(POD, label_selector="app=web", propagation_policy="Foreground")
    assert fake.requests[-1].method == "DELETE"
    assert fake.requests[-1].path == "/api/v1/namespaces/default/pods"
    assert fake.requests[-1].query == {"labelSelector": "app=web"}


@pytest.mark.parametrize("patch_type", sorted(PATCH_CONTENT_TYPES))
async def test_patch_content_types(client: Client, fake: FakeApiServer, patch_type: Any) -> None:
    fake.create(DEPLOY, {"metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 1}})
    body: Any = [{"op": "replace", "path": "/spec/replicas", "value": 3}] if patch_type == "json" \
        else {"spec": {"replicas": 3}}
    await client.patch(DEPLOY, "d", body, patch_type, field_manager="mgr", force=True)
    sent = fake.requests[-1]
    assert sent.method == "PATCH"
    assert sent.headers["Content-Type"] == PATCH_CONTENT_TYPES[patch_type]
    assert json.loads(sent.body) == body
    expected = {"fieldManager": "mgr"}
    if patch_type == "apply":
        expected["force"] = "true"  # force only means something to server-side apply
    assert sent.query == expected


async def test_patch_subresource_and_validation(client: Client, fake: FakeApiServer) -> None:
    fake.create(DEPLOY, {"metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 1}})
    await client.patch(DEPLOY, "d", {"spec": {"replicas": 2}}, subresource="scale")
    assert fake.requests[-1].path == "/apis/apps/v1/namespaces/default/deployments/d/scale"
    with pytest.raises(ValueError, match="field_manager"):
        await client.patch(DEPLOY, "d", {}, "apply")
    with pytest.raises(ValueError, match="unknown patch type"):
        await client.patch(DEPLOY, "d", {}, "yaml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name is required"):
        await client.get(DEPLOY, "")


async def test_conflict_and_already_exists(client: Client) -> None:
    created = await client.create(POD, pod("p"))
    with pytest.raises(AlreadyExists) as exists:
        await client.create(POD, pod("p"))
    assert is_already_exists(exists.value) and not is_conflict(exists.value)
    assert exists.value.status == 409 and exists.value.reason == "AlreadyExists"

    await client.update(POD, created)
    with pytest.raises(Conflict) as conflict:
        await client.update(POD, created)  # the resourceVersion it carries is stale now
    assert is_conflict(conflict.value) and not is_already_exists(conflict.value)
    assert "the object has been modified" in conflict.value.message


def test_exception_from_non_status_body() -> None:
    e = api_exception(503, b"upstream connect error")
    assert type(e) is ApiException and e.status == 503
    assert e.reason == "ServiceUnavailable" and e.message == "upstream connect error" and e.body == {}
    gone = api_exception(410, b"")
    assert isinstance(gone, Gone) and is_gone(gone)
    expired = api_exception(410, json.dumps({"kind": "Status", "code": 410, "reason": "Expired",
                                             "message": "too old"}).encode())
    assert isinstance(expired, Gone) and expired.message == "too old"


async def test_retry_after_is_honoured(client: Client, fake: FakeApiServer) -> None:
    fake.fail_next(429, path_contains="/pods", times=2, reason="TooManyRequests", headers={"Retry-After": "0"})
    listed = await client.list(POD, "default")
    assert listed["items"] == []
    assert len(fake.requests) == 3

    fake.fail_next(503, times=1, headers={"Retry-After": "0"})  # a 5xx with Retry-After is retried too
    await client.list(POD, "default")

    fake.fail_next(500, times=1)  # but not a plain 500
    with pytest.raises(ApiException) as info:
        await client.list(POD, "default")
    assert info.value.status == 500


async def test_retries_are_bounded(fake: FakeApiServer) -> None:
    fake.fail_next(429, times=10, reason="TooManyRequests", headers={"Retry-After": "0"})
    async with Client(config_for_server(fake.url), max_retries=2) as client:
        with pytest.raises(TooManyRequests):
            await client.request("GET", "/version")
    assert len(fake.requests) == 3


async def test_raw_request_and_text_and_stream(client: Client, fake: FakeApiServer) -> None:
    version = await client.request("GET", "/version")
    assert version["gitVersion"] == "v1.37.0"
    fake.create(POD, pod("p", "default"))
    fake.logs["default/p"] = "line 1\nline 2\n"
    text = await client.request("GET", "/api/v1/namespaces/default/pods/p/log", params={"tailLines": "2"})
    assert text == "line 1\nline 2\n"
    assert fake.requests[-1].query == {"tailLines": "2"}
    chunks = [c async for c in client.stream("/api/v1/namespaces/default/pods/p/log")]
    assert b"".join(chunks) == b"line 1\nline 2\n"


async def test_auth_header_is_sent(fake: FakeApiServer) -> None:
    fake.require_token = "s3cret"
    async with Client(config_for_server(fake.url, token="wrong")) as client:
        with pytest.raises(ApiException) as info:
            await client.list(POD)
        assert info.value.status == 401
    async with Client(config_for_server(fake.url, token="s3cret")) as client:
        await client.list(POD)
    assert fake.requests[-1].headers["Authorization"] == "Bearer s3cret"
    assert fake.requests[-1].headers["User-Agent"] == "kubelite"


async def test_transport_errors() -> None:
    # A port nobody listens on: bind, learn the port, close.
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with Client(config_for_server(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(TransportError):
            await client.list(POD)
    with pytest.raises(RuntimeError, match="not open"):
        await Client(config_for_server("http://127.0.0.1:1")).list(POD)


# --- watch_raw -------------------------------------------------------------------------------------

async def next_event(stream: Any) -> dict[str, Any]:
    async with asyncio.timeout(5):
        event: dict[str, Any] = await anext(stream)
        return event


async def test_watch_raw_streams_events_and_bookmarks(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("before", "default"))
    rv = str(fake.revision)
    async with aclosing(client.watch_raw(POD, "default", rv, timeout_seconds=30)) as stream:
        fake.create(POD, pod("a", "default"))
        fake.create(POD, pod("elsewhere", "other"))  # not in the watched namespace
        big = pod("big", "default")
        big["metadata"]["annotations"] = {"blob": "x" * 300_000}  # one line far above aiohttp's line limit
        fake.create(POD, big)
        first = await next_event(stream)
        assert (first["type"], meta.name(first["object"])) == ("ADDED", "a")
        second = await next_event(stream)
        assert meta.name(second["object"]) == "big"
        assert len(second["object"]["metadata"]["annotations"]["blob"]) == 300_000
        fake.send_bookmark()
        bookmark = await next_event(stream)
        assert bookmark["type"] == "BOOKMARK"
        assert meta.resource_version(bookmark["object"]) == str(fake.revision)
        fake.delete(POD, "default", "a")
        deleted = await next_event(stream)
        assert deleted["type"] == "DELETED"
    q = fake.requests[-1].query
    assert q == {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "30"}
    assert fake.requests[-1].headers["Accept"] == "application/json"


async def test_watch_raw_ends_when_server_closes(client: Client, fake: FakeApiServer) -> None:
    events = []
    async with aclosing(client.watch_raw(POD, None, str(fake.revision))) as stream:
        fake.create(POD, pod("a", "default"))
        events.append(await next_event(stream))
        fake.drop_watches()
        async with asyncio.timeout(5):
            events.extend([e async for e in stream])
    assert [e["type"] for e in events] == ["ADDED"]


async def test_watch_raw_too_old(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a", "default"))
    fake.create(POD, pod("b", "default"))
    fake.compact()
    async with aclosing(client.watch_raw(POD, "default", "1")) as stream:  # as an ERROR event
        error = await next_event(stream)
    assert error["type"] == "ERROR" and error["object"]["code"] == 410
    fake.gone_as_event = False
    with pytest.raises(Gone):  # as an HTTP 410
        async with aclosing(client.watch_raw(POD, "default", "1")) as stream:
            await next_event(stream)


async def test_silent_watch_is_abandoned(client: Client, fake: FakeApiServer,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that vanished without closing the connection sends nothing, ever: after the timeout we asked
    # for plus a grace period, the client gives up. (Shrunk here: 1 s asked, 0.1 s of silence tolerated.)
    monkeypatch.setattr("kubelite.client.rest.WATCH_SILENCE_GRACE_SECONDS", -0.9)
    with pytest.raises(TransportError):
        async with aclosing(client.watch_raw(POD, "default", str(fake.revision), timeout_seconds=1)) as stream:
            await next_event(stream)
