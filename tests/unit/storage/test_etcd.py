"""What only the etcd backend does: endpoints, reachability, key prefixes, paging, others' compactions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from kubelite.apiserver.storage import EtcdStore, Unavailable
from kubelite.apiserver.storage.etcd import channel_target
from tests.support.etcd import EtcdNotInstalled, etcd_server, free_port
from tests.unit.storage.helpers import watching


@pytest.mark.parametrize(
    ("endpoints", "target"),
    [
        pytest.param(["http://127.0.0.1:2379"], "127.0.0.1:2379", id="one"),
        pytest.param(["http://etcd.example:12379"], "etcd.example:12379", id="host-name"),
        pytest.param(["127.0.0.1"], "127.0.0.1:2379", id="bare-default-port"),
        pytest.param(["http://[::1]:2379"], "[::1]:2379", id="ipv6"),
        pytest.param(["http://10.0.0.1:2379", "http://10.0.0.2:2380"], "ipv4:10.0.0.1:2379,10.0.0.2:2380",
                     id="several"),
        pytest.param(["http://[fd00::1]:2379", "http://[fd00::2]:2379"], "ipv6:[fd00::1]:2379,[fd00::2]:2379",
                     id="several-ipv6"),
    ],
)
def test_channel_target(endpoints: list[str], target: str) -> None:
    assert channel_target(endpoints) == target


@pytest.mark.parametrize(
    "endpoints",
    [
        pytest.param([], id="none"),
        pytest.param(["https://127.0.0.1:2379"], id="tls"),
        pytest.param(["http://a.example:2379", "http://b.example:2379"], id="several-names"),
    ],
)
def test_unsupported_endpoints_fail_at_construction(endpoints: list[str]) -> None:
    with pytest.raises(ValueError):
        EtcdStore(endpoints)


async def test_an_unreachable_etcd_is_unavailable() -> None:
    store = EtcdStore([f"http://127.0.0.1:{free_port()}"], request_timeout=5)
    with pytest.raises(Unavailable):
        await store.start()
    with pytest.raises(Unavailable):
        await store.get("/registry/pods/default/a")


@pytest.mark.etcd
async def test_an_etcd_that_goes_away_makes_the_store_unavailable() -> None:
    server = etcd_server()
    try:
        url = await server.astart()
    except EtcdNotInstalled as e:
        pytest.skip(str(e))
    try:
        async with EtcdStore([url], request_timeout=5) as store:
            await store.create("/registry/pods/default/a", b"a")
            events = store.watch("/registry/pods/", 0)
            pending = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.1)  # let the watch reach etcd; the outcome does not depend on it
            server.stop()
            with pytest.raises(Unavailable):
                async with asyncio.timeout(10):
                    await pending
            await events.aclose()
            with pytest.raises(Unavailable):
                await store.get("/registry/pods/default/a")
    finally:
        server.stop()


@pytest.fixture
async def prefixed(etcd_url: str) -> AsyncIterator[tuple[EtcdStore, EtcdStore]]:
    """Two stores on the session's etcd, each under a prefix of its own."""
    one = EtcdStore([etcd_url], prefix=f"/one-{uuid.uuid4().hex[:8]}", page_size=3)
    two = EtcdStore([etcd_url], prefix=f"/two-{uuid.uuid4().hex[:8]}")
    await one.start()
    await two.start()
    try:
        yield one, two
    finally:
        await one.close()
        await two.close()


@pytest.mark.etcd
async def test_stores_under_different_prefixes_do_not_see_each_other(
    prefixed: tuple[EtcdStore, EtcdStore],
) -> None:
    one, two = prefixed
    mine = await one.create("/registry/pods/default/a", b"one")
    theirs = await two.create("/registry/pods/default/a", b"two")
    assert await one.get("/registry/pods/default/a") == mine
    assert (await two.list(""))[0] == [theirs]
    async with watching(one, "", mine.mod_revision) as events:
        await two.create("/registry/pods/default/b", b"two")
        last = await one.create("/registry/pods/default/c", b"one")
        seen = [e.kv for e in await anext(events)]
        while seen[-1] != last:
            seen.extend(e.kv for e in await anext(events))
    assert seen == [mine, last]


@pytest.mark.etcd
async def test_a_list_longer_than_a_page_is_one_snapshot(prefixed: tuple[EtcdStore, EtcdStore]) -> None:
    one, _ = prefixed  # three keys a page
    for i in range(10):
        await one.create(f"/registry/pods/default/p{i:02}", b"x")
    then = await one.current_revision()
    for i in range(10, 15):
        await one.create(f"/registry/pods/default/p{i:02}", b"x")
    items, revision = await one.list("/registry/pods/", then)
    assert revision == then
    assert [kv.key for kv in items] == [f"/registry/pods/default/p{i:02}" for i in range(10)]
    items, revision = await one.list("/registry/pods/")
    assert len(items) == 15 and revision == await one.current_revision()


@pytest.mark.etcd
async def test_a_compaction_made_by_another_client_is_found(prefixed: tuple[EtcdStore, EtcdStore]) -> None:
    one, two = prefixed
    await one.create("/registry/pods/default/a", b"x")
    target = (await two.create("/registry/pods/default/a", b"y")).mod_revision
    await two.compact(target)
    assert await one.compacted_revision() == target
