"""What the EndpointSlice and Endpoints controllers share: which Services get endpoints, which pods back them, and
the port each pod serves a Service port on (Kubernetes' ``k8s.io/endpointslice/util`` and ``FindPort``).

All pure functions over Service and Pod dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubelite.api import meta
from kubelite.api.selectors import selector_from_set
from kubelite.client.informer import DeletedFinalStateUnknown, SharedInformer, object_of
from kubelite.client.workqueue import RateLimitingQueue
from kubelite.controllers import podutil

Obj = dict[str, Any]

# Set on EndpointSlices and Endpoints of a Service without a cluster IP.
HEADLESS_LABEL = "service.kubernetes.io/headless"
CLUSTER_IP_NONE = "None"


def _spec(svc: Obj) -> dict[str, Any]:
    spec = svc.get("spec")
    return spec if isinstance(spec, dict) else {}


def service_selector(svc: Obj) -> dict[str, str] | None:
    """The Service's pod selector; None when it has none (an empty map is no selector: the API omits it)."""
    selector = _spec(svc).get("selector")
    return {str(k): str(v) for k, v in selector.items()} if isinstance(selector, dict) and selector else None


def wants_endpoints(svc: Obj) -> bool:
    """Whether the controllers manage this Service's endpoints: it selects pods and is not an ExternalName.
    Services without a selector (headless ones too) get their endpoints from whoever made them."""
    return _spec(svc).get("type") != "ExternalName" and service_selector(svc) is not None


def selects(svc: Obj, pod: Obj) -> bool:
    selector = service_selector(svc)
    return (selector is not None and meta.namespace(svc) == meta.namespace(pod)
            and selector_from_set(selector).matches(meta.labels(pod)))


def services_selecting(services: Iterable[Obj], *pods: Obj) -> set[str]:
    """The keys of the Services among ``services`` that select any of ``pods`` (a pod's old and new states)."""
    return {meta.key(svc) for svc in services for pod in pods if selects(svc, pod)}


def publish_not_ready(svc: Obj) -> bool:
    return bool(_spec(svc).get("publishNotReadyAddresses"))


def is_service_ip_set(svc: Obj) -> bool:
    cluster_ip = str(_spec(svc).get("clusterIP") or "")
    return cluster_ip not in ("", CLUSTER_IP_NONE)


def is_headless(svc: Obj) -> bool:
    return _spec(svc).get("clusterIP") == CLUSTER_IP_NONE


def service_ports(svc: Obj) -> list[Obj]:
    return [p for p in _spec(svc).get("ports") or [] if isinstance(p, dict)]


def should_pod_be_in_endpoints(pod: Obj, *, include_terminating: bool) -> bool:
    """A pod with an IP that is not terminal; a terminating one only if ``include_terminating``."""
    if podutil.is_terminal(pod) or not podutil.pod_ips(pod):
        return False
    return include_terminating or not meta.is_being_deleted(pod)


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    """A pod with a hostname whose subdomain is this Service's name gets that hostname in its endpoint."""
    spec = pod.get("spec") or {}
    return (bool(spec.get("hostname")) and spec.get("subdomain") == meta.name(svc)
            and meta.namespace(svc) == meta.namespace(pod))


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for ``service_port``: a numeric targetPort as is; a named one looked up in the pod's
    containers (and restartable init containers, i.e. sidecars) by name and protocol; None when not found."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, bool):
        return None
    if isinstance(target, int):
        return target
    if not isinstance(target, str) or not target:
        return None
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or []
                if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in (container or {}).get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return number if isinstance(number, int) and not isinstance(number, bool) else None
    return None


def ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def watch_services_and_pods(queue: RateLimitingQueue[str], services: SharedInformer, pods: SharedInformer) -> None:
    """The event handlers both endpoint controllers use: a Service change enqueues that Service; a pod change
    enqueues every Service in its namespace that selects the pod (before or after the change). Handlers only
    enqueue; periodic resyncs of an unchanged pod are ignored."""

    def service_changed(svc: Obj) -> None:
        queue.add(meta.key(svc))

    def pod_added(pod: Obj) -> None:
        for key in services_selecting(services.list(meta.namespace(pod)), pod):
            queue.add(key)

    def pod_updated(old: Obj, new: Obj) -> None:
        if meta.resource_version(old) == meta.resource_version(new):
            return  # a periodic resync
        for key in services_selecting(services.list(meta.namespace(new)), old, new):
            queue.add(key)

    def pod_deleted(gone: Obj | DeletedFinalStateUnknown) -> None:
        pod_added(object_of(gone))

    services.add_handler(service_changed, lambda _old, new: service_changed(new),
                         lambda gone: service_changed(object_of(gone)))
    pods.add_handler(pod_added, pod_updated, pod_deleted)
