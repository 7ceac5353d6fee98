"""Deployments and ReplicaSets: selectors, templates, counts, rollout strategy, selector immutability."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .manifests import Mutation, Obj, deployment, messages, mutated, replica_set, stored


def spec(obj: Obj) -> Any:
    return obj["spec"]


def rolling(obj: Obj) -> Any:
    return spec(obj).setdefault("strategy", {}).setdefault("rollingUpdate", {})


CASES: list[tuple[str, Mutation, str]] = [
    ("no-selector", lambda o: spec(o).pop("selector"), "spec.selector: Required value"),
    ("empty-selector", lambda o: spec(o).update(selector={}),
     "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:"
     "[]LabelSelectorRequirement{},}: empty selector is invalid for deployment"),
    ("selector-mismatch", lambda o: spec(o)["template"]["metadata"].update(labels={"app": "other", "tier": "web"}),
     'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other", "tier":"web"}: `selector` does '
     "not match template `labels`"),
    ("template-no-labels", lambda o: spec(o)["template"].pop("metadata"),
     "spec.template.metadata.labels: Invalid value: map[string]string(nil): `selector` does not match template "
     "`labels`"),
    ("selector-expression", lambda o: spec(o)["selector"].update(matchExpressions=[{"key": "tier", "operator": "In"}]),
     "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
    ("selector-operator", lambda o: spec(o)["selector"].update(matchExpressions=[{"key": "tier", "operator": "Is"}]),
     'spec.selector.matchExpressions[0].operator: Invalid value: "Is": not a valid selector operator'),
    ("selector-value", lambda o: spec(o)["selector"]["matchLabels"].update(app="web app"),
     'spec.selector.matchLabels: Invalid value: "web app": a valid label must be an empty string or consist of '
     "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
     "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
     "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("negative-replicas", lambda o: spec(o).update(replicas=-1),
     "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    ("negative-min-ready", lambda o: spec(o).update(minReadySeconds=-5),
     "spec.minReadySeconds: Invalid value: -5: must be greater than or equal to 0"),
    ("restart-policy", lambda o: spec(o)["template"]["spec"].update(restartPolicy="OnFailure"),
     'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'),
    ("deadline", lambda o: spec(o)["template"]["spec"].update(activeDeadlineSeconds=10),
     "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"),
    ("template-image", lambda o: spec(o)["template"]["spec"]["containers"][0].pop("image"),
     "spec.template.spec.containers[0].image: Required value"),
    ("template-label-key", lambda o: spec(o)["template"]["metadata"]["labels"].update({"bad key": "x"}),
     'spec.template.labels: Invalid value: "bad key": name part must consist of alphanumeric characters, \'-\', '
     "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
     "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
]

DEPLOYMENT_CASES: list[tuple[str, Mutation, str]] = [
    ("strategy-type", lambda o: spec(o).update(strategy={"type": "BlueGreen"}),
     'spec.strategy: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"'),
    ("recreate-rolling", lambda o: spec(o).update(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ("both-zero", lambda o: rolling(o).update(maxSurge=0, maxUnavailable=0),
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
    ("both-zero-percent", lambda o: rolling(o).update(maxSurge="0%", maxUnavailable=0),
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"),
    ("bad-percent", lambda o: rolling(o).update(maxSurge="25"),
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: 25: a valid percent string must be a numeric string "
     "followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"),
    ("negative-surge", lambda o: rolling(o).update(maxSurge=-1),
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"),
    ("over-100", lambda o: rolling(o).update(maxUnavailable="150%"),
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 150%: must not be greater than 100%"),
    ("history", lambda o: spec(o).update(revisionHistoryLimit=-1),
     "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"),
    ("progress-deadline", lambda o: spec(o).update(progressDeadlineSeconds=10, minReadySeconds=10),
     "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds"),
]


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES + DEPLOYMENT_CASES])
def test_invalid_deployment(mutation: Mutation, expected: str) -> None:
    got = messages(mutated(deployment, mutation))
    assert expected in got, got


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_invalid_replica_set(mutation: Mutation, expected: str) -> None:
    got = messages(mutated(replica_set, mutation))
    assert expected in got, got


def test_valid_deployment_variants() -> None:
    def variants(o: Obj) -> None:
        spec(o)["selector"] = {"matchLabels": {"app": "web"},
                               "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]},
                                                    {"key": "track", "operator": "DoesNotExist"}]}
        spec(o)["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}
        spec(o)["replicas"] = 0
    assert messages(mutated(deployment, variants)) == []
    assert messages(mutated(deployment, lambda o: spec(o).update(strategy={"type": "Recreate"}))) == []


@pytest.mark.parametrize("factory", [deployment, replica_set])
def test_selector_is_immutable(factory: Any) -> None:
    old = stored(factory)
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "track": "stable"}}
    new["spec"]["template"]["metadata"]["labels"]["track"] = "stable"
    assert messages(new, old) == [
        "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: web,track: stable,},"
        "MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable"]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    scaled["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert messages(scaled, old) == []
