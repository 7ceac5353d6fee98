"""The Namespace controller's I/O against the client tests' fake API server: what it sends, in which order,
with and without the server's namespaces/finalize subresource."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from kubelite.api.registry import resolve
from kubelite.client.informer import InformerFactory
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client
from kubelite.controllers.namespace import NamespaceController
from tests.unit.client.fake_apiserver import FakeApiServer, Recorded
from tests.unit.client.helpers import eventually

NS = resolve("namespaces")
CM = resolve("configmaps")
NOW = "2025-01-01T00:00:00Z"


class FinalizingFake(FakeApiServer):
    """A fake whose /api/v1 discovery lists namespaces/finalize, and that serves PUT on namespaces/{name}/status
    (status only) and namespaces/{name}/finalize (the whole object, enough here)."""

    async def _route(self, request: web.Request, body: bytes) -> web.StreamResponse:
        if request.method == "GET" and request.path.rstrip("/") == "/api/v1":
            return web.json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "namespaces", "namespaced": False, "kind": "Namespace", "verbs": ["get"]},
                {"name": "namespaces/finalize", "namespaced": False, "kind": "Namespace", "verbs": ["update"]}]})
        parts = request.path.strip("/").split("/")
        if request.method == "PUT" and parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 5:
            return web.json_response(self.update(NS, json.loads(body), status_only=parts[4] == "status"))
        return await super()._route(request, body)


@pytest.fixture(params=[pytest.param(False, id="put"), pytest.param(True, id="finalize")])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[FakeApiServer]:
    fake = FinalizingFake() if request.param else FakeApiServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def controller(server: FakeApiServer) -> AsyncIterator[NamespaceController]:
    """A NamespaceController whose caches have synced; its workers do not run (tests call reconcile)."""
    async with Client(config_for_server(server.url)) as client:
        factory = InformerFactory(client)
        ctl = NamespaceController(client)
        ctl.setup(factory)
        async with factory:
            await factory.wait_for_cache_sync()
            yield ctl


def terminating(server: FakeApiServer, name: str = "doomed") -> None:
    server.create(NS, {"metadata": {"name": name, "deletionTimestamp": NOW},
                       "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})


def writes(server: FakeApiServer) -> list[Recorded]:
    return [r for r in server.requests if r.method != "GET"]


def body(r: Recorded) -> dict[str, Any]:
    return dict(json.loads(r.body))


async def test_active_namespace_is_left_alone(server: FakeApiServer, controller: NamespaceController) -> None:
    server.create(NS, {"metadata": {"name": "calm"}, "spec": {"finalizers": ["kubernetes"]}})
    server.create(CM, {"metadata": {"name": "c", "namespace": "calm"}})
    await eventually(lambda: controller._cached("calm") is not None)
    assert await controller.reconcile("calm") is None
    assert await controller.reconcile("missing") is None
    assert writes(server) == []


async def test_content_deleted_then_finalized(server: FakeApiServer, controller: NamespaceController) -> None:
    finalize_served = isinstance(server, FinalizingFake)
    server.create(CM, {"metadata": {"name": "keep", "namespace": "default"}})
    terminating(server)
    server.create(CM, {"metadata": {"name": "a", "namespace": "doomed"}})
    server.create(CM, {"metadata": {"name": "b", "namespace": "doomed"}})
    await eventually(lambda: controller._cached("doomed") is not None)

    assert await controller.reconcile("doomed") is None
    sent = writes(server)
    assert (sent[0].method, sent[0].path) == ("DELETE", "/api/v1/namespaces/doomed/configmaps")
    assert body(sent[0])["propagationPolicy"] == "Background"
    if finalize_served:
        assert [(r.method, r.path) for r in sent[1:]] == [("PUT", "/api/v1/namespaces/doomed/status"),
                                                         ("PUT", "/api/v1/namespaces/doomed/finalize")]
        conditions = {c["type"]: c for c in body(sent[1])["status"]["conditions"]}
        assert conditions["NamespaceContentRemaining"]["reason"] == "ContentRemoved"
    else:
        assert [(r.method, r.path) for r in sent[1:]] == [("PUT", "/api/v1/namespaces/doomed")]
    assert body(sent[-1])["spec"]["finalizers"] == []
    assert server.get(CM, "default", "keep") is not None
    assert server.get(CM, "doomed", "a") is None


async def test_waits_for_content_with_finalizers(server: FakeApiServer, controller: NamespaceController) -> None:
    terminating(server)
    server.create(CM, {"metadata": {"name": "held", "namespace": "doomed", "deletionTimestamp": NOW,
                                    "finalizers": ["example.com/hold"]}})
    await eventually(lambda: controller._cached("doomed") is not None)
    assert await controller.reconcile("doomed") == 15 / 2 + 1
    sent = writes(server)
    if isinstance(server, FinalizingFake):  # the conditions say why it waits
        assert [(r.method, r.path) for r in sent] == [("PUT", "/api/v1/namespaces/doomed/status")]
        conditions = {c["type"]: c for c in body(sent[0])["status"]["conditions"]}
        assert conditions["NamespaceFinalizersRemaining"]["status"] == "True"
    else:
        assert sent == []


async def test_failed_deletion_is_retried(server: FakeApiServer, controller: NamespaceController) -> None:
    terminating(server)
    server.create(CM, {"metadata": {"name": "a", "namespace": "doomed"}})
    await eventually(lambda: controller._cached("doomed") is not None)
    server.fail_next(500, method="DELETE", path_contains="configmaps")
    with pytest.raises(RuntimeError, match="unexpected error deleting /v1, Resource=configmaps in doomed"):
        await controller.reconcile("doomed")
    assert all(not r.path.endswith("/finalize") and r.path != "/api/v1/namespaces/doomed"
               for r in writes(server))


async def test_deleted_content_wakes_its_terminating_namespace(server: FakeApiServer,
                                                               controller: NamespaceController) -> None:
    server.create(NS, {"metadata": {"name": "calm"}})
    server.create(CM, {"metadata": {"name": "c", "namespace": "calm"}})
    terminating(server)
    server.create(CM, {"metadata": {"name": "c", "namespace": "doomed"}})
    await eventually(lambda: len(controller.queue) == 1)  # the terminating namespace, seen once
    key = await controller.queue.get()
    assert key == "doomed"
    controller.queue.done(key)
    server.delete(CM, "calm", "c")
    server.delete(CM, "doomed", "c")
    await eventually(lambda: len(controller.queue) == 1)
    assert await controller.queue.get() == "doomed"
