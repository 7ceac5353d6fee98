"""The proxy's settings, the CLI's flags and the userspace proxy's endpoint choice."""

from __future__ import annotations

import argparse

import pytest

from kubelite.cli import proxy as proxy_cli
from kubelite.proxy.config import USERSPACE, ProxyConfig
from kubelite.proxy.nft import Nft
from kubelite.proxy.run import select_mode
from kubelite.proxy.services import Endpoint, ServicePortName
from kubelite.proxy.userspace import Target


def test_families_come_from_the_cluster_cidrs_and_node_ips() -> None:
    assert ProxyConfig(node_name="n").ip_families == ("IPv4",)
    assert ProxyConfig(node_name="n", cluster_cidr="fd00:10::/56").ip_families == ("IPv6",)
    config = ProxyConfig(node_name="n", cluster_cidr="10.244.0.0/16,fd00:10::/56", node_ips=("192.0.2.1",))
    assert config.ip_families == ("IPv4", "IPv6") and config.dual_stack
    assert config.cidrs("IPv6") == (("IPv6", "fd00:10::/56"),)


@pytest.mark.parametrize("kwargs", [
    pytest.param({"mode": "iptables"}, id="mode"),
    pytest.param({"cluster_cidr": "10.244.0.0/33"}, id="cidr"),
    pytest.param({"node_ips": ("node-a",)}, id="node-ip"),
    pytest.param({"masquerade_bit": 32}, id="mark-bit"),
    pytest.param({"sync_period": 0}, id="period"),
])
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProxyConfig(node_name="n", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("2", 2.0),
                                                ("1h", 3600.0)])
def test_durations_read_like_kube_proxys(text: str, seconds: float) -> None:
    assert proxy_cli.duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30x", "1m junk", "-1s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        proxy_cli.duration(text)


def test_flags_make_a_config() -> None:
    parser = argparse.ArgumentParser()
    proxy_cli.register(parser.add_subparsers())
    args = parser.parse_args(["proxy", "--hostname-override", "node-a", "--cluster-cidr", "10.244.0.0/16",
                              "--node-ip", "192.0.2.1,2001:db8::1", "--proxy-mode", "userspace",
                              "--min-sync-period", "250ms", "--masquerade-all", "--netns", "/run/netns/x"])
    config = proxy_cli._config(args)
    assert (config.node_name, config.mode, config.min_sync_period, config.masquerade_all, config.netns) == (
        "node-a", "userspace", 0.25, True, "/run/netns/x")
    assert config.node_ips == ("192.0.2.1", "2001:db8::1") and config.ip_families == ("IPv4", "IPv6")


def test_the_userspace_proxy_keeps_a_client_on_its_endpoint_until_the_affinity_expires() -> None:
    a, b = Endpoint("10.244.0.2", 80), Endpoint("10.244.0.3", 80)
    target = Target(ServicePortName("ns", "web", "", "tcp"), (a, b), affinity_seconds=10)
    first = target.pick("192.0.2.9", 0.0, set())
    assert first is not None
    assert all(target.pick("192.0.2.9", t, set()) == first for t in (1.0, 5.0, 9.0))
    other = b if first == a else a
    assert target.pick("192.0.2.9", 9.5, {first}) == other  # a refusing endpoint is skipped
    assert target.pick("192.0.2.9", 9.6, {a, b}) is None
    assert Target(target.name).pick("192.0.2.9", 0.0, set()) is None


async def test_without_nft_the_proxy_falls_back_to_userspace_loudly(caplog: pytest.LogCaptureFixture) -> None:
    nft = Nft(binary="kubelite-no-such-nft")
    assert await select_mode(ProxyConfig(node_name="n"), nft) == USERSPACE
    assert "FALLING BACK TO THE USERSPACE PROXY" in caplog.text
    assert await select_mode(ProxyConfig(node_name="n", mode=USERSPACE), nft) == USERSPACE
