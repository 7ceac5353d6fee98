"""PodNetwork with the real CNI plugins, each test's node in a network namespace the test makes.

Every plugin runs under ``nsenter --net=<node netns>`` (``PodNetwork(host_netns=...)``), so the bridge, the
veth host ends, ip_forward and the NAT rules of ipMasq and portmap exist only in that namespace and vanish
with it; the machine's own namespace is never touched (a test checks that). Pod namespaces are torn down by
the fixture, also when a test fails.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelite.kubelet.network import (
    DEFAULT_CNI_BIN_DIRS,
    CniPluginError,
    NetworkNotReady,
    NetworkStatus,
    PodNetwork,
    PortMapping,
    netns,
)
from kubelite.kubelet.paths import AgentPaths
from tests.support.network import delete_link, links, node_netns, run_in_netns, tcp_get, tcp_server_in_netns

PLUGINS = ("bridge", "host-local", "portmap", "loopback")


def _plugins_missing() -> list[str]:
    return [p for p in PLUGINS if not any(os.access(Path(d, p), os.X_OK) for d in DEFAULT_CNI_BIN_DIRS)]


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, veths and iptables"),
    pytest.mark.skipif(bool(_plugins_missing()), reason=f"CNI plugins {_plugins_missing()} not found in "
                       f"{DEFAULT_CNI_BIN_DIRS} (Debian package containernetworking-plugins)"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="nsenter (util-linux) not installed"),
]


class Node:
    """One test node: its namespace, its data directory, the sandboxes the test created (for cleanup)."""

    def __init__(self, netns_path: Path, root: Path) -> None:
        self.netns_path = netns_path
        self.paths = AgentPaths(root)
        self.bridge = f"kl{secrets.token_hex(3)}"
        self.sandboxes: set[str] = set()

    def network(self, pod_cidr: str | None = "10.88.0.0/24") -> PodNetwork:
        """A PodNetwork for this node; several share the node's paths as restarts of the kubelet do."""
        network = PodNetwork(self.paths, pod_cidr=pod_cidr, bridge_name=self.bridge,
                             host_netns=str(self.netns_path), plugin_timeout=20)
        if pod_cidr:
            network.ensure_default_config(pod_cidr)
        return network

    def sandbox_id(self) -> str:
        sandbox_id = secrets.token_hex(32)
        self.sandboxes.add(sandbox_id)
        return sandbox_id

    async def setup(self, network: PodNetwork, sandbox_id: str | None = None, *, name: str = "web",
                    ports: list[PortMapping] | None = None) -> tuple[str, NetworkStatus]:
        sandbox_id = sandbox_id or self.sandbox_id()
        status = await network.setup(sandbox_id=sandbox_id, namespace="default", name=name,
                                     uid=secrets.token_hex(8), port_mappings=ports or [])
        return sandbox_id, status

    def ipam_entries(self) -> dict[str, str]:
        """host-local's reservations: ip -> container id."""
        folder = self.paths.cni_ipam_dir / "kubelite"
        if not folder.is_dir():
            return {}
        return {p.name: p.read_text().splitlines()[0] for p in folder.iterdir() if p.name[0].isdigit()}

    def nat_rules(self) -> str:
        return run_in_netns(self.netns_path, ["iptables", "-t", "nat", "-S"]).stdout


def root_nat_rules() -> str:
    """The NAT rules of the machine's own namespace (only read, to see that the tests never change them)."""
    return subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True, check=True).stdout


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    async with node_netns() as path:
        the_node = Node(path, tmp_path)
        try:
            yield the_node
        finally:
            # every sandbox is cleaned up even when one fails; the first failure is reported afterwards
            cleanup = the_node.network(pod_cidr=None)
            failures: list[Exception] = []
            for sandbox_id in the_node.sandboxes:
                try:
                    await cleanup.teardown(sandbox_id)
                except Exception as e:
                    failures.append(e)
                await netns.remove(netns.netns_path(sandbox_id))
            if failures:
                raise failures[0]


async def test_two_pods_get_addresses_and_reach_each_other(node: Node) -> None:
    network = node.network("10.88.0.0/24")
    a, status_a = await node.setup(network, name="a")
    b, status_b = await node.setup(network, name="b")

    cidr = ipaddress.ip_network("10.88.0.0/24")
    assert {ipaddress.ip_address(status_a.ip), ipaddress.ip_address(status_b.ip)} <= set(cidr.hosts())
    assert status_a.ip != status_b.ip and "10.88.0.1" not in (status_a.ip, status_b.ip)  # .1 is the gateway
    assert status_a.ips == [status_a.ip] and status_a.interface == "eth0"
    assert status_a.netns_path == network.netns_path(a) == f"/run/netns/kubelite-{a[:16]}"
    assert network.status(a) == status_a

    pod_links = await links(status_a.netns_path)
    assert pod_links["lo"] == "up" and pod_links["eth0"] == "up"
    assert node.bridge in await links(node.netns_path)
    assert node.ipam_entries() == {status_a.ip: a, status_b.ip: b}

    async with tcp_server_in_netns(status_a.netns_path, 8080, "hello from a"):
        assert await asyncio.to_thread(tcp_get, status_b.netns_path, status_a.ip, 8080) == "hello from a"
        # the loopback network: a pod reaches itself on 127.0.0.1
        assert await asyncio.to_thread(tcp_get, status_a.netns_path, "127.0.0.1", 8080) == "hello from a"
    ping = await asyncio.to_thread(run_in_netns, status_b.netns_path, ["busybox", "ping", "-c", "1", "-W", "2",
                                                                       status_a.ip])
    assert ping.returncode == 0, ping.stdout + ping.stderr

    await network.check(a)

    await network.teardown(a)
    await network.teardown(a)  # idempotent
    assert not Path(status_a.netns_path).exists()
    assert node.ipam_entries() == {status_b.ip: b}
    assert network.status(a) is None
    assert not list((node.paths.cni_cache_dir / "results").glob(f"*-{a}-*"))
    await network.teardown(b)
    assert node.ipam_entries() == {}
    assert [name for name in await links(node.netns_path) if name.startswith("veth")] == []


async def test_concurrent_setups_on_a_fresh_node(node: Node) -> None:
    # the first ADDs race to create the bridge; host-local hands out distinct addresses under its lock
    network = node.network()
    done = await asyncio.gather(*(node.setup(network, name=f"p{i}") for i in range(8)))
    assert len({status.ip for _, status in done}) == 8
    assert node.ipam_entries() == {status.ip: sandbox for sandbox, status in done}
    await asyncio.gather(*(network.teardown(sandbox) for sandbox, _ in done))
    assert node.ipam_entries() == {}


async def test_teardown_releases_the_address_for_the_next_pod(node: Node) -> None:
    # a /30 holds the gateway and exactly one pod
    network = node.network("10.88.7.0/30")
    first, status = await node.setup(network)
    assert status.ip == "10.88.7.2"

    second = node.sandbox_id()
    with pytest.raises(CniPluginError, match="no IP addresses available"):
        await node.setup(network, second)
    # the failed setup undid itself
    assert not Path(network.netns_path(second)).exists()
    assert network.status(second) is None

    await network.teardown(first)
    _, status = await node.setup(network)
    assert status.ip == "10.88.7.2"


async def test_a_restarted_kubelet_tears_down_from_the_cached_result(node: Node) -> None:
    before = node.network()
    sandbox, status = await node.setup(before, ports=[PortMapping(container_port=80, host_port=30081)])
    assert "30081" in node.nat_rules()

    after = node.network()  # same paths, nothing in memory
    assert after.status(sandbox) == status
    # (no CHECK here: portmap 1.1.1's CHECK of an IPv4-only pod with hostPorts looks for ip6tables rules it
    # never made, containernetworking/plugins#819)
    await after.teardown(sandbox)

    assert not Path(status.netns_path).exists()
    assert node.ipam_entries() == {}
    # portmap's DEL found its rules through the cached portMappings and container id
    assert "30081" not in node.nat_rules()
    assert sandbox[:12] not in node.nat_rules()


async def test_garbage_collection_removes_what_a_crash_left(node: Node) -> None:
    network = node.network()
    live, live_status = await node.setup(network, name="live")
    _, dead_status = await node.setup(network, name="dead")
    # died during ADD: namespace and address taken, result never cached
    half, half_status = await node.setup(network, name="half")
    for cached in (node.paths.cni_cache_dir / "results").glob(f"*-{half}-*"):
        cached.unlink()
    # an address whose sandbox left no other trace
    orphan_ip = "10.88.0.200"
    (node.paths.cni_ipam_dir / "kubelite" / orphan_ip).write_text("0123456789abcdef\r\neth0")

    # another kubelet of the machine (its own data dir) shares /run/netns: its pods are not ours to collect
    neighbour = PodNetwork(AgentPaths(node.paths.root / "neighbour"), pod_cidr="10.89.0.0/24",
                           bridge_name=node.bridge + "n", host_netns=str(node.netns_path))
    theirs, their_status = await node.setup(neighbour, name="theirs")

    restarted = node.network()
    await restarted.garbage_collect({live})

    assert Path(live_status.netns_path).exists()
    assert not Path(dead_status.netns_path).exists()
    assert not Path(half_status.netns_path).exists()
    assert node.ipam_entries() == {live_status.ip: live}
    assert restarted.status(live) == live_status
    await restarted.check(live)
    assert Path(their_status.netns_path).exists()
    await neighbour.teardown(theirs)


async def test_host_port_reaches_the_pod_from_the_node(node: Node) -> None:
    network = node.network()
    sandbox, status = await node.setup(network, ports=[PortMapping(container_port=8080, host_port=30080),
                                                       PortMapping(container_port=9090, host_port=0)])
    rules = node.nat_rules()
    assert "--dport 30080" in rules and "9090" not in rules  # only ports with a hostPort are published
    # the rules (commented with the container id) are the node's, the machine's namespace has none of them
    assert sandbox in rules and sandbox not in root_nat_rules()

    async with tcp_server_in_netns(status.netns_path, 8080, "through the host port"):
        # from the node itself, to the node's address on the pod network (the bridge)
        assert await asyncio.to_thread(tcp_get, node.netns_path, "10.88.0.1", 30080) == "through the host port"

    await network.teardown(sandbox)
    assert "30080" not in node.nat_rules() and sandbox not in node.nat_rules()


async def test_check_reports_a_broken_attachment(node: Node) -> None:
    network = node.network()
    sandbox, status = await node.setup(network)
    await delete_link(status.netns_path, "eth0")
    with pytest.raises(CniPluginError, match='type="bridge"'):
        await network.check(sandbox)
    await network.teardown(sandbox)  # DEL copes with the missing interface
    assert node.ipam_entries() == {}


async def test_without_a_configuration_the_network_is_not_ready(node: Node) -> None:
    network = node.network(pod_cidr=None)
    assert "no network config found in" in (network.not_ready_reason() or "")
    with pytest.raises(NetworkNotReady):
        await node.setup(network)
    network.ensure_default_config("10.88.0.0/24")
    assert network.not_ready_reason() is None
    assert (node.paths.cni_conf_dir / "10-kubelite.conflist").is_file()
