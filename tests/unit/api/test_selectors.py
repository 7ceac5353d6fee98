"""Label and field selectors: parsing, canonical strings, matching and Kubernetes' error messages."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api.selectors import (
    FieldSelector,
    LabelSelector,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    selector_from_set,
    supported_field_labels,
    validate_field_selector,
)

# ------------------------------------------------------------------------------------------------
# Label selectors: the query-string syntax
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical"), [
    pytest.param("app=web", "app=web", id="equals"),
    pytest.param("app==web", "app==web", id="double-equals-kept"),
    pytest.param("tier!=db", "tier!=db", id="not-equals"),
    pytest.param("env in (b,a)", "env in (a,b)", id="in-sorted"),
    pytest.param("env notin (c)", "env notin (c)", id="notin"),
    pytest.param("key", "key", id="exists"),
    pytest.param("!key", "!key", id="does-not-exist"),
    pytest.param("b=1,a=2", "a=2,b=1", id="sorted-by-key"),
    pytest.param("  app = web ,  tier in ( x , y ) ", "app=web,tier in (x,y)", id="whitespace"),
    pytest.param("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()", id="empty-values"),
    pytest.param("a in (in,notin)", "a in (in,notin)", id="keywords-as-values"),
    pytest.param("a=", "a=", id="empty-exact-value"),
    pytest.param("a>3,b<10", "a>3,b<10", id="gt-lt"),
    pytest.param("example.com/app=web", "example.com/app=web", id="prefixed-key"),
    pytest.param("a in (x,x)", "a in (x)", id="values-deduplicated"),
])
def test_parse_canonical_string(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


def test_parse_empty_selects_everything() -> None:
    for text in ("", "   "):
        sel = parse_label_selector(text)
        assert sel.empty
        assert sel.matches({}) and sel.matches({"a": "b"})
        assert str(sel) == ""


def test_full_example_from_the_syntax() -> None:
    sel = parse_label_selector("app=web,tier!=db,env in (a,b),env notin (c),key,!key")
    assert [(r.key, r.operator, r.values) for r in sel.requirements] == [
        ("app", "=", ("web",)), ("env", "in", ("a", "b")), ("env", "notin", ("c",)),
        ("key", "exists", ()), ("key", "!", ()), ("tier", "!=", ("db",)),
    ]
    # key and !key together can never hold.
    assert not sel.matches({"app": "web", "env": "a", "key": "x"})
    assert not sel.matches({"app": "web", "env": "a"})


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    pytest.param("app=web", {"app": "web"}, True, id="eq-hit"),
    pytest.param("app=web", {"app": "db"}, False, id="eq-miss"),
    pytest.param("app=web", {}, False, id="eq-absent"),
    pytest.param("app!=web", {}, True, id="neq-absent"),
    pytest.param("app!=web", {"app": "web"}, False, id="neq-same"),
    pytest.param("app!=web", {"app": "db"}, True, id="neq-other"),
    pytest.param("env in (a,b)", {"env": "b"}, True, id="in-hit"),
    pytest.param("env in (a,b)", {"env": "c"}, False, id="in-miss"),
    pytest.param("env in (a,b)", {}, False, id="in-absent"),
    pytest.param("env notin (a)", {}, True, id="notin-absent"),
    pytest.param("env notin (a)", {"env": "a"}, False, id="notin-hit"),
    pytest.param("env", {"env": ""}, True, id="exists-empty-value"),
    pytest.param("!env", {"env": ""}, False, id="not-exists"),
    pytest.param("!env", {"other": "x"}, True, id="not-exists-absent"),
    pytest.param("a=", {"a": ""}, True, id="empty-value-matches-empty"),
    pytest.param("a=", {}, False, id="empty-value-needs-key"),
    pytest.param("n>3", {"n": "4"}, True, id="gt"),
    pytest.param("n>3", {"n": "3"}, False, id="gt-equal"),
    pytest.param("n<3", {"n": "x"}, False, id="lt-not-a-number"),
    pytest.param("n<3", {}, False, id="lt-absent"),
    pytest.param("app=web,tier=fe", {"app": "web", "tier": "fe", "x": "y"}, True, id="and"),
    pytest.param("app=web,tier=fe", {"app": "web"}, False, id="and-partial"),
])
def test_label_matching(selector: str, labels: dict[str, str], expected: bool) -> None:
    sel = parse_label_selector(selector)
    assert sel.matches(labels) is expected
    for req in sel.requirements:
        if len(sel.requirements) == 1:
            assert req.matches(labels) is expected


NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
             "an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
             "is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
               "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
               "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
                 id="missing-operator"),
    pytest.param("a,", "found '', expected: identifier after ','", id="trailing-comma"),
    pytest.param(",a", "found ',', expected: !, identifier, or 'end of string'", id="leading-comma"),
    pytest.param("!a=b", "found '=', expected: ',' or 'end of string'", id="not-with-value"),
    pytest.param("a in b", "unable to parse requirement: found 'b' expected: '('", id="in-without-paren"),
    pytest.param("a in (b", "unable to parse requirement: found '', expected: ',' or ')'", id="unclosed"),
    pytest.param("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'", id="space-in-set"),
    pytest.param("a=(b)", "unable to parse requirement: found '(', expected: identifier", id="paren-after-eq"),
    pytest.param("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier",
                 id="operator-in-set"),
    pytest.param("-a=b", f'unable to parse requirement: <nil>: Invalid value: "-a": {NAME_PART}', id="bad-key"),
    pytest.param("a=-b", f'unable to parse requirement: values[0][a]: Invalid value: "-b": {LABEL_VALUE}',
                 id="bad-value"),
    pytest.param("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' "
                 "operators, the value must be an integer", id="gt-not-integer"),
    pytest.param(f"{'k' * 64}=v", f'unable to parse requirement: <nil>: Invalid value: "{"k" * 64}": '
                 "name part must be no more than 63 characters", id="key-too-long"),
    pytest.param("Example.com/a=b", 'unable to parse requirement: <nil>: Invalid value: "Example.com/a": prefix '
                 "part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                 "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                 id="bad-prefix"),
])
def test_parse_errors_read_like_kubernetes(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_label_selector(text)
    assert str(caught.value) == message


# ------------------------------------------------------------------------------------------------
# Label selectors: metav1.LabelSelector
# ------------------------------------------------------------------------------------------------


def test_from_dict_match_labels_and_expressions() -> None:
    sel = label_selector_from_dict({
        "matchLabels": {"tier": "fe", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["b"]},
            {"key": "owner", "operator": "Exists"},
        ],
    })
    assert str(sel) == "app=web,!canary,env in (dev,prod),owner,tier=fe,zone notin (b)"
    assert sel.matches({"app": "web", "tier": "fe", "env": "dev", "owner": "me"})
    assert not sel.matches({"app": "web", "tier": "fe", "env": "dev", "owner": "me", "canary": "1"})
    assert not sel.matches({"app": "web", "tier": "fe", "env": "qa", "owner": "me"})


def test_none_matches_nothing_and_empty_matches_everything() -> None:
    nothing = label_selector_from_dict(None)
    assert nothing.matches_nothing and not nothing.empty
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert str(nothing) == ""
    empties: list[dict[str, Any]] = [{}, {"matchLabels": {}}, {"matchLabels": None, "matchExpressions": []}]
    for empty in empties:
        sel = label_selector_from_dict(empty)
        assert sel.empty and sel.matches({"anything": "x"})


@pytest.mark.parametrize(("selector", "message"), [
    pytest.param({"matchExpressions": [{"key": "a", "operator": "Foo"}]},
                 '"Foo" is not a valid label selector operator', id="bad-operator"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "In"}]},
                 "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
                 id="in-without-values"),
    pytest.param({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
                 'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
                 id="exists-with-values"),
    pytest.param({"matchLabels": {"-a": "b"}}, f'key: Invalid value: "-a": {NAME_PART}', id="bad-key"),
    pytest.param({"matchLabels": {"a": "b c"}}, f'values[0][a]: Invalid value: "b c": {LABEL_VALUE}',
                 id="bad-value"),
])
def test_from_dict_errors(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        label_selector_from_dict(selector)
    assert str(caught.value) == message


def test_selector_from_set_and_exact_match() -> None:
    sel = selector_from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"}) and not sel.matches({"a": "1"})
    assert selector_from_set(None).empty
    assert sel.requires_exact_match("a") == "1"
    assert sel.requires_exact_match("z") is None
    assert parse_label_selector("a in (x,y)").requires_exact_match("a") is None
    assert parse_label_selector("a!=x").requires_exact_match("a") is None


def test_equality_and_hash() -> None:
    assert parse_label_selector("b=1,a=2") == parse_label_selector("a=2,b=1")
    assert hash(parse_label_selector("a")) == hash(parse_label_selector("a"))
    assert LabelSelector.nothing() != LabelSelector.everything()


def test_matching_many_objects_stays_cheap() -> None:
    # The server evaluates the selector for every object of a list; make sure a large list is quick
    # enough to run inline (this is a smoke check of the compiled path, not a timing assertion).
    sel = parse_label_selector("app=web,env in (a,b),!canary")
    labels = [{"app": "web" if i % 2 else "db", "env": "a"} for i in range(20000)]
    assert sum(1 for ls in labels if sel.matches(ls)) == 10000


# ------------------------------------------------------------------------------------------------
# Field selectors
# ------------------------------------------------------------------------------------------------


def _pod(**status: Any) -> dict[str, Any]:
    return {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-1", "namespace": "prod"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.7"}], **status},
    }


@pytest.mark.parametrize(("text", "canonical"), [
    pytest.param("metadata.name=x", "metadata.name=x", id="eq"),
    pytest.param("metadata.name==x", "metadata.name=x", id="double-eq-prints-as-eq"),
    pytest.param("spec.nodeName!=n1", "spec.nodeName!=n1", id="neq"),
    pytest.param("spec.nodeName=n,metadata.name=x", "metadata.name=x,spec.nodeName=n", id="sorted"),
    pytest.param("metadata.name=a\\,b", "metadata.name=a\\,b", id="escaped-comma"),
    pytest.param("metadata.name=a\\=b\\\\c", "metadata.name=a\\=b\\\\c", id="escaped-eq-backslash"),
    pytest.param("metadata.name=x,", "metadata.name=x", id="trailing-comma"),
    pytest.param("metadata.name=", "metadata.name=", id="empty-value"),
])
def test_field_parse_canonical(text: str, canonical: str) -> None:
    assert str(parse_field_selector(text)) == canonical


def test_field_values_are_unescaped() -> None:
    sel = parse_field_selector("metadata.name=a\\,b\\=c\\\\d")
    assert sel.requirements[0].value == "a,b=c\\d"


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("x", "invalid selector: 'x'; can't understand 'x'", id="no-operator"),
    pytest.param("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'", id="second-term"),
    pytest.param("a=b=c", "invalid field selector: unescaped character in value: 61", id="unescaped-eq"),
    pytest.param("a!==b", "invalid field selector: unescaped character in value: 61", id="neq-eq"),
    pytest.param("a=b\\x", "invalid field selector: invalid escape sequence: \\x", id="bad-escape"),
    pytest.param("a=b\\", "invalid field selector: invalid escape sequence: \\", id="trailing-backslash"),
])
def test_field_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_field_selector(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("selector", "expected"), [
    pytest.param("", True, id="empty"),
    pytest.param("metadata.name=web-1", True, id="name"),
    pytest.param("metadata.name=web-2", False, id="other-name"),
    pytest.param("metadata.namespace=prod", True, id="namespace"),
    pytest.param("metadata.name=web-1,metadata.namespace=dev", False, id="and"),
    pytest.param("spec.nodeName=n1", True, id="node"),
    pytest.param("spec.nodeName!=n1", False, id="not-node"),
    pytest.param("spec.nodeName=", False, id="scheduled"),
    pytest.param("spec.restartPolicy=Always", True, id="restart-policy"),
    pytest.param("spec.schedulerName=default-scheduler", True, id="scheduler"),
    pytest.param("spec.serviceAccountName=default", True, id="service-account"),
    pytest.param("spec.hostNetwork=false", True, id="host-network-defaults-false"),
    pytest.param("status.phase=Running", True, id="phase"),
    pytest.param("status.phase!=Running", False, id="not-phase"),
    pytest.param("status.podIP=10.0.0.7", True, id="pod-ip-from-pod-ips"),
    pytest.param("status.podIPs=10.0.0.7", False, id="pod-ips-is-never-set"),
    pytest.param("status.nominatedNodeName=", True, id="nominated-empty"),
])
def test_pod_field_matching(selector: str, expected: bool) -> None:
    assert parse_field_selector(selector).matches(_pod()) is expected


def test_field_values_render_like_kubernetes() -> None:
    host_pod = _pod()
    host_pod["spec"]["hostNetwork"] = True
    assert parse_field_selector("spec.hostNetwork=true").matches(host_pod)
    assert parse_field_selector("status.podIP=10.1.1.1").matches(
        {"status": {"podIP": "10.1.1.1"}})  # an object that only has the legacy podIP field
    node = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"unschedulable": True}}
    assert parse_field_selector("spec.unschedulable=true").matches(node)
    assert parse_field_selector("spec.unschedulable=false").matches({"metadata": {"name": "n2"}})
    assert parse_field_selector("metadata.namespace=").matches(node)  # cluster-scoped
    rs = {"kind": "ReplicaSet", "metadata": {"name": "r"}, "status": {"replicas": 3}}
    assert parse_field_selector("status.replicas=3").matches(rs)
    assert parse_field_selector("status.replicas=0").matches({"metadata": {"name": "r"}})
    svc = {"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.9"}}
    assert parse_field_selector("spec.type=NodePort,spec.clusterIP=10.96.0.9").matches(svc)
    secret = {"kind": "Secret", "metadata": {"name": "t"}, "type": "kubernetes.io/tls"}
    assert parse_field_selector("type=kubernetes.io/tls").matches(secret)
    ns = {"kind": "Namespace", "metadata": {"name": "prod"}, "status": {"phase": "Terminating"}}
    assert parse_field_selector("status.phase=Terminating,name=prod").matches(ns)


def test_event_fields_as_kubectl_describe_uses_them() -> None:
    event = {
        "kind": "Event", "metadata": {"name": "web.17", "namespace": "prod"},
        "involvedObject": {"kind": "Deployment", "namespace": "prod", "name": "web", "uid": "u-1",
                           "apiVersion": "apps/v1", "resourceVersion": "42", "fieldPath": "spec"},
        "reason": "ScalingReplicaSet", "type": "Normal", "reportingComponent": "deployment-controller",
    }
    sel = parse_field_selector("involvedObject.name=web,involvedObject.namespace=prod,"
                               "involvedObject.kind=Deployment,involvedObject.uid=u-1")
    validate_field_selector("Event", sel)
    assert sel.matches(event)
    assert parse_field_selector("involvedObject.apiVersion=apps/v1,involvedObject.resourceVersion=42,"
                                "involvedObject.fieldPath=spec,reason=ScalingReplicaSet,type=Normal").matches(event)
    # "source" falls back to the reporting component when source.component is empty.
    assert parse_field_selector("source=deployment-controller,reportingComponent=deployment-controller").matches(
        event)
    event["source"] = {"component": "kubelet"}
    assert parse_field_selector("source=kubelet").matches(event)


def test_exact_match_lookup() -> None:
    sel = parse_field_selector("metadata.name=x,spec.nodeName!=n")
    assert sel.requires_exact_match("metadata.name") == "x"
    assert sel.requires_exact_match("spec.nodeName") is None
    assert FieldSelector().empty and FieldSelector().matches({})
    assert parse_field_selector("a=b") == parse_field_selector("a==b")


@pytest.mark.parametrize(("kind", "label"), [
    ("Pod", "spec.nodeName"), ("Pod", "spec.hostNetwork"), ("Pod", "status.podIPs"),
    ("Pod", "status.nominatedNodeName"), ("Event", "involvedObject.uid"), ("Event", "reportingComponent"),
    ("Event", "source"), ("Secret", "type"), ("Node", "spec.unschedulable"), ("Namespace", "status.phase"),
    ("ReplicaSet", "status.replicas"), ("Service", "spec.clusterIP"), ("Service", "spec.type"),
    ("Deployment", "metadata.name"), ("IngressClass", "metadata.namespace"), ("Node", "metadata.namespace"),
])
def test_supported_labels(kind: str, label: str) -> None:
    assert label in supported_field_labels(kind)
    validate_field_selector(kind, parse_field_selector(f"{label}=x"))


@pytest.mark.parametrize(("kind", "selector", "label"), [
    ("Pod", "foo=bar", "foo"),
    ("Pod", "metadata.name=a,spec.host=n", "spec.host"),
    ("Deployment", "status.replicas=1", "status.replicas"),
    ("ConfigMap", "type=x", "type"),
    ("Secret", " metadata.name=x", " metadata.name"),
])
def test_unsupported_labels_are_rejected(kind: str, selector: str, label: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_field_selector(kind, parse_field_selector(selector))
    assert str(caught.value) == f"field label not supported: {label}"
