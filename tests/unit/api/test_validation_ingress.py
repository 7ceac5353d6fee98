"""Ingresses and IngressClasses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .manifests import Mutation, Obj, ingress, ingress_class, messages, mutated, stored


def paths(obj: Obj) -> Any:
    return obj["spec"]["rules"][0]["http"]["paths"]


P0 = "spec.rules[0].http.paths[0]"

CASES: list[tuple[str, Mutation, str]] = [
    ("nothing", lambda o: o["spec"].pop("rules"),
     "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"),
    ("no-path-type", lambda o: paths(o)[0].pop("pathType"),
     f"{P0}.pathType: Required value: pathType must be specified"),
    ("path-type", lambda o: paths(o)[0].update(pathType="Regex"),
     f'{P0}.pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix"'),
    ("relative-path", lambda o: paths(o)[0].update(path="api"),
     f'{P0}.path: Invalid value: "api": must be an absolute path'),
    ("double-slash", lambda o: paths(o)[0].update(path="/a//b"),
     f"{P0}.path: Invalid value: \"/a//b\": must not contain '//'"),
    ("dot-suffix", lambda o: paths(o)[0].update(path="/a/."),
     f"{P0}.path: Invalid value: \"/a/.\": cannot end with '/.'"),
    ("impl-specific-relative", lambda o: paths(o)[0].update(pathType="ImplementationSpecific", path="x"),
     f'{P0}.path: Invalid value: "x": must be an absolute path'),
    ("no-paths", lambda o: o["spec"]["rules"][0]["http"].update(paths=[]), "spec.rules[0].http.paths: Required value"),
    ("no-backend", lambda o: paths(o)[0].update(backend={}),
     f'{P0}.backend: Invalid value: "": resource or service backend is required'),
    ("service-name", lambda o: paths(o)[0]["backend"]["service"].update(name="Web"),
     f'{P0}.backend.service.name: Invalid value: "Web": a DNS-1035 label must consist of lower case alphanumeric '
     "characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. "
     "'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
    ("no-service-name", lambda o: paths(o)[0]["backend"]["service"].pop("name"),
     f"{P0}.backend.service.name: Required value"),
    ("no-port", lambda o: paths(o)[0]["backend"]["service"].update(port={}),
     f"{P0}.backend: Required value: port name or number is required"),
    ("port-both", lambda o: paths(o)[0]["backend"]["service"].update(port={"name": "http", "number": 80}),
     f'{P0}.backend: Invalid value: "": cannot set both port name & port number'),
    ("port-number", lambda o: paths(o)[0]["backend"]["service"].update(port={"number": 70000}),
     f"{P0}.backend.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("resource-and-service", lambda o: paths(o)[0]["backend"].update(resource={"kind": "Bucket", "name": "b"}),
     f'{P0}.backend: Invalid value: "": cannot set both resource and service backends'),
    ("host-ip", lambda o: o["spec"]["rules"][0].update(host="10.0.0.1"),
     'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    ("bad-wildcard", lambda o: o["spec"]["rules"][0].update(host="*.*.example.com"),
     'spec.rules[0].host: Invalid value: "*.*.example.com": a wildcard DNS-1123 subdomain must start with \'*.\', '
     "followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and "
     "end with an alphanumeric character (e.g. '*.example.com', regex used for validation is "
     "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("tls-host", lambda o: o["spec"]["tls"][0].update(hosts=["Example.com"]),
     'spec.tls[0].hosts[0]: Invalid value: "Example.com": a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
     "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("class-annotation-mismatch", lambda o: o["metadata"].update(annotations={"kubernetes.io/ingress.class": "nginx"}),
     'annotations.kubernetes.io/ingress.class: Invalid value: "nginx": must match `ingressClassName` when both are '
     "specified"),
]


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_invalid_ingress(mutation: Mutation, expected: str) -> None:
    got = messages(mutated(ingress, mutation))
    assert expected in got, got


def test_default_backend_alone_is_valid() -> None:
    def only_default(o: Obj) -> None:
        o["spec"] = {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}
    assert messages(mutated(ingress, only_default)) == []


def test_stored_invalid_wildcard_rules_stay_accepted_on_update() -> None:
    old = stored(ingress)
    old["spec"]["rules"][0]["http"]["paths"][0]["path"] = "relative"
    new = copy.deepcopy(old)
    assert messages(new, old) == []
    assert messages(copy.deepcopy(old)) == [f'{P0}.path: Invalid value: "relative": must be an absolute path']


CLASS_CASES: list[tuple[str, Mutation, str]] = [
    ("no-controller", lambda o: o["spec"].pop("controller"), "spec.controller: Required value"),
    ("not-prefixed", lambda o: o["spec"].update(controller="nginx"),
     'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")'),
    ("bad-domain", lambda o: o["spec"].update(controller="Acme.io/x"),
     'spec.controller: Invalid value: "Acme.io": a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
     "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("params-scope", lambda o: o["spec"].update(parameters={"kind": "Config", "name": "c", "scope": "Global"}),
     'spec.parameters.scope: Unsupported value: "Global": supported values: "Cluster", "Namespace"'),
    ("params-namespace", lambda o: o["spec"].update(parameters={"kind": "Config", "name": "c", "scope": "Namespace"}),
     "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"),
    ("params-kind", lambda o: o["spec"].update(parameters={"name": "c"}), "spec.parameters.kind: Required value"),
]


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CLASS_CASES])
def test_invalid_ingress_class(mutation: Mutation, expected: str) -> None:
    got = messages(mutated(ingress_class, mutation))
    assert expected in got, got


def test_ingress_class_controller_is_immutable() -> None:
    old = stored(ingress_class)
    new = copy.deepcopy(old)
    new["spec"]["controller"] = "kubelite.io/other"
    assert messages(new, old) == ['spec.controller: Invalid value: "kubelite.io/other": field is immutable']
