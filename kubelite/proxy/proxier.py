"""The nftables proxier: keeps the node's table(s) in line with the cluster's Services, at a cost
proportional to what changed.

Informer handlers only mark the Service a change concerns (`service_changed`, `slice_changed`) and ask
the `SyncRunner` for a sync; a sync reads the caches again (level-triggered) and comes in four kinds:

- *partial* (a change was requested): the marked Services are planned, rendered and compared with what
  was loaded for them; only their differences are sent, as one transaction, and nothing at all when
  nothing differs;
- *resync* (every ``sync_period``): the same for every Service whose cached objects are not those its
  rules were made from, after checking over netlink that the table still exists (someone's ``nft flush
  ruleset`` removes it): a missed event cannot outlive a period;
- *full* (every ``full_sync_period``): everything is written again, refilling the shared maps;
- *replace* (at start and after any failed transaction): the table is deleted and rebuilt in the same
  transaction, which also drops whatever a previous run left in it.

A transaction ``nft`` refuses changes nothing (``nft -f`` is all or nothing): the next sync, retried with
backoff, is a replace, and the Services of the failed one stay marked. Chains no Service uses any more
are flushed at once and deleted by the first sync a second or more later (see ``transaction.py``). After
a sync that changed UDP Services, the conntrack entries of their flows to endpoints they no longer have
are deleted (``conntrack.py``). Bad input in one Service is reported (log, and an Event where Kubernetes
records one) and leaves every other Service alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.client.events import EventRecorder
from kubelite.proxy.config import ProxyConfig
from kubelite.proxy.conntrack import ConntrackCleaner, UdpPort, to_check, udp_ports
from kubelite.proxy.nft import Nft, NftError
from kubelite.proxy.nftables import RenderConfig, ServiceObjects, render_service
from kubelite.proxy.services import Problem, plan_service, slice_service_key
from kubelite.proxy.source import ServiceSource
from kubelite.proxy.syncrunner import SyncRunner
from kubelite.proxy.transaction import FamilyTable, Plan

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PARTIAL, RESYNC, FULL, REPLACE = "partial", "resync", "full", "replace"
# A failed sync is retried after min_sync_period doubled per failure, up to this.
MAX_RETRY_DELAY = 30.0


@dataclass
class SyncStats:
    """What the last sync did (for logs, tests and benchmarks)."""

    count: int = 0
    kind: str = ""
    services: int = 0
    commands: int = 0
    seconds: float = 0.0
    failures: int = 0


class NftablesProxier:
    def __init__(self, config: ProxyConfig, source: ServiceSource, nft: Nft, *,
                 recorder: EventRecorder | None = None, conntrack: ConntrackCleaner | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.source = source
        self.nft = nft
        self.recorder = recorder
        self.conntrack = conntrack
        self.clock = clock
        self.tables = {
            family: FamilyTable(RenderConfig(
                family=family, table=config.table, cluster_cidrs=tuple(c for _, c in config.cidrs(family)),
                masquerade_all=config.masquerade_all, masquerade_bit=config.masquerade_bit))
            for family in config.ip_families}
        self.dirty: set[str] = set()
        self.synced = False
        self.need_replace = True
        self.last_full = -math.inf
        self.last_resync = -math.inf
        self.failures = 0
        self.stats = SyncStats()
        self._reported: dict[str, tuple[Problem, ...]] = {}
        # The UDP ports of each Service as last loaded (for conntrack cleaning).
        self._udp: dict[str, tuple[UdpPort, ...]] = {}
        # What each Service's loaded rules were made from (see `_fingerprint`).
        self._fingerprints: dict[str, tuple[Any, ...]] = {}
        self.runner = SyncRunner(self.sync, min_interval=config.min_sync_period, max_interval=config.sync_period)

    # --- notifications (informer handlers: cheap, never fail) ------------------------------------------

    def service_changed(self, key: str) -> None:
        self.dirty.add(key)
        self.runner.request()

    def slice_changed(self, slice_: Obj) -> None:
        key = slice_service_key(slice_)
        if key is not None:
            self.service_changed(key)

    def set_synced(self) -> None:
        """The caches hold the whole cluster: syncing may start (never before, or a partial view would
        remove the rules of Services not listed yet)."""
        self.synced = True
        self.runner.request()

    # --- the loop -------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        await self.runner.run(stop)

    async def sync(self) -> None:
        """One sync of the kind due (see the module docstring)."""
        if not self.synced:
            return
        start = self.clock()
        kind = self._kind(start)
        if kind == RESYNC and await self._table_missing():
            kind = REPLACE
        dirty, self.dirty = self.dirty, set()
        if kind == PARTIAL:
            keys = dirty
        else:
            keys = set(self.source.service_keys()) | dirty
            for table in self.tables.values():
                keys |= table.service_keys()
            if kind == RESYNC:
                # Only what changed since it was rendered, notified or not (a missed event shows here).
                keys = {k for k in keys if k in dirty or self._fingerprints.get(k) != self._fingerprint(k)}
        plans, udp, fingerprints = self._plan(keys, kind, start)
        lines = [line for plan in plans for line in plan.lines]
        if lines:
            try:
                await self.nft.load(lines)
            except NftError as e:
                self._failed(keys, f"nftables transaction of {len(lines)} commands failed: {e}")
                return
        for key, fingerprint in fingerprints.items():
            if fingerprint:
                self._fingerprints[key] = fingerprint
            else:
                self._fingerprints.pop(key, None)
        for plan in plans:
            plan.commit()
            for c in plan.conflicts:
                log.warning("%s: element %s is claimed by %s; %s keeps it", c.container, c.key,
                            ", ".join((c.winner, *c.losers)), c.winner)
        self.need_replace = False
        self.failures = 0
        await self._clean_conntrack(keys, udp, every=kind in (FULL, REPLACE))
        if kind in (FULL, REPLACE):
            self.last_full = start
        if kind != PARTIAL:
            self.last_resync = start
        elapsed = self.clock() - start
        self.stats = SyncStats(self.stats.count + 1, kind, len(keys), len(lines), elapsed, self.stats.failures)
        log.log(logging.INFO if kind in (FULL, REPLACE) else logging.DEBUG,
                "proxy %s sync: %d services, %d nft commands, %.3f s", kind, len(keys), len(lines), elapsed)

    async def cleanup(self) -> None:
        """Remove this proxy's tables (both families, whether or not they exist)."""
        await self.nft.delete_tables(self.config.table)
        for table in self.tables.values():
            table.reset()
        self.need_replace = True

    # --- parts ----------------------------------------------------------------------------------------

    def _kind(self, now: float) -> str:
        if self.need_replace:
            return REPLACE
        if now - self.last_full >= self.config.full_sync_period:
            return FULL
        if now - self.last_resync >= self.config.sync_period:
            return RESYNC
        return PARTIAL

    async def _table_missing(self) -> bool:
        for table in self.tables.values():
            if await self.nft.table_exists(table.cfg.nft_family, table.cfg.table) is False:
                log.warning("the nftables table %s is gone (flushed by someone?): rebuilding it", table.cfg.prefix)
                return True
        return False

    def _fingerprint(self, key: str) -> tuple[Any, ...]:
        """What a Service's rules are made from, by identity: an informer replaces a cached object on every
        change and never changes it in place. Empty for a Service that is gone."""
        svc = self.source.service(key)
        if svc is None:
            return ()
        slices = sorted((id(s), meta.resource_version(s)) for s in self.source.slices(key))
        return (id(svc), meta.resource_version(svc), *slices)

    def _plan(self, keys: set[str], kind: str, now: float) -> tuple[
            list[Plan], dict[str, tuple[UdpPort, ...]], dict[str, tuple[Any, ...]]]:
        """The transaction of each family for ``keys``, the UDP ports of those Services and the
        fingerprints of what they were made from."""
        family_changes: dict[str, dict[str, ServiceObjects]] = {f: {} for f in self.tables}
        udp: dict[str, tuple[UdpPort, ...]] = {}
        fingerprints: dict[str, tuple[Any, ...]] = {}
        for key in sorted(keys):
            fingerprints[key] = self._fingerprint(key)
            svc = self.source.service(key)
            slices = self.source.slices(key) if svc is not None else []
            problems: list[Problem] = []
            ports: tuple[UdpPort, ...] = ()
            for family, table in self.tables.items():
                plan = plan_service(svc, slices, family=family, node_name=self.config.node_name,
                                    dual_stack=self.config.dual_stack)
                problems += [p for p in plan.problems if p not in problems]
                family_changes[family][key] = render_service(plan, table.cfg)
                ports += udp_ports(plan)
            udp[key] = ports
            self._report(key, svc, tuple(problems))
        full, replace = kind in (FULL, REPLACE), kind == REPLACE
        plans = [table.plan(family_changes[family], now=now, full=full, replace=replace)
                 for family, table in self.tables.items()]
        return plans, udp, fingerprints

    async def _clean_conntrack(self, keys: set[str], udp: dict[str, tuple[UdpPort, ...]], *, every: bool) -> None:
        """Delete the UDP flows the rules just loaded no longer allow (see ``conntrack.py``): those of the
        Services whose UDP ports changed, or of every UDP Service after a full sync."""
        check: list[UdpPort] = []
        for key in keys:
            before, after = self._udp.get(key, ()), udp.get(key, ())
            if before != after or (every and after):
                check += to_check(before, after)
            if after:
                self._udp[key] = after
            else:
                self._udp.pop(key, None)
        if self.conntrack is None or not check:
            return
        try:
            deleted = await self.conntrack.clean(check)
        except Exception as e:  # netlink errors: the flows time out on their own eventually
            log.warning("could not clear stale UDP conntrack entries: %s", e)
            return
        if deleted:
            log.debug("cleared %d stale UDP conntrack entries", deleted)

    def _report(self, key: str, svc: Obj | None, problems: tuple[Problem, ...]) -> None:
        """Log (and record as Events where Kubernetes does) the problems of a Service when they change."""
        if svc is None or not problems:
            self._reported.pop(key, None)
            return
        if self._reported.get(key) == problems:
            return
        self._reported[key] = problems
        for problem in problems:
            log.warning("service %s: %s", key, problem.message)
            if problem.reason and self.recorder is not None:
                self.recorder.warning({**svc, "kind": "Service", "apiVersion": "v1"}, problem.reason,
                                      problem.message)

    def _failed(self, keys: set[str], message: str) -> None:
        log.error("%s; retrying with a rebuilt table", message)
        self.need_replace = True
        self.dirty |= keys
        self.failures += 1
        self.stats.failures += 1
        delay = min(MAX_RETRY_DELAY, max(self.config.min_sync_period, 0.5) * 2 ** (self.failures - 1))
        self.runner.retry_after(delay)
