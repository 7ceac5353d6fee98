"""Services (ValidateService and ValidateServiceUpdate).

Ports: required unless the Service is headless (``clusterIP: None``) or ExternalName; named (unique
DNS labels) when there is more than one; port numbers in range; protocol; targetPort a number or an
IANA service name; unique (protocol, port) and (protocol, nodePort) pairs; nodePorts only for
NodePort/LoadBalancer and within 30000-32767. Cluster IPs: valid, ``None`` only alone, clusterIP and
clusterIPs in sync, families matching. On update a set cluster IP may not change (it may go from empty
to allocated).
"""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import duplicate, forbidden, invalid, not_supported, required

from . import formats, gofmt
from .common import (
    Errs,
    as_dict,
    as_int,
    as_list,
    as_str,
    dns_label,
    dns_subdomain,
    each_invalid,
    is_int,
    label_name,
    labels,
    one_of,
    port_num_or_name,
)
from .containers import PROTOCOLS
from .meta import name_is_dns1035_label, object_meta, object_meta_update

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
IP_FAMILIES = ["IPv4", "IPv6"]
TRAFFIC_DISTRIBUTIONS = ["PreferClose", "PreferSameNode", "PreferSameZone"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
# The API server's default --service-node-port-range.
NODE_PORT_RANGE = (30000, 32767)
MAX_CLIENT_IP_AFFINITY_SECONDS = 86400


def is_headless(spec: dict[str, Any]) -> bool:
    ips = as_list(spec.get("clusterIPs"))
    return len(ips) == 1 and ips[0] == "None"


def validate_service(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns1035_label)
    spec = as_dict(obj.get("spec"))
    if old is not None:
        object_meta_update(errs, obj, old)
        _cluster_ips_update(errs, spec, as_dict(old.get("spec")))
    kind = as_str(spec.get("type"))
    headless = is_headless(spec)
    if not as_list(spec.get("ports")) and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    _type_specific(errs, spec, kind, headless)
    _ports(errs, spec, kind)
    if spec.get("selector") is not None:
        labels(errs, "spec.selector", spec.get("selector"))
    _session_affinity(errs, spec)
    if kind != "ExternalName":
        _cluster_ips(errs, spec, headless)
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        at, text = f"spec.externalIPs[{i}]", as_str(ip)
        reasons = formats.is_valid_ip(text)
        each_invalid(errs, at, text, reasons or formats.non_special_ip(text))
    one_of(errs, "spec.type", kind, SERVICE_TYPES)
    _load_balancer(errs, spec, kind)
    _traffic_policies(errs, spec, kind)
    return errs


def _type_specific(errs: Errs, spec: dict[str, Any], kind: str, headless: bool) -> None:
    if kind in ("LoadBalancer", "NodePort") and headless:
        errs.append(invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"))
    if kind != "ExternalName":
        return
    if as_list(spec.get("clusterIPs")):
        errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    if as_list(spec.get("ipFamilies")):
        errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
    if spec.get("ipFamilyPolicy") is not None:
        errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    cname = as_str(spec.get("externalName")).removesuffix(".")
    if cname:
        dns_subdomain(errs, "spec.externalName", cname)
    else:
        errs.append(required("spec.externalName"))


def _ports(errs: Errs, spec: dict[str, Any], kind: str) -> None:
    ports = [as_dict(p) for p in as_list(spec.get("ports"))]
    names: set[str] = set()
    seen_ports: set[tuple[str, int]] = set()
    seen_node_ports: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        at = f"spec.ports[{i}]"
        name = as_str(port.get("name"))
        if len(ports) > 1 and not name:
            errs.append(required(f"{at}.name"))
        elif name:
            dns_label(errs, f"{at}.name", name)
            if name in names:
                errs.append(duplicate(f"{at}.name", name))
            names.add(name)
        number = as_int(port.get("port"))
        each_invalid(errs, f"{at}.port", number, formats.is_valid_port_num(number))
        protocol = as_str(port.get("protocol"))
        one_of(errs, f"{at}.protocol", protocol, PROTOCOLS)
        port_num_or_name(errs, f"{at}.targetPort", port.get("targetPort"))
        if port.get("appProtocol") is not None:
            label_name(errs, f"{at}.appProtocol", port.get("appProtocol"))
        node_port = as_int(port.get("nodePort"))
        if node_port:
            if kind == "ClusterIP":
                errs.append(forbidden(f"{at}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            elif not NODE_PORT_RANGE[0] <= node_port <= NODE_PORT_RANGE[1]:
                errs.append(invalid(f"{at}.nodePort", node_port, "provided port is not in the valid range. The range "
                                    f"of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"))
            if (protocol, node_port) in seen_node_ports:
                errs.append(duplicate(f"{at}.nodePort", node_port))
            seen_node_ports.add((protocol, node_port))
        if (protocol, number) in seen_ports:
            shown = f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), Port:{number}, ' \
                    'TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'
            errs.append(duplicate(at, gofmt.GoValue(shown)))
        seen_ports.add((protocol, number))


def _session_affinity(errs: Errs, spec: dict[str, Any]) -> None:
    affinity = as_str(spec.get("sessionAffinity"))
    one_of(errs, "spec.sessionAffinity", affinity, SESSION_AFFINITIES)
    config = spec.get("sessionAffinityConfig")
    path = "spec.sessionAffinityConfig"
    if affinity == "ClientIP":
        client_ip = as_dict(config).get("clientIP")
        if config is None:
            errs.append(required(path, "when session affinity type is ClientIP"))
        elif client_ip is None:
            errs.append(required(f"{path}.clientIP", "when session affinity type is ClientIP"))
        elif as_dict(client_ip).get("timeoutSeconds") is None:
            errs.append(required(f"{path}.clientIP.timeoutSeconds", "when session affinity type is ClientIP"))
        else:
            timeout = as_int(as_dict(client_ip).get("timeoutSeconds"))
            if not 0 < timeout <= MAX_CLIENT_IP_AFFINITY_SECONDS:
                errs.append(invalid(f"{path}.clientIP.timeoutSeconds", timeout,
                                    f"must be greater than 0 and less than {MAX_CLIENT_IP_AFFINITY_SECONDS}"))
    elif affinity == "None" and config is not None:
        errs.append(forbidden(path, "must not be set when session affinity is None"))


def _cluster_ips(errs: Errs, spec: dict[str, Any], headless: bool) -> None:
    cluster_ip, ips = as_str(spec.get("clusterIP")), [as_str(ip) for ip in as_list(spec.get("clusterIPs"))]
    shown = gofmt.string_list(ips)
    if cluster_ip:
        if not ips:
            errs.append(required("spec.clusterIPs"))
        elif ips[0] != cluster_ip:
            errs.append(invalid("spec.clusterIPs", shown, "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid("spec.clusterIPs", shown, "must be empty when `clusterIP` is not specified"))
    families = [as_str(f) for f in as_list(spec.get("ipFamilies"))]
    for i, family in enumerate(families):
        if family not in IP_FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, IP_FAMILIES))
        if family in families[:i]:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, IP_FAMILY_POLICIES))
    bad = False
    for i, ip in enumerate(ips):
        if i == 0 and ip == "None":
            if len(ips) > 1:
                bad = True
                errs.append(invalid("spec.clusterIPs", shown, "'None' must be the first and only value"))
            continue
        reasons = formats.is_valid_ip(ip)
        bad = bad or bool(reasons)
        each_invalid(errs, f"spec.clusterIPs[{i}]", ip, reasons)
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", shown, "may only hold up to 2 values"))
    if bad:
        return
    parsed = [formats.parse_ip(ip) for ip in ips]
    if len(ips) > 1 and len({p.version for p in parsed if p is not None}) != 2:
        errs.append(invalid("spec.clusterIPs", shown, "may specify no more than one IP for each IP family"))
    if headless:
        return
    for i, (address, family) in enumerate(zip(parsed, families, strict=False)):
        if address is None:
            continue
        hint = f"`ipFamilies[{i}]`"
        if family == "IPv4" and address.version == 6:
            errs.append(invalid(f"spec.clusterIPs[{i}]", ips[i], f"expected an IPv4 value as indicated by {hint}"))
        if family == "IPv6" and address.version != 6:
            errs.append(invalid(f"spec.clusterIPs[{i}]", ips[i], f"expected an IPv6 value as indicated by {hint}"))


def _cluster_ips_update(errs: Errs, spec: dict[str, Any], old: dict[str, Any]) -> None:
    """A set cluster IP stays; it may be added (empty -> allocated) and, for dual stack, extended."""
    if "ExternalName" in (as_str(spec.get("type")), as_str(old.get("type"))):
        return
    if is_headless(spec) and is_headless(old):
        return
    new_ips, old_ips = as_list(spec.get("clusterIPs")), as_list(old.get("clusterIPs"))
    shown = gofmt.string_list(spec.get("clusterIPs"))
    if len(old_ips) == len(new_ips):
        for i, ip in enumerate(old_ips):
            if ip != new_ips[i]:
                errs.append(invalid(f"spec.clusterIPs[{i}]", shown, "may not change once set"))
    elif len(old_ips) > len(new_ips):
        if not new_ips:
            errs.append(invalid("spec.clusterIPs[0]", shown, "primary clusterIP can not be unset"))
        elif new_ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", shown, "may not change once set"))
        if len(new_ips) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary clusterIP"))
    elif old_ips and new_ips[0] != old_ips[0]:
        errs.append(invalid("spec.clusterIPs[0]", shown, "may not change once set"))
    _ip_families_update(errs, spec, old)


def _ip_families_update(errs: Errs, spec: dict[str, Any], old: dict[str, Any]) -> None:
    """The primary family stays; the secondary may be added, or released under SingleStack."""
    if is_headless(spec) != is_headless(old) or is_headless(spec):
        return
    new_families, old_families = as_list(spec.get("ipFamilies")), as_list(old.get("ipFamilies"))
    shown = gofmt.string_list(spec.get("ipFamilies"))
    if len(old_families) == len(new_families):
        if any(a != b for a, b in zip(old_families, new_families, strict=True)):
            errs.append(invalid("spec.ipFamilies[0]", shown, "may not change once set"))
    elif len(old_families) > len(new_families):
        if not as_list(spec.get("clusterIPs")):
            errs.append(invalid("spec.ipFamilies[0]", shown, "primary ipFamily can not be unset"))
        if new_families and new_families[0] != old_families[0]:
            errs.append(invalid("spec.ipFamilies[0]", gofmt.string_list(spec.get("clusterIPs")),
                                "may not change once set"))
        if len(new_families) == 1 and spec.get("ipFamilyPolicy") != "SingleStack":
            errs.append(invalid("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"),
                                "must be set to 'SingleStack' when releasing the secondary ipFamily"))
    elif old_families and new_families[0] != old_families[0]:
        errs.append(invalid("spec.ipFamilies[0]", gofmt.string_list(spec.get("clusterIPs")),
                            "may not change once set"))


def _load_balancer(errs: Errs, spec: dict[str, Any], kind: str) -> None:
    ranges = as_list(spec.get("loadBalancerSourceRanges"))
    if ranges:
        if kind != "LoadBalancer":
            errs.append(forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
        for i, value in enumerate(ranges):
            text = as_str(value).strip()
            each_invalid(errs, f"spec.LoadBalancerSourceRanges[{i}]", text, formats.is_valid_cidr(text))
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errs.append(forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    if kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        errs.append(required("allocateLoadBalancerNodePorts"))
    lb_class = spec.get("loadBalancerClass")
    if lb_class is not None:
        if kind == "LoadBalancer":
            label_name(errs, "spec.loadBalancerClass", lb_class)
        else:
            errs.append(forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))


def _traffic_policies(errs: Errs, spec: dict[str, Any], kind: str) -> None:
    external = as_str(spec.get("externalTrafficPolicy"))
    accessible = kind in ("NodePort", "LoadBalancer") or bool(as_list(spec.get("externalIPs")))
    if not accessible:
        if external:
            errs.append(invalid("spec.externalTrafficPolicy", external,
                                "may only be set for externally-accessible services"))
    else:
        one_of(errs, "spec.externalTrafficPolicy", external, TRAFFIC_POLICIES)
    health = spec.get("healthCheckNodePort")
    needs_health = kind == "LoadBalancer" and external == "Local"
    if not needs_health:
        if is_int(health) and health != 0:
            errs.append(invalid("spec.healthCheckNodePort", health,
                                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    elif is_int(health) and health != 0:
        each_invalid(errs, "spec.healthCheckNodePort", health, formats.is_valid_port_num(health))
    internal = spec.get("internalTrafficPolicy")
    if internal is None:
        if kind in ("ClusterIP", "NodePort", "LoadBalancer"):
            errs.append(required("spec.internalTrafficPolicy"))
    elif internal not in TRAFFIC_POLICIES:
        errs.append(not_supported("spec.internalTrafficPolicy", internal, TRAFFIC_POLICIES))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution not in TRAFFIC_DISTRIBUTIONS:
        errs.append(not_supported("spec.trafficDistribution", distribution, TRAFFIC_DISTRIBUTIONS))
