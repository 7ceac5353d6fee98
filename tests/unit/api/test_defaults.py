"""Defaulting reproduces what the Kubernetes API server stores for the manifests users write."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubelite.api.defaults import DEFAULTERS, apply_defaults
from kubelite.api.defaults.pod import image_tag
from kubelite.api.registry import KINDS

from .manifests import KIND_BY_NAME, VALID, Obj


def defaulted(obj: Obj) -> Obj:
    apply_defaults(KIND_BY_NAME[obj["kind"]], obj)
    return obj


def test_pod_defaults_match_kubernetes() -> None:
    pod = defaulted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                     "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                                              "resources": {"limits": {"cpu": "0.5", "memory": 134217728}},
                                              "readinessProbe": {"httpGet": {"port": 80}},
                                              "livenessProbe": {"grpc": {"port": 9000}}}],
                              "volumes": [{"name": "s", "secret": {"secretName": "x"}}, {"name": "e"}]}})
    assert pod["spec"] == {
        "containers": [{
            "name": "c", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "resources": {"limits": {"cpu": "500m", "memory": "134217728"},
                          "requests": {"cpu": "500m", "memory": "134217728"}},
            "readinessProbe": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                               "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            "livenessProbe": {"grpc": {"port": 9000, "service": ""}, "timeoutSeconds": 1, "periodSeconds": 10,
                              "successThreshold": 1, "failureThreshold": 3},
            "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }],
        "volumes": [{"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}, {"name": "e", "emptyDir": {}}],
        "enableServiceLinks": True, "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
        "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
    }


def test_pod_specific_defaults_do_not_touch_templates() -> None:
    dep = defaulted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"},
                     "spec": {"selector": {"matchLabels": {"a": "b"}},
                              "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [
                                  {"name": "c", "image": "nginx:1", "resources": {"limits": {"cpu": "1"}}}]}}}})
    template_spec = dep["spec"]["template"]["spec"]
    assert "enableServiceLinks" not in template_spec and "priority" not in template_spec
    assert template_spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}
    assert template_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert template_spec["restartPolicy"] == "Always"
    assert {k: dep["spec"][k] for k in ("replicas", "strategy", "revisionHistoryLimit", "progressDeadlineSeconds")} == {
        "replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}}


def test_recreate_strategy_gets_no_rolling_update() -> None:
    dep = defaulted({"kind": "Deployment", "spec": {"strategy": {"type": "Recreate"}, "replicas": 0}})
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["replicas"] == 0


def test_replica_set_defaults() -> None:
    assert defaulted({"kind": "ReplicaSet", "spec": {}})["spec"]["replicas"] == 1


@pytest.mark.parametrize(("image", "tag"), [
    ("nginx", "latest"), ("nginx:latest", "latest"), ("nginx:1.25", "1.25"), ("localhost:5000/app", "latest"),
    ("registry.example.com:5000/team/app:v2", "v2"), ("nginx@sha256:" + "a" * 64, ""),
    ("nginx:1.25@sha256:" + "a" * 64, "1.25"), ("Nginx", ""), ("", ""), ("Registry.Example.com/app", "latest"),
])
def test_image_tag_decides_pull_policy(image: str, tag: str) -> None:
    assert image_tag(image) == tag


def test_probe_lifecycle_env_and_volume_defaults() -> None:
    pod = defaulted({"kind": "Pod", "spec": {
        "containers": [{"name": "c", "image": "x:1",
                        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                {"name": "M", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}}],
                        "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}],
        "volumes": [{"name": "d", "downwardAPI": {"items": [
                        {"path": "l", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "h", "hostPath": {"path": "/x"}},
                    {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}},
                    {"name": "z", "emptyDir": {"sizeLimit": "1024Mi"}}]}})
    ctr = pod["spec"]["containers"][0]
    assert ctr["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert ctr["env"][1]["valueFrom"]["resourceFieldRef"]["divisor"] == "0"
    assert ctr["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert ctr["resources"] == {}
    vols = pod["spec"]["volumes"]
    assert vols[0]["downwardAPI"]["defaultMode"] == 420
    assert vols[0]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"
    assert vols[1]["hostPath"]["type"] == ""
    assert vols[2]["projected"] == {"defaultMode": 420, "sources": [{"serviceAccountToken": {
        "path": "t", "expirationSeconds": 3600}}]}
    assert vols[3]["emptyDir"]["sizeLimit"] == "1Gi"


def test_host_network_pods_get_host_ports() -> None:
    pod = defaulted({"kind": "Pod", "spec": {"hostNetwork": True, "containers": [
        {"name": "c", "image": "x", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}})
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 53, "protocol": "UDP", "hostPort": 53}]


def test_resource_quantities_round_up_to_milli_and_canonicalise() -> None:
    pod = defaulted({"kind": "Pod", "spec": {"containers": [{"name": "c", "image": "x", "resources": {
        "requests": {"cpu": "0.0001", "memory": "1.5Gi", "ephemeral-storage": "2000M"},
        "limits": {"cpu": 2, "memory": "bad"}}}]}})
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "1m", "memory": "1536Mi", "ephemeral-storage": "2G"}
    assert resources["limits"] == {"cpu": "2", "memory": "bad"}  # left for validation to report


def test_service_defaults() -> None:
    svc = defaulted({"kind": "Service", "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}, {
        "port": 53, "protocol": "UDP", "targetPort": "dns"}]}})
    assert svc["spec"] == {
        "selector": {"a": "b"}, "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80},
                  {"port": 53, "protocol": "UDP", "targetPort": "dns"}],
        "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"],
    }
    assert "clusterIP" not in svc["spec"]  # allocation is the server's


def test_service_type_specific_defaults() -> None:
    lb = defaulted({"kind": "Service", "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                                                "clusterIP": "fd00::10", "ports": [{"port": 443}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster"
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    assert lb["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert lb["spec"]["clusterIPs"] == ["fd00::10"] and lb["spec"]["ipFamilies"] == ["IPv6"]
    assert lb["status"]["loadBalancer"]["ingress"][0]["ipMode"] == "VIP"
    external = defaulted({"kind": "Service", "spec": {"type": "ExternalName", "externalName": "db.example.com"}})
    assert external["spec"] == {"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"}
    none_affinity = defaulted({"kind": "Service", "spec": {"sessionAffinity": "None", "sessionAffinityConfig": {}}})
    assert "sessionAffinityConfig" not in none_affinity["spec"]


def test_secret_defaults_merge_string_data() -> None:
    secret = defaulted({"kind": "Secret", "data": {"a": "YQ=="}, "stringData": {"b": "bee", "a": "override"}})
    assert secret == {"kind": "Secret", "type": "Opaque", "data": {"a": "b3ZlcnJpZGU=", "b": "YmVl"}}


def test_namespace_defaults_only_add_the_finalizer_on_create() -> None:
    ns = defaulted({"kind": "Namespace", "metadata": {"name": "team-a"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    ns["spec"]["finalizers"] = []
    ns["status"]["phase"] = "Terminating"
    assert defaulted(ns)["spec"]["finalizers"] == []


def test_node_endpoints_slice_event_and_ingress_class_defaults() -> None:
    node = defaulted({"kind": "Node", "status": {"capacity": {"cpu": 4, "memory": "8388608Ki"}}})
    assert node["status"] == {"capacity": {"cpu": "4", "memory": "8Gi"}, "allocatable": {"cpu": "4", "memory": "8Gi"}}
    endpoints = defaulted({"kind": "Endpoints", "subsets": [{"ports": [{"port": 80}]}]})
    assert endpoints["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]
    slice_ = defaulted({"kind": "EndpointSlice", "ports": [{"port": 80}]})
    assert slice_["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    event = defaulted({"kind": "Event", "reason": "x"})
    assert event["involvedObject"] == {} and event["source"] == {}
    ic = defaulted({"kind": "IngressClass", "spec": {"controller": "a.io/b", "parameters": {"kind": "K", "name": "n"}}})
    assert ic["spec"]["parameters"]["scope"] == "Cluster"


@pytest.mark.parametrize("kind", sorted(VALID))
def test_defaulting_is_idempotent(kind: str) -> None:
    once = defaulted(VALID[kind]())
    twice = defaulted(copy.deepcopy(once))
    assert twice == once


def test_defaulters_only_for_served_kinds() -> None:
    served = {(k.group, k.kind) for k in KINDS}
    assert set(DEFAULTERS) <= served


def test_garbage_never_raises() -> None:
    junk: list[Any] = [None, 1, "x", [], [1, None], {"a": [None]}]
    for kind in KINDS:
        for value in junk:
            for field in ("spec", "metadata", "status", "data", "stringData", "subsets", "ports", "type"):
                apply_defaults(kind, {field: copy.deepcopy(value)})


def test_conversion_aliases_are_kept_in_step() -> None:
    pod = defaulted({"kind": "Pod", "spec": {"serviceAccount": "builder", "terminationGracePeriodSeconds": -5,
                                             "containers": []},
                     "status": {"podIPs": [{"ip": "10.244.1.5"}], "hostIP": "192.0.2.10"}})
    assert pod["spec"]["serviceAccountName"] == pod["spec"]["serviceAccount"] == "builder"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 1
    assert pod["status"] == {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}], "hostIP": "192.0.2.10",
                             "hostIPs": [{"ip": "192.0.2.10"}]}
    node = defaulted({"kind": "Node", "spec": {"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}})
    assert node["spec"]["podCIDR"] == "10.244.1.0/24"
    node = defaulted({"kind": "Node", "spec": {"podCIDR": "10.244.2.0/24"}})
    assert node["spec"]["podCIDRs"] == ["10.244.2.0/24"]
