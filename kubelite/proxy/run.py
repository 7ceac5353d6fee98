"""`run_proxy`: the service proxy of one node, from informers to rules, until told to stop.

Order of events: the mode is settled (nftables unless ``userspace`` was asked for; where ``nft`` cannot be
run, the userspace proxy, announced loudly); informers on Services and EndpointSlices start (or are
shared with another component of this process); once both have listed everything the proxier syncs, and
keeps syncing on every change until ``stop`` is set. An informer that dies stops the proxy with its error
rather than leave rules that no longer follow the cluster. The rules stay in place when the proxy stops,
so that traffic flows on while it restarts, unless ``cleanup_on_stop`` (`cleanup` removes them alone).

When the nftables proxy starts it removes what a userspace proxy left (the dummy interface), and the
userspace proxy removes the nftables table, so that switching modes leaves no stale rules behind.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any, Protocol

from kubelite.api import meta
from kubelite.client.events import EventBroadcaster
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, object_of
from kubelite.client.rest import Client
from kubelite.proxy.config import NFTABLES, USERSPACE, ProxyConfig
from kubelite.proxy.conntrack import ConntrackCleaner
from kubelite.proxy.nft import Nft, NftError
from kubelite.proxy.proxier import NftablesProxier
from kubelite.proxy.source import InformerSource
from kubelite.proxy.userspace import UserspaceProxier

log = logging.getLogger(__name__)

# The source component of the proxy's Events (kube-proxy's).
COMPONENT = "kube-proxy"
Obj = dict[str, Any]


class Proxier(Protocol):
    def service_changed(self, key: str) -> None: ...

    def slice_changed(self, slice_: Obj) -> None: ...

    def set_synced(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def cleanup(self) -> None: ...


async def select_mode(config: ProxyConfig, nft: Nft) -> str:
    """``nftables`` when it was asked for and works here, else ``userspace`` (announced loudly)."""
    if config.mode == USERSPACE:
        return USERSPACE
    reason = nft.unavailable()
    if reason is None:
        try:
            await nft.check()
        except NftError as e:
            reason = f"nft cannot change the ruleset: {e}"
    if reason is None:
        return NFTABLES
    log.error("*** nftables cannot be used (%s): FALLING BACK TO THE USERSPACE PROXY. It is slower, does not "
              "keep client addresses and serves TCP and UDP only. Install nftables, or pass --proxy-mode "
              "userspace to choose it on purpose. ***", reason)
    return USERSPACE


async def cleanup(config: ProxyConfig) -> None:
    """Remove everything either kind of proxy made on this node: the nftables tables (both families) and
    the userspace proxy's dummy interface. Safe when there is nothing to remove."""
    nft = Nft(netns=config.netns)
    try:
        if nft.unavailable() is None:
            await nft.delete_tables(config.table)
    finally:
        nft.close()
    await _remove_userspace_leftovers(config)


async def _remove_userspace_leftovers(config: ProxyConfig) -> None:
    userspace = UserspaceProxier(config, _NoServices())
    try:
        await userspace.cleanup()
    finally:
        userspace.close()


async def run_proxy(client: Client, config: ProxyConfig, stop: asyncio.Event, *,
                    informers: InformerFactory | None = None) -> None:
    """Run the proxy until ``stop`` is set (see the module docstring). ``informers`` shares another
    component's factory; its owner stops it after this returns."""
    nft = Nft(netns=config.netns)
    async with AsyncExitStack() as stack:
        stack.callback(nft.close)
        mode = await select_mode(config, nft)
        log.info("service proxy for node %s: %s mode, IP families %s", config.node_name, mode,
                 ", ".join(config.ip_families))
        if not config.cidrs():
            log.warning("no cluster CIDR given: traffic to ClusterIPs from outside the pod network is not "
                        "masqueraded, and pods cannot be told from the node (--cluster-cidr)")
        if informers is None:
            informers = InformerFactory(client)
            await stack.enter_async_context(informers)
        broadcaster = EventBroadcaster(client, host=config.node_name)
        await stack.enter_async_context(broadcaster)
        recorder = broadcaster.recorder(COMPONENT)
        source = InformerSource(informers)
        proxier: Proxier
        if mode == NFTABLES:
            await _remove_userspace_leftovers(config)
            conntrack = ConntrackCleaner(config.netns)
            stack.callback(conntrack.close)
            proxier = NftablesProxier(config, source, nft, recorder=recorder, conntrack=conntrack)
        else:
            if nft.unavailable() is None:
                try:
                    await nft.delete_tables(config.table)
                except NftError as e:
                    log.warning("could not remove the nftables table of an earlier run: %s", e)
            userspace = UserspaceProxier(config, source, recorder=recorder)
            stack.callback(userspace.close)
            proxier = userspace
        if config.cleanup_on_stop:
            stack.push_async_callback(proxier.cleanup)
        _wire(source, proxier)
        informer_tasks = [source.services.start(), source.endpoint_slices.start()]
        await _until_synced(source, stop)
        if stop.is_set():
            return
        proxier.set_synced()
        runner = asyncio.create_task(proxier.run(stop), name="proxy-sync")
        try:
            done, _ = await asyncio.wait({runner, *informer_tasks}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not runner.done():
                runner.cancel()
            await asyncio.wait({runner})
        for task in done:
            if task is not runner and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("an informer of the service proxy stopped") from task.exception()
        failure = None if runner.cancelled() else runner.exception()
        if failure is not None:
            raise failure


def _wire(source: InformerSource, proxier: Proxier) -> None:
    def service_gone(gone: Obj | DeletedFinalStateUnknown) -> None:
        proxier.service_changed(meta.key(object_of(gone)))

    def slice_updated(old: Obj, new: Obj) -> None:
        if old is not new:
            proxier.slice_changed(old)
        proxier.slice_changed(new)

    source.services.add_handler(on_add=lambda svc: proxier.service_changed(meta.key(svc)),
                                on_update=lambda _, svc: proxier.service_changed(meta.key(svc)),
                                on_delete=service_gone)
    source.endpoint_slices.add_handler(on_add=proxier.slice_changed, on_update=slice_updated,
                                       on_delete=lambda gone: proxier.slice_changed(object_of(gone)))


async def _until_synced(source: InformerSource, stop: asyncio.Event) -> None:
    synced = asyncio.ensure_future(source.wait_synced())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({synced, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not synced.done():
            synced.cancel()
    if synced.done() and not synced.cancelled() and synced.exception() is not None:
        raise RuntimeError("the service proxy's informers could not list the cluster") from synced.exception()


class _NoServices:
    """A source with nothing in it (for cleaning up without a cluster)."""

    def service(self, key: str) -> Obj | None:
        return None

    def slices(self, key: str) -> list[Obj]:
        return []

    def service_keys(self) -> list[str]:
        return []
