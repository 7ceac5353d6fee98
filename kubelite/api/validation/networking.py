"""Ingresses and IngressClasses (pkg/apis/networking/validation).

An Ingress needs rules or a default backend; each HTTP path needs a pathType (Exact, Prefix or
ImplementationSpecific), an absolute path without ``//``, ``/./`` ... for Exact/Prefix, and a backend
naming a Service (DNS-1035 label) and a port number or name. Hosts are DNS names, optionally with a
leading ``*.`` wildcard, never IPs. An IngressClass needs a domain-prefixed controller name, immutable.
"""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import forbidden, invalid, not_supported, required, too_long

from . import formats, gofmt
from .common import Errs, as_dict, as_int, as_list, as_str, each_invalid, immutable
from .meta import name_is_dns_subdomain, object_meta, object_meta_update

PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES = ("/..", "/.")
_CONTROLLER_MAX = 250
_SCOPES = ["Cluster", "Namespace"]
_INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def validate_ingress(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    if old is not None:
        object_meta_update(errs, obj, old)
    rules, default = as_list(spec.get("rules")), spec.get("defaultBackend")
    if not rules and default is None:
        errs.append(invalid("spec", gofmt.GoValue("[]networking.IngressRule(nil)"),
                            "either `defaultBackend` or `rules` must be specified"))
    if default is not None:
        _backend(errs, "spec.defaultBackend", as_dict(default))
    # Kubernetes keeps accepting invalid wildcard rules and TLS secret names that are already stored.
    old_spec = as_dict(old.get("spec")) if old is not None else {}
    _rules(errs, rules, allow_bad_wildcards=_has_invalid_wildcard_rule(old_spec))
    if not _has_invalid_tls_secret(old_spec):
        for i, tls in enumerate(as_dict(t) for t in as_list(spec.get("tls"))):
            secret = as_str(tls.get("secretName"))
            if secret:
                each_invalid(errs, f"spec.tls[{i}].secretName", secret, name_is_dns_subdomain(secret, False))
    for i, tls in enumerate(as_dict(t) for t in as_list(spec.get("tls"))):
        for j, host in enumerate(as_list(tls.get("hosts"))):
            text = as_str(host)
            check = formats.is_wildcard_dns1123_subdomain if "*" in text else formats.is_dns1123_subdomain
            each_invalid(errs, f"spec.tls[{i}].hosts[{j}]", text, check(text))
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        text = as_str(class_name)
        each_invalid(errs, "spec.ingressClassName", text, name_is_dns_subdomain(text, False))
    annotation = as_dict(as_dict(obj.get("metadata")).get("annotations")).get(_INGRESS_CLASS_ANNOTATION)
    if old is None and annotation is not None and class_name is not None and annotation != class_name:
        errs.append(invalid(f"annotations.{_INGRESS_CLASS_ANNOTATION}", annotation,
                            "must match `ingressClassName` when both are specified"))
    return errs


def _rules(errs: Errs, rules: list[Any], *, allow_bad_wildcards: bool) -> None:
    for i, rule in enumerate(as_dict(r) for r in rules):
        at, host = f"spec.rules[{i}]", as_str(rule.get("host"))
        wildcard = False
        if host:
            if formats.parse_ip(host) is not None:
                errs.append(invalid(f"{at}.host", host, "must be a DNS name, not an IP address"))
            if "*" in host:
                each_invalid(errs, f"{at}.host", host, formats.is_wildcard_dns1123_subdomain(host))
                wildcard = True
            else:
                each_invalid(errs, f"{at}.host", host, formats.is_dns1123_subdomain(host))
        if not wildcard or not allow_bad_wildcards:
            _rule_value(errs, at, rule)


def _rule_value(errs: Errs, path: str, rule: dict[str, Any]) -> None:
    http = rule.get("http")
    if http is None:
        return
    paths = as_list(as_dict(http).get("paths"))
    if not paths:
        errs.append(required(f"{path}.http.paths"))
    for i, item in enumerate(as_dict(p) for p in paths):
        _http_path(errs, f"{path}.http.paths[{i}]", item)


def _http_path(errs: Errs, path: str, item: dict[str, Any]) -> None:
    path_type, value = item.get("pathType"), as_str(item.get("path"))
    if path_type is None:
        errs.append(required(f"{path}.pathType", "pathType must be specified"))
        return
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
        for sequence in _INVALID_SEQUENCES:
            if sequence in value:
                errs.append(invalid(f"{path}.path", value, f"must not contain '{sequence}'"))
        for suffix in _INVALID_SUFFIXES:
            if value.endswith(suffix):
                errs.append(invalid(f"{path}.path", value, f"cannot end with '{suffix}'"))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errs.append(not_supported(f"{path}.pathType", path_type, PATH_TYPES))
    _backend(errs, f"{path}.backend", as_dict(item.get("backend")))


def _backend(errs: Errs, path: str, backend: dict[str, Any]) -> None:
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        errs.append(invalid(path, "", "cannot set both resource and service backends"))
        return
    if resource is not None:
        _typed_reference(errs, f"{path}.resource", as_dict(resource))
        return
    if service is None:
        errs.append(invalid(path, "", "resource or service backend is required"))
        return
    svc = as_dict(service)
    name = as_str(svc.get("name"))
    if not name:
        errs.append(required(f"{path}.service.name"))
    else:
        each_invalid(errs, f"{path}.service.name", name, formats.is_dns1035_label(name))
    port = as_dict(svc.get("port"))
    port_name, number = as_str(port.get("name")), as_int(port.get("number"))
    if port_name and number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        each_invalid(errs, f"{path}.service.port.name", port_name, formats.is_valid_port_name(port_name))
    elif number:
        each_invalid(errs, f"{path}.service.port.number", number, formats.is_valid_port_num(number))
    else:
        errs.append(required(path, "port name or number is required"))


def _typed_reference(errs: Errs, path: str, ref: dict[str, Any]) -> None:
    group = ref.get("apiGroup")
    if group is not None:
        each_invalid(errs, f"{path}.apiGroup", as_str(group), formats.is_dns1123_subdomain(as_str(group)))
    for key in ("kind", "name"):
        value = as_str(ref.get(key))
        if not value:
            errs.append(required(f"{path}.{key}"))
        else:
            each_invalid(errs, f"{path}.{key}", value, formats.is_path_segment_name(value))


def _has_invalid_wildcard_rule(old_spec: dict[str, Any]) -> bool:
    for rule in (as_dict(r) for r in as_list(old_spec.get("rules"))):
        if "*" in as_str(rule.get("host")):
            probe: Errs = []
            _rule_value(probe, "", rule)
            if probe:
                return True
    return False


def _has_invalid_tls_secret(old_spec: dict[str, Any]) -> bool:
    return any(as_str(as_dict(t).get("secretName"))
               and name_is_dns_subdomain(as_str(as_dict(t).get("secretName")), False)
               for t in as_list(old_spec.get("tls")))


def validate_ingress_class(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=False, name_fn=name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    controller = as_str(spec.get("controller"))
    if not controller:
        errs.append(required("spec.controller"))
    else:
        if len(controller.encode()) > _CONTROLLER_MAX:
            errs.append(too_long("spec.controller", _CONTROLLER_MAX))
        for bad, reason in formats.is_domain_prefixed_path(controller):
            errs.append(invalid("spec.controller", bad, reason))
    if spec.get("parameters") is not None:
        _parameters(errs, "spec.parameters", as_dict(spec.get("parameters")))
    if old is not None:
        object_meta_update(errs, obj, old)
        immutable(errs, "spec.controller", controller, as_str(as_dict(old.get("spec")).get("controller")))
    return errs


def _parameters(errs: Errs, path: str, params: dict[str, Any]) -> None:
    group = params.get("apiGroup")
    if group is not None:
        each_invalid(errs, f"{path}.apiGroup", as_str(group), formats.is_dns1123_subdomain(as_str(group)))
    for key in ("kind", "name"):
        value = as_str(params.get(key))
        if not value:
            errs.append(required(f"{path}.{key}"))
        else:
            each_invalid(errs, f"{path}.{key}", value, formats.is_path_segment_name(value))
    scope = params.get("scope")
    if scope is None:
        errs.append(required(f"{path}.scope"))
        return
    if scope not in _SCOPES:
        errs.append(not_supported(f"{path}.scope", scope, _SCOPES))
        return
    namespace = params.get("namespace")
    if scope == "Namespace":
        if namespace is None:
            errs.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
        else:
            each_invalid(errs, f"{path}.namespace", as_str(namespace), formats.is_dns1123_label(as_str(namespace)))
    elif namespace is not None:
        errs.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
