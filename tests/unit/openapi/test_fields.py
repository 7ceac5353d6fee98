"""Unknown-field detection for fieldValidation=Strict|Warn and the errors kube-apiserver returns."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api.registry import by_kind
from kubelite.apiserver.openapi import (
    strict_error,
    strict_error_of,
    unknown_field_warnings,
    unknown_fields,
    unknown_fields_of,
    warning_header,
)

DEPLOYMENT = by_kind("apps/v1", "Deployment")
POD = by_kind("v1", "Pod")


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"anything/goes": "here"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe"]}]},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
                                         "resources": {"requests": {"cpu": "100m", "memory": 64}}}]},
            },
        },
    }


def pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                         "name": "rs", "uid": "u", "controller": True}]},
        "spec": {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                             "values": ["a"]}]}]}}},
            "volumes": [
                {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a.conf"}]}},
                {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 420}},
                {"name": "proj", "projected": {"sources": [{"downwardAPI": {"items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}},
            ],
            "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "true"]}],
            "containers": [{
                "name": "app", "image": "app:1", "args": ["--port", "8080"], "workingDir": "/srv",
                "env": [
                    {"name": "PLAIN", "value": "x"},
                    {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k",
                                                                           "optional": True}}},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                       "divisor": "1Mi"}}},
                ],
                "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "C_"}],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": 1, "memory": "128Mi"}, "requests": {"cpu": "250m"}},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app", "readOnly": True}],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                              "httpHeaders": [{"name": "X", "value": "y"}]},
                                  "initialDelaySeconds": 3, "periodSeconds": 5},
                "readinessProbe": {"tcpSocket": {"port": 8080}},
                "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "failureThreshold": 30},
                "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
            }],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
        },
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                   "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": None}],
                   "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "image": "app:1",
                                          "imageID": "", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]},
    }


VALID = [
    pytest.param("apps/v1", "Deployment", deployment(), id="deployment"),
    pytest.param("v1", "Pod", pod(), id="pod"),
    pytest.param("v1", "Service", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"}, "sessionAffinity": "None",
                 "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080},
                           {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]},
        "status": {"loadBalancer": {}}}, id="service"),
    pytest.param("networking.k8s.io/v1", "Ingress", {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"x": "y"}},
        "spec": {"ingressClassName": "kubelite",
                 "tls": [{"hosts": ["a.example"], "secretName": "tls"}],
                 "defaultBackend": {"service": {"name": "web", "port": {"number": 80}}},
                 "rules": [{"host": "a.example", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}}, id="ingress"),
    pytest.param("v1", "ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                     "data": {"any.key": "v"}, "binaryData": {"b": "AAE="}, "immutable": True},
                 id="configmap"),
    pytest.param("v1", "Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                  "type": "Opaque", "data": {"k": "dg=="}, "stringData": {"s": "v"}},
                 id="secret"),
    pytest.param("coordination.k8s.io/v1", "Lease", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
        "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                 "renewTime": "2026-01-01T00:00:00.000000Z"}}, id="lease"),
    pytest.param("discovery.k8s.io/v1", "EndpointSlice", {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e"},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True},
                                              "targetRef": {"kind": "Pod", "name": "p"}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}, id="endpointslice"),
    pytest.param("v1", "Namespace", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "n", "managedFields": [{"manager": "kubectl", "operation": "Apply",
                                                     "fieldsType": "FieldsV1",
                                                     "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}}}]}},
        id="namespace-with-managed-fields"),
]


@pytest.mark.parametrize(("api_version", "kind", "obj"), VALID)
def test_valid_manifests_have_no_unknown_fields(api_version: str, kind: str, obj: dict[str, Any]) -> None:
    assert unknown_fields(by_kind(api_version, kind), obj) == []


def test_typos_at_every_depth_in_document_order() -> None:
    obj = deployment()
    obj["metadata"]["labelz"] = {}
    obj["spec"]["replicass"] = 3
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["imagee"] = "nginx"
    container["ports"].append({"containerPort": 81, "hostPrt": 1})
    container["resources"]["limitz"] = {}
    obj["spec"]["selector"]["matchExpressions"][0]["operater"] = "In"
    obj["spec"]["strategy"]["rollingUpdate"]["maxSurges"] = 1
    obj["statuz"] = {}
    assert unknown_fields(DEPLOYMENT, obj) == [
        "metadata.labelz",
        "spec.selector.matchExpressions[0].operater",
        "spec.strategy.rollingUpdate.maxSurges",
        "spec.template.spec.containers[0].ports[1].hostPrt",
        "spec.template.spec.containers[0].resources.limitz",
        "spec.template.spec.containers[0].imagee",
        "spec.replicass",
        "statuz",
    ]


def test_typos_deep_inside_a_pod() -> None:
    obj = pod()
    spec = obj["spec"]
    spec["volumes"][0]["configMap"]["itemz"] = []
    spec["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["nam"] = "s"
    spec["containers"][0]["livenessProbe"]["httpGet"]["httpHeaders"][0]["valu"] = "y"
    spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["vals"] = []
    obj["status"]["containerStatuses"][0]["state"]["running"]["startedAtt"] = "x"
    assert unknown_fields(POD, obj) == [
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
        ".matchExpressions[0].vals",
        "spec.volumes[0].configMap.itemz",
        "spec.containers[0].env[1].valueFrom.secretKeyRef.nam",
        "spec.containers[0].livenessProbe.httpGet.httpHeaders[0].valu",
        "status.containerStatuses[0].state.running.startedAtt",
    ]


def test_field_names_are_case_sensitive_and_null_values_still_count() -> None:
    obj = deployment()
    obj["spec"]["Replicas"] = 1
    obj["spec"]["bogus"] = None
    assert unknown_fields(DEPLOYMENT, obj) == ["spec.Replicas", "spec.bogus"]


def test_wrong_shapes_are_left_to_decoding_errors() -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": "oops",
           "spec": {"containers": {"name": "not-a-list"}, "volumes": [None, "x", {"name": "v", "nfss": {}}]}}
    assert unknown_fields(POD, obj) == ["spec.volumes[2].nfss"]
    assert unknown_fields(POD, ["not", "an", "object"]) == []


def test_a_kind_without_a_schema_has_no_verdict() -> None:
    assert unknown_fields_of("example.com", "v1", "Widget", {"anything": 1}) == []


def test_scale_bodies_are_checked_as_autoscaling_v1_scale() -> None:
    body = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
            "spec": {"replicas": 3, "replica": 1}}
    assert unknown_fields_of("autoscaling", "v1", "Scale", body) == ["spec.replica"]


def test_strict_error_matches_kube_apiserver() -> None:
    err = strict_error(DEPLOYMENT, ["spec.replicass", "spec.template.spec.containers[0].imagee"])
    assert err.code == 400
    assert err.to_status() == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "BadRequest",
        "code": 400,
        "message": 'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
                   'unknown field "spec.replicass", unknown field "spec.template.spec.containers[0].imagee"',
    }
    ingress = strict_error_of("Ingress", "v1", ["spec.rules[0].http.paths[0].backend.serviceName"])
    assert ingress.message == ('Ingress in version "v1" cannot be handled as a Ingress: strict decoding error: '
                               'unknown field "spec.rules[0].http.paths[0].backend.serviceName"')


def test_warn_mode_texts_and_header_values() -> None:
    texts = unknown_field_warnings(["spec.replicass"])
    assert texts == ['unknown field "spec.replicass"']
    assert warning_header(texts[0]) == '299 - "unknown field \\"spec.replicass\\""'


def test_checking_does_not_modify_the_object() -> None:
    obj = pod()
    before = copy.deepcopy(obj)
    unknown_fields(POD, obj)
    assert obj == before
