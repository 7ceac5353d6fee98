"""Leader election against the real API server (in-process): one leader among candidates, takeover after a
crash once the Lease expires, immediate handover on a clean stop, and loss of the Lease to someone else."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypedDict

import pytest

from kubelite.client.leaderelection import LEASES, run_with_leader_election
from kubelite.client.rest import Client

LEASE = "test-lock"
NS = "kube-system"
WAIT_SECONDS = 10.0
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


class Timing(TypedDict):
    lease_duration: float
    renew_deadline: float
    retry_period: float


# Short, valid timings: the Lease stores whole seconds, so one second is the shortest term.
FAST = Timing(lease_duration=1.0, renew_deadline=0.5, retry_period=0.1)
# A long term: only a release lets a follower in quickly.
SLOW = Timing(lease_duration=15.0, renew_deadline=10.0, retry_period=0.1)


class Candidate:
    """One contender running `run_with_leader_election`, recording its terms."""

    def __init__(self, client: Client, identity: str, *, timing: Timing = FAST, ignore_end: bool = False) -> None:
        self.identity = identity
        self.stop = asyncio.Event()
        self.leading = asyncio.Event()
        self.terms = 0
        self.ends = 0
        self._ignore_end = ignore_end
        self.task = asyncio.create_task(run_with_leader_election(
            client, lease_name=LEASE, namespace=NS, identity=identity, run=self._work, stop=self.stop,
            **timing))

    async def _work(self, ended: asyncio.Event) -> None:
        self.terms += 1
        self.leading.set()
        try:
            if self._ignore_end:
                await asyncio.Event().wait()
            await ended.wait()
            self.ends += 1
        finally:
            self.leading.clear()

    async def close(self) -> None:
        self.stop.set()
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                await asyncio.wait({self.task})
        except TimeoutError:
            self.task.cancel()
            await asyncio.wait({self.task})


@asynccontextmanager
async def candidates(client: Client, *names: str, timing: Timing = FAST) -> AsyncIterator[list[Candidate]]:
    started = [Candidate(client, n, timing=timing) for n in names]
    try:
        yield started
    finally:
        for c in started:
            await c.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - the lease is only seen by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def first_leader(cands: list[Candidate]) -> Candidate:
    waits = {asyncio.create_task(c.leading.wait()): c for c in cands}
    try:
        done, _ = await asyncio.wait(waits, timeout=WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in waits:
            t.cancel()
    assert done, "nobody became leader"
    return waits[next(iter(done))]


async def lease(client: Client) -> dict[str, Any]:
    return await client.get(LEASES, LEASE, NS)


async def test_one_of_two_candidates_leads(kclient: Client) -> None:
    async with candidates(kclient, "a", "b") as cands:
        leader = await first_leader(cands)
        other = next(c for c in cands if c is not leader)
        await asyncio.sleep(0.5)  # several renewals: the other stays a follower
        assert leader.leading.is_set() and not other.leading.is_set() and other.terms == 0
        spec = (await lease(kclient))["spec"]
        assert spec["holderIdentity"] == leader.identity
        assert spec["leaseDurationSeconds"] == 1 and spec["leaseTransitions"] == 0
        assert MICRO_TIME.fullmatch(spec["acquireTime"]) and MICRO_TIME.fullmatch(spec["renewTime"])
        assert spec["renewTime"] > spec["acquireTime"]  # renewed since it was acquired


async def test_a_crashed_leader_is_replaced_once_its_lease_expires(kclient: Client) -> None:
    async with candidates(kclient, "a", "b") as cands:
        leader = await first_leader(cands)
        other = next(c for c in cands if c is not leader)
        leader.task.cancel()  # a crash: no release, the lease must expire
        await asyncio.wait({leader.task})
        loop = asyncio.get_running_loop()
        crashed_at = loop.time()
        await asyncio.wait_for(other.leading.wait(), WAIT_SECONDS)
        # The follower waits a full term (1 s) from the last change it saw before taking over.
        assert loop.time() - crashed_at >= 0.5
        spec = (await lease(kclient))["spec"]
        assert spec["holderIdentity"] == other.identity and spec["leaseTransitions"] == 1


async def test_a_clean_stop_hands_the_lease_over_at_once(kclient: Client) -> None:
    async with candidates(kclient, "a", "b", timing=SLOW) as cands:
        leader = await first_leader(cands)
        other = next(c for c in cands if c is not leader)
        loop = asyncio.get_running_loop()
        stopped_at = loop.time()
        await leader.close()
        assert leader.ends == 1  # its work was told to end, and did
        await asyncio.wait_for(other.leading.wait(), WAIT_SECONDS)
        assert loop.time() - stopped_at < 5.0
        spec = (await lease(kclient))["spec"]
        assert spec["holderIdentity"] == other.identity and spec["leaseTransitions"] == 1
    released = (await lease(kclient))["spec"]
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1


async def test_losing_the_lease_ends_the_term_and_campaigns_again(kclient: Client) -> None:
    async with candidates(kclient, "a") as (cand,):
        await asyncio.wait_for(cand.leading.wait(), WAIT_SECONDS)
        # Someone else takes the lease for a long term behind the leader's back.
        stolen = await lease(kclient)
        stolen["spec"].update(holderIdentity="thief", leaseDurationSeconds=3)
        await kclient.update(LEASES, stolen)

        async def term_ended() -> bool:
            return cand.ends == 1 and not cand.leading.is_set()

        await eventually(term_ended, "the leader noticed it lost the lease")
        assert not cand.task.done()  # campaigning again
        await asyncio.wait_for(cand.leading.wait(), WAIT_SECONDS)  # once the thief's term is over
        assert cand.terms == 2
        spec = (await lease(kclient))["spec"]
        assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 1


async def test_work_that_ignores_the_end_is_cancelled_after_a_loss(kclient: Client) -> None:
    cand = Candidate(kclient, "stubborn", ignore_end=True)
    try:
        await asyncio.wait_for(cand.leading.wait(), WAIT_SECONDS)
        stolen = await lease(kclient)
        stolen["spec"].update(holderIdentity="thief", leaseDurationSeconds=30)
        await kclient.update(LEASES, stolen)

        async def cancelled() -> bool:
            return not cand.leading.is_set()

        await eventually(cancelled, "the stubborn work was cancelled")
        assert cand.ends == 0 and not cand.task.done()
    finally:
        await cand.close()
    assert (await lease(kclient))["spec"]["holderIdentity"] == "thief"  # never released what is not ours


async def test_work_that_returns_ends_the_election_and_releases(kclient: Client) -> None:
    calls = 0

    async def short(ended: asyncio.Event) -> None:
        nonlocal calls
        calls += 1

    await asyncio.wait_for(run_with_leader_election(kclient, lease_name=LEASE, namespace=NS, identity="once",
                                                    run=short, stop=asyncio.Event(), **FAST), WAIT_SECONDS)
    assert calls == 1
    assert (await lease(kclient))["spec"]["holderIdentity"] == ""


async def test_work_that_fails_releases_and_raises(kclient: Client) -> None:
    async def broken(ended: asyncio.Event) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await asyncio.wait_for(run_with_leader_election(kclient, lease_name=LEASE, namespace=NS, identity="x",
                                                        run=broken, stop=asyncio.Event(), **FAST), WAIT_SECONDS)
    assert (await lease(kclient))["spec"]["holderIdentity"] == ""


async def test_stop_while_campaigning_returns_without_leading(kclient: Client) -> None:
    holder = Candidate(kclient, "holder", timing=SLOW)
    try:
        await asyncio.wait_for(holder.leading.wait(), WAIT_SECONDS)
        waiting = Candidate(kclient, "waiting", timing=SLOW)
        await asyncio.sleep(0.3)
        await waiting.close()
        assert waiting.task.done() and waiting.terms == 0 and waiting.task.exception() is None
    finally:
        await holder.close()
