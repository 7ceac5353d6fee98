"""The parts of PodNetwork that need no namespace (the rest is tests/integration/test_pod_network.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelite.kubelet.network import NetworkNotReady, PodNetwork, PortMapping
from kubelite.kubelet.network.podnetwork import pod_cni_args, port_mapping_args
from kubelite.kubelet.paths import AgentPaths


def test_cni_args_are_the_kubelets() -> None:
    assert pod_cni_args(namespace="default", name="web-0", uid="u-1", sandbox_id="abc") == (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", "default"),
        ("K8S_POD_NAME", "web-0"),
        ("K8S_POD_INFRA_CONTAINER_ID", "abc"),
        ("K8S_POD_UID", "u-1"),
    )


def test_port_mappings_only_with_a_host_port() -> None:
    assert port_mapping_args([
        PortMapping(container_port=80, host_port=8080),
        PortMapping(container_port=53, host_port=5353, protocol="UDP", host_ip="127.0.0.1"),
        PortMapping(container_port=9090, host_port=0),
    ]) == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
    ]


def test_netns_path() -> None:
    network = PodNetwork(AgentPaths(Path("/nonexistent")), pod_cidr=None)
    assert network.netns_path("0123456789abcdef0123") == "/run/netns/kubelite-0123456789abcdef"


def test_not_ready_without_a_configuration(tmp_path: Path) -> None:
    network = PodNetwork(AgentPaths(tmp_path), pod_cidr=None, cni_bin_dirs=[str(tmp_path / "bin")])
    assert network.not_ready_reason() == (f"cni plugin not initialized: no network config found in "
                                          f"{tmp_path / 'cni' / 'net.d'}")


async def test_setup_without_a_configuration_raises_not_ready(tmp_path: Path) -> None:
    network = PodNetwork(AgentPaths(tmp_path), pod_cidr=None)
    with pytest.raises(NetworkNotReady):
        await network.setup(sandbox_id="abc", namespace="default", name="web", uid="u", port_mappings=[])


def test_the_default_config_is_written_once(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    network = PodNetwork(AgentPaths(tmp_path), pod_cidr=None, cni_bin_dirs=[str(bin_dir)], bridge_name="br9")
    network.ensure_default_config("10.42.1.0/24")
    path = tmp_path / "cni" / "net.d" / "10-kubelite.conflist"
    written = path.read_text()
    assert '"bridge": "br9"' in written and '"subnet": "10.42.1.0/24"' in written
    network.ensure_default_config("10.42.9.0/24")  # a configuration exists: left alone
    assert path.read_text() == written
    # the plugins it names are not installed in bin_dir
    assert network.not_ready_reason() == f'failed to find plugin "bridge" in path [\'{bin_dir}\']'
    for plugin in ("bridge", "portmap", "loopback"):
        (bin_dir / plugin).write_text("#!/bin/sh\n")
        (bin_dir / plugin).chmod(0o755)
    assert network.not_ready_reason() is None


def test_a_known_pod_cidr_writes_the_default_config_when_needed(tmp_path: Path) -> None:
    network = PodNetwork(AgentPaths(tmp_path), pod_cidr="10.42.1.0/24", cni_bin_dirs=[])
    assert "failed to find plugin" in (network.not_ready_reason() or "")
    assert (tmp_path / "cni" / "net.d" / "10-kubelite.conflist").is_file()
