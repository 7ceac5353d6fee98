"""The nftables proxier's sync logic against a fake ``nft``: kinds of sync, cost proportional to the change,
recovery from failed transactions, the table check, stale chains and problem reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest

from kubelite.proxy.config import ProxyConfig
from kubelite.proxy.nft import Nft, NftError
from kubelite.proxy.proxier import NftablesProxier
from tests.unit.proxy.builders import endpoint, endpoint_slice, service

Obj = dict[str, Any]


class FakeNft(Nft):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[list[str]] = []
        self.fail = 0
        self.tables_present: bool | None = True
        self.deleted: list[str] = []

    async def load(self, lines: Sequence[str]) -> None:
        if self.fail:
            self.fail -= 1
            raise NftError("/dev/stdin:1:1-3: Error: injected")
        self.loads.append(list(lines))

    async def table_exists(self, family: str, table: str) -> bool | None:
        return self.tables_present

    async def delete_tables(self, table: str, families: Sequence[str] = ("ip", "ip6")) -> None:
        self.deleted.append(table)


class DictSource:
    def __init__(self) -> None:
        self.services: dict[str, Obj] = {}
        self.slices_of: dict[str, list[Obj]] = {}

    def add(self, svc: Obj, *endpoints: Obj) -> str:
        key = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        self.services[key] = svc
        self.slices_of[key] = [endpoint_slice(svc["metadata"]["name"], list(endpoints))]
        return key

    def service(self, key: str) -> Obj | None:
        return self.services.get(key)

    def slices(self, key: str) -> list[Obj]:
        return self.slices_of.get(key, [])

    def service_keys(self) -> Iterable[str]:
        return list(self.services)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def warning(self, obj: Obj, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def source() -> DictSource:
    src = DictSource()
    for i in range(20):
        src.add(service(f"svc-{i}", f"10.96.0.{i + 10}"), endpoint(f"10.244.0.{i + 2}"))
    return src


def make(source: DictSource, **config: Any) -> tuple[NftablesProxier, FakeNft, Clock]:
    nft, clock = FakeNft(), Clock()
    proxier = NftablesProxier(ProxyConfig(node_name="node-a", cluster_cidr="10.244.0.0/16", **config), source, nft,
                              recorder=Recorder(), clock=clock)  # type: ignore[arg-type]
    return proxier, nft, clock


async def started(source: DictSource, **config: Any) -> tuple[NftablesProxier, FakeNft, Clock]:
    proxier, nft, clock = make(source, **config)
    proxier.set_synced()
    await proxier.sync()
    return proxier, nft, clock


async def test_nothing_is_written_before_the_caches_are_synced(source: DictSource) -> None:
    proxier, nft, _ = make(source)
    proxier.service_changed("ns/svc-1")
    await proxier.sync()
    assert nft.loads == []


async def test_the_first_sync_replaces_the_table(source: DictSource) -> None:
    proxier, nft, _ = await started(source)
    [lines] = nft.loads
    assert lines[:2] == ["add table ip kubelite", "delete table ip kubelite"]
    assert proxier.stats.kind == "replace" and proxier.stats.services == 20


async def test_one_endpoint_change_sends_only_that_service(source: DictSource) -> None:
    proxier, nft, clock = await started(source)
    source.slices_of["ns/svc-7"] = [endpoint_slice("svc-7", [endpoint("10.244.0.9"), endpoint("10.244.3.3")])]
    proxier.slice_changed(source.slices_of["ns/svc-7"][0])
    clock.now += 1
    await proxier.sync()
    assert proxier.stats.kind == "partial" and proxier.stats.services == 1
    assert all("ns/svc-7/" in line for line in nft.loads[-1])


async def test_a_change_that_changes_nothing_loads_nothing(source: DictSource) -> None:
    proxier, nft, clock = await started(source)
    proxier.service_changed("ns/svc-3")
    clock.now += 1
    await proxier.sync()
    assert len(nft.loads) == 1


async def test_a_failed_transaction_is_retried_as_a_replace_with_the_change_kept(source: DictSource) -> None:
    proxier, nft, clock = await started(source)
    source.add(service("new", "10.96.1.1"), endpoint("10.244.9.9"))
    proxier.service_changed("ns/new")
    nft.fail = 1
    clock.now += 1
    await proxier.sync()
    assert proxier.need_replace and "ns/new" in proxier.dirty
    assert proxier.stats.failures == 1
    clock.now += 1
    await proxier.sync()
    lines = nft.loads[-1]
    assert lines[:2] == ["add table ip kubelite", "delete table ip kubelite"]
    assert any("ns/new/" in line for line in lines)
    assert not proxier.need_replace and not proxier.dirty


async def test_a_resync_checks_the_table_and_rebuilds_it_when_gone(source: DictSource) -> None:
    proxier, nft, clock = await started(source, sync_period=30)
    clock.now += 31
    await proxier.sync()
    assert proxier.stats.kind == "resync" and len(nft.loads) == 1  # nothing differs: nothing sent
    nft.tables_present = False
    clock.now += 31
    await proxier.sync()
    assert proxier.stats.kind == "replace" and nft.loads[-1][1] == "delete table ip kubelite"


async def test_a_resync_repairs_a_missed_event(source: DictSource) -> None:
    proxier, nft, clock = await started(source, sync_period=30)
    source.slices_of["ns/svc-4"] = [endpoint_slice("svc-4", [])]  # no notification
    clock.now += 31
    await proxier.sync()
    assert any("no-endpoint-services" in line and "10.96.0.14" in line for line in nft.loads[-1])


async def test_full_syncs_rewrite_without_deleting_the_table(source: DictSource) -> None:
    proxier, nft, clock = await started(source, full_sync_period=100)
    clock.now += 101
    await proxier.sync()
    assert proxier.stats.kind == "full"
    assert "delete table ip kubelite" not in nft.loads[-1]
    assert "flush map ip kubelite service-ips" in nft.loads[-1]


async def test_stale_chains_are_deleted_by_a_sync_a_second_later(source: DictSource) -> None:
    proxier, nft, clock = await started(source)
    del source.services["ns/svc-2"]
    proxier.service_changed("ns/svc-2")
    clock.now += 1
    await proxier.sync()
    assert not any(line.startswith("delete chain") for line in nft.loads[-1])
    source.slices_of["ns/svc-3"] = [endpoint_slice("svc-3", [])]
    proxier.service_changed("ns/svc-3")
    clock.now += 1.5
    await proxier.sync()
    deletes = [line for line in nft.loads[-1] if line.startswith("delete chain")]
    assert deletes and all("ns/svc-2/" in line for line in deletes)
    assert any("10.96.0.13 . tcp . 80 : goto reject-chain" in line for line in nft.loads[-1])


async def test_problems_are_reported_once_with_kube_proxys_event(source: DictSource) -> None:
    proxier, _, clock = await started(source)
    source.add(service("bad", "10.96.2.2", externalIPs=["fd00::1"]), endpoint("10.244.7.7"))
    for _ in range(2):
        proxier.service_changed("ns/bad")
        clock.now += 1
        await proxier.sync()
    recorder = proxier.recorder
    assert isinstance(recorder, Recorder)
    assert recorder.events == [("bad", "KubeProxyIncorrectIPVersion",
                                "fd00::1 in spec.externalIPs has incorrect IP version")]


async def test_dual_stack_loads_both_families_in_one_transaction() -> None:
    src = DictSource()
    svc = service("web", "10.96.0.10")
    svc["spec"]["clusterIPs"] = ["10.96.0.10", "fd00::10"]
    key = src.add(svc, endpoint("10.244.0.2"))
    src.slices_of[key].append(endpoint_slice("web", [endpoint("fd00:10::2")], name="web-v6", address_type="IPv6"))
    proxier, nft, _ = await started(src, node_ips=("192.0.2.1", "2001:db8::1"))
    assert proxier.config.ip_families == ("IPv4", "IPv6")
    [lines] = nft.loads
    assert any("dnat to 10.244.0.2:8080" in line for line in lines)
    assert any("dnat to [fd00:10::2]:8080" in line for line in lines)
    assert "delete table ip6 kubelite" in lines


async def test_cleanup_deletes_the_tables(source: DictSource) -> None:
    proxier, nft, _ = await started(source)
    await proxier.cleanup()
    assert nft.deleted == ["kubelite"] and proxier.need_replace


class FakeCleaner:
    def __init__(self) -> None:
        self.calls: list[list[Any]] = []

    async def clean(self, ports: list[Any]) -> int:
        self.calls.append(ports)
        return 0


async def test_conntrack_is_cleaned_when_udp_endpoints_change(source: DictSource) -> None:
    cleaner = FakeCleaner()
    proxier, _, clock = make(source)
    proxier.conntrack = cleaner  # type: ignore[assignment]
    dns = service("dns", "10.96.5.5", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    key = source.add(dns)
    source.slices_of[key] = [endpoint_slice("dns", [endpoint("10.244.0.2")],
                                            ports=[{"name": "dns", "port": 5353, "protocol": "UDP"}])]
    proxier.set_synced()
    await proxier.sync()
    assert len(cleaner.calls) == 1  # a replace checks every UDP Service
    proxier.service_changed("ns/svc-1")  # TCP only: nothing to clean
    clock.now += 1
    await proxier.sync()
    assert len(cleaner.calls) == 1
    source.slices_of[key][0]["endpoints"] = [endpoint("10.244.0.3")]
    proxier.service_changed(key)
    clock.now += 1
    await proxier.sync()
    [port] = cleaner.calls[-1]
    assert port.endpoints == frozenset({("10.244.0.3", 5353)})
