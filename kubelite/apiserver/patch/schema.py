"""How the fields of the served kinds merge: the patch metadata of k8s.io/api, as a table.

Two families of Go struct tags drive the PATCH flavours:

- strategic merge patch reads ``patchStrategy``/``patchMergeKey`` (``merge`` lists keyed by one
  field, ``merge`` lists of primitives that are unioned, ``retainKeys``), everything else is
  replaced (lists) or merged key by key (objects);
- server-side apply reads ``+listType``/``+listMapKey`` and ``+structType``/``+mapType``: ``map``
  lists keyed by one or more fields, ``set`` lists of primitives, ``atomic`` lists, objects and
  maps owned as one value.

A :class:`Schema` node records both for one field. Only the fields that differ from the default
are listed; any other object merges key by key (and its keys are named fields), any other list is
atomic for apply and replaced by a strategic merge patch, exactly what the Go types say for them.
The strategic tags were read from the Go struct tags compiled into kubectl 1.37, the apply
metadata from client-go's apply-configuration schema (``applyconfigurations/internal``). Note where
the two families disagree: container ports merge by ``containerPort`` in a strategic merge patch
but are keyed by ``(containerPort, protocol)`` for apply (Service ports likewise by ``port``),
``hostIPs`` merge by ``ip`` but are atomic for apply, ``resources.claims`` are keyed for apply only.
``tolerations`` and node ``taints`` are replaced wholesale by both.

``zero_object`` gives the shape of the Go zero value of a kind (non-pointer structs present as
``{}``, required lists as ``null``): kube-apiserver diffs a created object against that shape when
it records who set what, which decides where FieldsV1 says ``".": {}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

from kubelite.api.registry import UnknownKind, by_kind

__all__ = ["DEDUCED", "ListType", "Schema", "has_status_subresource", "schema_for", "zero_object"]

ListType = Literal["atomic", "map", "set"]
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, eq=False)
class Schema:
    """The merge metadata of one field (the value of the field, not its parent).

    ``fields`` are the children that are not plain (granular object / atomic list); ``items`` is
    the schema of a list's elements. For server-side apply: ``list_type`` and ``keys`` (with
    ``key_defaults`` for key fields a client may omit), ``atomic`` for objects owned as a whole.
    For strategic merge patch: ``patch_strategy`` (``merge`` or ``replace``) and ``merge_key``.
    """

    fields: Mapping[str, Schema] = field(default_factory=lambda: _EMPTY)
    items: Schema | None = None
    list_type: ListType = "atomic"
    keys: tuple[str, ...] = ()
    key_defaults: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    atomic: bool = False
    patch_strategy: str = ""
    merge_key: str = ""

    def child(self, name: str) -> Schema:
        """The schema of the field ``name`` of this object."""
        return self.fields.get(name, DEDUCED)

    @property
    def item(self) -> Schema:
        return self.items if self.items is not None else DEDUCED


DEDUCED: Final = Schema()
_ATOMIC: Final = Schema(atomic=True)


def _fields(**children: Schema) -> Schema:
    return Schema(fields=MappingProxyType(children))


def _keyed(*keys: str, items: Schema = DEDUCED, defaults: Mapping[str, Any] | None = None,
           merge_key: str = "", strategic: bool = True) -> Schema:
    """A list of objects keyed by ``keys`` for apply; merged by ``merge_key`` (default: the first key)
    in a strategic merge patch unless ``strategic`` is false."""
    return Schema(items=items, list_type="map", keys=keys,
                  key_defaults=MappingProxyType(dict(defaults or {})),
                  patch_strategy="merge" if strategic else "",
                  merge_key=(merge_key or keys[0]) if strategic else "")


def _named(*keys: str, items: Schema = DEDUCED) -> Schema:
    """A keyed list whose string keys default to "" (their Go fields are plain strings)."""
    return _keyed(*keys, items=items, defaults=dict.fromkeys(keys, ""))


_PRIMITIVE_SET: Final = Schema(list_type="set", patch_strategy="merge")
_CONDITIONS: Final = _named("type")

_OBJECT_META: Final = _fields(
    finalizers=_PRIMITIVE_SET,
    ownerReferences=_named("uid", items=_ATOMIC),
)

_ENV_VAR: Final = _fields(valueFrom=_fields(
    configMapKeyRef=_ATOMIC, secretKeyRef=_ATOMIC, fieldRef=_ATOMIC, resourceFieldRef=_ATOMIC))

_CONTAINER: Final = _fields(
    env=_named("name", items=_ENV_VAR),
    ports=_keyed("containerPort", "protocol", defaults={"containerPort": 0, "protocol": "TCP"}),
    volumeMounts=_named("mountPath"),
    volumeDevices=_named("devicePath"),
    resources=_fields(claims=_keyed("name", defaults={"name": ""}, strategic=False)),
)

_POD_SPEC: Final = _fields(
    containers=_named("name", items=_CONTAINER),
    initContainers=_named("name", items=_CONTAINER),
    ephemeralContainers=_named("name", items=_CONTAINER),
    volumes=_named("name"),  # patchStrategy "merge,retainKeys": $retainKeys comes in the patch itself
    imagePullSecrets=_keyed("name", items=_ATOMIC),
    hostAliases=_keyed("ip"),
    topologySpreadConstraints=_named("topologyKey", "whenUnsatisfiable", items=_fields(labelSelector=_ATOMIC)),
    schedulingGates=_named("name"),
    resourceClaims=_named("name"),
    nodeSelector=_ATOMIC,
    affinity=_fields(nodeAffinity=_fields(requiredDuringSchedulingIgnoredDuringExecution=_ATOMIC)),
)

_POD_STATUS: Final = _fields(
    conditions=_CONDITIONS,
    podIPs=_keyed("ip"),
    hostIPs=Schema(patch_strategy="merge", merge_key="ip"),  # atomic for apply
    resourceClaimStatuses=_named("name"),
)

_POD_TEMPLATE: Final = _fields(metadata=_OBJECT_META, spec=_POD_SPEC)
_WORKLOAD: Final = _fields(selector=_ATOMIC, template=_POD_TEMPLATE)
_CONDITIONS_STATUS: Final = _fields(conditions=_CONDITIONS)


def _root(**children: Schema) -> Schema:
    return _fields(metadata=_OBJECT_META, **children)


_SCHEMAS: Final[Mapping[tuple[str, str], Schema]] = MappingProxyType({
    ("v1", "Pod"): _root(spec=_POD_SPEC, status=_POD_STATUS),
    ("v1", "Namespace"): _root(status=_CONDITIONS_STATUS),
    ("v1", "Node"): _root(
        spec=_fields(podCIDRs=_PRIMITIVE_SET),
        status=_fields(addresses=_named("type"), conditions=_CONDITIONS)),
    ("v1", "Service"): _root(
        spec=_fields(ports=_keyed("port", "protocol", defaults={"port": 0, "protocol": "TCP"}),
                     selector=_ATOMIC),
        status=_CONDITIONS_STATUS),
    ("v1", "ServiceAccount"): _root(secrets=_keyed("name", items=_ATOMIC)),
    ("v1", "Event"): _root(involvedObject=_ATOMIC, related=_ATOMIC),
    ("apps/v1", "Deployment"): _root(spec=_WORKLOAD, status=_CONDITIONS_STATUS),
    ("apps/v1", "ReplicaSet"): _root(spec=_WORKLOAD, status=_CONDITIONS_STATUS),
    ("networking.k8s.io/v1", "Ingress"): _root(spec=_fields(defaultBackend=_fields(resource=_ATOMIC))),
})
_PLAIN_ROOT: Final = _root()

_ZERO_OBJECTS: Final[Mapping[tuple[str, str], dict[str, Any]]] = MappingProxyType({
    ("v1", "Pod"): {"metadata": {}, "spec": {"containers": None}, "status": {}},
    ("v1", "Namespace"): {"metadata": {}, "spec": {}, "status": {}},
    ("v1", "Node"): {"metadata": {}, "spec": {}, "status": {}},
    ("v1", "Service"): {"metadata": {}, "spec": {}, "status": {"loadBalancer": {}}},
    ("v1", "Event"): {"metadata": {}, "involvedObject": {}, "source": {}},
    ("apps/v1", "Deployment"): {"metadata": {}, "spec": {
        "selector": None, "strategy": {},
        "template": {"metadata": {}, "spec": {"containers": None}}}, "status": {}},
    ("apps/v1", "ReplicaSet"): {"metadata": {}, "spec": {
        "selector": None, "template": {"metadata": {}, "spec": {"containers": None}}}, "status": {}},
    ("networking.k8s.io/v1", "Ingress"): {"metadata": {}, "spec": {}, "status": {"loadBalancer": {}}},
    ("networking.k8s.io/v1", "IngressClass"): {"metadata": {}, "spec": {}},
    ("coordination.k8s.io/v1", "Lease"): {"metadata": {}, "spec": {}},
    ("discovery.k8s.io/v1", "EndpointSlice"): {"metadata": {}, "endpoints": None},
})
_PLAIN_ZERO: Final[dict[str, Any]] = {"metadata": {}}


def schema_for(api_version: str, kind: str) -> Schema:
    """The schema of a whole object of this kind; unknown kinds get ObjectMeta and defaults."""
    return _SCHEMAS.get((api_version, kind), _PLAIN_ROOT)


def zero_object(api_version: str, kind: str) -> dict[str, Any]:
    """The Go zero value's shape (shared: never mutate it)."""
    return _ZERO_OBJECTS.get((api_version, kind), _PLAIN_ZERO)


def has_status_subresource(api_version: str, kind: str) -> bool:
    """Whether writes to the main resource leave ``status`` alone (the kind serves ``/status``)."""
    try:
        return by_kind(api_version, kind).has_status
    except UnknownKind:
        return False
