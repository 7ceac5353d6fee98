"""The ``store`` fixture: every contract test runs once per backend (see helpers.Backend)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelite.apiserver.storage import Store
from tests.unit.storage.helpers import Backend


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "sqlite":
        return Backend("sqlite", path=tmp_path / "state.db")
    url = request.getfixturevalue("etcd_url")
    # The session shares one etcd: each test works under a prefix of its own.
    return Backend("etcd", etcd_url=url, prefix=f"/test-{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.new_store()
    await s.start()
    try:
        yield s
    finally:
        await s.close()
