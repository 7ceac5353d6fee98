"""Endpoints: each subset has addresses (or notReadyAddresses) with usable IPs, optional DNS-label
hostnames and node names, and ports (named when more than one) with a valid number and protocol."""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import required

from . import formats
from .common import Errs, as_dict, as_int, as_list, as_str, dns_label, dns_subdomain, each_invalid, label_name, one_of
from .containers import PROTOCOLS
from .meta import name_is_dns_subdomain, object_meta, object_meta_update


def validate_endpoints(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    for i, subset in enumerate(as_dict(s) for s in as_list(obj.get("subsets"))):
        at = f"subsets[{i}]"
        addresses, not_ready = as_list(subset.get("addresses")), as_list(subset.get("notReadyAddresses"))
        if not addresses and not not_ready:
            errs.append(required(at, "must specify `addresses` or `notReadyAddresses`"))
        for kind, items in (("addresses", addresses), ("notReadyAddresses", not_ready)):
            for j, address in enumerate(as_dict(a) for a in items):
                _address(errs, f"{at}.{kind}[{j}]", address)
        ports = as_list(subset.get("ports"))
        for j, port in enumerate(as_dict(p) for p in ports):
            endpoint_port(errs, f"{at}.ports[{j}]", port, require_name=len(ports) > 1)
    if old is not None:
        object_meta_update(errs, obj, old)
    return errs


def _address(errs: Errs, path: str, address: dict[str, Any]) -> None:
    ip = as_str(address.get("ip"))
    reasons = formats.is_valid_ip(ip)
    each_invalid(errs, f"{path}.ip", ip, reasons)
    if as_str(address.get("hostname")):
        dns_label(errs, f"{path}.hostname", as_str(address.get("hostname")))
    if address.get("nodeName") is not None:
        dns_subdomain(errs, f"{path}.nodeName", as_str(address.get("nodeName")))
    each_invalid(errs, f"{path}.ip", ip, formats.non_special_ip(ip))


def endpoint_port(errs: Errs, path: str, port: dict[str, Any], *, require_name: bool) -> None:
    name = as_str(port.get("name"))
    if require_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        dns_label(errs, f"{path}.name", name)
    number = as_int(port.get("port"))
    each_invalid(errs, f"{path}.port", number, formats.is_valid_port_num(number))
    one_of(errs, f"{path}.protocol", port.get("protocol"), PROTOCOLS)
    if port.get("appProtocol") is not None:
        label_name(errs, f"{path}.appProtocol", port.get("appProtocol"))
