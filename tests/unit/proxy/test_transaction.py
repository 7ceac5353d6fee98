"""The transaction builder: only what changed is sent, in an order every reference is valid in, and the
state is remembered only once a transaction is loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubelite.proxy.nftables import EMPTY, RenderConfig, ServiceObjects, render_service
from kubelite.proxy.services import IPV4, plan_service
from kubelite.proxy.transaction import Conflict, FamilyTable
from tests.unit.proxy.builders import endpoint, endpoint_slice, service

GOLDEN = Path(__file__).parent / "golden"
CFG = RenderConfig(cluster_cidrs=("10.244.0.0/16",))


def objects(svc: dict[str, Any], endpoints: list[dict[str, Any]]) -> ServiceObjects:
    slices = [endpoint_slice(svc["metadata"]["name"], endpoints)]
    return render_service(plan_service(svc, slices, family=IPV4, node_name="node-a"), CFG)


def cluster(n: int, endpoints_per_service: int = 10) -> dict[str, ServiceObjects]:
    return {f"ns/svc-{i}": objects(service(f"svc-{i}", f"10.96.{i // 256}.{i % 256}"),
                                   [endpoint(f"10.244.{i % 250}.{j}") for j in range(endpoints_per_service)])
            for i in range(n)}


def loaded(changes: dict[str, ServiceObjects]) -> FamilyTable:
    table = FamilyTable(CFG)
    table.plan(changes, now=0, replace=True).commit()
    return table


def test_golden_one_endpoint_replaced() -> None:
    web = service("web", "10.96.0.10")
    table = loaded({"ns/web": objects(web, [endpoint("10.244.0.2"), endpoint("10.244.1.2", node="node-b")]),
                    "ns/empty": objects(service("empty", "10.96.0.11"), [])})
    plan = table.plan({"ns/web": objects(web, [endpoint("10.244.0.2"), endpoint("10.244.1.3", node="node-b")])},
                      now=1)
    assert "\n".join(plan.lines) + "\n" == (GOLDEN / "partial-one-endpoint.nft").read_text()


def test_one_endpoint_change_among_a_thousand_services_touches_only_that_service() -> None:
    services = cluster(1000)
    table = loaded(services)
    changed = objects(service("svc-500", "10.96.1.244"),
                      [endpoint(f"10.244.0.{j}") for j in range(9)] + [endpoint("10.244.0.99")])
    plan = table.plan({**{k: services[k] for k in ("ns/svc-499", "ns/svc-501")}, "ns/svc-500": changed}, now=1)
    assert plan.lines, "the change must be sent"
    assert len(plan.lines) <= 10
    for line in plan.lines:
        assert "ns/svc-500/" in line, line
    assert not any("flush map" in line or "service-ips" in line for line in plan.lines)


def test_nothing_changed_sends_nothing() -> None:
    services = cluster(3)
    table = loaded(services)
    assert table.plan(services, now=1).lines == []
    assert table.plan({"ns/absent": EMPTY}, now=1).lines == []


def test_a_removed_service_leaves_flushed_chains_that_are_deleted_a_second_later() -> None:
    svc = service("web", "10.96.0.10", sessionAffinity="ClientIP")
    table = loaded({"ns/web": objects(svc, [endpoint("10.244.0.2")])})
    chains = set(table.services["ns/web"].chains)
    plan = table.plan({"ns/web": EMPTY}, now=10)
    text = "\n".join(plan.lines)
    for chain in chains:
        assert f"flush chain ip kubelite {chain}" in text
        assert f"delete chain ip kubelite {chain}" not in text
    assert "delete map ip kubelite lb-service-" in text
    assert "delete set ip kubelite affinity-" in text
    assert "delete element ip kubelite service-ips { 10.96.0.10 . tcp . 80 }" in text
    assert "delete element ip kubelite cluster-ips { 10.96.0.10 }" in text
    # every chain is flushed before the sets its rules used are deleted
    assert max(i for i, line in enumerate(plan.lines) if line.startswith("flush chain")) < min(
        i for i, line in enumerate(plan.lines) if line.startswith("delete "))
    plan.commit()
    assert table.plan({}, now=10.5).lines == []
    plan = table.plan({}, now=11.0)
    assert set(plan.deleted) == chains
    name = plan.deleted[0]
    assert plan.lines[:2] == [f"add chain ip kubelite {name}", f"delete chain ip kubelite {name}"]
    assert len(plan.lines) == 2 * len(chains)
    table.plan({}, now=11.5)  # not loaded: still due
    plan.commit()
    assert table.stale == {} and table.plan({}, now=20).lines == []


def test_a_chain_wanted_again_before_its_deletion_is_no_longer_stale() -> None:
    svc = service("web", "10.96.0.10")
    table = loaded({"ns/web": objects(svc, [endpoint("10.244.0.2")])})
    table.plan({"ns/web": objects(svc, [])}, now=1).commit()
    assert table.stale
    table.plan({"ns/web": objects(svc, [endpoint("10.244.0.2")])}, now=1.5).commit()
    assert table.stale == {}


def test_an_uncommitted_plan_changes_nothing() -> None:
    services = cluster(2)
    table = loaded(services)
    table.plan({"ns/svc-0": EMPTY}, now=1)
    assert table.services == services
    assert table.plan(services, now=1).lines == []


def test_two_services_claiming_one_key_the_first_by_name_wins_and_the_other_takes_over() -> None:
    a = objects(service("a", "10.96.0.10", externalIPs=["192.0.2.7"]), [endpoint("10.244.0.2")])
    b = objects(service("b", "10.96.0.11", externalIPs=["192.0.2.7"]), [endpoint("10.244.0.3")])
    table = FamilyTable(CFG)
    plan = table.plan({"ns/b": b, "ns/a": a}, now=0, replace=True)
    assert plan.conflicts == [Conflict("service-ips", "192.0.2.7 . tcp . 80", "ns/a", ("ns/b",))]
    plan.commit()
    a_ext = next(n for n in a.chains if n.startswith("external-"))
    b_ext = next(n for n in b.chains if n.startswith("external-"))
    assert table.elements("service-ips")["192.0.2.7 . tcp . 80"] == f"goto {a_ext}"
    plan = table.plan({"ns/a": EMPTY}, now=1)
    assert "delete element ip kubelite service-ips { 10.96.0.10 . tcp . 80, 192.0.2.7 . tcp . 80 }" in plan.lines
    assert f"add element ip kubelite service-ips {{ 192.0.2.7 . tcp . 80 : goto {b_ext} }}" in plan.lines
    plan.commit()
    assert table.elements("service-ips")["192.0.2.7 . tcp . 80"] == f"goto {b_ext}"


def test_a_value_change_deletes_the_element_before_adding_it_again() -> None:
    svc = service("web", "10.96.0.10")
    table = loaded({"ns/web": objects(svc, [endpoint("10.244.0.2")])})
    plan = table.plan({"ns/web": objects(svc, [])}, now=1)
    delete = plan.lines.index("delete element ip kubelite service-ips { 10.96.0.10 . tcp . 80 }")
    add = plan.lines.index("add element ip kubelite no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }")
    assert delete < add


def test_a_new_affinity_timeout_makes_a_new_set() -> None:
    def svc(seconds: int) -> dict[str, Any]:
        return service("web", sessionAffinity="ClientIP",
                       sessionAffinityConfig={"clientIP": {"timeoutSeconds": seconds}})

    table = loaded({"ns/web": objects(svc(30), [endpoint("10.244.0.2")])})
    text = "\n".join(table.plan({"ns/web": objects(svc(60), [endpoint("10.244.0.2")])}, now=1).lines)
    assert "timeout 60s" in text and "delete set ip kubelite affinity-" in text


def test_full_rewrites_everything_and_refills_the_shared_maps() -> None:
    services = cluster(3, 2)
    table = loaded(services)
    plan = table.plan(services, now=1, full=True)
    text = "\n".join(plan.lines)
    assert "delete table" not in text
    for container in ("service-ips", "no-endpoint-services", "cluster-ips"):
        assert f"flush {'set' if container == 'cluster-ips' else 'map'} ip kubelite {container}" in text
    service_rules = [line for line in plan.lines if line.startswith("add rule ip kubelite service-") and "/" in line]
    assert len(service_rules) == 3 * 2  # masquerade + numgen rules
    assert "add element ip kubelite service-ips" in text
    plan.commit()
    assert len(table.elements("service-ips")) == 3


def test_replace_starts_from_an_empty_table() -> None:
    services = cluster(2)
    table = loaded(services)
    plan = table.plan(services, now=1, replace=True)
    assert plan.lines[:2] == ["add table ip kubelite", "delete table ip kubelite"]
    assert table.services == {}  # forgotten at once: after a failure only another replace is safe
    plan.commit()
    assert table.services == services
