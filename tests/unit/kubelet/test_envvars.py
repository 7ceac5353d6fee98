"""A container's environment: $(VAR) expansion, env/envFrom sources, the downward API."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubelite.kubelet.envvars import (
    EnvError,
    PodContext,
    expand,
    expand_command,
    field_value,
    make_environment,
    mapping_for,
    resource_value,
)

Obj = dict[str, Any]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("$(A)", "a", id="defined"),
    pytest.param("x$(A)y$(B)z", "xaybz", id="several"),
    pytest.param("$(MISSING)", "$(MISSING)", id="undefined-kept"),
    pytest.param("$$(A)", "$(A)", id="escaped"),
    pytest.param("$$$(A)", "$a", id="escaped-dollar-then-var"),
    pytest.param("$(A", "$(A", id="unterminated"),
    pytest.param("$A", "$A", id="no-parens"),
    pytest.param("a$", "a$", id="trailing-dollar"),
    pytest.param("$()", "", id="empty-name"),
    pytest.param("100$", "100$", id="price"),
])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, mapping_for({"A": "a", "B": "b", "": ""})) == expected


def test_command_and_args_expand_from_the_environment() -> None:
    ctr = {"command": ["sh", "-c", "echo $(MSG)"], "args": ["$(N)", "$$(N)", "$(UNSET)"]}
    assert expand_command(ctr, {"MSG": "hi", "N": "3"}) == (["sh", "-c", "echo hi"], ["3", "$(N)", "$(UNSET)"])


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "prod", "uid": "u-1", "labels": {"app": "web", "tier": "f"},
                         "annotations": {"note": 'say "hi"'}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", **spec}}


CONFIGMAPS = {("prod", "settings"): {"data": {"level": "debug", "bad=key": "x", "mode": "fast"}}}
SECRETS = {("prod", "creds"): {"data": {"password": base64.b64encode(b"s3cr3t").decode()}}}
CONTEXT = PodContext(pod_ips=["10.1.0.5", "fd00::5"], host_ips=["192.168.1.2"], node_allocatable={
    "cpu": "4", "memory": "8Gi"})


def env(ctr: Obj, p: Obj | None = None) -> dict[str, str]:
    result = make_environment(p or pod(), ctr, configmaps=lambda ns, n: CONFIGMAPS.get((ns, n)),
                              secrets=lambda ns, n: SECRETS.get((ns, n)), context=CONTEXT)
    return result.variables


def test_values_expand_against_earlier_variables() -> None:
    got = env({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-$(C)"}, {"name": "C", "value": "3"},
                       {"name": "EMPTY"}]})
    assert got == {"A": "1", "B": "1-$(C)", "C": "3", "EMPTY": ""}


def test_env_from_sources_with_prefix_and_invalid_keys() -> None:
    ctr = {"envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}, {"secretRef": {"name": "creds"}}],
           "env": [{"name": "CFG_mode", "value": "slow"}]}
    result = make_environment(pod(), ctr, configmaps=lambda ns, n: CONFIGMAPS.get((ns, n)),
                              secrets=lambda ns, n: SECRETS.get((ns, n)), context=CONTEXT)
    assert result.variables == {"CFG_level": "debug", "CFG_mode": "slow", "password": "s3cr3t"}
    assert result.invalid_keys == [("configMap", "prod/settings", ["CFG_bad=key"])]


def test_key_references() -> None:
    got = env({"env": [
        {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        {"name": "OPTKEY", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "x", "optional": True}}},
    ]})
    assert got == {"LEVEL": "debug", "PW": "s3cr3t"}


@pytest.mark.parametrize(("source", "message"), [
    pytest.param({"configMapKeyRef": {"name": "nope", "key": "x"}}, 'configmap "nope" not found', id="cm"),
    pytest.param({"configMapKeyRef": {"name": "settings", "key": "x"}},
                 "couldn't find key x in ConfigMap prod/settings", id="cm-key"),
    pytest.param({"secretKeyRef": {"name": "nope", "key": "x"}}, 'secret "nope" not found', id="secret"),
    pytest.param({"secretKeyRef": {"name": "creds", "key": "x"}}, "couldn't find key x in Secret prod/creds",
                 id="secret-key"),
    pytest.param({"fieldRef": {"fieldPath": "spec.bogus"}}, "unsupported fieldPath: spec.bogus", id="field"),
])
def test_missing_references_fail_with_kubernetes_messages(source: Obj, message: str) -> None:
    with pytest.raises(EnvError) as info:
        env({"env": [{"name": "X", "valueFrom": source}]})
    assert str(info.value) == message


def test_missing_env_from_source() -> None:
    with pytest.raises(EnvError, match='configmap "gone" not found'):
        env({"envFrom": [{"configMapRef": {"name": "gone"}}]})
    assert env({"envFrom": [{"secretRef": {"name": "gone", "optional": True}}]}) == {}


@pytest.mark.parametrize(("path", "value"), [
    ("metadata.name", "web"), ("metadata.namespace", "prod"), ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"), ("metadata.labels['none']", ""),
    ("metadata.annotations['note']", 'say "hi"'),
    ("metadata.labels", 'app="web"\ntier="f"'), ("metadata.annotations", 'note="say \\"hi\\""'),
    ("spec.nodeName", "n1"), ("spec.serviceAccountName", "sa"),
    ("status.podIP", "10.1.0.5"), ("status.podIPs", "10.1.0.5,fd00::5"),
    ("status.hostIP", "192.168.1.2"), ("status.hostIPs", "192.168.1.2"),
])
def test_field_refs(path: str, value: str) -> None:
    assert field_value(pod(), path, CONTEXT) == value


@pytest.mark.parametrize(("resource", "divisor", "value"), [
    ("limits.cpu", None, "2"), ("limits.cpu", "1m", "1500"), ("requests.cpu", None, "1"),
    ("requests.cpu", "250m", "2"), ("limits.memory", "1Mi", "512"), ("requests.memory", None, "268435456"),
    ("limits.ephemeral-storage", None, "0"),
])
def test_resource_field_refs(resource: str, divisor: str | None, value: str) -> None:
    ctr = {"name": "app", "resources": {"limits": {"cpu": "1500m", "memory": "512Mi"},
                                        "requests": {"cpu": "500m", "memory": "256Mi"}}}
    ref: Obj = {"resource": resource}
    if divisor:
        ref["divisor"] = divisor
    assert resource_value(pod(containers=[ctr]), ctr, ref, CONTEXT) == value


def test_unset_limit_is_the_node_allocatable() -> None:
    ctr = {"name": "app"}
    assert resource_value(pod(containers=[ctr]), ctr, {"resource": "limits.memory", "divisor": "1Gi"},
                          CONTEXT) == "8"
    assert resource_value(pod(containers=[ctr]), ctr, {"resource": "limits.cpu"}, CONTEXT) == "4"
