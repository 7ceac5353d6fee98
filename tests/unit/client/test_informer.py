from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.client.informer import (
    DeletedFinalStateUnknown,
    Indexer,
    InformerFactory,
    SharedInformer,
    object_of,
)
from kubelite.client.rest import Client
from kubelite.client.watch import Backoff
from kubelite.client.workqueue import RateLimitingQueue, run_workers
from tests.unit.client.fake_apiserver import FakeApiServer
from tests.unit.client.helpers import eventually

POD = resolve("pods")
NODE = resolve("nodes")
FAST = Backoff(initial=0.001, maximum=0.01)


def pod(name: str, namespace: str = "default", node: str = "", **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "spec": {"nodeName": node}}


def by_node(obj: dict[str, Any]) -> list[str]:
    node = obj.get("spec", {}).get("nodeName")
    return [node] if node else []


class Recorder:
    """Handlers that record what they were told, as (event, name) pairs."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.deleted: list[dict[str, Any] | DeletedFinalStateUnknown] = []

    def on_add(self, obj: dict[str, Any]) -> None:
        self.seen.append(("add", meta.name(obj)))

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.seen.append(("update" if old is not new else "resync", meta.name(new)))

    def on_delete(self, obj: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        self.deleted.append(obj)
        self.seen.append(("delete", meta.name(object_of(obj))))

    def register(self, informer: SharedInformer) -> Recorder:
        informer.add_handler(self.on_add, self.on_update, self.on_delete)
        return self


async def test_sync_fills_cache_and_notifies(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a", node="n1"))
    fake.create(POD, pod("b", "other", node="n2"))
    informer = SharedInformer(client, POD, backoff=FAST)
    rec = Recorder().register(informer)
    assert not informer.has_synced()
    async with informer:
        async with asyncio.timeout(5):
            await informer.wait_synced()
        assert informer.has_synced()
        assert sorted(rec.seen) == [("add", "a"), ("add", "b")]
        assert sorted(informer.keys()) == ["default/a", "other/b"]
        got = informer.get("other/b")
        assert got is not None and got["kind"] == "Pod"
        assert informer.get_by_name("a", "default") is informer.get("default/a")
        assert [meta.name(p) for p in informer.list("other")] == ["b"]
        assert informer.resource_version == str(fake.revision)


async def test_live_events_reach_cache_then_handlers_in_order(client: Client, fake: FakeApiServer) -> None:
    informer = SharedInformer(client, POD, "default", backoff=FAST)
    rec = Recorder().register(informer)
    cache_at_add: list[bool] = []
    informer.add_handler(on_add=lambda obj: cache_at_add.append(informer.get(meta.key(obj)) is obj))
    async with informer:
        await informer.wait_synced()
        await eventually(lambda: fake.watch_count == 1)
        fake.create(POD, pod("a"))
        fake.create(POD, pod("elsewhere", "other"))
        current = fake.get(POD, "default", "a")
        assert current is not None
        fake.update(POD, {**current, "spec": {"nodeName": "n1"}})
        fake.delete(POD, "default", "a")
        await eventually(lambda: len(rec.seen) == 3)
    assert rec.seen == [("add", "a"), ("update", "a"), ("delete", "a")]
    assert not isinstance(rec.deleted[0], DeletedFinalStateUnknown)
    assert cache_at_add == [True]
    assert informer.get("default/a") is None


async def test_indexes(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a", node="n1"))
    fake.create(POD, pod("b", node="n1"))
    fake.create(POD, pod("c", "other", node="n2"))
    informer = SharedInformer(client, POD, backoff=FAST)
    informer.add_indexers({"byNode": by_node})
    async with informer:
        await informer.wait_synced()
        assert sorted(meta.name(p) for p in informer.by_index("byNode", "n1")) == ["a", "b"]
        assert sorted(meta.name(p) for p in informer.by_index("namespace", "default")) == ["a", "b"]
        await eventually(lambda: fake.watch_count == 1)
        b = fake.get(POD, "default", "b")
        assert b is not None
        fake.update(POD, {**b, "spec": {"nodeName": "n2"}})  # moves between index values
        fake.delete(POD, "default", "a")
        await eventually(lambda: informer.get("default/a") is None)
        assert informer.by_index("byNode", "n1") == []
        assert sorted(meta.name(p) for p in informer.by_index("byNode", "n2")) == ["b", "c"]
        # An index added late covers what is cached already.
        informer.add_indexers({"byName": lambda o: [meta.name(o)]})
        assert [meta.name(p) for p in informer.by_index("byName", "c")] == ["c"]
        with pytest.raises(KeyError):
            informer.by_index("nope", "x")
        with pytest.raises(ValueError, match="already exists"):
            informer.add_indexers({"byNode": by_node})


def test_indexer_unit() -> None:
    store = Indexer()
    store.add_indexers({"byNode": by_node})
    a = pod("a", node="n1")
    assert store.put("default/a", a) is None
    a2 = pod("a", node="n2")
    assert store.put("default/a", a2) is a
    assert store.by_index("byNode", "n1") == [] and store.by_index("byNode", "n2") == [a2]
    assert store.remove("default/a") is a2 and len(store) == 0
    assert store.by_index("byNode", "n2") == [] and store.remove("default/a") is None


async def test_late_handler_gets_existing_objects(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    async with SharedInformer(client, POD, backoff=FAST) as informer:
        await informer.wait_synced()
        rec = Recorder().register(informer)
        assert rec.seen == [("add", "a")]


async def test_relist_delivers_tombstones(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    fake.create(POD, pod("b"))
    informer = SharedInformer(client, POD, backoff=FAST)
    rec = Recorder().register(informer)
    async with informer:
        await informer.wait_synced()
        await eventually(lambda: fake.watch_count == 1)
        fake.drop_watches()
        last_a = fake.get(POD, "default", "a")
        fake.delete(POD, "default", "a")
        fake.create(POD, pod("c"))
        fake.compact()
        await eventually(lambda: len(rec.seen) == 4)
    assert rec.seen[2:] == [("delete", "a"), ("add", "c")]
    tombstone = rec.deleted[0]
    assert isinstance(tombstone, DeletedFinalStateUnknown)
    assert tombstone.key == "default/a" and tombstone.obj["metadata"]["uid"] == meta.uid(last_a or {})
    assert sorted(informer.keys()) == ["default/b", "default/c"]


async def test_label_selector_scopes_the_informer(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("web", app="web"))
    fake.create(POD, pod("db", app="db"))
    async with SharedInformer(client, POD, label_selector="app=web", backoff=FAST) as informer:
        await informer.wait_synced()
        assert informer.keys() == ["default/web"]


async def test_resync_and_handler_errors(client: Client, fake: FakeApiServer) -> None:
    fake.create(NODE, {"metadata": {"name": "n1"}})
    informer = SharedInformer(client, NODE, resync_period=0.01, backoff=FAST)

    def broken(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=broken)
    rec = Recorder().register(informer)
    async with informer:
        await informer.wait_synced()
        await eventually(lambda: rec.seen.count(("resync", "n1")) >= 2)
        assert informer.get("n1") is not None  # cluster-scoped key: the bare name
        await eventually(lambda: fake.watch_count == 1)
        fake.create(NODE, {"metadata": {"name": "n2"}})  # still running despite the broken handler
        await eventually(lambda: ("add", "n2") in rec.seen)


async def test_crash_is_loud(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    informer = SharedInformer(client, POD, backoff=FAST)

    def bad_index(obj: dict[str, Any]) -> list[str]:
        raise ValueError("index bug")

    informer.add_indexers({"bad": bad_index})
    informer.start()
    with pytest.raises(RuntimeError, match="stopped before it synced"):
        await informer.wait_synced()
    with pytest.raises(ValueError, match="index bug"):
        await informer.stop()


async def test_run_twice_is_refused(client: Client) -> None:
    async with SharedInformer(client, NODE, backoff=FAST) as informer:
        await informer.wait_synced()
        with pytest.raises(RuntimeError, match="already running"):
            await informer.run()


async def test_factory_shares_informers(client: Client, fake: FakeApiServer) -> None:
    fake.create(POD, pod("a"))
    fake.create(NODE, {"metadata": {"name": "n1"}})
    factory = InformerFactory(client, backoff=FAST)
    pods = factory.informer(POD)
    assert factory.informer(POD) is pods
    assert factory.informer(POD, "default") is not pods
    assert factory.informer(POD, label_selector="a=b") is not pods
    async with factory:
        nodes = factory.informer(NODE)  # asked for after start: starts at once
        async with asyncio.timeout(5):
            await factory.wait_for_cache_sync()
        assert nodes.has_synced() and pods.has_synced()
        assert [meta.name(n) for n in nodes.list()] == ["n1"]
    await eventually(lambda: fake.watch_count == 0)


async def test_controller_pattern(client: Client, fake: FakeApiServer) -> None:
    """Handlers enqueue keys, workers reconcile from the cache: the shape every controller has."""
    queue: RateLimitingQueue[str] = RateLimitingQueue("pods")
    factory = InformerFactory(client, backoff=FAST)
    pods = factory.informer(POD)
    pods.add_handler(on_add=lambda o: queue.add(meta.key(o)),
                     on_update=lambda old, new: queue.add(meta.key(new)),
                     on_delete=lambda o: queue.add(meta.key(object_of(o))))
    state: dict[str, str] = {}

    async def reconcile(key: str) -> None:
        obj = pods.get(key)
        if obj is None:
            state.pop(key, None)
        else:
            state[key] = obj["spec"]["nodeName"]

    fake.create(POD, pod("a", node="n1"))
    async with factory:
        await factory.wait_for_cache_sync()
        workers = asyncio.create_task(run_workers(queue, reconcile, workers=2))
        await eventually(lambda: fake.watch_count == 1)
        fake.create(POD, pod("b", node="n2"))
        fake.delete(POD, "default", "a")
        await eventually(lambda: state == {"default/b": "n2"})
        queue.shutdown()
        async with asyncio.timeout(5):
            await workers
