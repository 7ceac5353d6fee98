"""The scheduling-related parts of a pod spec: tolerations, node and pod (anti-)affinity, topology spread
constraints, DNS config and host aliases, and the pod-level security context (with sysctls)."""

from __future__ import annotations

import re
from typing import Any

from kubelite.api.errors import duplicate, forbidden, invalid, not_supported, required

from . import formats, gofmt
from .common import (
    Errs,
    as_dict,
    as_int,
    as_list,
    as_str,
    dns_subdomain,
    each_invalid,
    is_int,
    label_name,
    label_selector,
)
from .containers import apparmor_profile, seccomp_profile

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_NODE_OPERATORS_IN = ("In", "NotIn")
_NODE_OPERATORS_EXISTS = ("Exists", "DoesNotExist")
_NODE_OPERATORS_CMP = ("Gt", "Lt")
_WHEN_UNSATISFIABLE = ["DoNotSchedule", "ScheduleAnyway"]
_NODE_INCLUSION = ["Honor", "Ignore"]
_FS_GROUP_CHANGE = ["Always", "OnRootMismatch"]
_SUPPLEMENTAL_GROUPS_POLICIES = ["Merge", "Strict"]
_SELINUX_CHANGE_POLICIES = ["MountOption", "Recursive"]
MAX_NAMESERVERS, MAX_SEARCHES, MAX_SEARCH_CHARS = 3, 32, 2048

_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_FMT = "(" + _SYSCTL_SEGMENT + "[\\./])*" + _SYSCTL_SEGMENT
_SYSCTL = re.compile(_SYSCTL_FMT)
_SYSCTL_MAX = 253
_IPC_SYSCTL_PREFIXES = ("kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")


def tolerations(errs: Errs, path: str, value: Any) -> None:
    for i, tol in enumerate(as_dict(t) for t in as_list(value)):
        at = f"{path}[{i}]"
        key, operator = as_str(tol.get("key")), as_str(tol.get("operator"))
        effect, tol_value = as_str(tol.get("effect")), as_str(tol.get("value"))
        if key:
            label_name(errs, f"{at}.key", key)
        if not key and operator != "Exists":
            errs.append(invalid(f"{at}.operator", operator, "operator must be Exists when `key` is empty, "
                                'which means "match all values and all keys"'))
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{at}.effect", effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if operator in ("Equal", ""):
            reasons = formats.is_label_value(tol_value)
            if reasons:
                errs.append(invalid(f"{at}.operator", tol_value, ";".join(reasons)))
        elif operator == "Exists":
            if tol_value:
                errs.append(invalid(f"{at}.operator", tol_value, "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(not_supported(f"{at}.operator", operator, ["Equal", "Exists"]))
        if effect and effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"{at}.effect", effect, TAINT_EFFECTS))


def affinity(errs: Errs, path: str, value: Any) -> None:
    aff = as_dict(value)
    node = aff.get("nodeAffinity")
    if node is not None:
        node = as_dict(node)
        required_ = node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if required_ is not None:
            node_selector(errs, f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution", required_)
        preferred = as_list(node.get("preferredDuringSchedulingIgnoredDuringExecution"))
        for i, term in enumerate(as_dict(t) for t in preferred):
            at = f"{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            _weight(errs, f"{at}.weight", term.get("weight"))
            _node_selector_term(errs, f"{at}.preference", term.get("preference"), strict_values=False)
    for kind in ("podAffinity", "podAntiAffinity"):
        pod = aff.get(kind)
        if pod is None:
            continue
        pod = as_dict(pod)
        req = f"{path}.{kind}.requiredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(as_list(pod.get("requiredDuringSchedulingIgnoredDuringExecution"))):
            _pod_affinity_term(errs, f"{req}[{i}]", as_dict(term))
        pref = f"{path}.{kind}.preferredDuringSchedulingIgnoredDuringExecution"
        weighted_terms = as_list(pod.get("preferredDuringSchedulingIgnoredDuringExecution"))
        for i, weighted in enumerate(as_dict(t) for t in weighted_terms):
            _weight(errs, f"{pref}[{i}].weight", weighted.get("weight"))
            _pod_affinity_term(errs, f"{pref}[{i}].podAffinityTerm", as_dict(weighted.get("podAffinityTerm")))


def _weight(errs: Errs, path: str, value: Any) -> None:
    weight = as_int(value)
    if weight <= 0 or weight > 100:
        errs.append(invalid(path, weight, "must be in the range 1-100"))


def node_selector(errs: Errs, path: str, value: Any) -> None:
    terms = as_list(as_dict(value).get("nodeSelectorTerms"))
    if not terms:
        errs.append(required(f"{path}.nodeSelectorTerms", "must have at least one node selector term"))
    for i, term in enumerate(terms):
        _node_selector_term(errs, f"{path}.nodeSelectorTerms[{i}]", term, strict_values=True)


def _node_selector_term(errs: Errs, path: str, value: Any, *, strict_values: bool) -> None:
    term = as_dict(value)
    for j, req in enumerate(as_dict(r) for r in as_list(term.get("matchExpressions"))):
        at = f"{path}.matchExpressions[{j}]"
        operator, values = as_str(req.get("operator")), as_list(req.get("values"))
        if operator in _NODE_OPERATORS_IN:
            if not values:
                errs.append(required(f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in _NODE_OPERATORS_EXISTS:
            if values:
                errs.append(forbidden(f"{at}.values",
                                      "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        elif operator in _NODE_OPERATORS_CMP:
            if len(values) != 1:
                errs.append(required(f"{at}.values", "must be specified single value when `operator` is 'Lt' or 'Gt'"))
        else:
            errs.append(invalid(f"{at}.operator", operator, "not a valid selector operator"))
        label_name(errs, f"{at}.key", req.get("key"))
        if strict_values:
            for k, val in enumerate(values):
                each_invalid(errs, f"{at}.values[{k}]", as_str(val), formats.is_label_value(as_str(val)))
    for j, req in enumerate(as_dict(r) for r in as_list(term.get("matchFields"))):
        at = f"{path}.matchFields[{j}]"
        values = as_list(req.get("values"))
        if as_str(req.get("operator")) in _NODE_OPERATORS_IN:
            if len(values) != 1:
                errs.append(required(f"{at}.values", "must be only one value when `operator` is 'In' or 'NotIn' "
                                     "for node field selector"))
        else:
            errs.append(invalid(f"{at}.operator", as_str(req.get("operator")), "not a valid selector operator"))
        if as_str(req.get("key")) != "metadata.name":
            errs.append(invalid(f"{at}.key", as_str(req.get("key")), "not a valid field selector key"))
        else:
            for k, val in enumerate(values):
                dns_subdomain(errs, f"{at}.values[{k}]", as_str(val))


def _pod_affinity_term(errs: Errs, path: str, term: dict[str, Any]) -> None:
    label_selector(errs, f"{path}.labelSelector", term.get("labelSelector"))
    label_selector(errs, f"{path}.namespaceSelector", term.get("namespaceSelector"))
    for name in as_list(term.get("namespaces")):
        each_invalid(errs, f"{path}.namespace", as_str(name), formats.is_dns1123_label(as_str(name)))
    has_selector = term.get("labelSelector") is not None
    for kind in ("matchLabelKeys", "mismatchLabelKeys"):
        keys = as_list(term.get(kind))
        if keys and not has_selector:
            errs.append(forbidden(f"{path}.{kind}", "must not be specified when labelSelector is not set"))
            continue
        for i, key in enumerate(keys):
            label_name(errs, f"{path}.{kind}[{i}]", key)
    topology_key = as_str(term.get("topologyKey"))
    if not topology_key:
        errs.append(required(f"{path}.topologyKey", "can not be empty"))
    label_name(errs, f"{path}.topologyKey", topology_key)


def topology_spread(errs: Errs, path: str, value: Any) -> None:
    constraints = [as_dict(c) for c in as_list(value)]
    for i, con in enumerate(constraints):
        at = f"{path}[{i}]"
        max_skew = as_int(con.get("maxSkew"))
        if max_skew <= 0:
            errs.append(invalid(f"{at}.maxSkew", max_skew, "must be greater than zero"))
        topology_key, when = as_str(con.get("topologyKey")), as_str(con.get("whenUnsatisfiable"))
        if not topology_key:
            errs.append(required(f"{at}.topologyKey", "can not be empty"))
        if when not in _WHEN_UNSATISFIABLE:
            errs.append(not_supported(f"{at}.whenUnsatisfiable", when, _WHEN_UNSATISFIABLE))
        for later in constraints[i + 1:]:
            if as_str(later.get("topologyKey")) == topology_key and as_str(later.get("whenUnsatisfiable")) == when:
                errs.append(duplicate(f"{at}.{{topologyKey, whenUnsatisfiable}}", f"{{{topology_key}, {when}}}"))
                break
        min_domains = con.get("minDomains")
        if min_domains is not None:
            if as_int(min_domains) <= 0:
                errs.append(invalid(f"{at}.minDomains", min_domains, "must be greater than zero"))
            if when != "DoNotSchedule":
                errs.append(invalid(f"{at}.minDomains", min_domains,
                                    f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {when}"))
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            policy = con.get(key)
            if policy is not None and policy not in _NODE_INCLUSION:
                errs.append(not_supported(f"{at}.{key}", policy, _NODE_INCLUSION))
        keys = as_list(con.get("matchLabelKeys"))
        if keys and con.get("labelSelector") is None:
            errs.append(forbidden(f"{at}.matchLabelKeys", "must not be specified when labelSelector is not set"))
        for j, key in enumerate(keys):
            label_name(errs, f"{at}.matchLabelKeys[{j}]", key)
        label_selector(errs, f"{at}.labelSelector", con.get("labelSelector"))


def dns_config(errs: Errs, path: str, value: Any, dns_policy: str) -> None:
    if dns_policy == "None":
        if value is None:
            errs.append(required(path, "must provide `dnsConfig` when `dnsPolicy` is None"))
            return
        if not as_list(as_dict(value).get("nameservers")):
            errs.append(required(f"{path}.nameservers",
                                 "must provide at least one DNS nameserver when `dnsPolicy` is None"))
            return
    if value is None:
        return
    config = as_dict(value)
    servers, searches = as_list(config.get("nameservers")), [as_str(s) for s in as_list(config.get("searches"))]
    if len(servers) > MAX_NAMESERVERS:
        errs.append(invalid(f"{path}.nameservers", gofmt.string_list(servers),
                            f"must not have more than {MAX_NAMESERVERS} nameservers"))
    for i, server in enumerate(servers):
        each_invalid(errs, f"{path}.nameservers[{i}]", as_str(server), formats.is_valid_ip(as_str(server)))
    if len(searches) > MAX_SEARCHES:
        errs.append(invalid(f"{path}.searches", gofmt.string_list(searches),
                            f"must not have more than {MAX_SEARCHES} search paths"))
    if len(" ".join(searches)) > MAX_SEARCH_CHARS:
        errs.append(invalid(f"{path}.searches", gofmt.string_list(searches),
                            f"must not have more than {MAX_SEARCH_CHARS} characters (including spaces) in the "
                            "search list"))
    for i, search in enumerate(searches):
        if search != ".":
            search = search.removesuffix(".")
            each_invalid(errs, f"{path}.searches[{i}]", search, formats.is_dns1123_subdomain_with_underscore(search))
    for i, option in enumerate(as_dict(o) for o in as_list(config.get("options"))):
        if not as_str(option.get("name")):
            errs.append(required(f"{path}.options[{i}]", "must not be empty"))


def host_aliases(errs: Errs, path: str, value: Any) -> None:
    for i, alias in enumerate(as_dict(a) for a in as_list(value)):
        ip = as_str(alias.get("ip"))
        each_invalid(errs, f"{path}[{i}].ip", ip, formats.is_valid_ip(ip))
        for j, hostname in enumerate(as_list(alias.get("hostnames"))):
            dns_subdomain(errs, f"{path}[{i}].hostnames[{j}]", as_str(hostname))


def pod_security_context(errs: Errs, path: str, value: Any, spec: dict[str, Any]) -> None:
    if value is None:
        return
    sc = as_dict(value)
    for key in ("fsGroup", "runAsUser", "runAsGroup"):
        if is_int(sc.get(key)):
            each_invalid(errs, f"{path}.{key}", sc[key], formats.is_valid_user_id(sc[key]))
    for i, gid in enumerate(as_list(sc.get("supplementalGroups"))):
        if is_int(gid):
            each_invalid(errs, f"{path}.supplementalGroups[{i}]", gid, formats.is_valid_user_id(gid))
    if spec.get("shareProcessNamespace") is True and spec.get("hostPID") is True:
        errs.append(invalid(f"{path}.shareProcessNamespace", True,
                            "ShareProcessNamespace and HostPID cannot both be enabled"))
    _sysctls(errs, f"{path}.sysctls", sc.get("sysctls"), spec)
    for key, allowed in (("fsGroupChangePolicy", _FS_GROUP_CHANGE),
                         ("supplementalGroupsPolicy", _SUPPLEMENTAL_GROUPS_POLICIES),
                         ("seLinuxChangePolicy", _SELINUX_CHANGE_POLICIES)):
        if sc.get(key) is not None and sc[key] not in allowed:
            errs.append(not_supported(f"{path}.{key}", sc[key], allowed))
    seccomp_profile(errs, f"{path}.seccompProfile", sc.get("seccompProfile"))
    apparmor_profile(errs, f"{path}.appArmorProfile", sc.get("appArmorProfile"))


def _sysctls(errs: Errs, path: str, value: Any, spec: dict[str, Any]) -> None:
    names: set[str] = set()
    for i, sysctl in enumerate(as_dict(s) for s in as_list(value)):
        name, at = as_str(sysctl.get("name")), f"{path}[{i}].name"
        if not name:
            errs.append(required(at))
        elif len(name) > _SYSCTL_MAX or not _SYSCTL.fullmatch(name):
            errs.append(invalid(at, name,
                                f"must have at most {_SYSCTL_MAX} characters and match regex ^{_SYSCTL_FMT}$"))
        elif name in names:
            errs.append(duplicate(at, name))
        normalized = name.replace("/", ".")
        if spec.get("hostNetwork") is True and normalized.startswith("net."):
            errs.append(invalid(at, name, "may not be specified when 'hostNetwork' is true"))
        elif spec.get("hostIPC") is True and normalized.startswith(_IPC_SYSCTL_PREFIXES):
            errs.append(invalid(at, name, "may not be specified when 'hostIPC' is true"))
        names.add(name)
