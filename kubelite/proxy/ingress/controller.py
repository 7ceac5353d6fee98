"""The ingress component of a node: informers → routing table → gateway, plus events and status.

`IngressController` (an async context manager) binds the gateway's ports first (a port in use fails at
once), installs kubelite's IngressClass in the background (retrying until the API server answers), and
watches Ingresses, IngressClasses, Services, EndpointSlices, ``kubernetes.io/tls`` Secrets (and Nodes,
for the status addresses). Any change that can matter marks the table dirty; after ``sync_delay`` (so a
burst costs one pass) the whole table is rebuilt from the caches (`routes.build_routes`), its
certificates loaded, and it is swapped into the gateway in one assignment. A Service, slice or Secret
change that no Ingress of ours names is ignored. A failed rebuild keeps the previous table serving.

Problems (`routes.Problem`, certificate problems) become Warning Events on their Ingress, once for as
long as they last; every new generation of one of our Ingresses gets a Normal ``Sync`` event (as
ingress-nginx's "Scheduled for sync"). `run_ingress` runs it until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.events import EventBroadcaster, EventRecorder
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import Client
from kubelite.kubelet.node import detect_node_ip
from kubelite.proxy.ingress.classes import INGRESS_CLASSES, ClassView, ensure_ingress_class
from kubelite.proxy.ingress.config import IngressConfig
from kubelite.proxy.ingress.gateway import Gateway
from kubelite.proxy.ingress.routes import (
    SERVICE_NAME_LABEL,
    TLS_SECRET_TYPE,
    Problem,
    RouteTable,
    build_routes,
    ingress_key,
    references,
)
from kubelite.proxy.ingress.status import INGRESSES, StatusWriter, node_addresses
from kubelite.proxy.ingress.tls import TLSStore

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SERVICES = by_resource("", "v1", "services")
SECRETS = by_resource("", "v1", "secrets")
NODES = by_resource("", "v1", "nodes")
ENDPOINT_SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")
COMPONENT = "kubelite-ingress"
SLICE_SERVICE_INDEX = "ingress/service"
CLASS_RETRY_SECONDS = 5.0


def _slice_service(obj: Obj) -> list[str]:
    service = meta.labels(obj).get(SERVICE_NAME_LABEL)
    return [f"{meta.namespace(obj)}/{service}"] if service else []


class _CachedCluster:
    """`routes.Cluster` over the informers' caches."""

    def __init__(self, services: SharedInformer, slices: SharedInformer, secrets: SharedInformer) -> None:
        self._services = services
        self._slices = slices
        self._secrets = secrets

    def service(self, namespace: str, name: str) -> Obj | None:
        return self._services.get(f"{namespace}/{name}")

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[Obj]:
        return self._slices.by_index(SLICE_SERVICE_INDEX, f"{namespace}/{service}")

    def secret(self, namespace: str, name: str) -> Obj | None:
        secret = self._secrets.get(f"{namespace}/{name}")
        return secret if secret is not None and secret.get("type") == TLS_SECRET_TYPE else None


class IngressController:
    """See the module docstring. ``http_port``/``https_port`` are the bound ports once entered."""

    def __init__(self, client: Client, config: IngressConfig) -> None:
        self.client = client
        self.config = config
        self.tls = TLSStore() if config.https_port is not None else None
        self.gateway = Gateway(config, self.tls)
        self.factory = InformerFactory(client)
        self.ingresses = self.factory.informer(INGRESSES)
        self.classes = self.factory.informer(INGRESS_CLASSES)
        self.services = self.factory.informer(SERVICES)
        self.slices = self.factory.informer(ENDPOINT_SLICES)
        self.secrets = self.factory.informer(SECRETS, field_selector=f"type={TLS_SECRET_TYPE}")
        self.slices.add_indexers({SLICE_SERVICE_INDEX: _slice_service})
        self.nodes: SharedInformer | None = None
        if config.write_status and not config.publish_addresses:
            self.nodes = self.factory.informer(NODES)
        self.events = EventBroadcaster(client, host=config.node_name)
        self.recorder: EventRecorder = self.events.recorder(COMPONENT)
        self.status = StatusWriter(client, self.ingresses, addresses=self.addresses, owns=self.owns)
        self.generation = 0  # tables installed so far
        self._cluster = _CachedCluster(self.services, self.slices, self.secrets)
        self._dirty = asyncio.Event()
        self._ready = asyncio.Event()
        self._services: frozenset[str] = frozenset()
        self._secrets: frozenset[str] = frozenset()
        self._reported: set[tuple[str, str, str]] = set()
        self._synced_generations: set[tuple[str, int]] = set()
        self._addresses: list[str] = []
        self._own_ip = config.node_ip
        self._tasks: list[asyncio.Task[None]] = []
        self._wire()

    @property
    def http_port(self) -> int | None:
        return self.gateway.http_port

    @property
    def https_port(self) -> int | None:
        return self.gateway.https_port

    @property
    def table(self) -> RouteTable | None:
        return self.gateway.table

    # --- lifetime --------------------------------------------------------------------------------------

    async def __aenter__(self) -> IngressController:
        await self.gateway.start()
        try:
            self.events.start()
            self.factory.start()
            if self.config.install_class:
                self._spawn(self._install_class(), "ingress-class")
            self._spawn(self._sync_loop(), "ingress-sync")
            if self.config.write_status:
                self._spawn(self._run_status(), "ingress-status")
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._shutdown()

    async def ready(self) -> None:
        """Wait until the first table (from complete caches) serves."""
        await self._ready.wait()

    async def _shutdown(self) -> None:
        await self.gateway.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()
        try:
            await self.factory.stop()
        except Exception as e:
            log.warning("ingress: an informer had failed: %s", e)
        await self.events.stop()

    def _spawn(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._check)
        self._tasks.append(task)

    @staticmethod
    def _check(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("ingress: %s stopped: %s", task.get_name(), task.exception(), exc_info=task.exception())

    async def _install_class(self) -> None:
        while True:
            try:
                await ensure_ingress_class(self.client, self.config.class_name, self.config.controller)
                return
            except Exception as e:
                log.warning("ingress: cannot install IngressClass %s yet: %s", self.config.class_name, e)
            await asyncio.sleep(CLASS_RETRY_SECONDS)

    # --- informer handlers -----------------------------------------------------------------------------

    def _wire(self) -> None:
        def anything(*_: object) -> None:
            self._dirty.set()

        self.ingresses.add_handler(self._ingress_changed, lambda _, new: self._ingress_changed(new), anything)
        self.classes.add_handler(anything, lambda *_: self._classes_changed(), lambda _: self._classes_changed())
        for informer, named in ((self.services, self._services_named), (self.slices, self._slices_named),
                                (self.secrets, self._secrets_named)):
            informer.add_handler(*_handlers(named))
        if self.nodes is not None:
            self.nodes.add_handler(lambda _: self._nodes_changed(), lambda *_: self._nodes_changed(),
                                   lambda _: self._nodes_changed())

    def _ingress_changed(self, ingress: Obj) -> None:
        self._dirty.set()
        if self._ready.is_set():
            self.status.enqueue([meta.key(ingress)])

    def _classes_changed(self) -> None:
        self._dirty.set()
        if self._ready.is_set():
            self.status.enqueue(self.ingresses.keys())

    def _services_named(self, obj: Obj) -> bool:
        return self._mark(meta.key(obj) in self._services)

    def _slices_named(self, obj: Obj) -> bool:
        return self._mark(any(s in self._services for s in _slice_service(obj)))

    def _secrets_named(self, obj: Obj) -> bool:
        return self._mark(meta.key(obj) in self._secrets)

    def _mark(self, relevant: bool) -> bool:
        if relevant:
            self._dirty.set()
        return relevant

    def _nodes_changed(self) -> None:
        addresses = self.addresses()
        if addresses != self._addresses:
            self._addresses = addresses
            if self._ready.is_set():
                self.status.enqueue(self.ingresses.keys())

    # --- the table -------------------------------------------------------------------------------------

    def owns(self, ingress: Obj) -> bool:
        return ClassView.of(self.classes.list(), self.config.controller).owns(ingress)

    def addresses(self) -> list[str]:
        """The addresses to publish in status (see `status`)."""
        if self.config.publish_addresses:
            return list(self.config.publish_addresses)
        found = node_addresses(self.nodes.list()) if self.nodes is not None else []
        if found:
            return found
        if self._own_ip is None:
            self._own_ip = detect_node_ip()
        return [self._own_ip]

    async def _sync_loop(self) -> None:
        await self.factory.wait_for_cache_sync()
        self._addresses = self.addresses()
        self.rebuild()
        self._ready.set()
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.config.sync_delay)
            self._dirty.clear()
            try:
                self.rebuild()
            except Exception:
                # A bug in building must not take routes away: the previous table keeps serving.
                log.exception("ingress: rebuilding the routing table failed; the previous one keeps serving")

    def rebuild(self) -> None:
        """Build the table from the caches and swap it in (see the module docstring)."""
        view = ClassView.of(self.classes.list(), self.config.controller)
        ours = [i for i in self.ingresses.list() if view.owns(i)]
        build = build_routes(ours, self._cluster)
        problems = list(build.problems)
        if self.tls is not None:
            by_key = {ingress_key(i): i for i in ours}
            problems += [Problem(by_key[p.certificate.ingress], p.reason, p.message)
                         for p in self.tls.update(build.table) if p.certificate.ingress in by_key]
        self.gateway.swap(build.table)
        self.generation += 1
        self._services, self._secrets = references(ours)
        self._report(ours, problems)
        log.debug("ingress: table %d installed from %d ingresses", self.generation, len(ours))

    def _report(self, ours: list[Obj], problems: list[Problem]) -> None:
        reported: set[tuple[str, str, str]] = set()
        for p in problems:
            mark = (meta.uid(p.ingress) or ingress_key(p.ingress), p.reason, p.message)
            if mark not in self._reported:
                log.warning("ingress %s: %s", ingress_key(p.ingress), p.message)
                self.recorder.warning(p.ingress, p.reason, p.message)
            reported.add(mark)
        self._reported = reported
        synced: set[tuple[str, int]] = set()
        for ingress in ours:
            generation = (meta.uid(ingress) or ingress_key(ingress), meta.generation(ingress))
            if generation not in self._synced_generations:
                self.recorder.normal(ingress, "Sync", "Scheduled for sync")
            synced.add(generation)
        self._synced_generations = synced

    async def _run_status(self) -> None:
        await self._ready.wait()
        self.status.enqueue(self.ingresses.keys())
        await self.status.run()


def _handlers(named: Callable[[Obj], bool]) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None],
                                                     Callable[[Obj | DeletedFinalStateUnknown], None]]:
    """Informer handlers that pass the object (both, on update) to ``named``."""

    def on_add(obj: Obj) -> None:
        named(obj)

    def on_update(old: Obj, new: Obj) -> None:
        if not named(old):
            named(new)

    def on_delete(obj: Obj | DeletedFinalStateUnknown) -> None:
        named(object_of(obj))

    return on_add, on_update, on_delete


async def run_ingress(client: Client, config: IngressConfig, stop: asyncio.Event) -> None:
    """Run a node's ingress gateway until ``stop`` is set (see the module docstring)."""
    async with IngressController(client, config):
        await stop.wait()
