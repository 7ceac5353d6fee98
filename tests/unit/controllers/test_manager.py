"""The controller manager's lifetime: setup, cache sync, workers, stop, and crashes that stop it loudly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelite.api.registry import resolve
from kubelite.client.events import EventBroadcaster
from kubelite.client.informer import InformerFactory, SharedInformer
from kubelite.client.rest import Client
from kubelite.controllers import Controller, ControllerCrashed, ControllerManager, default_controllers
from kubelite.controllers.context import ControllerContext
from tests.unit.client.fake_apiserver import FakeApiServer
from tests.unit.client.helpers import eventually

CM = resolve("configmaps")


class Probe:
    """A controller that records what the manager does with it; ``behaviour`` decides how its run ends."""

    def __init__(self, name: str, behaviour: str = "forever") -> None:
        self.name = name
        self.behaviour = behaviour
        self.informer: SharedInformer | None = None
        self.factory: InformerFactory | None = None
        self.ran_with: int | None = None
        self.synced_when_run: bool | None = None
        self.started = asyncio.Event()
        self.go = asyncio.Event()  # lets a test decide when a "crash" behaviour fires
        self.cancelled = False

    def setup(self, factory: InformerFactory) -> None:
        self.factory = factory
        self.informer = factory.informer(CM)

    async def run(self, workers: int) -> None:
        assert self.informer is not None
        self.ran_with = workers
        self.synced_when_run = self.informer.has_synced()
        self.started.set()
        try:
            await self.go.wait()
            if self.behaviour == "raise":
                raise ValueError("boom")
            if self.behaviour == "stop-informer":
                await self.informer.stop()
                await asyncio.Event().wait()
            if self.behaviour == "forever":
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise


async def started(*probes: Probe) -> None:
    async with asyncio.timeout(5):
        for p in probes:
            await p.started.wait()


def test_probe_is_a_controller() -> None:
    probe: Controller = Probe("p")
    assert probe.name == "p"


async def test_workers_start_after_sync_and_stop_cleanly(client: Client, fake: FakeApiServer) -> None:
    fake.create(CM, {"metadata": {"name": "a", "namespace": "default"}})
    a, b = Probe("a"), Probe("b")
    stop = asyncio.Event()
    manager = ControllerManager(client, controllers=[a, b], workers={"b": 5}, default_workers=3)
    running = asyncio.create_task(manager.run(stop))
    await started(a, b)
    assert a.factory is b.factory  # one shared factory ...
    assert a.informer is b.informer  # ... so one informer per kind
    assert (a.ran_with, b.ran_with) == (3, 5)
    assert a.synced_when_run and b.synced_when_run
    assert a.informer is not None and a.informer.get("default/a") is not None
    stop.set()
    async with asyncio.timeout(5):
        await running  # returns, no error
    assert a.cancelled and b.cancelled
    await eventually(lambda: fake.watch_count == 0)  # the informers' watches are closed


async def test_crashing_controller_stops_the_others(client: Client) -> None:
    bad, good = Probe("bad", "raise"), Probe("good")
    manager = ControllerManager(client, controllers=[bad, good])
    running = asyncio.create_task(manager.run(asyncio.Event()))
    await started(bad, good)
    bad.go.set()
    with pytest.raises(ControllerCrashed, match="controller bad crashed: boom") as info:
        async with asyncio.timeout(5):
            await running
    assert isinstance(info.value.__cause__, ValueError)
    assert good.cancelled


async def test_controller_returning_is_a_crash(client: Client) -> None:
    quitter = Probe("quitter", "return")
    quitter.go.set()
    with pytest.raises(ControllerCrashed, match="controller quitter stopped on its own"):
        async with asyncio.timeout(5):
            await ControllerManager(client, controllers=[quitter]).run(asyncio.Event())


async def test_dead_informer_is_a_crash(client: Client) -> None:
    probe = Probe("p", "stop-informer")
    probe.go.set()
    with pytest.raises(ControllerCrashed, match="the configmaps informer stopped"):
        async with asyncio.timeout(5):
            await ControllerManager(client, controllers=[probe]).run(asyncio.Event())
    assert probe.cancelled


async def test_stop_before_caches_sync(client: Client, fake: FakeApiServer) -> None:
    fake.fail_next(500, method="GET", path_contains="configmaps", times=10_000)
    probe = Probe("p")
    stop = asyncio.Event()
    running = asyncio.create_task(ControllerManager(client, controllers=[probe]).run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    async with asyncio.timeout(5):
        await running
    assert probe.ran_with is None  # never ran from a cache that had not synced


async def test_context_manager_returns_synced_and_reraises_a_crash_on_exit(client: Client) -> None:
    probe = Probe("p", "raise")
    with pytest.raises(ControllerCrashed):
        async with ControllerManager(client, controllers=[probe]) as manager:
            await started(probe)
            assert manager.running and probe.synced_when_run
            probe.go.set()
            async with asyncio.timeout(5):
                while manager.running:  # noqa: ASYNC110 - the crash is what we wait for
                    await asyncio.sleep(0.01)


async def test_context_manager_clean_exit(client: Client) -> None:
    probe = Probe("p")
    async with ControllerManager(client, controllers=[probe]) as manager:
        await started(probe)
    assert not manager.running and probe.cancelled


async def test_a_manager_runs_once(client: Client) -> None:
    manager = ControllerManager(client, controllers=[])
    stop = asyncio.Event()
    stop.set()
    await manager.run(stop)
    with pytest.raises(RuntimeError, match="already running or has run"):
        await manager.run(stop)


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"controllers": [Probe("x"), Probe("x")]}, "names must be unique", id="duplicate-names"),
    pytest.param({"controllers": [Probe("x")], "workers": {"y": 2}}, "unknown controllers", id="unknown-worker"),
    pytest.param({"controllers": [Probe("x")], "workers": {"x": 0}}, "at least one worker", id="zero-workers"),
])
async def test_configuration_errors(client: Client, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ControllerManager(client, **kwargs)


async def test_default_controllers(client: Client) -> None:
    ctx = ControllerContext(client, EventBroadcaster(client))
    assert [c.name for c in default_controllers(ctx)][:2] == ["namespace", "garbagecollector"]


async def test_cancelled_while_entering_leaves_nothing_running(client: Client, fake: FakeApiServer) -> None:
    fake.fail_next(500, method="GET", path_contains="configmaps", times=10_000)  # never syncs
    manager = ControllerManager(client, controllers=[Probe("p")])
    entering = asyncio.create_task(manager.__aenter__())
    await asyncio.sleep(0.05)
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert not manager.running
    await eventually(lambda: fake.watch_count == 0)
