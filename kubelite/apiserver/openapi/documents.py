"""The OpenAPI v3 documents kube-apiserver serves at ``/openapi/v3``, built once from the kind registry.

``/openapi/v3`` is an index: ``{"paths": {"apis/apps/v1": {"serverRelativeURL":
"/openapi/v3/apis/apps/v1?hash=<H>"}, ...}}`` with one entry per served group-version, ``H`` being the
upper-case hex SHA-512 of that document's bytes (stable as long as the registry and the schemas are).

Each group-version document has the shape kubectl's openapi3 client parses: ``components.schemas`` holding
every schema the paths reach, and ``paths`` for each kind of the group-version — the collection and item
paths (namespaced kinds also get the cluster-wide list), plus ``status``, ``scale``, ``binding``,
``eviction``, ``log``, ``exec`` and ``portforward`` subresources. Every operation carries
``x-kubernetes-action`` and a single ``x-kubernetes-group-version-kind``; writes take ``dryRun``,
``fieldManager`` and ``fieldValidation``, so kubectl (``--validate=strict``) sends
``fieldValidation=Strict`` and leaves the checking to the server; PATCH bodies list the strategic merge
patch content type, so client-side apply builds its patch from these schemas' patch markers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

from kubelite.api.registry import Kind, groups, kinds_in

from .schemas import closure, ref, referenced, schema_name

KUBE_VERSION = "v1.37.0"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
DELETE_OPTIONS = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
JSON = "application/json"
PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")

# Subresources whose request and response are another kind than the parent's (group, version, kind).
_SUBRESOURCE_KIND = {"scale": ("autoscaling", "v1", "Scale"), "binding": ("", "v1", "Binding"),
                     "eviction": ("policy", "v1", "Eviction")}
# Connect subresources and the options kind kube-apiserver names in their GVK.
_CONNECT_KIND = {"exec": "PodExecOptions", "portforward": "PodPortForwardOptions"}


@dataclass(frozen=True, slots=True)
class Document:
    """One group-version document: ``key`` is its index path (``api/v1``, ``apis/apps/v1``)."""

    key: str
    body: bytes
    hash: str

    @property
    def url(self) -> str:
        return f"/openapi/v3/{self.key}?hash={self.hash}"


def _q(name: str, type_: str, description: str) -> dict[str, Any]:
    return {"description": description, "in": "query", "name": name,
            "schema": {"type": type_, "uniqueItems": True}}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "in": "path", "name": name, "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


# Descriptions follow kube-apiserver's, shortened.
_PRETTY = _q("pretty", "string", "If 'true', then the output is pretty printed.")
_DRY_RUN = _q("dryRun", "string", "When present, indicates that modifications should not be persisted. "
              "Valid values are: - All: all dry run stages will be processed")
_FIELD_MANAGER = _q("fieldManager", "string", "fieldManager is a name associated with the actor or entity that "
                    "is making these changes. This field is required for apply requests "
                    "(application/apply-patch) but optional for non-apply patch types.")
_FIELD_VALIDATION = _q("fieldValidation", "string", "fieldValidation instructs the server on how to handle "
                       "objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid "
                       "values are: - Ignore: unknown fields are silently dropped. - Warn: a warning is sent "
                       "for each unknown field that is dropped and for each duplicate field (the default). - "
                       "Strict: the request fails with a BadRequest error listing every unknown and duplicate "
                       "field.")
_FORCE = _q("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire "
            "conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.")
_WRITE = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_LIST = [
    _q("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
    _q("continue", "string", "The continue option should be set when retrieving more results from the server."),
    _q("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. "
       "Defaults to everything."),
    _q("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. "
       "Defaults to everything."),
    _q("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    _q("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request "
       "may be served from."),
    _q("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to "
       "list calls."),
    _q("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`: the "
       "watch stream begins with synthetic events for the current objects, then a bookmark annotated "
       "\"k8s.io/initial-events-end\"."),
    _q("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    _q("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, "
       "update, and remove notifications. Specify resourceVersion."),
]
# A delete-collection selects like a list, but never watches.
_COLLECTION_FILTERS = [p for p in _LIST if p["name"] not in ("allowWatchBookmarks", "watch")]
_DELETE = [
    _q("dryRun", "string", _DRY_RUN["description"]),
    _q("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    _q("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
    _q("propagationPolicy", "string", "Whether and how garbage collection will be performed: 'Orphan', "
       "'Background' or 'Foreground'."),
]


def _content(schema_ref: str, *media_types: str) -> dict[str, Any]:
    return {media: {"schema": ref(schema_ref)} for media in media_types or (JSON, "application/yaml")}


def _responses(schema_ref: str, *codes: str, media_types: tuple[str, ...] = ()) -> dict[str, Any]:
    text = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {code: {"content": _content(schema_ref, *media_types), "description": text[code]}
                           for code in codes}
    out["401"] = {"description": "Unauthorized"}
    return out


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _camel(kind: Kind) -> str:
    """Operation-id infix of a group-version: CoreV1, AppsV1, NetworkingV1."""
    group = kind.group.split(".")[0] if kind.group else "core"
    return group[:1].upper() + group[1:] + kind.version.capitalize()


def _tag(kind: Kind) -> str:
    group = kind.group.split(".")[0] if kind.group else "core"
    return f"{group}_{kind.version}"


class _Paths:
    """Builds the path items of one group-version."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def op(self, path: str, method: str, *, kind: Kind, op_id: str, action: str, description: str,
           gvk: dict[str, str], params: list[dict[str, Any]] | None = None,
           body: dict[str, Any] | None = None, responses: dict[str, Any]) -> None:
        operation: dict[str, Any] = {"description": description, "operationId": op_id}
        if params:
            operation["parameters"] = params
        if body is not None:
            operation["requestBody"] = {"content": body, "required": True}
        operation["responses"] = responses
        operation["tags"] = [_tag(kind)]
        operation["x-kubernetes-action"] = action
        operation["x-kubernetes-group-version-kind"] = gvk
        self.items.setdefault(path, {})[method] = operation

    def params(self, path: str, params: list[dict[str, Any]]) -> None:
        self.items.setdefault(path, {})["parameters"] = params

    def add_kind(self, kind: Kind) -> None:
        root = f"/apis/{kind.group}/{kind.version}" if kind.group else f"/api/{kind.version}"
        scope = "Namespaced" if kind.namespaced else ""
        prefix = f"{root}/namespaces/{{namespace}}" if kind.namespaced else root
        collection = f"{prefix}/{kind.plural}"
        item = f"{collection}/{{name}}"
        name = schema_name(kind.group, kind.version, kind.kind)
        list_name = schema_name(kind.group, kind.version, kind.list_kind)
        if name is None or list_name is None:
            raise LookupError(f"no schema for {kind.api_version} {kind.kind}; run scripts/gen_openapi.py")
        gvk = _gvk(kind.group, kind.version, kind.kind)
        camel, k = _camel(kind), kind.kind
        ns_param = [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
        scope_params = ns_param if kind.namespaced else []
        item_params = [_path_param("name", f"name of the {k}"), *scope_params, _PRETTY]
        verbs = set(kind.verbs)

        if verbs & {"list", "create", "deletecollection"}:
            self.params(collection, [*scope_params, _PRETTY])
        if "list" in verbs:
            list_media = (JSON, "application/yaml", "application/json;stream=watch")
            self.op(collection, "get", kind=kind, op_id=f"list{camel}{scope}{k}", action="list", gvk=gvk,
                    description=f"list or watch objects of kind {k}", params=_LIST,
                    responses=_responses(list_name, "200", media_types=list_media))
            if kind.namespaced:
                all_ns = f"{root}/{kind.plural}"
                self.params(all_ns, [*_LIST, _PRETTY])
                self.op(all_ns, "get", kind=kind, op_id=f"list{camel}{k}ForAllNamespaces", action="list",
                        gvk=gvk, description=f"list or watch objects of kind {k}",
                        responses=_responses(list_name, "200", media_types=list_media))
        if "create" in verbs:
            self.op(collection, "post", kind=kind, op_id=f"create{camel}{scope}{k}", action="post", gvk=gvk,
                    description=f"create a {k}", params=_WRITE, body=_content(name, "*/*"),
                    responses=_responses(name, "200", "201", "202"))
        if "deletecollection" in verbs:
            self.op(collection, "delete", kind=kind, op_id=f"delete{camel}Collection{scope}{k}",
                    action="deletecollection", gvk=gvk, description=f"delete collection of {k}",
                    params=[*_DELETE, *_COLLECTION_FILTERS],
                    body=_content(DELETE_OPTIONS, "*/*"), responses=_responses(STATUS, "200"))

        if verbs & {"get", "update", "patch", "delete"}:
            self.params(item, item_params)
        self._item_ops(item, kind, camel, scope, name, gvk, "", verbs)
        for sub in kind.subresources:
            self._subresource(item, kind, camel, scope, name, sub, item_params)

    def _item_ops(self, path: str, kind: Kind, camel: str, scope: str, name: str, gvk: dict[str, str],
                  suffix: str, verbs: set[str]) -> None:
        """get/put/patch(/delete) of an object or of its status or scale."""
        k = kind.kind
        what = f"{suffix.lower()} of the specified {k}" if suffix else f"the specified {k}"
        if "get" in verbs:
            self.op(path, "get", kind=kind, op_id=f"read{camel}{scope}{k}{suffix}", action="get", gvk=gvk,
                    description=f"read {what}", responses=_responses(name, "200"))
        if "update" in verbs:
            self.op(path, "put", kind=kind, op_id=f"replace{camel}{scope}{k}{suffix}", action="put", gvk=gvk,
                    description=f"replace {what}", params=_WRITE, body=_content(name, "*/*"),
                    responses=_responses(name, "200", "201"))
        if "patch" in verbs:
            self.op(path, "patch", kind=kind, op_id=f"patch{camel}{scope}{k}{suffix}", action="patch", gvk=gvk,
                    description=f"partially update {what}", params=[*_WRITE, _FORCE],
                    body=_content(PATCH, *PATCH_TYPES), responses=_responses(name, "200", "201"))
        if "delete" in verbs and not suffix:
            self.op(path, "delete", kind=kind, op_id=f"delete{camel}{scope}{k}", action="delete", gvk=gvk,
                    description=f"delete a {k}", params=_DELETE, body=_content(DELETE_OPTIONS, "*/*"),
                    responses=_responses(name, "200", "202"))

    def _subresource(self, item: str, kind: Kind, camel: str, scope: str, name: str, sub: str,
                     item_params: list[dict[str, Any]]) -> None:
        path = f"{item}/{sub}"
        k, title = kind.kind, sub.capitalize()
        if sub == "status":
            self.params(path, item_params)
            self._item_ops(path, kind, camel, scope, name, _gvk(kind.group, kind.version, k), "Status",
                           {"get", "update", "patch"})
        elif sub == "scale":
            group, version, sub_kind = _SUBRESOURCE_KIND[sub]
            self.params(path, [_path_param("name", f"name of the {sub_kind}"), *item_params[1:]])
            self._item_ops(path, kind, camel, scope, _require(group, version, sub_kind),
                           _gvk(group, version, sub_kind), "Scale", {"get", "update", "patch"})
        elif sub in ("binding", "eviction"):
            group, version, sub_kind = _SUBRESOURCE_KIND[sub]
            body_name = _require(group, version, sub_kind)
            self.params(path, [_path_param("name", f"name of the {sub_kind}"), *item_params[1:]])
            self.op(path, "post", kind=kind, op_id=f"create{camel}{scope}{k}{title}", action="post",
                    gvk=_gvk(group, version, sub_kind), description=f"create {sub} of a {k}",
                    params=_WRITE, body=_content(body_name, "*/*"),
                    responses=_responses(body_name, "200", "201", "202"))
        elif sub == "log":
            self.params(path, [*item_params[:-1], _q("container", "string", "The container for which to "
                               "stream logs."), _q("follow", "boolean", "Follow the log stream of the pod."),
                               _q("previous", "boolean", "Return previous terminated container logs."),
                               _q("tailLines", "integer", "The number of lines from the end of the logs to "
                               "show."), _q("timestamps", "boolean", "Prefix each log line with an RFC3339 "
                               "timestamp."), _PRETTY])
            self.op(path, "get", kind=kind, op_id=f"read{camel}{scope}{k}Log", action="get",
                    gvk=_gvk(kind.group, kind.version, k), description=f"read log of the specified {k}",
                    responses={"200": {"content": {"text/plain": {"schema": {"type": "string"}}},
                                       "description": "OK"}, "401": {"description": "Unauthorized"}})
        elif sub in _CONNECT_KIND:
            self.params(path, [_path_param("name", f"name of the {_CONNECT_KIND[sub]}"), *item_params[1:-1]])
            for method in ("get", "post"):
                self.op(path, method, kind=kind, op_id=f"connect{camel}{method.capitalize()}{scope}{k}{title}",
                        action="connect", gvk=_gvk(kind.group, kind.version, _CONNECT_KIND[sub]),
                        description=f"connect {method.upper()} requests to {sub} of {k}",
                        responses={"200": {"content": {"*/*": {"schema": {"type": "string"}}},
                                           "description": "OK"}, "401": {"description": "Unauthorized"}})


def _require(group: str, version: str, kind: str) -> str:
    name = schema_name(group, version, kind)
    if name is None:
        raise LookupError(f"no schema for {group}/{version} {kind}; run scripts/gen_openapi.py")
    return name


def index_key(group: str, version: str) -> str:
    """The index path of a group-version: ``api/v1`` or ``apis/{group}/{version}``."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def build_document(group: str, version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of one served group-version (a fresh dict)."""
    paths = _Paths()
    for kind in kinds_in(group, version):
        paths.add_kind(kind)
    items = dict(sorted(paths.items.items()))
    return {
        "components": {
            "schemas": closure(referenced(items) | {STATUS, DELETE_OPTIONS}),
            "securitySchemes": {"BearerToken": {"description": "Bearer Token authentication",
                                                "in": "header", "name": "authorization", "type": "apiKey"}},
        },
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "openapi": "3.0.0",
        "paths": items,
        "security": [{"BearerToken": []}],
    }


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


@cache
def all_documents() -> dict[str, Document]:
    """Every group-version document by index key, encoded and hashed once."""
    out: dict[str, Document] = {}
    for group, versions in groups().items():
        for version in versions:
            key = index_key(group, version)
            body = _encode(build_document(group, version))
            out[key] = Document(key, body, hashlib.sha512(body).hexdigest().upper())
    return out


def document(key: str) -> Document | None:
    """The document at ``/openapi/v3/{key}``, or None for a group-version kubelite does not serve."""
    return all_documents().get(key.strip("/"))


@cache
def index() -> bytes:
    """The ``/openapi/v3`` body."""
    return _encode({"paths": {key: {"serverRelativeURL": doc.url} for key, doc in all_documents().items()}})
