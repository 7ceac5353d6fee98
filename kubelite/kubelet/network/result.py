"""Reading a CNI ADD result: which addresses are the pod's.

A 1.0 result (spec section 5) is ``{"cniVersion", "interfaces": [{"name", "mac", "sandbox"?}], "ips":
[{"address": "10.42.0.5/24", "gateway"?, "interface"?: <index into interfaces>}], "routes", "dns"}``;
0.3.x/0.4.0 results add ``"version"`` to each ip and read the same. 0.1/0.2 results carry
``"ip4": {"ip": ...}`` / ``"ip6"`` instead.

The pod's addresses are those on its side of the network: an ip whose interface is in the sandbox (has a
``sandbox``), preferring the interface the runtime asked for (``eth0``); an ip without an interface index
counts too (IPAM-only answers). Kubernetes' ``status.podIPs`` holds at most one address per family, the
primary first, so `pod_ips` keeps the first of each family in result order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from kubelite.kubelet.network.errors import CniError


def result_ips(result: Mapping[str, Any], *, ifname: str) -> list[str]:
    """Every pod-side address of ``result`` (without prefix length), in result order."""
    if "ips" not in result and ("ip4" in result or "ip6" in result):
        return [_address(entry.get("ip")) for entry in (result.get("ip4"), result.get("ip6"))
                if isinstance(entry, Mapping)]
    interfaces = _list_field(result, "interfaces")
    ips = _list_field(result, "ips")
    named: list[Mapping[str, Any]] = []
    sandboxed: list[Mapping[str, Any]] = []
    for ip in ips:
        if not isinstance(ip, Mapping):
            raise CniError("invalid CNI result: an entry of 'ips' is not an object")
        index = ip.get("interface")
        if index is None:
            sandboxed.append(ip)
            continue
        if not isinstance(index, int) or not 0 <= index < len(interfaces) or not isinstance(interfaces[index], Mapping):
            raise CniError(f"invalid CNI result: ip {ip.get('address')!r} names interface {index!r}")
        interface = interfaces[index]
        if interface.get("sandbox"):
            (named if interface.get("name") == ifname else sandboxed).append(ip)
    return [_address(ip.get("address")) for ip in (named or sandboxed)]


def pod_ips(result: Mapping[str, Any], *, ifname: str) -> list[str]:
    """The pod's ``podIPs``: the first pod-side address of each family, in result order."""
    chosen: list[str] = []
    families: set[int] = set()
    for ip in result_ips(result, ifname=ifname):
        version = ipaddress.ip_address(ip).version
        if version not in families:
            families.add(version)
            chosen.append(ip)
    return chosen


def _list_field(result: Mapping[str, Any], key: str) -> list[Any]:
    value = result.get(key)
    if value is None:  # missing, or a Go nil slice
        return []
    if not isinstance(value, list):
        raise CniError(f"invalid CNI result: {key!r} is not a list")
    return value


def _address(value: Any) -> str:
    """``"10.42.0.5/24"`` -> ``"10.42.0.5"``."""
    if not isinstance(value, str):
        raise CniError(f"invalid CNI result: address {value!r} is not a string")
    try:
        return str(ipaddress.ip_interface(value).ip)
    except ValueError:
        raise CniError(f"invalid CNI result: address {value!r} is not in CIDR notation") from None
