"""`run_dns`: the cluster DNS server of one node, from informers to sockets, until told to stop.

Order of events: informers on Services and EndpointSlices (and Pods in ``pods: verified`` mode) start; the
server waits up to ``sync_timeout`` for their first lists (then serves anyway, answering SERVFAIL for cluster
names until they arrive, as CoreDNS does after its 5 s); the sockets are bound and ``on_listening`` is told
where; queries are answered until ``stop`` is set. An informer that dies stops the server with its error
rather than leave it answering from a cache that no longer follows the cluster.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from kubelite.api.registry import by_resource
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer
from kubelite.client.rest import Client
from kubelite.proxy.dns.cache import AnswerCache
from kubelite.proxy.dns.clients import ClientFilter
from kubelite.proxy.dns.config import DNSConfig
from kubelite.proxy.dns.handler import MessageHandler
from kubelite.proxy.dns.records import Zone
from kubelite.proxy.dns.resolver import Resolver
from kubelite.proxy.dns.server import DNSServer
from kubelite.proxy.dns.upstream import Forwarder
from kubelite.proxy.dns.view import ClusterView

log = logging.getLogger(__name__)

SERVICES = by_resource("", "v1", "services")
ENDPOINT_SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")
PODS = by_resource("", "v1", "pods")

OnListening = Callable[[Sequence[tuple[str, int]]], None]


def build_handler(view: ClusterView, config: DNSConfig) -> MessageHandler:
    """The query path for ``config`` over ``view``: zone, forwarder with its cache, message handling."""
    zone = Zone(view, domain=config.cluster_domain, ttl=config.ttl, pods=config.pods)
    cache = AnswerCache(config.cache_size, max_ttl=config.cache_max_ttl,
                        max_negative_ttl=config.cache_max_negative_ttl)
    forwarder = Forwarder(config.resolve_upstreams(), timeout=config.upstream_timeout, cache=cache,
                          payload=config.max_udp_size)
    return MessageHandler(Resolver(zone, forwarder), max_udp_size=config.max_udp_size)


async def run_dns(client: Client, config: DNSConfig, stop: asyncio.Event, *,
                  informers: InformerFactory | None = None, on_listening: OnListening | None = None) -> None:
    """Serve cluster DNS until ``stop`` is set (see the module docstring).

    ``informers`` shares another component's factory (the service proxy's, say): its owner stops it, after
    this returns (an informer stopped under a running server is an error); without one the server runs its
    own. Raises OSError when a socket cannot be bound.
    """
    async with AsyncExitStack() as stack:
        if informers is None:
            informers = InformerFactory(client)
            await stack.enter_async_context(informers)
        watched = [informers.informer(SERVICES), informers.informer(ENDPOINT_SLICES)]
        pods = informers.informer(PODS) if config.pods == "verified" else None
        if pods is not None:
            watched.append(pods)
        view = ClusterView(watched[0], watched[1], pods,
                           synced=lambda: all(i.has_synced() for i in watched), serial=int(time.time()))
        for informer in watched:
            _touch_on_change(informer, view)
        tasks = [informer.start() for informer in watched]  # idempotent: a started factory started them
        handler = build_handler(view, config)
        stack.push_async_callback(handler.resolver.forwarder.close)
        try:
            async with asyncio.timeout(config.sync_timeout):
                await asyncio.gather(*(i.wait_synced() for i in watched))
        except TimeoutError:
            log.warning("dns: caches not filled after %.0f s; serving, cluster names get SERVFAIL until they are",
                        config.sync_timeout)
        server = DNSServer(handler, config.listen, config.port, clients=ClientFilter(config.allowed_clients),
                           tcp_idle_timeout=config.tcp_idle_timeout)
        await stack.enter_async_context(server)
        log.info("dns: serving %s on %s", config.cluster_domain,
                 ", ".join(f"{a} port {p}" for a, p in server.endpoints))
        if on_listening is not None:
            on_listening(server.endpoints)
        await _until_stopped(stop, tasks)


def _touch_on_change(informer: SharedInformer, view: ClusterView) -> None:
    def touch(*_: Any) -> None:
        view.touch(int(time.time()))

    def on_delete(_: dict[str, Any] | DeletedFinalStateUnknown) -> None:
        touch()

    informer.add_handler(on_add=touch, on_update=touch, on_delete=on_delete)


async def _until_stopped(stop: asyncio.Event, informer_tasks: list[asyncio.Task[None]]) -> None:
    stopped = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({stopped, *informer_tasks}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    for task in done:
        if task is not stopped:
            error = None if task.cancelled() else task.exception()
            raise RuntimeError(f"dns: informer {task.get_name()} stopped") from error
