"""The API server in the test process, on the in-memory store, reached through aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client


@pytest.fixture
async def api() -> AsyncIterator[TestClient]:
    app = build_app(MemoryStore())
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def kclient() -> AsyncIterator[Client]:
    """kubelite's own Client to an API server in the test process (no controllers)."""
    server = TestServer(build_app(MemoryStore()))
    await server.start_server()
    try:
        async with Client(config_for_server(str(server.make_url("")))) as c:
            yield c
    finally:
        await server.close()
