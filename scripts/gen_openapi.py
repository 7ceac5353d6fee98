#!/usr/bin/env python3
"""Generate ``kubelite/apiserver/openapi/definitions.json`` from the official Python client's models.

The ``kubernetes`` client (installed in the dev virtualenv) carries one pydantic model per Kubernetes
type: ``openapi_types`` (python name → type string such as ``List[V1Container]``), ``attribute_map``
(python name → JSON name), per-field descriptions and which fields are required. This script walks the
models reachable from every kind kubelite serves (``kubelite.api.registry``) plus the meta kinds the API
uses (Status, DeleteOptions, the List kinds, autoscaling/v1 Scale, Binding, policy/v1 Eviction) and writes
OpenAPI v3 component schemas named and shaped the way kube-apiserver names and shapes them:
``io.k8s.api.core.v1.Pod``, ``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``, ``$ref`` wrapped in
``allOf`` when it has siblings, ``x-kubernetes-group-version-kind`` on kinds, Quantity / IntOrString /
Time references, and the list and patch markers that kubectl's strategic merge patch reads.

What the client cannot tell us (which strings are Quantities, which times are MicroTimes, the
``+patchStrategy``/``+listType`` markers of k8s.io/api) is kept in the tables below, transcribed from
k8s.io/api's Go types.

Run ``.venv/bin/python scripts/gen_openapi.py`` after upgrading the client or adding a kind, and commit
the output; ``--check`` exits 1 when the checked-in file is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import kubernetes
import kubernetes.client.models as models

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubelite.api.registry import all_kinds  # noqa: E402

OUTPUT = ROOT / "kubelite" / "apiserver" / "openapi" / "definitions.json"

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
REF = "#/components/schemas/"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
TIME = f"{META}.Time"
MICRO_TIME = f"{META}.MicroTime"
FIELDS_V1 = f"{META}.FieldsV1"
RAW_EXTENSION = "io.k8s.apimachinery.pkg.runtime.RawExtension"

# Kinds beyond the registry that the API reads or returns: (group, version, model class).
EXTRA_KINDS: tuple[tuple[str, str, str], ...] = (
    ("autoscaling", "v1", "V1Scale"),
    ("", "v1", "V1Binding"),
    ("policy", "v1", "V1Eviction"),
    ("", "v1", "V1Status"),
    ("", "v1", "V1DeleteOptions"),
)

# Roots of k8s.io/apimachinery's meta/v1 package, which the client names like any other V1 model;
# everything reachable from them (OwnerReference, ManagedFieldsEntry, StatusCause ...) is meta/v1 too.
META_ROOTS = ("V1ObjectMeta", "V1ListMeta", "V1LabelSelector", "V1Status", "V1DeleteOptions", "V1Condition")

# core/v1 types first reached from another group's kind (a Deployment's pod template).
CORE_TYPES = frozenset({"V1PodTemplateSpec"})

# (model class, python attribute) → Quantity; the client types these as plain strings.
QUANTITY_FIELDS = frozenset({
    ("V1NodeStatus", "allocatable"), ("V1NodeStatus", "capacity"),
    ("V1PodSpec", "overhead"), ("V1PodStatus", "allocated_resources"),
    ("V1ContainerStatus", "allocated_resources"),
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"), ("V1VolumeResourceRequirements", "requests"),
    ("V1EmptyDirVolumeSource", "size_limit"), ("V1ResourceFieldSelector", "divisor"),
    ("V1NodeAllocatableMappedResources", "quantity"),
    ("V1NodeAllocatableOverheadResources", "per_container"),
    ("V1NodeAllocatableOverheadResources", "per_pod"),
})

# Timestamps with microsecond precision (metav1.MicroTime); every other datetime is a metav1.Time.
MICRO_TIME_FIELDS = frozenset({
    ("CoreV1Event", "event_time"), ("CoreV1EventSeries", "last_observed_time"),
    ("V1LeaseSpec", "acquire_time"), ("V1LeaseSpec", "renew_time"),
})

# (model class, JSON field) → list markers, from the Go types' +listType/+listMapKey/+patchStrategy/
# +patchMergeKey comments. kubectl's client-side apply reads the patch markers to build its strategic
# merge patch, so a list that merges by key in Kubernetes must merge by the same key here.
_ATOMIC: dict[str, Any] = {"x-kubernetes-list-type": "atomic"}


def _merge(key: str, *map_keys: str, strategy: str = "merge", list_type: str = "map") -> dict[str, Any]:
    markers: dict[str, Any] = {"x-kubernetes-patch-merge-key": key, "x-kubernetes-patch-strategy": strategy,
                               "x-kubernetes-list-type": list_type}
    if list_type == "map":
        markers["x-kubernetes-list-map-keys"] = list(map_keys or (key,))
    return markers


_CONTAINER_LISTS: dict[str, dict[str, Any]] = {
    "args": _ATOMIC, "command": _ATOMIC, "envFrom": _ATOMIC, "resizePolicy": _ATOMIC,
    "restartPolicyRules": _ATOMIC,
    "env": _merge("name"),
    "ports": _merge("containerPort", "containerPort", "protocol"),
    "volumeMounts": _merge("mountPath"),
    "volumeDevices": _merge("devicePath"),
}
_CONDITIONS = {"conditions": _merge("type")}

LIST_MARKERS: dict[str, dict[str, dict[str, Any]]] = {
    "V1ObjectMeta": {
        "finalizers": {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
        "ownerReferences": _merge("uid"),
        "managedFields": _ATOMIC,
    },
    "V1ServiceAccount": {"secrets": _merge("name"), "imagePullSecrets": _ATOMIC},
    "V1Endpoints": {"subsets": _ATOMIC},
    "V1EndpointSubset": {"addresses": _ATOMIC, "notReadyAddresses": _ATOMIC, "ports": _ATOMIC},
    "V1EndpointSlice": {"endpoints": _ATOMIC, "ports": _ATOMIC},
    "V1Endpoint": {"addresses": {"x-kubernetes-list-type": "set"}},
    "V1EndpointHints": {"forZones": _ATOMIC, "forNodes": _ATOMIC},
    "V1NamespaceSpec": {"finalizers": _ATOMIC},
    "V1NamespaceStatus": _CONDITIONS,
    "V1NodeSpec": {"podCIDRs": {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"},
                   "taints": _ATOMIC},
    "V1NodeStatus": {
        **_CONDITIONS, "addresses": _merge("type"), "images": _ATOMIC, "volumesInUse": _ATOMIC,
        "volumesAttached": _ATOMIC, "runtimeHandlers": _ATOMIC, "declaredFeatures": _ATOMIC,
    },
    "V1PodSpec": {
        "volumes": _merge("name", strategy="merge,retainKeys"),
        "initContainers": _merge("name"),
        "containers": _merge("name"),
        "ephemeralContainers": _merge("name"),
        "imagePullSecrets": _merge("name"),
        "hostAliases": _merge("ip"),
        "tolerations": _ATOMIC,
        "readinessGates": _ATOMIC,
        "topologySpreadConstraints": _merge("topologyKey", "topologyKey", "whenUnsatisfiable"),
        "resourceClaims": _merge("name", strategy="merge,retainKeys"),
        "schedulingGates": _merge("name"),
    },
    "V1PodStatus": {
        **_CONDITIONS,
        "hostIPs": _merge("ip", list_type="atomic"),
        "podIPs": _merge("ip"),
        "initContainerStatuses": _ATOMIC, "containerStatuses": _ATOMIC,
        "ephemeralContainerStatuses": _ATOMIC,
        "resourceClaimStatuses": _merge("name", strategy="merge,retainKeys"),
    },
    "V1Container": _CONTAINER_LISTS,
    "V1EphemeralContainer": _CONTAINER_LISTS,
    "V1ResourceRequirements": {"claims": {"x-kubernetes-list-type": "map",
                                          "x-kubernetes-list-map-keys": ["name"]}},
    "V1PodSecurityContext": {"supplementalGroups": _ATOMIC, "sysctls": _ATOMIC},
    "V1PodDNSConfig": {"nameservers": _ATOMIC, "searches": _ATOMIC, "options": _ATOMIC},
    "V1HostAlias": {"hostnames": _ATOMIC},
    "V1TopologySpreadConstraint": {"matchLabelKeys": _ATOMIC},
    "V1ServiceSpec": {
        "ports": _merge("port", "port", "protocol"),
        "clusterIPs": _ATOMIC, "externalIPs": _ATOMIC, "ipFamilies": _ATOMIC,
        "loadBalancerSourceRanges": _ATOMIC,
    },
    "V1ServiceStatus": _CONDITIONS,
    "V1LoadBalancerStatus": {"ingress": _ATOMIC},
    "V1LoadBalancerIngress": {"ports": _ATOMIC},
    "V1DeploymentStatus": _CONDITIONS,
    "V1ReplicaSetStatus": _CONDITIONS,
    "V1IngressSpec": {"rules": _ATOMIC, "tls": _ATOMIC},
    "V1IngressTLS": {"hosts": _ATOMIC},
    "V1HTTPIngressRuleValue": {"paths": _ATOMIC},
    "V1IngressLoadBalancerStatus": {"ingress": _ATOMIC},
    "V1IngressLoadBalancerIngress": {"ports": _ATOMIC},
    "V1LabelSelector": {"matchExpressions": _ATOMIC},
    "V1LabelSelectorRequirement": {"values": _ATOMIC},
    "V1StatusDetails": {"causes": _ATOMIC},
    "V1NodeSelector": {"nodeSelectorTerms": _ATOMIC},
    "V1NodeSelectorTerm": {"matchExpressions": _ATOMIC, "matchFields": _ATOMIC},
    "V1NodeSelectorRequirement": {"values": _ATOMIC},
    "V1NodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC},
    "V1PodAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
                      "requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC},
    "V1PodAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": _ATOMIC,
                          "requiredDuringSchedulingIgnoredDuringExecution": _ATOMIC},
    "V1PodAffinityTerm": {"namespaces": _ATOMIC, "matchLabelKeys": _ATOMIC, "mismatchLabelKeys": _ATOMIC},
    "V1ExecAction": {"command": _ATOMIC},
    "V1HTTPGetAction": {"httpHeaders": _ATOMIC},
    "V1Capabilities": {"add": _ATOMIC, "drop": _ATOMIC},
    "V1ConfigMapVolumeSource": {"items": _ATOMIC},
    "V1SecretVolumeSource": {"items": _ATOMIC},
    "V1ConfigMapProjection": {"items": _ATOMIC},
    "V1SecretProjection": {"items": _ATOMIC},
    "V1DownwardAPIVolumeSource": {"items": _ATOMIC},
    "V1DownwardAPIProjection": {"items": _ATOMIC},
    "V1ProjectedVolumeSource": {"sources": _ATOMIC},
    "V1PersistentVolumeClaimSpec": {"accessModes": _ATOMIC},
}

# Structs that server-side apply replaces as a whole (+structType=atomic / +mapType=atomic).
ATOMIC_STRUCTS = frozenset({
    "V1LabelSelector", "V1NodeSelector", "V1NodeSelectorTerm", "V1ObjectReference",
    "V1LocalObjectReference", "V1TypedLocalObjectReference", "V1ConfigMapKeySelector",
    "V1SecretKeySelector", "V1ObjectFieldSelector", "V1ResourceFieldSelector",
})

_META_DOCS = {
    "V1ObjectMeta": "Standard object's metadata. More info: "
                    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
    "V1ListMeta": "Standard list metadata. More info: "
                  "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
}

# Schemas of apimachinery value types, written the way kube-apiserver's OpenAPI v3 documents them.
SPECIAL_SCHEMAS: dict[str, dict[str, Any]] = {
    QUANTITY: {
        "description": "Quantity is a fixed-point representation of a number. It provides convenient "
                       "marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() "
                       "accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= "
                       "<signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the \"\" case in "
                       "<decimalSI>.)\n\n<suffix>           ::= <binarySI> | <decimalExponent> | "
                       "<decimalSI>\n\n<binarySI>         ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n<decimalSI>"
                       "        ::= m | \"\" | k | M | G | T | P | E\n```",
        "oneOf": [{"type": "string"}, {"type": "number"}],
    },
    INT_OR_STRING: {
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or "
                       "YAML marshalling and unmarshalling, it produces or consumes the inner type.  This "
                       "allows you to have, for example, a JSON field that can accept a name or number.",
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
    },
    TIME: {
        "description": "Time is a wrapper around time.Time which supports correct marshaling to YAML and "
                       "JSON.  Wrappers are provided for many of the factory methods that the time package "
                       "offers.",
        "format": "date-time",
        "type": "string",
    },
    MICRO_TIME: {
        "description": "MicroTime is version of Time with microsecond level precision.",
        "format": "date-time",
        "type": "string",
    },
    FIELDS_V1: {
        "description": "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    RAW_EXTENSION: {
        "description": "RawExtension is used to hold extensions in external versions.",
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    },
    f"{META}.Patch": {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH "
                       "request body.",
        "type": "object",
    },
}

_CLASS_NAME = re.compile(r"^(?P<group>[A-Z][a-z]+)?(?P<version>V\d+(?:alpha\d+|beta\d+)?)(?P<type>[A-Z].*)$")
_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict\[str, (.+)\]|dict\(str, (.+)\))$")
_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "bytes": {"type": "string", "format": "byte"},
}


def _package(group: str) -> str:
    """Go package of a group's types: '' → core, 'networking.k8s.io' → networking."""
    return group.split(".")[0] if group else "core"


def _model(name: str) -> type[Any] | None:
    cls = getattr(models, name, None)
    return cls if isinstance(cls, type) and hasattr(cls, "openapi_types") else None


def _element(type_str: str) -> str:
    """The innermost type of a List[...] / Dict[str, ...] type string."""
    while True:
        if m := _LIST.match(type_str):
            type_str = m.group(1)
        elif m := _DICT.match(type_str):
            type_str = m.group(1) or m.group(2)
        else:
            return type_str


def _class_doc(cls: type[Any]) -> str:
    return (cls.__doc__ or "").split("Attributes:")[0].strip()


def _fields(cls: type[Any]) -> dict[str, Any]:
    """openapi_types key → pydantic FieldInfo (the client renames keywords: `_continue` ↔ `var_continue`)."""
    out: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        out[info.alias or name] = info
        out.setdefault(name, info)
    return out


def _model_class_for(group: str, version: str, kind: str) -> str:
    prefix = _package(group).capitalize()
    for name in (f"{prefix}{version.capitalize()}{kind}", f"{version.capitalize()}{kind}"):
        if _model(name):
            return name
    raise SystemExit(f"no client model for {group}/{version} {kind}")


class Generator:
    """Walks the client's models from the root kinds and renders each as a component schema."""

    def __init__(self) -> None:
        self.roots: list[tuple[str, str, str, str]] = []  # (group, version, kind, model class)
        for k in all_kinds():
            cls = _model_class_for(k.group, k.version, k.kind)
            self.roots.append((k.group, k.version, k.kind, cls))
            self.roots.append((k.group, k.version, k.list_kind,
                               _model_class_for(k.group, k.version, k.list_kind)))
        for group, version, cls in EXTRA_KINDS:
            self.roots.append((group, version, _CLASS_NAME.match(cls)["type"], cls))  # type: ignore[index]
        # Core roots first, so that a core type reached from both core and another group is core.
        self.roots.sort(key=lambda r: r[0] != "")
        self.group_of: dict[str, str] = {}
        for cls in META_ROOTS:
            self._assign(cls, "meta")
        for group, _, _, cls in self.roots:
            self._assign(cls, group)

    def _assign(self, cls_name: str, group: str) -> None:
        stack = [cls_name]
        while stack:
            name = stack.pop()
            if name in self.group_of:
                continue
            self.group_of[name] = "core" if name in CORE_TYPES else group
            cls = _model(name)
            assert cls is not None, name
            for type_str in cls.openapi_types.values():
                inner = _element(type_str)
                if _model(inner) and inner not in self.group_of:
                    stack.append(inner)

    def schema_name(self, cls_name: str) -> str:
        m = _CLASS_NAME.match(cls_name)
        if not m:
            raise SystemExit(f"cannot parse model class name {cls_name}")
        version = m["version"].lower()
        group = m["group"].lower() if m["group"] else self.group_of[cls_name]
        if group == "meta":
            return f"{META}.{m['type']}"
        return f"io.k8s.api.{_package(group)}.{version}.{m['type']}"

    def render(self) -> dict[str, dict[str, Any]]:
        gvks: dict[str, list[dict[str, str]]] = {}
        for group, version, kind, cls in self.roots:
            gvks.setdefault(cls, []).append({"group": group, "kind": kind, "version": version})
        # DeleteOptions is accepted by every group, as kube-apiserver declares.
        groups = sorted({(g, v) for g, v, _, _ in self.roots})
        gvks["V1DeleteOptions"] = [{"group": g, "kind": "DeleteOptions", "version": v} for g, v in groups]
        schemas = dict(SPECIAL_SCHEMAS)
        for cls_name in self.group_of:
            schema = self._object(cls_name)
            if cls_name in gvks:
                schema["x-kubernetes-group-version-kind"] = gvks[cls_name]
            schemas[self.schema_name(cls_name)] = schema
        return dict(sorted(schemas.items()))

    def _object(self, cls_name: str) -> dict[str, Any]:
        cls = _model(cls_name)
        assert cls is not None
        fields = _fields(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for attr, type_str in cls.openapi_types.items():
            json_name = cls.attribute_map[attr]
            info = fields.get(attr)
            prop = self._property(cls_name, attr, json_name, type_str, info)
            prop.update(LIST_MARKERS.get(cls_name, {}).get(json_name, {}))
            properties[json_name] = dict(sorted(prop.items()))
            if info is not None and info.is_required():
                required.append(json_name)
        schema: dict[str, Any] = {"description": _class_doc(cls), "properties": dict(sorted(properties.items()))}
        if required:
            schema["required"] = required
        schema["type"] = "object"
        if cls_name in ATOMIC_STRUCTS:
            schema["x-kubernetes-map-type"] = "atomic"
        return schema

    def _property(self, cls_name: str, attr: str, json_name: str, type_str: str, info: Any) -> dict[str, Any]:
        # The client keeps no description for fields of a model type; kubectl explain then shows the
        # referenced type's own description, except for metadata, whose standard text we know.
        description = (info.description if info is not None else None) or _META_DOCS.get(type_str, "")
        prop = self._type(cls_name, attr, type_str, info)
        if description:
            if "$ref" in prop:
                prop = {"allOf": [prop]}
            prop["description"] = description
        return prop

    def _type(self, cls_name: str, attr: str, type_str: str, info: Any) -> dict[str, Any]:
        if m := _LIST.match(type_str):
            return {"type": "array", "items": self._type(cls_name, attr, m.group(1), info)}
        if m := _DICT.match(type_str):
            return {"type": "object",
                    "additionalProperties": self._type(cls_name, attr, m.group(1) or m.group(2), info)}
        if (cls_name, attr) in QUANTITY_FIELDS:
            return {"$ref": REF + QUANTITY}
        if type_str == "datetime":
            return {"$ref": REF + (MICRO_TIME if (cls_name, attr) in MICRO_TIME_FIELDS else TIME)}
        if type_str == "object":
            return {"$ref": REF + self._object_kind(cls_name, attr, info)}
        if type_str in _SCALARS:
            return dict(_SCALARS[type_str])
        if _model(type_str):
            return {"$ref": REF + self.schema_name(type_str)}
        raise SystemExit(f"{cls_name}.{attr}: unsupported type {type_str}")

    @staticmethod
    def _object_kind(cls_name: str, attr: str, info: Any) -> str:
        """Which apimachinery type an untyped ('object') field stands for."""
        if cls_name == "V1ManagedFieldsEntry" and attr == "fields_v1":
            return FIELDS_V1
        annotation = repr(info.annotation) if info is not None else ""
        if "int" in annotation and "str" in annotation:
            return INT_OR_STRING
        return RAW_EXTENSION


def generate() -> str:
    document = {
        "generatedFrom": f"kubernetes=={kubernetes.__version__}",
        "schemas": Generator().render(),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the checked-in file is stale")
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run scripts/gen_openapi.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
