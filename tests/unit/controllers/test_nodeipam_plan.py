"""The Node IPAM controller's pure parts: cutting a cluster CIDR into node subnets, and what to do per node."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kubelite.controllers.nodeipam import (
    Assign,
    CidrSet,
    Occupy,
    Release,
    decide,
    parse_cluster_cidrs,
    pod_cidrs,
    with_pod_cidrs,
)


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def node(*cidrs: str, single: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if cidrs:
        spec["podCIDRs"] = list(cidrs)
    if single:
        spec["podCIDR"] = single
    return {"metadata": {"name": "n1"}, "spec": spec}


def test_subnets_come_in_order_and_never_twice() -> None:
    s = CidrSet(net("10.244.0.0/16"), 24)
    assert s.size == 256
    got = [str(s.allocate_next()) for _ in range(3)]
    assert got == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert s.used == 3


def test_a_full_range_gives_nothing() -> None:
    s = CidrSet(net("10.0.0.0/23"), 24)
    assert s.allocate_next() is not None and s.allocate_next() is not None
    assert s.allocate_next() is None


def test_the_pointer_rotates_so_a_freed_subnet_is_not_reused_at_once() -> None:
    s = CidrSet(net("10.0.0.0/22"), 24)
    first = s.allocate_next()
    assert first is not None
    s.release(first)
    assert str(s.allocate_next()) == "10.0.1.0/24"
    assert str(s.allocate_next()) == "10.0.2.0/24"
    assert str(s.allocate_next()) == "10.0.3.0/24"
    assert str(s.allocate_next()) == "10.0.0.0/24"  # wrapped around to the freed one
    assert s.allocate_next() is None


def test_occupied_subnets_are_skipped() -> None:
    s = CidrSet(net("10.0.0.0/22"), 24)
    s.occupy(net("10.0.0.0/24"))
    s.occupy(net("10.0.2.0/23"))  # a larger CIDR takes every subnet it overlaps
    assert s.used == 3
    assert str(s.allocate_next()) == "10.0.1.0/24"
    assert s.allocate_next() is None


def test_occupying_outside_the_range_is_refused() -> None:
    s = CidrSet(net("10.0.0.0/16"), 24)
    with pytest.raises(ValueError, match="not inside"):
        s.occupy(net("10.1.0.0/24"))
    with pytest.raises(ValueError, match="not inside"):
        s.occupy(net("fd00::/64"))


@pytest.mark.parametrize(("cluster", "mask", "message"), [
    pytest.param("10.0.0.0/16", 8, "does not fit", id="mask-shorter-than-range"),
    pytest.param("10.0.0.0/8", 30, "more than", id="too-many-subnets"),
])
def test_impossible_mask_sizes(cluster: str, mask: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CidrSet(net(cluster), mask)


def test_ipv6_subnets() -> None:
    s = CidrSet(net("fd00:10:244::/56"), 64)
    assert str(s.allocate_next()) == "fd00:10:244::/64"
    assert str(s.allocate_next()) == "fd00:10:244:1::/64"


def test_parse_single_and_dual_stack() -> None:
    (v4,) = parse_cluster_cidrs("10.244.0.0/16", 24)
    assert v4.cluster == net("10.244.0.0/16") and v4.mask_size == 24
    v4, v6 = parse_cluster_cidrs("10.244.0.0/16, fd00:10:244::/56", 24)
    assert v6.mask_size == 64


@pytest.mark.parametrize("text", [
    pytest.param("", id="empty"),
    pytest.param("10.0.0.0/16,10.1.0.0/16", id="two-ipv4"),
    pytest.param("10.0.0.1/16", id="host-bits"),
])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cluster_cidrs(text, 24)


def test_pod_cidrs_reads_the_list_then_the_single_field() -> None:
    assert pod_cidrs(node("10.0.1.0/24", "fd00::/64")) == ("10.0.1.0/24", "fd00::/64")
    assert pod_cidrs(node(single="10.0.1.0/24")) == ("10.0.1.0/24",)
    assert pod_cidrs(node()) == ()


def test_with_pod_cidrs_sets_both_fields_on_a_copy() -> None:
    original = node()
    out = with_pod_cidrs(original, ["10.0.3.0/24"])
    assert out["spec"] == {"podCIDR": "10.0.3.0/24", "podCIDRs": ["10.0.3.0/24"]}
    assert original["spec"] == {}


@pytest.mark.parametrize(("obj", "held", "want"), [
    pytest.param(None, None, None, id="gone-and-unknown"),
    pytest.param(None, ("10.0.0.0/24",), Release(), id="gone-frees"),
    pytest.param(node("10.0.0.0/24"), ("10.0.0.0/24",), None, id="in-books"),
    pytest.param(node("10.0.0.0/24"), None, Occupy(("10.0.0.0/24",)), id="found-taken"),
    pytest.param(node("10.0.5.0/24"), ("10.0.0.0/24",), Occupy(("10.0.5.0/24",)), id="lost-a-race"),
    pytest.param(node(), None, Assign(None), id="needs-one"),
    pytest.param(node(), ("10.0.0.0/24",), Assign(("10.0.0.0/24",)), id="retry-same-reservation"),
])
def test_decide(obj: dict[str, Any] | None, held: tuple[str, ...] | None, want: object) -> None:
    assert decide(obj, held) == want
