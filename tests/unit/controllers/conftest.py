"""Fixtures: the client tests' fake API server on loopback and a Client connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client
from tests.unit.client.fake_apiserver import FakeApiServer


@pytest.fixture
async def fake() -> AsyncIterator[FakeApiServer]:
    server = FakeApiServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def client(fake: FakeApiServer) -> AsyncIterator[Client]:
    async with Client(config_for_server(fake.url, namespace="default")) as c:
        yield c
