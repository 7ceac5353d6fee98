"""A server restarted on the same data loses nothing, and a watch resumes from a resourceVersion taken
before the restart (on SQLite and on etcd)."""

from __future__ import annotations

import contextlib
import json
import shutil
import ssl
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.etcd import EtcdNotInstalled, etcd_server

from .conftest import Cluster, start_server, stop_server


def _request(c: Cluster, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(c.url + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {c.token()}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=c.ssl_context(), timeout=10) as r:
        return json.loads(r.read())


def _watch(c: Cluster, path: str, n: int, ctx: ssl.SSLContext) -> list[dict[str, Any]]:
    req = urllib.request.Request(c.url + path, headers={"Authorization": f"Bearer {c.token()}"})
    out = []
    with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
        for line in r:
            out.append(json.loads(line))
            if len(out) == n:
                break
    return out


@pytest.fixture(params=["sqlite", "etcd"])
def restartable(request: pytest.FixtureRequest) -> Iterator[tuple[Path, list[str]]]:
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-restart-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        extra: list[str] = []
        if request.param == "etcd":
            etcd = etcd_server()
            try:
                extra = ["--etcd-endpoints", etcd.start()]
            except EtcdNotInstalled as e:
                pytest.skip(str(e))
            stack.callback(etcd.stop)
        yield tmp, extra


def test_restart_keeps_objects_and_watch_resumes(restartable: tuple[Path, list[str]]) -> None:
    tmp, extra = restartable
    first = start_server(tmp, *extra)
    try:
        cm = _request(first, "POST", "/api/v1/namespaces/default/configmaps",
                      {"metadata": {"name": "keep"}, "data": {"a": "1"}})
        rv = cm["metadata"]["resourceVersion"]
        _request(first, "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "later"}})
    finally:
        stop_server(first)
    second = start_server(tmp, *extra)
    try:
        got = _request(second, "GET", "/api/v1/namespaces/default/configmaps/keep")
        assert got["data"] == {"a": "1"} and got["metadata"]["uid"] == cm["metadata"]["uid"]
        events = _watch(second, f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}", 1,
                        second.ssl_context())
        assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "later"
        names = {n["metadata"]["name"] for n in _request(second, "GET", "/api/v1/namespaces")["items"]}
        assert {"default", "kube-system"} <= names
    finally:
        stop_server(second)
