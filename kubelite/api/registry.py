"""The one registry of every kind kubelite serves.

Discovery, routing, storage keys, Tables, OpenAPI and the CLI all read this table, so serving a new
kind is one `Kind(...)` entry below plus its validation (``api/validation``) and, if kubectl shows
more than NAME and AGE for it, its printer (``api/printers.py``).

Invariants:
- ``(group, plural)`` is unique; so is ``(group, kind)``; every short name is unique.
- The storage key of an object is ``/registry/{group/}{plural}/{namespace}/{name}`` for namespaced kinds
  and ``/registry/{group/}{plural}/{name}`` for cluster-scoped ones (``group/`` empty for core).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Kind:
    """One served resource: its identity, its scope and what clients may do with it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # Whether `metadata.generation` tracks `spec` (objects with a spec that controllers observe).
    has_spec: bool = True
    singular: str = field(default="")

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def resource_prefix(self) -> str:
        """The storage key prefix holding every object of this kind, ending in '/'."""
        return f"/registry/{self.group + '/' if self.group else ''}{self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.resource_prefix}{namespace}/{name}"
        return f"{self.resource_prefix}{name}"

    def prefix(self, namespace: str | None = None) -> str:
        """Key prefix of all objects of this kind, or of those in one namespace."""
        if self.namespaced and namespace:
            return f"{self.resource_prefix}{namespace}/"
        return self.resource_prefix

    def base_path(self, namespace: str | None = None) -> str:
        """The REST collection path, e.g. /apis/apps/v1/namespaces/ns/deployments."""
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{root}/namespaces/{namespace}/{self.plural}"
        return f"{root}/{self.plural}"


_STATUS = ("status",)
_STATUS_SCALE = ("status", "scale")

KINDS: tuple[Kind, ...] = (
    # core/v1
    Kind("", "v1", "Namespace", "namespaces", False, ("ns",), (), ("status", "finalize"),
         verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
    Kind("", "v1", "Node", "nodes", False, ("no",), (), _STATUS),
    Kind("", "v1", "Pod", "pods", True, ("po",), ("all",),
         ("status", "binding", "log", "exec", "portforward", "eviction")),
    Kind("", "v1", "Service", "services", True, ("svc",), ("all",), _STATUS,
         verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    Kind("", "v1", "Endpoints", "endpoints", True, ("ep",), (), has_spec=False, singular="endpoints"),
    Kind("", "v1", "ConfigMap", "configmaps", True, ("cm",), (), has_spec=False),
    Kind("", "v1", "Secret", "secrets", True, (), (), has_spec=False),
    Kind("", "v1", "Event", "events", True, ("ev",), (), has_spec=False),
    Kind("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), (), has_spec=False),
    # apps/v1
    Kind("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("all",), _STATUS_SCALE),
    Kind("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("all",), _STATUS_SCALE),
    # networking.k8s.io/v1
    Kind("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), (), _STATUS),
    Kind("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
    # coordination.k8s.io/v1
    Kind("coordination.k8s.io", "v1", "Lease", "leases", True),
    # discovery.k8s.io/v1
    Kind("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True, has_spec=False),
)


class UnknownKind(LookupError):
    """Raised when a kind, resource or name cannot be resolved to a served kind."""


_BY_RESOURCE: dict[tuple[str, str, str], Kind] = {(k.group, k.version, k.plural): k for k in KINDS}
_BY_KIND: dict[tuple[str, str], Kind] = {(k.api_version, k.kind): k for k in KINDS}


def all_kinds() -> tuple[Kind, ...]:
    return KINDS


def groups() -> dict[str, list[str]]:
    """Group name → versions served, in registry order ('' is the core group)."""
    out: dict[str, list[str]] = {}
    for k in KINDS:
        versions = out.setdefault(k.group, [])
        if k.version not in versions:
            versions.append(k.version)
    return out


def kinds_in(group: str, version: str) -> list[Kind]:
    return [k for k in KINDS if k.group == group and k.version == version]


def by_resource(group: str, version: str, plural: str) -> Kind:
    try:
        return _BY_RESOURCE[(group, version, plural)]
    except KeyError:
        raise UnknownKind(f"the server could not find the requested resource ({plural})") from None


def by_kind(api_version: str, kind: str) -> Kind:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        raise UnknownKind(f'no matches for kind "{kind}" in version "{api_version}"') from None


def resolve(name: str) -> Kind:
    """Resolve what a user types on the command line: plural, singular, short name or kind,
    optionally qualified with a group (``deployments.apps``, ``ingresses.networking.k8s.io``)."""
    lowered = name.lower()
    base, _, group = lowered.partition(".")
    candidates: Iterable[Kind] = KINDS
    if group:
        candidates = [k for k in KINDS if k.group == group or k.group.startswith(group + ".")]
    for k in candidates:
        if base in (k.plural, k.singular, k.kind.lower()) or base in k.short_names:
            return k
    raise UnknownKind(f'the server doesn\'t have a resource type "{name}"')
