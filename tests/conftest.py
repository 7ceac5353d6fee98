"""Fixtures shared by the whole suite. Keep this file small: fixtures of one area live next to its tests."""

from __future__ import annotations

import os

# As the kubelite command does, before grpc is imported (see kubelite/cli/main.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

from collections.abc import Iterator

import pytest

from tests.support.etcd import EtcdNotInstalled, etcd_server


@pytest.fixture(scope="session")
def etcd_url() -> Iterator[str]:
    """The client URL of one real etcd for the whole session (tests share it through key prefixes)."""
    server = etcd_server()
    try:
        url = server.start()
    except EtcdNotInstalled as e:
        pytest.skip(str(e))
    try:
        yield url
    finally:
        server.stop()
