"""The controller manager: one set of shared informers, every controller's workers, one structured lifetime.

`ControllerManager.run(stop)`:
1. creates one `InformerFactory` and hands it to every controller's ``setup(factory)``, where the controller
   asks for the informers it reads and registers the handlers that enqueue its keys;
2. starts every informer and waits until all caches hold a full list (no worker reconciles from a
   half-filled cache);
3. runs every controller's ``run(workers)`` and a watchdog per informer in one `asyncio.TaskGroup`, until
   ``stop`` is set.

A controller's ``run`` returning or raising, or an informer dying, is a crash: the manager logs it, stops
every other controller and raises `ControllerCrashed` (STYLE point 7: never half alive). Failures *inside*
a reconcile are not crashes: the controller's work queue retries the key with backoff.

Leader election (a Lease, client/leaderelection.py, later) will wrap `_run_controllers`: campaign first,
run while leading, and stop (raise) when the lease is lost, so that only one manager acts at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol

from kubelite.api.registry import Kind
from kubelite.client.events import EventBroadcaster
from kubelite.client.informer import InformerFactory, SharedInformer
from kubelite.client.leaderelection import run_with_leader_election
from kubelite.client.rest import Client
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.deployment import DeploymentController
from kubelite.controllers.endpoints import EndpointsController
from kubelite.controllers.endpointslice import EndpointSliceController
from kubelite.controllers.gc import GarbageCollector
from kubelite.controllers.namespace import NamespaceController
from kubelite.controllers.nodeipam import NodeIpamController
from kubelite.controllers.nodelifecycle import NodeLifecycleController
from kubelite.controllers.replicaset import ReplicaSetController

log = logging.getLogger(__name__)

DEFAULT_WORKERS = 2
# Level-triggered controllers re-check everything this often, so that work a missed or mis-ordered
# event left undone is picked up again (client-go's resync).
DEFAULT_RESYNC_SECONDS = 300.0


class Controller(Protocol):
    """What plugs into the manager.

    ``setup`` is called once, before any informer runs: ask ``factory`` for informers and add handlers
    (handlers only enqueue keys). ``run`` is called once every cache has synced and runs ``workers``
    concurrent reconcilers until cancelled; it must not return.
    """

    name: str

    def setup(self, factory: InformerFactory) -> None: ...

    async def run(self, workers: int) -> None: ...


class ControllerCrashed(Exception):
    """A controller (or an informer it depends on) stopped on its own; ``__cause__`` is why."""


class _Stopped(Exception):
    """Raised inside the task group when ``stop`` is set, to end every task in it."""


class _WatchedFactory(InformerFactory):
    """An `InformerFactory` that remembers the informers it hands out, so that the manager can watch over
    them (the factory only re-raises an informer's failure when it is stopped)."""

    def __init__(self, client: Client, *, resync_period: float | None) -> None:
        super().__init__(client, resync_period=resync_period)
        self.handed_out: list[SharedInformer] = []
        self._task_group: asyncio.TaskGroup | None = None

    def informer(self, kind: Kind, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> SharedInformer:
        inf = super().informer(kind, namespace, label_selector, field_selector)
        if not any(inf is known for known in self.handed_out):
            self.handed_out.append(inf)
            if self._task_group is not None:
                self._task_group.create_task(_watch_informer(inf), name=f"watch-informer-{kind.plural}")
        return inf

    def watch_all(self, task_group: asyncio.TaskGroup) -> None:
        """Watch every informer handed out so far, and from now on every new one, in ``task_group``."""
        self._task_group = task_group
        for inf in self.handed_out:
            task_group.create_task(_watch_informer(inf), name=f"watch-informer-{inf.kind.plural}")


async def _watch_informer(inf: SharedInformer) -> None:
    """Return never; raise `ControllerCrashed` when the informer's task ends on its own."""
    task = inf.start()  # idempotent: the task the factory started
    await asyncio.wait({task})
    cause = None if task.cancelled() else task.exception()
    raise ControllerCrashed(f"the {inf.kind.plural} informer stopped") from cause


class ControllerManager:
    """Runs ``controllers`` (default: `default_controllers`) against ``client``; see the module docstring.

    Use ``await manager.run(stop)``, or ``async with manager:`` which returns once every cache has synced
    and, on exit, stops the controllers and re-raises a crash that happened meanwhile.
    """

    def __init__(
        self,
        client: Client,
        *,
        controllers: Sequence[Controller] | Callable[[ControllerContext], Sequence[Controller]] | None = None,
        options: ControllerOptions | None = None,
        workers: Mapping[str, int] | None = None,
        default_workers: int = DEFAULT_WORKERS,
        resync_period: float | None = DEFAULT_RESYNC_SECONDS,
    ) -> None:
        self.client = client
        self.events = EventBroadcaster(client)
        self.context = ControllerContext(client, self.events, options or ControllerOptions())
        if controllers is None:
            controllers = default_controllers
        self.controllers: tuple[Controller, ...] = tuple(
            controllers(self.context) if callable(controllers) else controllers)
        names = [c.name for c in self.controllers]
        if len(set(names)) != len(names):
            raise ValueError(f"controller names must be unique, got {names}")
        unknown = set(workers or {}) - set(names)
        if unknown:
            raise ValueError(f"workers given for unknown controllers: {sorted(unknown)}")
        self._workers = {name: (workers or {}).get(name, default_workers) for name in names}
        if any(n < 1 for n in self._workers.values()):
            raise ValueError("every controller needs at least one worker")
        self._resync_period = resync_period
        self._running = False
        self._synced = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- the lifetime ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (then return), or raise `ControllerCrashed` when something dies.

        A manager runs once: its controllers' informers and queues are set up for one lifetime.
        """
        if self._running:
            raise RuntimeError("this ControllerManager is already running or has run")
        self._running = True
        await self._run_controllers(stop)

    async def _run_controllers(self, stop: asyncio.Event) -> None:
        factory = _WatchedFactory(self.client, resync_period=self._resync_period)
        for controller in self.controllers:
            controller.setup(factory)
        failure: BaseException | None = None
        try:
            async with self.events, factory, asyncio.TaskGroup() as tg:
                factory.watch_all(tg)
                tg.create_task(self._wait_stop(stop), name="controller-manager-stop")
                await factory.wait_for_cache_sync()
                log.info("controller manager: caches synced, starting %s", ", ".join(self._workers))
                self._synced.set()
                for controller in self.controllers:
                    tg.create_task(self._run_one(controller), name=f"controller-{controller.name}")
        except BaseExceptionGroup as group:
            failures = [e for e in group.exceptions if not isinstance(e, _Stopped)]
            for extra in failures[1:]:
                log.error("controller manager: another failure while stopping: %r", extra)
            failure = failures[0] if failures else None
        if failure is not None:
            raise failure  # outside the except block: no ExceptionGroup context chained onto it

    @staticmethod
    async def _wait_stop(stop: asyncio.Event) -> None:
        await stop.wait()
        raise _Stopped

    async def _run_one(self, controller: Controller) -> None:
        try:
            await controller.run(self._workers[controller.name])
        except Exception as e:
            log.critical("controller %s crashed; stopping the controller manager", controller.name, exc_info=True)
            raise ControllerCrashed(f"controller {controller.name} crashed: {e}") from e
        log.critical("controller %s returned; stopping the controller manager", controller.name)
        raise ControllerCrashed(f"controller {controller.name} stopped on its own")

    # --- async context manager ---------------------------------------------------------------------

    async def __aenter__(self) -> ControllerManager:
        if self._running:
            raise RuntimeError("this ControllerManager is already running or has run")
        self._running = True
        task = self._task = asyncio.create_task(self._run_controllers(self._stop), name="controller-manager")
        synced = asyncio.create_task(self._synced.wait())
        try:
            await asyncio.wait({synced, task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # we were cancelled while waiting: leave nothing running behind
            self._task = None
            task.cancel()
            await asyncio.wait({task})
            raise
        finally:
            synced.cancel()
        if not self._synced.is_set():
            # It ended before its caches synced: surface why.
            self._task = None
            await task
            raise ControllerCrashed("the controller manager stopped before its caches synced")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        await asyncio.wait({task})
        if task.cancelled():
            return
        failure = task.exception()
        if failure is None:
            return
        if exc is not None:
            log.error("controller manager failed while its owner was failing: %r", failure, exc_info=failure)
            return
        raise failure

    @property
    def running(self) -> bool:
        """True between a successful ``__aenter__`` and the moment the manager stops or crashes."""
        return self._task is not None and not self._task.done()


def default_controllers(ctx: ControllerContext) -> list[Controller]:
    """The controllers `kubelite server` runs. Each is built from the shared context (client, events,
    options)."""
    return [NamespaceController(ctx.client), GarbageCollector(ctx.client), DeploymentController(ctx),
            ReplicaSetController(ctx), EndpointSliceController(ctx), EndpointsController(ctx),
            NodeLifecycleController(ctx), NodeIpamController(ctx)]


async def run_controller_manager(client: Client, stop: asyncio.Event, options: ControllerOptions | None = None) -> None:
    """Run the default controllers until ``stop`` is set, while this process holds the
    ``kube-controller-manager`` Lease (so that several servers can run side by side with one active manager);
    raises `ControllerCrashed` if one dies."""

    async def lead(ended: asyncio.Event) -> None:
        # A fresh manager each term: informers and queues belong to one lifetime.
        await ControllerManager(client, options=options).run(ended)

    await run_with_leader_election(client, lease_name="kube-controller-manager", run=lead, stop=stop)
