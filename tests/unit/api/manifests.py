"""Valid manifests of every served kind, as users write them, and a helper to default+validate them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kubelite.api.defaults import apply_defaults
from kubelite.api.errors import Cause
from kubelite.api.registry import KINDS, Kind
from kubelite.api.validation import validate

Obj = dict[str, Any]
Mutation = Callable[[Obj], Any]

KIND_BY_NAME: dict[str, Kind] = {k.kind: k for k in KINDS}


def pod_spec() -> Obj:
    return {
        "containers": [{
            "name": "web",
            "image": "nginx:1.25",
            "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "MODE", "value": "prod"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 5},
        }],
        "initContainers": [{"name": "init", "image": "busybox", "command": ["true"]}],
        "volumes": [{"name": "config", "configMap": {"name": "web-config"}}, {"name": "scratch", "emptyDir": {}}],
    }


def pod() -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-0", "namespace": "default",
                                                              "labels": {"app": "web"}}, "spec": pod_spec()}


def deployment() -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod_spec()}}}


def replica_set() -> Obj:
    rs = deployment()
    rs["kind"] = "ReplicaSet"
    return rs


def service() -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                                           {"name": "metrics", "port": 9090}]}}


def ingress() -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ingressClassName": "kubelite",
                     "tls": [{"hosts": ["example.com"], "secretName": "web-tls"}],
                     "rules": [{"host": "*.example.com", "http": {"paths": [
                         {"path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                         {"path": "/api", "pathType": "Exact",
                          "backend": {"service": {"name": "api", "port": {"name": "http"}}}}]}}]}}


def ingress_class() -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "kubelite"},
            "spec": {"controller": "kubelite.io/ingress"}}


def config_map() -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "web-config", "namespace": "default"},
            "data": {"app.conf": "listen 80;", "MODE": "prod"}, "binaryData": {"logo.png": "iVBORw0KGgo="}}


def secret() -> Obj:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls", "namespace": "default"},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}}


def namespace() -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}


def node() -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1.example"},
            "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"],
                     "taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}


def event() -> Obj:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web-0.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"},
            "reason": "Scheduled", "message": "assigned", "type": "Normal", "count": 1}


def service_account() -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder", "namespace": "default"}}


def endpoints() -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5", "hostname": "web-0"}],
                         "ports": [{"name": "http", "port": 80}, {"name": "metrics", "port": 9090}]}]}


def endpoint_slice() -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}, "nodeName": "node-1"}],
            "ports": [{"name": "http", "port": 80}]}


def lease() -> Obj:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}


VALID: dict[str, Callable[[], Obj]] = {
    "Pod": pod, "Deployment": deployment, "ReplicaSet": replica_set, "Service": service, "Ingress": ingress,
    "IngressClass": ingress_class, "ConfigMap": config_map, "Secret": secret, "Namespace": namespace,
    "Node": node, "Event": event, "ServiceAccount": service_account, "Endpoints": endpoints,
    "EndpointSlice": endpoint_slice, "Lease": lease,
}


def admit(obj: Obj, old: Obj | None = None) -> list[Cause]:
    """Default then validate, as the API server's admission does."""
    kind = KIND_BY_NAME[obj["kind"]]
    apply_defaults(kind, obj)
    return validate(kind, obj, old)


def messages(obj: Obj, old: Obj | None = None) -> list[str]:
    return [c.message for c in admit(obj, old)]


def mutated(factory: Callable[[], Obj], mutation: Mutation) -> Obj:
    obj = factory()
    mutation(obj)
    return obj


def stored(factory: Callable[[], Obj]) -> Obj:
    """A valid object as the server stores it (defaulted), for update tests."""
    obj = factory()
    assert admit(obj) == []
    return copy.deepcopy(obj)
