"""EndpointSlices (discovery.k8s.io/v1): a known addressType (immutable), endpoints with 1-100 addresses
of that type, topology labels, DNS-label hostnames, and uniquely named ports with a protocol."""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import Cause, duplicate, invalid, not_supported, required

from . import formats
from .common import Errs, as_dict, as_list, as_str, dns_label, each_invalid, immutable, label_name, labels
from .containers import PROTOCOLS
from .meta import name_is_dns_subdomain, object_meta, object_meta_update

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
_MAX_ENDPOINTS, _MAX_ADDRESSES, _MAX_PORTS, _MAX_TOPOLOGY = 1000, 100, 100, 16


def _too_many(path: str, actual: int, limit: int) -> Cause:
    return Cause(path, f"{path}: Too many: {actual}: must have at most {limit} items", "FieldValueTooMany")


def validate_endpoint_slice(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    address_type = as_str(obj.get("addressType"))
    # The deprecated "IP" type is tolerated on update only, for objects stored before it was removed.
    allowed = ADDRESS_TYPES + (["IP"] if old is not None else [])
    if not address_type:
        errs.append(required("addressType"))
    elif address_type not in allowed:
        errs.append(not_supported("addressType", address_type, sorted(allowed)))
    _endpoints(errs, as_list(obj.get("endpoints")), address_type)
    _ports(errs, as_list(obj.get("ports")))
    if old is not None:
        object_meta_update(errs, obj, old)
        immutable(errs, "addressType", address_type, as_str(old.get("addressType")))
    return errs


def _endpoints(errs: Errs, endpoints: list[Any], address_type: str) -> None:
    if len(endpoints) > _MAX_ENDPOINTS:
        errs.append(_too_many("endpoints", len(endpoints), _MAX_ENDPOINTS))
        return
    for i, endpoint in enumerate(as_dict(e) for e in endpoints):
        at = f"endpoints[{i}]"
        addresses = as_list(endpoint.get("addresses"))
        if not addresses:
            errs.append(required(f"{at}.addresses", "must contain at least 1 address"))
        elif len(addresses) > _MAX_ADDRESSES:
            errs.append(_too_many(f"{at}.addresses", len(addresses), _MAX_ADDRESSES))
        for j, address in enumerate(as_str(a) for a in addresses):
            _address(errs, f"{at}.addresses[{j}]", address, address_type)
        topology = as_dict(endpoint.get("topology"))
        if len(topology) > _MAX_TOPOLOGY:
            errs.append(_too_many(f"{at}.topology", len(topology), _MAX_TOPOLOGY))
        labels(errs, f"{at}.topology", topology)
        if endpoint.get("hostname") is not None:
            dns_label(errs, f"{at}.hostname", as_str(endpoint.get("hostname")))


def _address(errs: Errs, path: str, address: str, address_type: str) -> None:
    ip = formats.parse_ip(address)
    if address_type == "IPv4":
        if ip is None or ip.version != 4:
            errs.append(invalid(path, address, "must be a valid IPv4 address"))
        each_invalid(errs, path, address, formats.non_special_ip(address))
    elif address_type == "IPv6":
        if ip is None or ip.version != 6:
            errs.append(invalid(path, address, "must be a valid IPv6 address"))
        each_invalid(errs, path, address, formats.non_special_ip(address))
    elif address_type == "FQDN":
        _fqdn(errs, path, address)
    elif address_type == "IP":
        each_invalid(errs, path, address, formats.is_valid_ip(address))


def _fqdn(errs: Errs, path: str, name: str) -> None:
    if not name:
        errs.append(required(path))
        return
    name = name.removesuffix(".")
    reasons = formats.is_dns1123_subdomain(name)
    if reasons:
        errs.append(invalid(path, name, ",".join(reasons)))
    elif len(name.split(".")) < 2:
        errs.append(invalid(path, name, "should be a domain with at least two segments separated by dots"))
    else:
        for label in name.split("."):
            label_reasons = formats.is_dns1123_label(label)
            if label_reasons:
                errs.append(invalid(path, label, ",".join(label_reasons)))
                break


def _ports(errs: Errs, ports: list[Any]) -> None:
    if len(ports) > _MAX_PORTS:
        errs.append(_too_many("ports", len(ports), _MAX_PORTS))
        return
    names: set[str] = set()
    for i, port in enumerate(as_dict(p) for p in ports):
        at, name = f"ports[{i}]", as_str(port.get("name"))
        if name:
            dns_label(errs, f"{at}.name", name)
        if name in names:
            errs.append(duplicate(f"{at}.name", name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            errs.append(required(f"{at}.protocol"))
        elif protocol not in PROTOCOLS:
            errs.append(not_supported(f"{at}.protocol", protocol, PROTOCOLS))
        if port.get("appProtocol") is not None:
            label_name(errs, f"{at}.appProtocol", port.get("appProtocol"))
