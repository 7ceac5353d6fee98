"""The API server in the test process, on the in-memory store, reached through aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore


@pytest.fixture
async def api() -> AsyncIterator[TestClient]:
    app = build_app(MemoryStore())
    async with TestClient(TestServer(app)) as client:
        yield client
