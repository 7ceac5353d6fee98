from __future__ import annotations

from typing import Any

import pytest

from kubelite.kubelet.network.errors import CniError
from kubelite.kubelet.network.result import pod_ips, result_ips

# what the bridge plugin answers (CNI 1.0)
BRIDGE_RESULT: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "kubelite0", "mac": "12:87:b5:80:71:b7"},
        {"name": "vetha900353d", "mac": "0e:57:87:f0:b6:08"},
        {"name": "eth0", "mac": "52:6d:c0:e1:20:30", "sandbox": "/run/netns/kubelite-abc"},
    ],
    "ips": [{"interface": 2, "address": "10.99.0.2/24", "gateway": "10.99.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {},
}


def test_the_pod_ip_is_the_address_of_the_sandbox_interface() -> None:
    assert pod_ips(BRIDGE_RESULT, ifname="eth0") == ["10.99.0.2"]


def test_host_side_addresses_are_not_the_pods() -> None:
    result = {**BRIDGE_RESULT, "ips": [{"interface": 0, "address": "10.99.0.1/24"}, *BRIDGE_RESULT["ips"]]}
    assert result_ips(result, ifname="eth0") == ["10.99.0.2"]


def test_dual_stack_keeps_one_address_per_family_in_result_order() -> None:
    result = {**BRIDGE_RESULT, "ips": [
        {"interface": 2, "address": "fd00::5/64"},
        {"interface": 2, "address": "10.99.0.2/24"},
        {"interface": 2, "address": "10.99.0.3/24"},
    ]}
    assert result_ips(result, ifname="eth0") == ["fd00::5", "10.99.0.2", "10.99.0.3"]
    assert pod_ips(result, ifname="eth0") == ["fd00::5", "10.99.0.2"]


def test_the_requested_interface_wins_over_other_sandbox_interfaces() -> None:
    result = {
        "interfaces": [{"name": "net1", "sandbox": "/x"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"interface": 0, "address": "192.168.1.2/24"}, {"interface": 1, "address": "10.0.0.2/24"}],
    }
    assert pod_ips(result, ifname="eth0") == ["10.0.0.2"]
    assert pod_ips(result, ifname="eth9") == ["192.168.1.2"]


def test_ips_without_an_interface_count_as_the_pods() -> None:
    assert pod_ips({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.9/16"}]},
                   ifname="eth0") == ["10.1.0.9"]


def test_old_results_with_ip4_and_ip6() -> None:
    result = {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.9/16"}, "ip6": {"ip": "fd00::9/64"}}
    assert pod_ips(result, ifname="eth0") == ["10.1.0.9", "fd00::9"]


def test_no_addresses() -> None:
    assert pod_ips({"cniVersion": "1.0.0"}, ifname="eth0") == []


@pytest.mark.parametrize("result", [
    pytest.param({"ips": {"address": "x"}}, id="ips-not-list"),
    pytest.param({"interfaces": {}, "ips": []}, id="interfaces-not-list"),
    pytest.param({"ips": ["10.0.0.1/24"]}, id="ip-not-object"),
    pytest.param({"ips": [{"address": "10.0.0.1/24", "interface": 3}]}, id="interface-out-of-range"),
    pytest.param({"ips": [{"address": "10.0.0.300/24"}]}, id="bad-address"),
    pytest.param({"ips": [{"address": 7}]}, id="address-not-string"),
])
def test_invalid_results(result: dict[str, Any]) -> None:
    with pytest.raises(CniError, match="invalid CNI result"):
        result_ips(result, ifname="eth0")
