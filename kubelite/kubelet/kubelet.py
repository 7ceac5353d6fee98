"""The kubelet: wiring of the node agent's parts, and `run_kubelet`, its one entry point.

`Kubelet.run(stop)`:
1. connects to the runtime's socket and waits until the runtime answers ``Version``;
2. registers the Node (retrying until the API server accepts it);
3. runs, until ``stop`` is set: the Lease heartbeat, the node status loop, an informer on its own Node (for
   ``spec.podCIDR``), the informer on the pods bound to this node (``spec.nodeName=<node>``) feeding one
   worker per pod, the runtime relist (PLEG) that wakes workers when containers change, and housekeeping;
4. on ``stop``: stops every loop and worker but leaves the containers running — the next kubelet adopts
   them. A part that dies on its own stops the kubelet with its error (nothing runs half alive).

Everything the kubelet writes to the API goes through the ``client`` it is given; events are recorded as
component ``kubelet`` with the node as source host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from kubelite.api.registry import by_resource
from kubelite.client.events import EventBroadcaster
from kubelite.client.informer import SharedInformer
from kubelite.client.rest import Client
from kubelite.kubelet.backoff import Backoff
from kubelite.kubelet.config import KubeletConfig
from kubelite.kubelet.containerspec import DNSSettings, parse_resolv_conf
from kubelite.kubelet.imagepull import ImagePuller
from kubelite.kubelet.node import Machine, NodeAgent
from kubelite.kubelet.objectcache import ObjectCache
from kubelite.kubelet.pleg import Pleg
from kubelite.kubelet.pods import PodDispatcher
from kubelite.kubelet.podworker import WorkerContext
from kubelite.kubelet.probes import ProbeManager
from kubelite.kubelet.runtime_client import RuntimeClient, RuntimeServiceError
from kubelite.kubelet.status import StatusWriter
from kubelite.kubelet.volumes import Mounter, VolumeManager

log = logging.getLogger(__name__)

PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
SERVICES = by_resource("", "v1", "services")
EVENT_FLUSH_SECONDS = 2.0


class Kubelet:
    """One node agent.

    ``on_pod_cidr(cidr)`` is called when the Node gets its ``spec.podCIDR`` from the node IPAM controller (the
    runtime's pod network needs it to write its default CNI configuration: the CRI's UpdateRuntimeConfig).
    ``mounter`` and ``machine`` replace the host's mount(2) and machine facts (for tests)."""

    def __init__(self, client: Client, config: KubeletConfig, *, on_pod_cidr: Callable[[str], None] | None = None,
                 mounter: Mounter | None = None, machine: Callable[[], Machine] | None = None) -> None:
        self.client = client
        self.config = config
        self._on_pod_cidr = on_pod_cidr
        self._mounter = mounter
        self._machine = machine
        self._dispatcher: PodDispatcher | None = None
        self.node: NodeAgent | None = None
        # Set once the Node is registered and the pod informer has synced.
        self.ready = asyncio.Event()

    def _wake(self, uid: str) -> None:
        if self._dispatcher is not None:
            self._dispatcher.wake(uid)

    def _pod_cidr_changed(self, cidr: str) -> None:
        if self._on_pod_cidr is not None:
            try:
                self._on_pod_cidr(cidr)
            except Exception:
                log.exception("the pod CIDR hook failed")
        if self._dispatcher is not None:
            self._dispatcher.wake_all()  # pods waiting for the network

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        for folder in (config.paths.pods, config.paths.logs, config.paths.kubelet_dir):
            folder.mkdir(parents=True, exist_ok=True)
        async with RuntimeClient(config.socket_path, timeout=config.runtime_request_timeout) as runtime:
            if not await self._wait_for_runtime(runtime, stop):
                return
            broadcaster = EventBroadcaster(self.client, host=config.node_name)
            broadcaster.start()
            try:
                await self._run(runtime, broadcaster, stop)
            finally:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_FLUSH_SECONDS):
                        await broadcaster.flush()
                await broadcaster.stop()

    async def _wait_for_runtime(self, runtime: RuntimeClient, stop: asyncio.Event) -> bool:
        delay = 0.05
        while not stop.is_set():
            try:
                version = await runtime.version()
                log.info("runtime %s %s (API %s) is up", version.runtime_name, version.runtime_version,
                         version.runtime_api_version)
                return True
            except RuntimeServiceError as e:
                log.info("waiting for the runtime at %s: %s", runtime.socket_path, e.message)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()
            delay = min(delay * 2, 2.0)
        return False

    async def _run(self, runtime: RuntimeClient, broadcaster: EventBroadcaster, stop: asyncio.Event) -> None:
        config, client = self.config, self.client
        recorder = broadcaster.recorder("kubelet")
        node = NodeAgent(client, config, runtime, recorder, on_pod_cidr=self._pod_cidr_changed, machine=self._machine)
        self.node = node
        registration = asyncio.create_task(node.register())
        if not await _until(registration, stop):
            return
        objects = ObjectCache(client, self._wake)
        probes = ProbeManager(runtime, recorder, self._wake)
        reset = config.backoff_reset
        # The Service variables are computed when a container starts, from this cache of every Service.
        services = SharedInformer(client, SERVICES)
        ctx = WorkerContext(
            config=config, client=client, runtime=runtime, recorder=recorder,
            volumes=VolumeManager(config.paths, self._mounter), objects=objects, probes=probes,
            puller=ImagePuller(runtime, recorder, Backoff(config.image_pull_backoff_initial,
                                                          config.image_pull_backoff_max, reset_after=reset)),
            status=StatusWriter(client),
            crash_backoff=Backoff(config.crashloop_backoff_initial, config.crashloop_backoff_max, reset_after=reset),
            node=node, dns=self._dns_settings(), http=probes.session, services=services.list,
        )
        dispatcher = PodDispatcher(ctx)
        self._dispatcher = dispatcher
        pods = SharedInformer(client, PODS, field_selector=f"spec.nodeName={config.node_name}")
        own_node = SharedInformer(client, NODES, field_selector=f"metadata.name={config.node_name}")
        dispatcher.attach(pods)
        node.attach(own_node)
        pleg = Pleg(runtime, config.pleg_period, self._wake)
        parts: list[Coroutine[Any, Any, None]] = [
            node.run_lease(), node.run_status(), own_node.run(), services.run(), pods.run(), pleg.run(),
            dispatcher.housekeeping(pods, pleg), self._mark_ready(pods, services),
        ]
        tasks = [asyncio.create_task(p) for p in parts]
        stopped = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopped and not task.cancelled() and task.exception() is not None:
                    raise RuntimeError("a part of the kubelet stopped") from task.exception()
        finally:
            for task in [*tasks, stopped]:
                task.cancel()
            await asyncio.wait([*tasks, stopped])
            self._dispatcher = None
            await dispatcher.stop()
            await probes.close()
            await objects.stop()

    async def _mark_ready(self, *informers: SharedInformer) -> None:
        await asyncio.gather(*(inf.wait_synced() for inf in informers))
        self.ready.set()
        await asyncio.Event().wait()  # a part: it lives as long as the others

    def _dns_settings(self) -> DNSSettings:
        try:
            host = parse_resolv_conf(self.config.resolv_conf.read_text())
        except OSError:
            host = parse_resolv_conf("")
        return DNSSettings(tuple(self.config.cluster_dns), self.config.cluster_domain, host)


async def _until(task: asyncio.Task[Any], stop: asyncio.Event) -> bool:
    """Wait for ``task`` unless ``stop`` comes first (then cancel it); whether the task finished."""
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait([task])
        return False
    task.result()
    return True


async def run_kubelet(client: Client, config: KubeletConfig, stop: asyncio.Event, *,
                      on_pod_cidr: Callable[[str], None] | None = None) -> None:
    """Run a kubelet for ``config.node_name`` until ``stop`` is set (see the module docstring and `Kubelet`)."""
    await Kubelet(client, config, on_pod_cidr=on_pod_cidr).run(stop)
