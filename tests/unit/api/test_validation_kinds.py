"""Every served kind: a valid manifest passes, malformed JSON never crashes validation, and the small
kinds (ConfigMap, Secret, Namespace, Node, Event, ServiceAccount, Endpoints, EndpointSlice, Lease)
report Kubernetes' causes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api.defaults import apply_defaults
from kubelite.api.errors import invalid_object
from kubelite.api.registry import KINDS
from kubelite.api.validation import VALIDATORS, validate

from .manifests import KIND_BY_NAME, VALID, Mutation, Obj, admit, messages, mutated, stored

DNS_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
CONFIG_KEY = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
              "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def test_every_served_kind_has_validation() -> None:
    assert {(k.group, k.kind) for k in KINDS} == set(VALIDATORS)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_manifest_passes(kind: str) -> None:
    assert messages(VALID[kind]()) == []


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_manifest_passes_again_on_update(kind: str) -> None:
    old = stored(VALID[kind])
    assert messages(copy.deepcopy(old), old) == []


_GARBAGE: list[Any] = [None, 7, "x", [], {}, [None, 1, "a", {}], {"a": None}, True, -1, 1.5]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@pytest.mark.parametrize("kind", sorted(VALID))
def test_malformed_json_never_raises(kind: str) -> None:
    """Every field of a valid manifest, replaced in turn by values of the wrong JSON type."""
    resource = KIND_BY_NAME[kind]
    base = VALID[kind]()
    old = stored(VALID[kind])
    for n, path in enumerate(_paths(base)[1:]):
        for offset in range(3):
            obj = copy.deepcopy(base)
            target: Any = obj
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = _GARBAGE[(n + offset) % len(_GARBAGE)]
            apply_defaults(resource, obj)
            causes = validate(resource, obj, None)
            validate(resource, obj, old)
            # And the causes render into a Status without trouble.
            invalid_object(kind, "x", causes).to_status()


def test_top_level_garbage_never_raises() -> None:
    for kind in KINDS:
        junks: list[dict[str, Any]] = [{}, {"metadata": None, "spec": [], "status": 3}, {"metadata": {"name": 5}}]
        for junk in junks:
            obj: Obj = copy.deepcopy(junk)
            apply_defaults(kind, obj)
            validate(kind, obj, None)
            validate(kind, obj, copy.deepcopy(obj))


def _set(path: str, value: Any) -> Mutation:
    def mutate(obj: Obj) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for step in parents:
            target = target[int(step)] if step.isdigit() else target.setdefault(step, {})
        if value is _DELETE:
            del target[last]
        else:
            target[int(last) if last.isdigit() else last] = value
    return mutate


_DELETE = object()

CASES: list[tuple[str, str, Mutation, str]] = [
    # ConfigMap
    ("ConfigMap", "bad-key", _set("data.bad key", "x"), f"data[bad key]: Invalid value: \"bad key\": {CONFIG_KEY}"),
    ("ConfigMap", "dot-key", lambda o: o["data"].update({"..": "x"}),
     'data[..]: Invalid value: "..": must not be \'..\''),
    ("ConfigMap", "dup-binary", _set("binaryData.MODE", "eA=="),
     'data[MODE]: Invalid value: "MODE": duplicate of key present in binaryData'),
    ("ConfigMap", "binary-b64", lambda o: o["binaryData"].update({"logo.png": "not base64!"}),
     'binaryData[logo.png]: Invalid value: "not base64!": illegal base64 data at input byte 3'),
    ("ConfigMap", "too-big", _set("data.big", "x" * (1024 * 1024 + 1)),
     ": Too long: may not be more than 1048576 bytes"),
    ("ConfigMap", "bad-name", _set("metadata.name", "Web_Config"),
     f'metadata.name: Invalid value: "Web_Config": {DNS_SUBDOMAIN}'),
    ("ConfigMap", "no-namespace", _set("metadata.namespace", ""), "metadata.namespace: Required value"),
    # Secret
    ("Secret", "tls-missing-key", _set("data", {"tls.crt": "Y2VydA=="}), "data[tls.key]: Required value"),
    ("Secret", "bad-base64", lambda o: o["data"].update({"tls.key": "%%%"}),
     'data[tls.key]: Invalid value: "<secret contents redacted>": illegal base64 data at input byte 0'),
    ("Secret", "basic-auth", _set("type", "kubernetes.io/basic-auth"), "data[username]: Required value"),
    ("Secret", "dockerconfigjson", lambda o: o.update(type="kubernetes.io/dockerconfigjson"),
     "data[.dockerconfigjson]: Required value"),
    ("Secret", "sa-token", lambda o: o.update(type="kubernetes.io/service-account-token"),
     "metadata.annotations[kubernetes.io/service-account.name]: Required value"),
    ("Secret", "ssh", lambda o: o.update(type="kubernetes.io/ssh-auth"), "data[ssh-privatekey]: Required value"),
    ("Secret", "string-data-key", _set("stringData", {"no/slash": "x"}),
     f"data[no/slash]: Invalid value: \"no/slash\": {CONFIG_KEY}"),
    # Namespace
    ("Namespace", "dots", _set("metadata.name", "team.a"),
     'metadata.name: Invalid value: "team.a": must not contain dots'),
    ("Namespace", "upper", _set("metadata.name", "Team"), f'metadata.name: Invalid value: "Team": {DNS_LABEL}'),
    ("Namespace", "too-long", _set("metadata.name", "a" * 64),
     f'metadata.name: Invalid value: "{"a" * 64}": must be no more than 63 characters'),
    ("Namespace", "finalizer", _set("spec.finalizers", ["kubernetes", "custom"]),
     'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified'),
    # Node
    ("Node", "taint-effect", _set("spec.taints.0.effect", "Never"),
     'metadata.taints[0].effect: Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", '
     '"NoExecute"'),
    ("Node", "taint-no-effect", _set("spec.taints.0.effect", ""), "metadata.taints[0].effect: Required value"),
    ("Node", "taint-dup", lambda o: o["spec"]["taints"].append(dict(o["spec"]["taints"][0])),
     "metadata.taints[1]: Duplicate value: dedicated=db:NoSchedule: taints must be unique by key and effect pair"),
    ("Node", "negative-capacity", _set("status.capacity.cpu", "-1"),
     'status.capacity.cpu: Invalid value: "-1": must be greater than or equal to 0'),
    ("Node", "fractional-pods", _set("status.capacity.pods", "1.5"),
     "status.capacity.pods: Invalid value: 1500m: must be an integer"),
    ("Node", "bad-cidr", _set("spec.podCIDRs", ["10.0.0.0/33"]),
     'spec.podCIDRs[0]: Invalid value: "10.0.0.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)'),
    # Event
    ("Event", "namespace-mismatch", _set("involvedObject.namespace", "other"),
     'involvedObject.namespace: Invalid value: "other": does not match event.namespace'),
    ("Event", "no-involved-object", lambda o: o.update(involvedObject={}, metadata={"name": "e", "namespace": "a"}),
     'involvedObject.namespace: Invalid value: "": does not match event.namespace'),
    ("Event", "name-with-slash", _set("metadata.name", "a/b"),
     "metadata.name: Invalid value: \"a/b\": may not contain '/'"),
    ("Event", "new-style-needs-reporting", _set("eventTime", "2024-01-01T00:00:00.000000Z"),
     "reportingController: Required value"),
    # ServiceAccount
    ("ServiceAccount", "bad-name", _set("metadata.name", "-builder"),
     f'metadata.name: Invalid value: "-builder": {DNS_SUBDOMAIN}'),
    # Endpoints
    ("Endpoints", "loopback", _set("subsets.0.addresses.0.ip", "127.0.0.1"),
     'subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)'),
    ("Endpoints", "bad-ip", _set("subsets.0.addresses.0.ip", "10.0.0"),
     'subsets[0].addresses[0].ip: Invalid value: "10.0.0": must be a valid IP address, (e.g. 10.9.8.7 or '
     '2001:db8::ffff)'),
    ("Endpoints", "no-addresses", _set("subsets.0.addresses", []),
     "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"),
    ("Endpoints", "unnamed-port", _set("subsets.0.ports.1.name", ""), "subsets[0].ports[1].name: Required value"),
    ("Endpoints", "port-range", _set("subsets.0.ports.0.port", 70000),
     "subsets[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    # EndpointSlice
    ("EndpointSlice", "address-type", _set("addressType", "IP"),
     'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'),
    ("EndpointSlice", "no-address-type", _set("addressType", _DELETE), "addressType: Required value"),
    ("EndpointSlice", "v6-in-v4", _set("endpoints.0.addresses", ["fd00::1"]),
     'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address'),
    ("EndpointSlice", "no-addresses", _set("endpoints.0.addresses", []),
     "endpoints[0].addresses: Required value: must contain at least 1 address"),
    ("EndpointSlice", "protocol", _set("ports.0.protocol", "HTTP"),
     'ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ("EndpointSlice", "dup-port-name", lambda o: o["ports"].append({"name": "http", "port": 81}),
     'ports[1].name: Duplicate value: "http"'),
    # Lease
    ("Lease", "duration", _set("spec.leaseDurationSeconds", 0),
     "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"),
    ("Lease", "transitions", _set("spec.leaseTransitions", -1),
     "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"),
    ("Lease", "strategy", _set("spec.strategy", "Youngest"),
     'spec.strategy.strategy: Unsupported value: "Youngest": supported values: "OldestEmulationVersion"'),
    ("Lease", "preferred-holder", _set("spec.preferredHolder", "node-2"),
     "spec.preferredHolder: Forbidden: may only be specified if `strategy` is defined"),
]


@pytest.mark.parametrize(("kind", "mutation", "expected"), [pytest.param(k, m, e, id=f"{k}-{i}")
                                                             for k, i, m, e in CASES])
def test_invalid(kind: str, mutation: Mutation, expected: str) -> None:
    got = messages(mutated(VALID[kind], mutation))
    assert expected in got, got


def test_cause_reasons_and_fields() -> None:
    causes = admit(mutated(VALID["ConfigMap"], _set("metadata.namespace", "")))
    assert [(c.field, c.reason) for c in causes] == [("metadata.namespace", "FieldValueRequired")]


def test_immutable_config_map_and_secret() -> None:
    for kind, field in (("ConfigMap", "data"), ("Secret", "data")):
        old = stored(VALID[kind])
        old["immutable"] = True
        new = copy.deepcopy(old)
        new["data"] = {**new["data"], "extra": "eA=="}
        assert f"{field}: Forbidden: field is immutable when `immutable` is set" in messages(new, old)
        unfrozen = copy.deepcopy(old)
        unfrozen["immutable"] = False
        assert "immutable: Forbidden: field is immutable when `immutable` is set" in messages(unfrozen, old)


def test_secret_type_is_immutable() -> None:
    old = stored(VALID["Secret"])
    new = copy.deepcopy(old)
    new["type"] = "Opaque"
    assert 'type: Invalid value: "Opaque": field is immutable' in messages(new, old)


def test_endpoint_slice_address_type_is_immutable_and_ip_tolerated_on_update() -> None:
    old = stored(VALID["EndpointSlice"])
    new = copy.deepcopy(old)
    new["addressType"] = "IPv6"
    new["endpoints"][0]["addresses"] = ["fd00::1"]
    assert messages(new, old) == ['addressType: Invalid value: "IPv6": field is immutable']
    legacy = copy.deepcopy(old)
    legacy["addressType"] = "IP"
    old["addressType"] = "IP"
    assert messages(legacy, old) == []


def test_node_pod_cidrs_and_provider_id_are_immutable_once_set() -> None:
    old = stored(VALID["Node"])
    old["spec"]["providerID"] = "kubelite://node-1"
    new = copy.deepcopy(old)
    new["spec"]["podCIDRs"] = ["10.244.2.0/24"]
    new["spec"]["providerID"] = "other://x"
    got = messages(new, old)
    assert 'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid' in got
    assert 'spec.providerID: Forbidden: node updates may not change providerID except from "" to valid' in got
    fresh = copy.deepcopy(old)
    fresh["spec"].pop("podCIDRs")
    assigned = copy.deepcopy(fresh)
    assigned["spec"]["podCIDRs"] = ["10.244.9.0/24"]
    assert messages(assigned, fresh) == []


def test_no_new_finalizers_while_deleting() -> None:
    old = stored(VALID["ConfigMap"])
    old["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    new = copy.deepcopy(old)
    new["metadata"]["finalizers"] = ["example.com/cleanup"]
    assert messages(new, old) == ['metadata.finalizers: Forbidden: no new finalizers can be added if the object '
                                  'is being deleted, found new finalizers []string{"example.com/cleanup"}']


def test_kind_lookup_is_by_group() -> None:
    assert KIND_BY_NAME["Lease"].group == "coordination.k8s.io"


def test_unknown_kind_is_a_programming_error() -> None:
    from kubelite.api.registry import Kind

    with pytest.raises(LookupError):
        validate(Kind("batch", "v1", "Job", "jobs", True), {}, None)
