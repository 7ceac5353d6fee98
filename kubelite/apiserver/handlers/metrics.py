"""The ``metrics.k8s.io/v1beta1`` API (resource metrics), served by the API server itself: no separate
metrics-server, the API server asks the kubelets (`kubeletstats.SummaryScraper`) and converts their
summaries (`resourcemetrics`). This is what ``kubectl top`` and ``kubelite top`` read.

Resources, as metrics-server serves them (get and list only; no watch):

- ``nodes`` (``NodeMetrics``, cluster-scoped): ``/apis/metrics.k8s.io/v1beta1/nodes[/{name}]``, with
  ``labelSelector`` (the Nodes' labels) and ``fieldSelector`` (``metadata.name``);
- ``pods`` (``PodMetrics``, namespaced): ``/apis/metrics.k8s.io/v1beta1[/namespaces/{ns}]/pods[/{name}]``,
  with ``labelSelector`` (the Pods' labels) and ``fieldSelector`` (``metadata.name``, ``metadata.namespace``).

Lists hold the objects that have metrics (a node whose kubelet does not answer is left out), ordered by
(namespace and) name; a Table (``as=Table``) has metrics-server's columns (Name, cpu, memory, Window). A
get of a missing Node or Pod is its own 404 (``nodes "x" not found``); of an object without metrics,
metrics-server's ``nodemetrics.metrics.k8s.io "x" not found`` / ``podmetrics.metrics.k8s.io "ns/x" not
found``. The group and version documents are served here; `legacy_group` and `aggregated_group` are this
group's entries for ``/apis`` (legacy and aggregated discovery), which the discovery handler adds.

Wiring: `install` once at start, with the pod proxy's `KubeletConnector`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from kubelite.api import errors, meta
from kubelite.api.registry import Kind, by_resource
from kubelite.api.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector

from ..kubeletstats import DEFAULT_TIMEOUT, DEFAULT_TTL, SummaryScraper
from ..resourcemetrics import API_VERSION, GROUP, VERSION, WINDOW, Obj, find_pod, node_metrics, pod_metrics, total_usage
from ..resources import Resources
from .common import check_acceptable, json_response, query_bool, wants_table
from .proxy import KubeletConnector

PREFIX = f"/apis/{GROUP}/{VERSION}"
_NODES = by_resource("", "v1", "nodes")
_PODS = by_resource("", "v1", "pods")
# (resource, kind, namespaced); verbs as metrics-server's storage: get and list.
_SERVED = (("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True))
_VERBS = ["get", "list"]
_NODE_FIELDS = frozenset({"metadata.name"})
_POD_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


# --- discovery ---------------------------------------------------------------------------------------------

def legacy_group() -> dict[str, Any]:
    """This group's entry in the legacy ``/apis`` (``APIGroupList.groups``) and its ``/apis/metrics.k8s.io``."""
    gv = {"groupVersion": API_VERSION, "version": VERSION}
    return {"name": GROUP, "versions": [gv], "preferredVersion": gv}


def aggregated_group() -> dict[str, Any]:
    """This group's item in the aggregated ``/apis`` (``apidiscovery.k8s.io/v2`` APIGroupDiscoveryList)."""
    resources = [{"resource": plural, "responseKind": {"group": GROUP, "version": VERSION, "kind": kind},
                  "scope": "Namespaced" if namespaced else "Cluster", "singularResource": "", "verbs": _VERBS}
                 for plural, kind, namespaced in _SERVED]
    return {"metadata": {"name": GROUP, "creationTimestamp": None},
            "versions": [{"version": VERSION, "freshness": "Current", "resources": resources}]}


def resource_list() -> dict[str, Any]:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
            "resources": [{"name": plural, "singularName": "", "namespaced": namespaced, "kind": kind,
                           "verbs": _VERBS} for plural, kind, namespaced in _SERVED]}


# --- the API -----------------------------------------------------------------------------------------------

class MetricsAPI:
    """Node and pod metrics from the Nodes and Pods the API server has and what their kubelets say."""

    def __init__(self, resources: Resources, scraper: SummaryScraper, *, now: Callable[[], str] = meta.now_rfc3339):
        self.resources = resources
        self.scraper = scraper
        self.now = now

    def _cached(self, kind: Kind, namespace: str | None = None) -> list[Obj]:
        return [e.obj for e in self.resources.cache.cache(kind).objects(kind.prefix(namespace))]

    async def list_nodes(self, labels: LabelSelector, fields: FieldSelector) -> list[Obj]:
        nodes = [n for n in self._cached(_NODES) if labels.matches(meta.labels(n)) and fields.matches(n)]
        summaries = await self.scraper.summaries(nodes)
        now = self.now()
        found = (node_metrics(n, summaries[meta.name(n)], now=now) for n in nodes if meta.name(n) in summaries)
        return sorted((m for m in found if m is not None), key=lambda m: m["metadata"]["name"])

    async def get_node(self, name: str) -> Obj:
        node = await self.resources.get(_NODES, None, name)
        summary = await self.scraper.summary(node)
        got = node_metrics(node, summary, now=self.now()) if summary is not None else None
        if got is None:
            raise errors.not_found("nodemetrics", name, GROUP)
        return got

    async def list_pods(self, namespace: str | None, labels: LabelSelector, fields: FieldSelector) -> list[Obj]:
        pods = [p for p in self._cached(_PODS, namespace)
                if labels.matches(meta.labels(p)) and fields.matches(p) and _node_of(p)]
        return await self._pod_metrics(pods)

    async def get_pod(self, namespace: str, name: str) -> Obj:
        pod = await self.resources.get(_PODS, namespace, name)
        got = await self._pod_metrics([pod]) if _node_of(pod) else []
        if not got:
            raise errors.not_found("podmetrics", f"{namespace}/{name}", GROUP)
        return got[0]

    async def _pod_metrics(self, pods: list[Obj]) -> list[Obj]:
        node_names = {_node_of(p) for p in pods if (p.get("status") or {}).get("phase") == "Running"}
        nodes = [n for n in self._cached(_NODES) if meta.name(n) in node_names]
        summaries = await self.scraper.summaries(nodes)
        now = self.now()
        out = []
        for pod in pods:
            summary = summaries.get(_node_of(pod))
            stats = find_pod(summary, pod) if summary is not None else None
            if stats is not None and (m := pod_metrics(pod, stats, now=now)) is not None:
                out.append(m)
        return sorted(out, key=lambda m: (m["metadata"]["namespace"], m["metadata"]["name"]))


def _node_of(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


# --- HTTP --------------------------------------------------------------------------------------------------

METRICS_KEY = web.AppKey("metrics_api", MetricsAPI)


def install(app: web.Application, resources: Resources, connector: KubeletConnector, *,
            timeout: float = DEFAULT_TIMEOUT, ttl: float = DEFAULT_TTL) -> None:
    """Serve the group on ``app``, asking kubelets through ``connector`` (whose session the pod proxy's
    `proxy.install` closes with the app) with ``timeout``, keeping answers ``ttl`` seconds."""
    app[METRICS_KEY] = MetricsAPI(resources, SummaryScraper(connector, timeout=timeout, ttl=ttl))
    # These paths are more specific than the REST dispatcher's /apis/{group}/{version}/{tail}, so they win
    # whatever the order of registration.
    for path, handler in ((f"/apis/{GROUP}", _group), (PREFIX, _version),
                          (f"{PREFIX}/nodes", _nodes), (f"{PREFIX}/nodes/{{name}}", _nodes),
                          (f"{PREFIX}/pods", _pods), (f"{PREFIX}/namespaces/{{namespace}}/pods", _pods),
                          (f"{PREFIX}/namespaces/{{namespace}}/pods/{{name}}", _pods)):
        app.router.add_route("*", path, handler)
        if not path.endswith("}"):
            app.router.add_route("*", path + "/", handler)


def _check_get(request: web.Request, resource: str) -> None:
    if request.method != "GET":
        raise errors.method_not_allowed(f"{request.method} is not supported on {resource}.{GROUP}")
    if query_bool(request, "watch"):
        raise errors.method_not_allowed(f'watch is not supported on resources of kind "{resource}.{GROUP}"')
    check_acceptable(request)


async def _group(request: web.Request) -> web.Response:
    _check_get(request, GROUP)
    return json_response({"kind": "APIGroup", "apiVersion": "v1", **legacy_group()})


async def _version(request: web.Request) -> web.Response:
    _check_get(request, GROUP)
    return json_response(resource_list())


def _selectors(request: web.Request, supported: frozenset[str]) -> tuple[LabelSelector, FieldSelector]:
    try:
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields = parse_field_selector(request.query.get("fieldSelector", ""))
    except ValueError as e:
        raise errors.bad_request(str(e)) from None
    for req in fields.requirements:
        if req.field not in supported:
            raise errors.bad_request(f"field label not supported: {req.field}")
    return labels, fields


async def _nodes(request: web.Request) -> web.Response:
    _check_get(request, "nodes")
    api = request.app[METRICS_KEY]
    name = request.match_info.get("name")
    if name:
        return _respond(request, await api.get_node(name))
    labels, fields = _selectors(request, _NODE_FIELDS)
    return _respond_list(request, "NodeMetricsList", await api.list_nodes(labels, fields))


async def _pods(request: web.Request) -> web.Response:
    _check_get(request, "pods")
    api = request.app[METRICS_KEY]
    namespace, name = request.match_info.get("namespace"), request.match_info.get("name")
    if namespace and name:
        return _respond(request, await api.get_pod(namespace, name))
    labels, fields = _selectors(request, _POD_FIELDS)
    return _respond_list(request, "PodMetricsList", await api.list_pods(namespace, labels, fields))


def _respond(request: web.Request, obj: Obj) -> web.Response:
    return json_response(table([obj]) if wants_table(request) else obj)


def _respond_list(request: web.Request, kind: str, items: list[Obj]) -> web.Response:
    if wants_table(request):
        return json_response(table(items))
    return json_response({"kind": kind, "apiVersion": API_VERSION, "metadata": {}, "items": items})


def table(items: list[Obj]) -> Obj:
    """metrics-server's Table: Name, the usage of each resource (pods: summed over containers), Window."""
    columns = [{"name": "Name", "type": "string", "format": "name", "description": "Name of the resource",
                "priority": 0}]
    columns += [{"name": r, "type": "string", "format": "quantity", "description": "", "priority": 0}
                for r in ("cpu", "memory")]
    columns.append({"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0})
    rows = []
    for m in items:
        usage = total_usage(m)
        rows.append({"cells": [m["metadata"]["name"], usage["cpu"], usage["memory"], m.get("window", WINDOW)],
                     "object": m})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns,
            "rows": rows}

