"""The `Store` contract (kubelite/apiserver/storage/interface.py), run against every backend.

Revisions are compared relative to what the store reports, never to absolute numbers: on etcd the
session's tests share one revision counter (each under its own key prefix).
"""

from __future__ import annotations

import asyncio
import random

import pytest

from kubelite.apiserver.storage import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Store,
    Unavailable,
)
from tests.unit.storage.helpers import Backend, collect, watching

PODS = "/registry/pods/"
SERVICES = "/registry/services/"


def pod(name: str) -> str:
    return f"{PODS}default/{name}"


def summary(events: list[Event]) -> list[tuple[str, str, int, bytes]]:
    return [(e.type, e.kv.key, e.revision, e.kv.value) for e in events]


# -- create / get ---------------------------------------------------------------------------------------


async def test_create_returns_the_new_revision_and_get_reads_it(store: Store) -> None:
    before = await store.current_revision()
    kv = await store.create(pod("a"), b'{"a":1}')
    assert kv.key == pod("a") and kv.value == b'{"a":1}'
    assert kv.create_revision == kv.mod_revision > before
    assert await store.current_revision() == kv.mod_revision
    assert await store.get(pod("a")) == kv
    assert await store.get(pod("missing")) is None


async def test_create_of_an_existing_key_fails(store: Store) -> None:
    kv = await store.create(pod("a"), b"1")
    with pytest.raises(KeyExists) as err:
        await store.create(pod("a"), b"2")
    assert err.value.key == pod("a")
    assert await store.get(pod("a")) == kv
    assert await store.current_revision() == kv.mod_revision  # a failed write makes no revision


async def test_create_after_delete_starts_a_new_life(store: Store) -> None:
    first = await store.create(pod("a"), b"1")
    gone = await store.delete(pod("a"))
    again = await store.create(pod("a"), b"2")
    assert again.create_revision == again.mod_revision > first.create_revision
    assert await store.get(pod("a")) == again
    async with watching(store, PODS, first.mod_revision) as events:
        seen = await collect(events, 3)
    assert [(e.type, e.kv, e.prev) for e in seen] == [
        ("PUT", first, None), ("DELETE", gone, first), ("PUT", again, None),
    ]


async def test_concurrent_creates_of_one_key_let_exactly_one_win(store: Store) -> None:
    results = await asyncio.gather(*(store.create(pod("a"), str(i).encode()) for i in range(10)),
                                   return_exceptions=True)
    winners = [r for r in results if isinstance(r, KeyValue)]
    assert len(winners) == 1
    assert all(isinstance(r, KeyExists) for r in results if r is not winners[0])
    assert await store.get(pod("a")) == winners[0]


# -- update ---------------------------------------------------------------------------------------------


async def test_update_with_the_current_revision(store: Store) -> None:
    kv = await store.create(pod("a"), b"1")
    new = await store.update(pod("a"), b"2", kv.mod_revision)
    assert new == KeyValue(pod("a"), b"2", kv.create_revision, new.mod_revision)
    assert new.mod_revision > kv.mod_revision
    assert await store.get(pod("a")) == new


async def test_update_with_a_stale_revision_reports_the_current_value(store: Store) -> None:
    kv = await store.create(pod("a"), b"1")
    now = await store.update(pod("a"), b"2", kv.mod_revision)
    with pytest.raises(RevisionMismatch) as err:
        await store.update(pod("a"), b"3", kv.mod_revision)
    assert err.value.key == pod("a")
    assert err.value.current == now
    assert await store.get(pod("a")) == now


async def test_update_of_a_missing_key_fails(store: Store) -> None:
    with pytest.raises(KeyNotFound):
        await store.update(pod("missing"), b"1", 5)
    with pytest.raises(KeyNotFound):
        await store.update(pod("missing"), b"1", 0)
    assert await store.get(pod("missing")) is None


async def test_concurrent_updates_from_one_revision_let_exactly_one_win(store: Store) -> None:
    kv = await store.create(pod("a"), b"0")
    results = await asyncio.gather(
        *(store.update(pod("a"), str(i).encode(), kv.mod_revision) for i in range(10)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, KeyValue)]
    assert len(winners) == 1
    losers = [r for r in results if r is not winners[0]]
    assert all(isinstance(r, RevisionMismatch) and r.current == winners[0] for r in losers)


# -- delete ---------------------------------------------------------------------------------------------


async def test_delete_returns_the_last_value_at_the_deletion_revision(store: Store) -> None:
    kv = await store.create(pod("a"), b"1")
    gone = await store.delete(pod("a"))
    assert gone == KeyValue(pod("a"), b"1", kv.create_revision, gone.mod_revision)
    assert gone.mod_revision > kv.mod_revision
    assert await store.current_revision() == gone.mod_revision
    assert await store.get(pod("a")) is None
    with pytest.raises(KeyNotFound):
        await store.delete(pod("a"))


async def test_delete_with_an_expected_revision(store: Store) -> None:
    kv = await store.create(pod("a"), b"1")
    now = await store.update(pod("a"), b"2", kv.mod_revision)
    with pytest.raises(RevisionMismatch) as err:
        await store.delete(pod("a"), kv.mod_revision)
    assert err.value.current == now
    gone = await store.delete(pod("a"), now.mod_revision)
    assert gone.value == b"2" and gone.mod_revision > now.mod_revision
    with pytest.raises(KeyNotFound):
        await store.delete(pod("a"), gone.mod_revision)


# -- list / count ---------------------------------------------------------------------------------------


async def test_list_returns_the_live_keys_under_a_prefix_in_key_order(store: Store) -> None:
    b = await store.create(pod("b"), b"b")
    a = await store.create(pod("a"), b"a")
    await store.create(f"{PODS}kube-system/c", b"c")
    await store.create("/registry/podsx/default/x", b"not a pod")  # shares the prefix's bytes but '/'
    await store.create(f"{SERVICES}default/s", b"s")
    gone = await store.create(pod("gone"), b"g")
    await store.delete(pod("gone"), gone.mod_revision)
    items, revision = await store.list(PODS)
    assert [kv.key for kv in items] == [pod("a"), pod("b"), f"{PODS}kube-system/c"]
    assert items[:2] == [a, b]
    assert revision == await store.current_revision()
    items, _ = await store.list(f"{PODS}default/")
    assert [kv.key for kv in items] == [pod("a"), pod("b")]
    assert (await store.list("/registry/nothing/"))[0] == []


async def test_list_of_the_empty_prefix_returns_everything(store: Store) -> None:
    await store.create(pod("a"), b"a")
    await store.create(f"{SERVICES}default/s", b"s")
    items, _ = await store.list("")
    assert [kv.key for kv in items] == [pod("a"), f"{SERVICES}default/s"]
    assert await store.count("") == 2


async def test_list_at_an_older_revision_shows_the_state_then(store: Store) -> None:
    a = await store.create(pod("a"), b"a1")
    b = await store.create(pod("b"), b"b1")
    then = await store.current_revision()
    await store.update(pod("a"), b"a2", a.mod_revision)
    await store.delete(pod("b"))
    await store.create(pod("c"), b"c1")
    items, revision = await store.list(PODS, then)
    assert revision == then
    assert items == [a, b]
    items, _ = await store.list(PODS, a.mod_revision)
    assert items == [a]


async def test_list_at_a_future_revision_fails(store: Store) -> None:
    await store.create(pod("a"), b"a")
    head = await store.current_revision()
    with pytest.raises(FutureRevision) as err:
        await store.list(PODS, head + 10)
    assert err.value.revision == head + 10
    assert err.value.current == head


async def test_count_counts_live_keys_under_a_prefix(store: Store) -> None:
    assert await store.count(PODS) == 0
    for name in ("a", "b", "c"):
        await store.create(pod(name), b"x")
    await store.create(f"{SERVICES}default/s", b"s")
    kv = await store.get(pod("a"))
    assert kv is not None
    await store.update(pod("a"), b"y", kv.mod_revision)
    await store.delete(pod("b"))
    assert await store.count(PODS) == 2
    assert await store.count(SERVICES) == 1


# -- watch ----------------------------------------------------------------------------------------------


async def test_watch_from_a_past_revision_then_live(store: Store) -> None:
    a1 = await store.create(pod("a"), b"a1")
    svc = await store.create(f"{SERVICES}default/s", b"s1")
    a2 = await store.update(pod("a"), b"a2", a1.mod_revision)
    b1 = await store.create(pod("b"), b"b1")
    a_gone = await store.delete(pod("a"))
    async with watching(store, PODS, a1.mod_revision) as events:
        past = await collect(events, 4)
        c1 = await store.create(pod("c"), b"c1")
        await store.update(f"{SERVICES}default/s", b"s2", svc.mod_revision)
        b2 = await store.update(pod("b"), b"b2", b1.mod_revision)
        b_gone = await store.delete(pod("b"), b2.mod_revision)
        live = await collect(events, 3)
    assert summary(past + live) == [
        ("PUT", pod("a"), a1.mod_revision, b"a1"),
        ("PUT", pod("a"), a2.mod_revision, b"a2"),
        ("PUT", pod("b"), b1.mod_revision, b"b1"),
        ("DELETE", pod("a"), a_gone.mod_revision, b"a2"),
        ("PUT", pod("c"), c1.mod_revision, b"c1"),
        ("PUT", pod("b"), b2.mod_revision, b"b2"),
        ("DELETE", pod("b"), b_gone.mod_revision, b"b2"),
    ]
    created, updated, _, deleted = past
    assert created.kv == a1 and created.prev is None
    assert updated.kv == a2 and updated.prev == a1
    # A DELETE carries the last value and the key's create revision, at the deletion revision.
    assert deleted.kv == KeyValue(pod("a"), b"a2", a1.create_revision, a_gone.mod_revision)
    assert deleted.prev == a2
    assert live[2].kv == b_gone and live[2].prev == b2


async def test_watch_from_zero_starts_after_the_current_revision(store: Store) -> None:
    await store.create(pod("old"), b"old")
    async with watching(store, PODS, 0) as events:
        first = asyncio.ensure_future(anext(events))
        await asyncio.sleep(0.05)  # let the watch register; correctness does not depend on it
        new = await store.create(pod("new"), b"new")
        async with asyncio.timeout(10):
            batch = await first
    assert [e.kv for e in batch] == [new]


async def test_watch_started_during_writes_misses_and_repeats_nothing(store: Store) -> None:
    first = await store.create(pod("w0"), b"0")

    async def writer() -> None:
        for i in range(1, 150):
            await store.create(pod(f"w{i}"), str(i).encode())

    task = asyncio.create_task(writer())
    try:
        await asyncio.sleep(0.01)  # the watch starts while the writer is busy
        async with watching(store, PODS, first.mod_revision) as events:
            seen = await collect(events, 150)
    finally:
        await task
    assert [e.kv.key for e in seen] == [pod(f"w{i}") for i in range(150)]
    revisions = [e.revision for e in seen]
    assert revisions == sorted(set(revisions))


async def test_watch_batches_hold_only_the_prefix(store: Store) -> None:
    start = await store.current_revision() + 1
    for i in range(5):
        await store.create(f"{SERVICES}default/s{i}", b"s")
    last = await store.create(pod("a"), b"a")
    async with watching(store, PODS, start) as events:
        batch = await collect(events, 1)
    assert [e.kv for e in batch] == [last]


async def test_an_open_watch_ends_with_unavailable_when_the_store_closes(store: Store) -> None:
    events = store.watch(PODS, 0)
    pending = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(Unavailable):
        async with asyncio.timeout(10):
            await pending
    await events.aclose()  # type: ignore[attr-defined]


# -- concurrency ----------------------------------------------------------------------------------------


async def test_fifty_concurrent_writers_get_distinct_increasing_revisions(store: Store) -> None:
    start = await store.current_revision()
    created = await asyncio.gather(*(store.create(pod(f"w{i}"), b"c") for i in range(50)))
    updated = await asyncio.gather(*(store.update(kv.key, b"u", kv.mod_revision) for kv in created))
    create_revs = [kv.mod_revision for kv in created]
    update_revs = [kv.mod_revision for kv in updated]
    assert len(set(create_revs + update_revs)) == 100
    assert min(create_revs) > start
    assert min(update_revs) > max(create_revs)
    assert await store.current_revision() == max(update_revs)
    async with watching(store, PODS, start + 1) as events:
        seen = await collect(events, 100)
    assert [e.revision for e in seen] == sorted(create_revs + update_revs)


# -- compaction -----------------------------------------------------------------------------------------


async def test_compacted_revisions_are_refused_by_list_and_watch(store: Store) -> None:
    a1 = await store.create(pod("a"), b"a1")
    a2 = await store.update(pod("a"), b"a2", a1.mod_revision)
    await store.create(pod("b"), b"b1")
    await store.compact(a2.mod_revision)
    assert await store.compacted_revision() == a2.mod_revision
    with pytest.raises(Compacted) as err:
        await store.list(PODS, a1.mod_revision)
    assert err.value.revision == a1.mod_revision
    assert err.value.compacted == a2.mod_revision
    assert await store.list(PODS, a2.mod_revision) == ([a2], a2.mod_revision)
    with pytest.raises(Compacted) as err:
        async with watching(store, PODS, a1.mod_revision) as events:
            await collect(events, 1)
    assert err.value.compacted == a2.mod_revision
    async with watching(store, PODS, a2.mod_revision) as events:
        assert [e.kv.value for e in await collect(events, 2)] == [b"a2", b"b1"]
    await store.compact(a1.mod_revision)  # older than the last compaction: nothing to do
    assert await store.compacted_revision() == a2.mod_revision
    with pytest.raises(FutureRevision):
        await store.compact(await store.current_revision() + 10)


async def test_a_delete_at_the_compaction_revision_is_still_watched(store: Store) -> None:
    kv = await store.create(pod("a"), b"a")
    gone = await store.delete(pod("a"), kv.mod_revision)
    await store.compact(gone.mod_revision)
    async with watching(store, PODS, gone.mod_revision) as events:
        seen = await collect(events, 1)
    assert [(e.type, e.kv) for e in seen] == [("DELETE", gone)]
    assert await store.list(PODS, gone.mod_revision) == ([], gone.mod_revision)


async def test_compaction_keeps_every_live_key(store: Store) -> None:
    a = await store.create(pod("a"), b"a0")
    for i in range(1, 5):
        a = await store.update(pod("a"), f"a{i}".encode(), a.mod_revision)
    b = await store.create(pod("b"), b"b")
    await store.delete(pod("b"), b.mod_revision)
    c = await store.create(pod("c"), b"c")
    d = await store.create(pod("d"), b"d")
    d = await store.update(pod("d"), b"d1", d.mod_revision)
    head = await store.current_revision()
    await store.compact(head)
    assert await store.list(PODS) == ([a, c, d], head)
    assert await store.list(PODS, head) == ([a, c, d], head)
    assert await store.count(PODS) == 3
    assert await store.get(pod("a")) == a
    assert await store.get(pod("b")) is None
    # Writing on after compaction: updates of kept keys and a new life for the deleted one.
    a = await store.update(pod("a"), b"after", a.mod_revision)
    b = await store.create(pod("b"), b"again")
    assert (await store.list(PODS))[0] == [a, b, c, d]


# -- restart and failure --------------------------------------------------------------------------------


async def test_a_new_store_on_the_same_data_keeps_everything(backend: Backend) -> None:
    first = backend.new_store()
    await first.start()
    try:
        a1 = await first.create(pod("a"), b"a1")
        a2 = await first.update(pod("a"), b"a2", a1.mod_revision)
        b1 = await first.create(pod("b"), b"b1")
        await first.delete(pod("b"), b1.mod_revision)
        head = await first.current_revision()
    finally:
        await first.close()
    second = backend.new_store()
    await second.start()
    try:
        assert await second.current_revision() == head
        assert await second.list(PODS) == ([a2], head)
        assert await second.list(PODS, b1.mod_revision) == ([a2, b1], b1.mod_revision)
        c = await second.create(pod("c"), b"c")
        assert c.mod_revision == head + 1
        async with watching(second, PODS, a1.mod_revision) as events:
            seen = await collect(events, 5)
        assert [(e.type, e.revision) for e in seen] == [
            ("PUT", a1.mod_revision), ("PUT", a2.mod_revision), ("PUT", b1.mod_revision),
            ("DELETE", head), ("PUT", c.mod_revision),
        ]
    finally:
        await second.close()


async def test_a_closed_store_is_unavailable(store: Store) -> None:
    await store.create(pod("a"), b"a")
    await store.close()
    with pytest.raises(Unavailable):
        await store.get(pod("a"))
    with pytest.raises(Unavailable):
        await store.create(pod("b"), b"b")
    with pytest.raises(Unavailable):
        await store.list(PODS)
    await store.close()  # closing twice is harmless


# -- against a model ------------------------------------------------------------------------------------


async def test_random_writes_and_compactions_match_a_model(store: Store) -> None:
    """Random creates, updates, deletes (some failing) and compactions over a few keys; then every
    revision still kept lists exactly the model's state at it, and a watch replays the model's events."""
    rng = random.Random(7)
    keys = [pod(f"k{i}") for i in range(6)] + [f"{SERVICES}default/s"]
    live: dict[str, KeyValue] = {}
    states: dict[int, dict[str, KeyValue]] = {}  # revision -> live keys under PODS right after it
    events: list[tuple[str, KeyValue]] = []  # (type, kv) of every write under PODS
    compacted = 0
    for step in range(250):
        key = rng.choice(keys)
        current = live.get(key)
        op = rng.random()
        try:
            if op < 0.35:
                kv = await store.create(key, f"c{step}".encode())
                assert current is None
                live[key] = kv
                events.append(("PUT", kv))
            elif op < 0.75:
                guess = current.mod_revision if current and rng.random() < 0.8 else rng.randint(1, 5)
                kv = await store.update(key, f"u{step}".encode(), guess)
                assert current is not None and kv.create_revision == current.create_revision
                live[key] = kv
                events.append(("PUT", kv))
            elif op < 0.95:
                kv = await store.delete(key, current.mod_revision if current and rng.random() < 0.5 else None)
                assert current is not None and kv.value == current.value
                del live[key]
                events.append(("DELETE", kv))
            else:
                compacted = max(compacted, rng.randint(compacted, await store.current_revision()))
                await store.compact(compacted)
                continue
        except KeyExists:
            assert current is not None
            continue
        except KeyNotFound:
            assert current is None
            continue
        except RevisionMismatch as e:
            assert e.current == current
            continue
        states[kv.mod_revision] = {k: v for k, v in live.items() if k.startswith(PODS)}
    head = await store.current_revision()
    assert await store.list(PODS) == (sorted(states[head].values(), key=lambda kv: kv.key), head)
    kept = [rev for rev in states if rev >= compacted]
    for revision in kept:
        items, at = await store.list(PODS, revision)
        assert at == revision
        assert items == sorted(states[revision].values(), key=lambda kv: kv.key)
    expected = [(t, kv) for t, kv in events if kv.mod_revision >= compacted and kv.key.startswith(PODS)]
    async with watching(store, PODS, compacted or 1) as stream:
        seen = await collect(stream, len(expected))
    assert [(e.type, e.kv) for e in seen] == expected
