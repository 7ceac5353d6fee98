from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.rest import Client
from kubelite.client.watch import Backoff, Watcher, WatchEvent
from tests.unit.client.fake_apiserver import FakeApiServer
from tests.unit.client.helpers import eventually

POD = resolve("pods")
FAST = Backoff(initial=0.001, maximum=0.01)


def pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {}}


class Collector:
    """Drains a watcher in the background, as an informer would (the generator only runs when pulled)."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher
        self.queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _drain(self) -> None:
        async with aclosing(self.watcher.events()) as stream:
            async for ev in stream:
                self.queue.put_nowait(ev)

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._drain())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait({self._task})


async def take(stream: Collector, n: int) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    async with asyncio.timeout(5):
        for _ in range(n):
            ev = await stream.queue.get()
            out.append((ev.type, meta.name(ev.object), ev.tombstone))
    assert stream.queue.empty(), "more events than expected"
    return out


def watch_requests(fake: FakeApiServer) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.query.get("watch") == "true"]


async def test_list_then_watch(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    fake.create(POD, pod("b"))
    watcher = Watcher(client, POD, "default", backoff=FAST)
    async with Collector(watcher) as stream:
        assert await take(stream, 3) == [("ADDED", "a", False), ("ADDED", "b", False), ("SYNCED", "", False)]
        assert watcher.resource_version == str(fake.revision)
        await eventually(lambda: fake.watch_count == 1)
        fake.create(POD, pod("c"))
        current = fake.get(POD, "default", "a")
        assert current is not None
        fake.update(POD, {**current, "spec": {"x": 1}})
        fake.delete(POD, "default", "b")
        assert await take(stream, 3) == [("ADDED", "c", False), ("MODIFIED", "a", False), ("DELETED", "b", False)]
    assert watch_requests(fake)[0]["allowWatchBookmarks"] == "true"
    assert 300 <= int(watch_requests(fake)[0]["timeoutSeconds"]) <= 600


async def test_list_items_get_kind_and_api_version(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    async with Collector(Watcher(client, POD, backoff=FAST)) as stream:
        ev = await stream.queue.get()
    assert ev.object["kind"] == "Pod" and ev.object["apiVersion"] == "v1"


async def test_resumes_after_disconnect_without_gaps_or_repeats(client: Client, fake: FakeApiServer) -> None:
    watcher = Watcher(client, POD, "default", backoff=FAST)
    async with Collector(watcher) as stream:
        assert await take(stream, 1) == [("SYNCED", "", False)]
        await eventually(lambda: fake.watch_count == 1)
        fake.create(POD, pod("a"))
        assert await take(stream, 1) == [("ADDED", "a", False)]
        seen = watcher.resource_version
        fake.drop_watches()
        fake.create(POD, pod("b"))  # happens while no watch is open
        assert await take(stream, 1) == [("ADDED", "b", False)]
        fake.create(POD, pod("c"))
        assert await take(stream, 1) == [("ADDED", "c", False)]
    assert [q["resourceVersion"] for q in watch_requests(fake)][-1] == seen
    assert sum(1 for r in fake.requests if r.method == "GET" and "watch" not in r.query) == 1  # no relist


async def test_bookmarks_move_the_resume_point(client: Client, fake: FakeApiServer) -> None:
    watcher = Watcher(client, POD, "default", backoff=FAST)
    async with Collector(watcher) as stream:
        await take(stream, 1)
        await eventually(lambda: fake.watch_count == 1)
        fake.create(POD, pod("x", "elsewhere"))  # not ours: only a bookmark tells us time moved on
        fake.send_bookmark()
        await eventually(lambda: watcher.resource_version == str(fake.revision))
        fake.drop_watches()
        await eventually(lambda: len(watch_requests(fake)) == 2)
        fake.create(POD, pod("a"))
        assert await take(stream, 1) == [("ADDED", "a", False)]
    assert watch_requests(fake)[1]["resourceVersion"] == str(fake.revision - 1)


@pytest.mark.parametrize("gone_as_event", [pytest.param(True, id="error-event"),
                                           pytest.param(False, id="http-410")])
async def test_relist_after_410_emits_the_difference(client: Client, fake: FakeApiServer,
                                                     gone_as_event: bool) -> None:
    fake.gone_as_event = gone_as_event
    for name in ("keep", "change", "remove", "recreate"):
        fake.create(POD, pod(name))
    watcher = Watcher(client, POD, "default", backoff=FAST)
    async with Collector(watcher) as stream:
        assert len(await take(stream, 5)) == 5
        await eventually(lambda: fake.watch_count == 1)
        # All of this happens while the watch is down, and the history is then compacted away.
        fake.drop_watches()
        change = fake.get(POD, "default", "change")
        assert change is not None
        fake.update(POD, {**change, "spec": {"v": 2}})
        fake.delete(POD, "default", "remove")
        fake.delete(POD, "default", "recreate")
        fake.create(POD, pod("recreate"))
        fake.create(POD, pod("new"))
        fake.compact()
        events = await take(stream, 6)
        assert events == [  # vanished keys first, then in the new list's (name) order
            ("DELETED", "remove", True),
            ("MODIFIED", "change", False),
            ("ADDED", "new", False),
            ("DELETED", "recreate", True),  # a new uid under an old name: delete, then add
            ("ADDED", "recreate", False),
            ("SYNCED", "", False),
        ]
        # And it watches on from the fresh list.
        fake.create(POD, pod("later"))
        assert await take(stream, 1) == [("ADDED", "later", False)]


async def test_list_and_watch_failures_are_retried(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    fake.fail_next(500, method="GET", path_contains="/pods", times=2)  # the first two lists fail
    watcher = Watcher(client, POD, "default", backoff=FAST)
    async with Collector(watcher) as stream:
        assert await take(stream, 2) == [("ADDED", "a", False), ("SYNCED", "", False)]
        await eventually(lambda: fake.watch_count == 1)
        fake.fail_next(503, method="GET", path_contains="/pods", times=2)  # the next two watches fail
        fake.drop_watches()
        fake.create(POD, pod("b"))
        assert await take(stream, 1) == [("ADDED", "b", False)]
    assert len(watch_requests(fake)) == 4  # first watch, two failures, the one that worked


def test_backoff_grows_and_resets() -> None:
    b = Backoff(initial=1.0, maximum=4.0)
    delays = [b.next_delay() for _ in range(5)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and all(2.0 <= d <= 4.0 for d in delays[3:])
    b.reset()
    assert b.next_delay() <= 1.0
