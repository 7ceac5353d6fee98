"""Rendering: the table skeleton and each Service's chains, maps, sets and elements (golden nft text for
small cases; the files under golden/ were checked by loading them into a real kernel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubelite.proxy.nftables import (
    NAME_MAX,
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    RenderConfig,
    ServiceObjects,
    element_commands,
    hash_and_truncate,
    render_service,
)
from kubelite.proxy.services import IPV4, IPV6, plan_service
from kubelite.proxy.transaction import FamilyTable
from tests.unit.proxy.builders import endpoint, endpoint_slice, service

GOLDEN = Path(__file__).parent / "golden"
CFG = RenderConfig(cluster_cidrs=("10.244.0.0/16",))


def render(svc: dict[str, Any], endpoints: list[dict[str, Any]], cfg: RenderConfig = CFG,
           family: str = IPV4) -> ServiceObjects:
    slices = [endpoint_slice(svc["metadata"]["name"], endpoints, address_type=family)]
    return render_service(plan_service(svc, slices, family=family, node_name="node-a"), cfg)


def chain(objects: ServiceObjects, prefix: str) -> tuple[str, ...]:
    [rules] = [r for name, r in objects.chains.items() if name.startswith(prefix)]
    return rules


def test_golden_replace_transaction_of_a_small_cluster() -> None:
    table = FamilyTable(CFG)
    changes = {
        "ns/web": render(service("web", "10.96.0.10"), [endpoint("10.244.0.2"), endpoint("10.244.1.2", node="node-b")]),
        "ns/empty": render(service("empty", "10.96.0.11"), []),
    }
    lines = table.plan(changes, now=0, replace=True).lines
    assert "\n".join(lines) + "\n" == (GOLDEN / "replace-small.nft").read_text()


def test_a_cluster_ip_service_balances_over_its_endpoints() -> None:
    objects = render(service("web"), [endpoint("10.244.0.2"), endpoint("10.244.1.2", node="node-b")])
    [svc_chain] = [n for n in objects.chains if n.startswith("service-")]
    assert svc_chain.endswith("-ns/web/tcp/http")
    assert chain(objects, "service-") == (
        "ip daddr 10.96.0.10 tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade",
        f"numgen random mod 2 vmap @lb-{svc_chain}")
    targets = sorted(n for n in objects.chains if n.startswith("endpoint-"))
    assert sorted(v.removeprefix("goto ") for v in objects.maps[f"lb-{svc_chain}"].values()) == targets
    assert objects.elements[SERVICE_IPS] == {"10.96.0.10 . tcp . 80": f"goto {svc_chain}"}
    [local_ep] = [n for n in targets if "10.244.0.2" in n]
    assert objects.chains[local_ep] == ("ip saddr 10.244.0.2 jump mark-for-masquerade",
                                        "meta l4proto tcp dnat to 10.244.0.2:8080")


def test_a_service_without_ready_endpoints_is_rejected_and_has_no_chains() -> None:
    objects = render(service("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                     [endpoint("10.244.0.2", ready=False)])
    assert objects.chains == {}
    assert objects.elements[NO_ENDPOINT_SERVICES] == {"10.96.0.10 . tcp . 80": "goto reject-chain"}
    assert objects.elements[NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": "goto reject-chain"}


def test_internal_local_policy_without_local_endpoints_drops() -> None:
    objects = render(service("web", internalTrafficPolicy="Local"), [endpoint("10.244.1.2", node="node-b")])
    assert objects.elements[NO_ENDPOINT_SERVICES] == {"10.96.0.10 . tcp . 80": "drop"}
    assert SERVICE_IPS not in objects.elements


def test_node_port_with_cluster_policy_masquerades() -> None:
    objects = render(service("web", type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                     [endpoint("10.244.0.2")])
    [ext] = [n for n in objects.chains if n.startswith("external-")]
    assert objects.elements[SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {ext}"}
    assert objects.chains[ext] == ("jump mark-for-masquerade", f"goto {ext.replace('external-', 'service-')}")


def test_node_port_with_local_policy_keeps_the_source_and_short_circuits_pods_and_the_node() -> None:
    objects = render(service("web", type="NodePort", externalTrafficPolicy="Local",
                             ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                     [endpoint("10.244.0.2"), endpoint("10.244.1.2", node="node-b")])
    [ext] = [n for n in objects.chains if n.startswith("external-")]
    cluster, local = ext.replace("external-", "service-"), ext.replace("external-", "local-")
    assert objects.chains[ext] == (
        f"ip saddr 10.244.0.0/16 goto {cluster}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {cluster}",
        f"goto {local}")
    assert objects.chains[local] == (f"numgen random mod 1 vmap @lb-{local}",)
    assert [v for v in objects.maps[f"lb-{local}"].values()] == [
        f"goto {n}" for n in objects.chains if n.startswith("endpoint-") and "10.244.0.2" in n]


def test_node_port_with_local_policy_and_no_local_endpoint_drops_outside_traffic() -> None:
    objects = render(service("web", type="NodePort", externalTrafficPolicy="Local",
                             ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                     [endpoint("10.244.1.2", node="node-b")])
    assert objects.elements[NO_ENDPOINT_NODEPORTS] == {"tcp . 30080": "drop"}
    [ext] = [n for n in objects.chains if n.startswith("external-")]
    assert objects.elements[SERVICE_NODEPORTS] == {"tcp . 30080": f"goto {ext}"}
    assert not any(r.startswith("goto local-") for r in objects.chains[ext])


def test_client_ip_affinity_uses_one_timed_set_per_endpoint() -> None:
    objects = render(service("web", sessionAffinity="ClientIP",
                             sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}}),
                     [endpoint("10.244.0.2"), endpoint("10.244.0.3")])
    assert list(objects.sets.values()) == [30, 30]
    rules = chain(objects, "service-")
    for aff in objects.sets:
        assert any(r.startswith(f"ip saddr @{aff} goto endpoint-") for r in rules)
    assert rules[-1].startswith("numgen random mod 2 vmap @lb-")
    for name, ep_rules in objects.chains.items():
        if name.startswith("endpoint-"):
            assert ep_rules[1].startswith("update @affinity-") and ep_rules[1].endswith(" { ip saddr }")


def test_masquerading_choices() -> None:
    assert chain(render(service("web"), [endpoint("10.244.0.2")], RenderConfig(masquerade_all=True)), "service-")[0] \
        == "ip daddr 10.96.0.10 tcp dport 80 jump mark-for-masquerade"
    # Without a cluster CIDR pods cannot be told from the rest: nothing but hairpin is masqueraded.
    assert chain(render(service("web"), [endpoint("10.244.0.2")], RenderConfig()), "service-")[0].startswith("numgen")


def test_external_ips_go_through_the_external_chain() -> None:
    objects = render(service("web", externalIPs=["192.0.2.7"]), [endpoint("10.244.0.2")])
    [ext] = [n for n in objects.chains if n.startswith("external-")]
    assert objects.elements[SERVICE_IPS]["192.0.2.7 . tcp . 80"] == f"goto {ext}"


def test_ipv6() -> None:
    cfg = RenderConfig(family=IPV6, cluster_cidrs=("fd00:10::/64",))
    objects = render(service("web", "fd00::10"), [endpoint("fd00:10::2")], cfg, IPV6)
    assert chain(objects, "service-")[0] == "ip6 daddr fd00::10 tcp dport 80 ip6 saddr != fd00:10::/64 " \
                                            "jump mark-for-masquerade"
    [ep] = [n for n in objects.chains if n.startswith("endpoint-")]
    assert ep.endswith("__fd00.10..2/8080")
    assert objects.chains[ep][-1] == "meta l4proto tcp dnat to [fd00:10::2]:8080"
    assert "add set ip6 kubelite cluster-ips { type ipv6_addr ;" in "\n".join(
        FamilyTable(cfg).plan({}, now=0, replace=True).lines)


def test_names_are_safe_unique_and_short_enough() -> None:
    long = "x" * 300
    name = hash_and_truncate(f"ns/{long}/tcp/p")
    assert len("endpoint-" + name) <= NAME_MAX and name.endswith("...")
    assert hash_and_truncate("a b;c") != hash_and_truncate("a_b_c")
    assert " " not in hash_and_truncate("a b;c") and ";" not in hash_and_truncate("a b;c")


def test_elements_are_grouped_into_commands() -> None:
    lines = element_commands(CFG, "add", "service-ips", [(f"10.96.{i // 256}.{i % 256} . tcp . 80", "drop")
                                                          for i in range(1000)])
    assert len(lines) == 2
    assert element_commands(CFG, "delete", "cluster-ips", [("10.96.0.1", ""), ("10.96.0.2", "")]) == [
        "delete element ip kubelite cluster-ips { 10.96.0.1, 10.96.0.2 }"]
