"""Leader election on a coordination.k8s.io/v1 Lease, the way client-go's tools/leaderelection does it.

One candidate (`LeaderElector`):

- **campaign**: every ``retry_period`` (stretched by a random 0 to 120 %, client-go's JitterFactor 1.2, so that
  candidates do not knock together) try to take the Lease. It is free when it does not exist (create it), when
  its ``holderIdentity`` is empty (released), or when it has not changed for ``leaseDurationSeconds`` as
  measured on *this* candidate's clock since it last saw the record change. No candidate compares its clock
  with the timestamps another one wrote, so clock skew between hosts does not matter (client-go's rule).
  Taking the Lease over from someone else adds one to ``leaseTransitions`` and sets ``acquireTime``;
- **lead**: renew every ``retry_period`` by writing ``renewTime``. Each write is a PUT carrying the
  resourceVersion last read, so two candidates racing for an expired Lease cannot both win: the second
  PUT gets 409 Conflict. A renewal that has not succeeded within ``renew_deadline`` of starting to try
  means leadership is lost (the Lease will look expired to the others ``lease_duration`` after the
  last successful renewal, that is no sooner than ``lease_duration - renew_deadline`` from then);
- **release** on a clean stop: write ``holderIdentity: ""`` with ``leaseDurationSeconds: 1``, so that the
  next candidate takes over at its next try instead of waiting for the Lease to expire.

Times are `metav1.MicroTime` (RFC 3339, microseconds, UTC). ``leaseDurationSeconds`` is whole seconds:
``lease_duration`` is rounded up.

`run_with_leader_election` runs a piece of work only while leading:

1. campaign until the Lease is ours, or return when ``stop`` is set first;
2. start ``run(ended)`` and keep renewing. ``ended`` is an `asyncio.Event` that is set when the work must
   stop: ``stop`` was set, or leadership was lost. ``run`` is expected to return soon after;
3. on ``stop``: set ``ended`` and keep renewing until ``run`` returns (the Lease stays ours while the work
   winds down), then release the Lease and return;
4. on loss: set ``ended`` and give ``run`` until the others can take over (``lease_duration -
   renew_deadline``, at least ``retry_period``) to return; cancel it if it has not. Then campaign again
   (step 1) unless ``stop`` is set. ``run`` is called anew for every term, so it must build its state
   afresh each time (e.g. ``lambda ended: ControllerManager(client).run(ended)``);
5. ``run`` returning on its own ends the election: the Lease is released and the function returns. An
   exception from ``run`` is re-raised, after the release when we still lead.

Cancelling the task that runs `run_with_leader_election` is a crash, not a stop: ``run`` is cancelled and
the Lease is left to expire (no request is sent while being cancelled).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from kubelite.api.registry import by_resource
from kubelite.client.events import EventRecorder
from kubelite.client.rest import ApiException, Client, NotFound, TransportError

log = logging.getLogger(__name__)

LEASES = by_resource("coordination.k8s.io", "v1", "leases")
# client-go's wait.Jitter factor for the campaign loop.
JITTER_FACTOR = 1.2
EVENT_REASON = "LeaderElection"

Obj = dict[str, Any]
Clock = Callable[[], float]
WallClock = Callable[[], datetime]


# --- the record (pure) ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LeaderElectionRecord:
    """What a Lease's spec says about the election (client-go's LeaderElectionRecord)."""

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int = 0


def record_of(lease: Obj) -> LeaderElectionRecord:
    """The election record a Lease carries (missing fields read as their zero value)."""
    spec = lease.get("spec") or {}
    return LeaderElectionRecord(
        holder_identity=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime") or None,
        renew_time=spec.get("renewTime") or None,
        lease_transitions=int(spec.get("leaseTransitions") or 0),
    )


def lease_spec(record: LeaderElectionRecord) -> Obj:
    """The Lease spec that stores ``record`` (every field written, as client-go does)."""
    return {
        "holderIdentity": record.holder_identity,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "acquireTime": record.acquire_time,
        "renewTime": record.renew_time,
        "leaseTransitions": record.lease_transitions,
    }


def micro_time(when: datetime) -> str:
    """``when`` as `metav1.MicroTime`: RFC 3339 in UTC with microseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def next_record(observed: LeaderElectionRecord | None, *, identity: str, lease_valid: bool,
                lease_duration_seconds: int, now: str) -> LeaderElectionRecord | None:
    """The record to write to acquire or renew the Lease, or None when another holder's term still runs.

    ``observed`` is the record read from the Lease (None: there is no Lease yet); ``lease_valid`` whether
    it changed less than its ``leaseDurationSeconds`` ago on our clock; ``now`` a MicroTime.
    """
    fresh = LeaderElectionRecord(identity, lease_duration_seconds, now, now, 0)
    if observed is None:
        return fresh
    leading = observed.holder_identity == identity
    if observed.holder_identity and lease_valid and not leading:
        return None
    if leading:
        return replace(fresh, acquire_time=observed.acquire_time, lease_transitions=observed.lease_transitions)
    return replace(fresh, lease_transitions=observed.lease_transitions + 1)


def released_record(observed: LeaderElectionRecord, *, now: str) -> LeaderElectionRecord:
    """The record a leader writes to hand the Lease over at once (client-go's release)."""
    return LeaderElectionRecord("", 1, now, now, observed.lease_transitions)


def default_identity() -> str:
    """``<hostname>_<uuid>``, as kube-controller-manager and kube-scheduler name themselves."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """client-go's NewLeaderElector checks: raise ValueError on a timing that cannot work."""
    if lease_duration <= renew_deadline:
        raise ValueError("lease_duration must be greater than renew_deadline")
    if renew_deadline <= JITTER_FACTOR * retry_period:
        raise ValueError(f"renew_deadline must be greater than retry_period*{JITTER_FACTOR}")
    if retry_period <= 0:
        raise ValueError("retry_period must be greater than zero")
    if lease_duration < 1:
        raise ValueError("lease_duration must be at least one second (the Lease stores whole seconds)")


# --- one candidate (I/O) ----------------------------------------------------------------------------

class LeaderElector:
    """One candidate for the Lease ``namespace/lease_name``; see the module docstring.

    ``clock`` (monotonic seconds) measures expiry; ``wall`` gives the times written into the Lease.
    """

    def __init__(
        self,
        client: Client,
        *,
        lease_name: str,
        namespace: str = "kube-system",
        identity: str | None = None,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        recorder: EventRecorder | None = None,
        clock: Clock = time.monotonic,
        wall: WallClock = lambda: datetime.now(UTC),
    ) -> None:
        check_timing(lease_duration, renew_deadline, retry_period)
        if not lease_name:
            raise ValueError("a lease name is required")
        self.client = client
        self.lease_name = lease_name
        self.namespace = namespace
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._seconds = math.ceil(lease_duration)
        self._recorder = recorder
        self._clock = clock
        self._wall = wall
        self._lease: Obj | None = None  # as last read or written: its resourceVersion guards the next write
        self._observed: LeaderElectionRecord | None = None
        self._observed_at = 0.0

    def describe(self) -> str:
        return f"{self.namespace}/{self.lease_name}"

    @property
    def leader(self) -> str:
        """The holder last observed ("" when none)."""
        return self._observed.holder_identity if self._observed else ""

    @property
    def is_leader(self) -> bool:
        return self._observed is not None and self._observed.holder_identity == self.identity

    def lease_valid(self) -> bool:
        """Whether the observed record changed less than its lease duration ago, on our clock."""
        if self._observed is None:
            return False
        return self._clock() < self._observed_at + self._observed.lease_duration_seconds

    # --- the three operations ----------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt (client-go's tryAcquireOrRenew); True when we hold the Lease afterwards."""
        now = micro_time(self._wall())
        if self.is_leader and self.lease_valid() and self._lease is not None and self._observed is not None:
            # Fast path: renew over what we wrote last, without reading first.
            record = next_record(self._observed, identity=self.identity, lease_valid=True,
                                 lease_duration_seconds=self._seconds, now=now)
            if record is not None and await self._write(record):
                return True
            log.info("leader election %s: optimistic renewal failed, reading the lease", self.describe())
        try:
            lease = await self.client.get(LEASES, self.lease_name, self.namespace)
        except NotFound:
            return await self._create(now)
        except (ApiException, TransportError) as e:
            log.warning("leader election %s: reading the lease failed: %s", self.describe(), e)
            return False
        self._lease = lease
        self._observe(record_of(lease))
        record = next_record(self._observed, identity=self.identity, lease_valid=self.lease_valid(),
                             lease_duration_seconds=self._seconds, now=now)
        if record is None:
            log.debug("leader election %s: held by %s, not yet expired", self.describe(), self.leader)
            return False
        return await self._write(record)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Campaign until the Lease is ours (True) or ``stop`` is set (False)."""
        log.info("leader election: %s attempting to acquire leader lease %s...", self.identity, self.describe())
        while not stop.is_set():
            if await self._attempt():
                log.info("leader election: %s successfully acquired lease %s", self.identity, self.describe())
                self._event("became leader")
                return True
            delay = self.retry_period * (1 + random.random() * JITTER_FACTOR)
            try:
                async with asyncio.timeout(delay):
                    await stop.wait()
            except TimeoutError:
                pass
        return False

    async def keep_renewing(self) -> None:
        """Renew every ``retry_period`` while leading; return once a renewal missed ``renew_deadline``."""
        while True:
            try:
                async with asyncio.timeout(self.renew_deadline):
                    while True:
                        if await self.try_acquire_or_renew():
                            break
                        await asyncio.sleep(self.retry_period)
            except TimeoutError:
                log.warning("leader election: %s failed to renew lease %s within %.1fs; leadership lost",
                            self.identity, self.describe(), self.renew_deadline)
                self._event("stopped leading")
                return
            await asyncio.sleep(self.retry_period)

    async def release(self) -> bool:
        """Hand the Lease over at once if we hold it; True when nothing of ours is left in it."""
        if not self.is_leader or self._observed is None:
            return True
        try:
            async with asyncio.timeout(self.renew_deadline):
                released = await self._release()
        except TimeoutError:
            released = False
        if released:
            log.info("leader election: %s released lease %s", self.identity, self.describe())
            self._event("stopped leading")
        else:
            log.warning("leader election: %s could not release lease %s; it will expire", self.identity,
                        self.describe())
        return released

    # --- plumbing ----------------------------------------------------------------------------------

    async def _release(self) -> bool:
        assert self._observed is not None
        if await self._write(released_record(self._observed, now=micro_time(self._wall()))):
            return True
        # A renewal cancelled in flight may have landed after all: our resourceVersion is then stale.
        # Read again, and release only what is still ours.
        try:
            self._lease = await self.client.get(LEASES, self.lease_name, self.namespace)
        except NotFound:
            return True
        except (ApiException, TransportError):
            return False
        self._observe(record_of(self._lease))
        if not self.is_leader:
            return True
        return await self._write(released_record(self._observed, now=micro_time(self._wall())))

    async def _attempt(self) -> bool:
        """One try, bounded by renew_deadline: a server that hangs must not stall the campaign."""
        try:
            async with asyncio.timeout(self.renew_deadline):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            return False

    def _observe(self, record: LeaderElectionRecord) -> None:
        """Remember ``record``; the expiry clock restarts only when it differs from what we saw."""
        if record != self._observed:
            self._observed = record
            self._observed_at = self._clock()

    async def _create(self, now: str) -> bool:
        record = next_record(None, identity=self.identity, lease_valid=False,
                             lease_duration_seconds=self._seconds, now=now)
        assert record is not None
        body = {"apiVersion": LEASES.api_version, "kind": LEASES.kind,
                "metadata": {"name": self.lease_name, "namespace": self.namespace}, "spec": lease_spec(record)}
        try:
            self._lease = await self.client.create(LEASES, body, self.namespace)
        except (ApiException, TransportError) as e:
            log.warning("leader election %s: creating the lease failed: %s", self.describe(), e)
            return False
        self._observe(record)
        return True

    async def _write(self, record: LeaderElectionRecord) -> bool:
        """PUT ``record`` over the Lease as last seen (409 when someone wrote in between)."""
        assert self._lease is not None
        body = copy.deepcopy(self._lease)
        body["spec"] = lease_spec(record)
        try:
            self._lease = await self.client.update(LEASES, body, self.namespace)
        except (ApiException, TransportError) as e:
            log.info("leader election %s: writing the lease failed: %s", self.describe(), e)
            return False
        self._observe(record)
        return True

    def _event(self, what: str) -> None:
        if self._recorder is not None and self._lease is not None:
            self._recorder.normal(self._lease, EVENT_REASON, f"{self.identity} {what}")


# --- running work while leading ---------------------------------------------------------------------

Work = Callable[[asyncio.Event], Awaitable[None]]


async def run_with_leader_election(
    client: Client,
    *,
    lease_name: str,
    namespace: str = "kube-system",
    identity: str | None = None,
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
    run: Work,
    stop: asyncio.Event,
    recorder: EventRecorder | None = None,
) -> None:
    """Run ``run(ended)`` only while holding the Lease ``namespace/lease_name``; see the module docstring for
    the whole contract (when ``ended`` is set, how long ``run`` may take to stop, release, re-campaign)."""
    elector = LeaderElector(client, lease_name=lease_name, namespace=namespace, identity=identity,
                            lease_duration=lease_duration, renew_deadline=renew_deadline,
                            retry_period=retry_period, recorder=recorder)
    while await elector.acquire(stop):
        if await _lead(elector, run, stop):
            return


async def _lead(elector: LeaderElector, run: Work, stop: asyncio.Event) -> bool:
    """One term: run the work while renewing. True when the election is over (stop, or the work ended on
    its own); False when leadership was lost and the caller should campaign again."""
    ended = asyncio.Event()
    work = asyncio.create_task(_await(run(ended)), name=f"leader-{elector.lease_name}")
    renewing = asyncio.create_task(elector.keep_renewing(), name=f"renew-{elector.lease_name}")
    stopping = asyncio.create_task(stop.wait())
    # After a loss, the others may take over lease_duration after our last renewal: the work gets until then.
    wind_down = max(elector.lease_duration - elector.renew_deadline, elector.retry_period)
    try:
        await asyncio.wait({work, renewing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            ended.set()
            if stopping.done() and not renewing.done():
                # A clean stop: keep the Lease while the work winds down, unless it is lost meanwhile.
                await asyncio.wait({work, renewing}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await asyncio.wait({work}, timeout=wind_down)
            if not work.done():
                log.error("leader election %s: the work did not stop %.1fs after leadership was lost; "
                          "cancelling it", elector.describe(), wind_down)
                work.cancel()
                await asyncio.wait({work})
    finally:
        for task in (work, renewing, stopping):
            task.cancel()
        await asyncio.wait({work, renewing, stopping})
    lost = renewing.done() and not renewing.cancelled()
    on_its_own = work.done() and not work.cancelled() and not ended.is_set()
    failure = None if work.cancelled() else work.exception()
    if not lost:
        await elector.release()
    if failure is not None:
        raise failure
    return on_its_own or not lost or stop.is_set()


async def _await(work: Awaitable[None]) -> None:
    await work
