"""Object metadata and the string formats behind it (apimachinery's wording)."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api.validation import formats

from .manifests import Obj, config_map, messages, mutated


def meta_messages(**fields: object) -> list[str]:
    def mutate(o: Obj) -> None:
        o["metadata"].update(fields)
    return messages(mutated(config_map, mutate))


def test_label_keys_and_values() -> None:
    assert meta_messages(labels={"example.com/app": "web", "app.kubernetes.io/name": "", "A_b.c": "X-1"}) == []
    got = meta_messages(labels={"-app": "web"})
    assert got == ['metadata.labels: Invalid value: "-app": name part must consist of alphanumeric characters, '
                   "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
                   "'my.name',  or '123-abc', regex used for validation is "
                   "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]
    assert meta_messages(labels={"Example.com/app": "x"})[0].startswith(
        'metadata.labels: Invalid value: "Example.com/app": prefix part a lowercase RFC 1123 subdomain')
    assert meta_messages(labels={"/app": "x"}) == ['metadata.labels: Invalid value: "/app": prefix part must be '
                                                   "non-empty"]
    assert meta_messages(labels={"a/b/c": "x"})[0].startswith(
        'metadata.labels: Invalid value: "a/b/c": a valid label key must consist of alphanumeric characters')
    assert meta_messages(labels={"app": "v" * 64})[0] == (
        f'metadata.labels: Invalid value: "{"v" * 64}": must be no more than 63 bytes')


def test_annotations() -> None:
    # Keys are compared case-insensitively, values are free text.
    assert meta_messages(annotations={"Example.COM/Note": "any value at all: !@#"}) == []
    assert meta_messages(annotations={"bad key": "x"})[0].startswith('metadata.annotations: Invalid value: '
                                                                     '"bad key": name part must consist of')
    huge = {"a": "x" * (256 * 1024)}
    assert meta_messages(annotations=huge) == ["metadata.annotations: Too long: may not be more than 262144 bytes"]


def test_generate_name_is_validated_as_a_prefix() -> None:
    assert messages(mutated(config_map, lambda o: o["metadata"].update(name="", generateName="web-"))) == []
    got = messages(mutated(config_map, lambda o: o["metadata"].update(name="", generateName="Web-")))
    assert got[0].startswith('metadata.generateName: Invalid value: "Web-": a lowercase RFC 1123 subdomain')
    assert messages(mutated(config_map, lambda o: o["metadata"].pop("name"))) == [
        "metadata.name: Required value: name or generateName is required"]


def test_owner_references_and_finalizers() -> None:
    refs: list[dict[str, Any]] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": True},
        {"apiVersion": "apps/", "kind": "", "name": "", "uid": ""}]
    assert meta_messages(ownerReferences=refs) == [
        'metadata.ownerReferences.apiVersion: Invalid value: "apps/": version must not be empty',
        'metadata.ownerReferences.kind: Invalid value: "": must not be empty',
        'metadata.ownerReferences.name: Invalid value: "": must not be empty',
        'metadata.ownerReferences.uid: Invalid value: "": must not be empty',
    ]
    two_controllers = [dict(refs[0]), {**refs[0], "name": "rs2", "uid": "u2"}]
    assert any(m.endswith('Only one reference can have Controller set to true. Found "true" in references for '
                          "ReplicaSet/rs and ReplicaSet/rs2") for m in meta_messages(ownerReferences=two_controllers))
    assert meta_messages(finalizers=["kubernetes", "example.com/cleanup", "foregroundDeletion"]) == []
    assert meta_messages(finalizers=["cleanup"]) == [
        'metadata.finalizers[0]: Invalid value: "cleanup": name is neither a standard finalizer name nor is it '
        "fully qualified"]
    assert meta_messages(finalizers=["orphan", "foregroundDeletion"]) == [
        'metadata.finalizers: Invalid value: []string{"orphan", "foregroundDeletion"}: finalizer orphan and '
        "foregroundDeletion cannot be both set"]


def test_generation_and_managed_fields() -> None:
    assert meta_messages(generation=-1) == ["metadata.generation: Invalid value: -1: must be greater than or equal "
                                            "to 0"]
    assert meta_messages(managedFields=[{"manager": "kubectl", "operation": "Patch"}]) == [
        'metadata.managedFields[0].operation: Invalid value: "Patch": must be `Apply` or `Update`']


@pytest.mark.parametrize(("value", "reasons"), [
    ("my-name", []),
    ("123-abc", []),
    ("a" * 63, []),
    ("a" * 64, ["must be no more than 63 characters"]),
    ("a.b", ["must not contain dots"]),
    ("-a", ["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
            "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    ("ab\n", ["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
              "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
              "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
])
def test_dns1123_label(value: str, reasons: list[str]) -> None:
    assert formats.is_dns1123_label(value) == reasons


def test_other_formats() -> None:
    assert formats.is_dns1123_subdomain("a" * 254)[0] == "must be no more than 253 characters"
    assert formats.is_dns1035_label("web-1") == []
    assert formats.is_dns1035_label("1web") != []
    assert formats.is_wildcard_dns1123_subdomain("*.example.com") == []
    assert formats.is_wildcard_dns1123_subdomain("*") != []
    assert formats.is_valid_port_name("-http") == ["must not begin or end with a hyphen"]
    assert formats.is_env_var_name("MY VAR.1-x") == []
    assert formats.is_env_var_name("") == ["environment variable name must be non-empty"]
    assert formats.is_env_var_name("é") == ["a valid environment variable name must consist only of printable "
                                             "ASCII characters other than '='"]
    assert formats.is_config_map_key("..data") == ["must not start with '..'"]
    assert formats.is_valid_ip("010.001.002.003") == []  # ParseIPSloppy reads leading zeros as decimal
    assert formats.is_valid_ip("fe80::1%eth0") != []
    assert formats.is_valid_cidr("fd00::/64") == []
    assert formats.is_valid_cidr("10.0.0.0") != []
    assert formats.non_special_ip("169.254.1.1") == ["may not be in the link-local range (169.254.0.0/16, "
                                                     "fe80::/10)"]
    assert formats.non_special_ip("224.0.0.5") == ["may not be in the link-local multicast range (224.0.0.0/24, "
                                                   "ff02::/10)"]
    assert formats.non_special_ip("::1") == ["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
    assert formats.is_domain_prefixed_path("example.com/a b") == [
        ("a b", "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')")]
    assert formats.is_path_segment_name("..") == ["may not be '..'"]
    assert formats.is_path_segment_name("a%b/c") == ["may not contain '/'", "may not contain '%'"]
