"""The routing table: Ingresses (of our class) + Services + EndpointSlices + TLS Secrets → an immutable
`RouteTable`, plus the `Problem`s found on the way. Pure: no I/O, no clock.

Matching a request (`RouteTable.route(host, path)`), as the Ingress API defines it:
- hosts: a rule's ``host`` matches the request's host exactly (case-insensitive); ``*.example.com``
  matches exactly one more label (``a.example.com``, not ``example.com`` nor ``a.b.example.com``); a rule
  without a host matches every host. The candidates are tried from the most specific: the exact host's
  paths, then the wildcard's, then the host-less rules', then ``spec.defaultBackend``. (Traefik's choice:
  a host-less rule "applies to all inbound HTTP traffic", so a host rule never hides it.)
- paths: ``Exact`` compares the whole path, case-sensitively; ``Prefix`` compares path *elements* split
  by ``/`` (``/foo`` matches ``/foo``, ``/foo/`` and ``/foo/bar``, not ``/foobar``; a trailing ``/`` in
  the rule does not matter); ``ImplementationSpecific`` is treated as ``Prefix`` (an empty path as
  ``/``). The longest matching path wins; at equal length ``Exact`` beats ``Prefix``.
- the request path is matched in normal form (`normalize_path`: percent-decoded, ``.``/``..`` resolved,
  repeated slashes merged, as nginx matches locations), while the request is forwarded unchanged.

Conflicts: Ingresses are taken oldest first (creationTimestamp, then namespace/name), as ingress-nginx
does; the first claim on a (host, path, path type), on ``spec.defaultBackend``, on a TLS host, or on
the default certificate wins, and each losing claim is a `Problem` on its Ingress. Nothing one Ingress
does can remove another's routes.

Backends: a Service port is found by number (``spec.ports[].port``) or name; its endpoints are the ready
endpoints (``conditions.ready`` not false) of the EndpointSlices labelled ``kubernetes.io/service-name``,
on the slice port named like the Service port (``addresses[0]`` of each endpoint, as the API says to
use). An ``ExternalName`` Service is its external name on the port's number. A missing Service, a port
the Service lacks, or a resource backend give a `Backend` without endpoints whose ``problem`` says why
(the gateway answers 503 with it) and a `Problem`. TLS: a ``tls`` entry maps its hosts to the
``kubernetes.io/tls`` Secret it names (a missing or incomplete Secret is a `Problem`; those hosts get
the default certificate); an entry without hosts provides the default certificate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote

Obj = dict[str, Any]

EXACT = "Exact"
PREFIX = "Prefix"
IMPLEMENTATION_SPECIFIC = "ImplementationSpecific"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TLS_SECRET_TYPE = "kubernetes.io/tls"

# Problem reasons (the Event reasons on the Ingress).
SERVICE_NOT_FOUND = "ServiceNotFound"
PORT_NOT_FOUND = "ServicePortNotFound"
UNSUPPORTED_BACKEND = "UnsupportedBackend"
RULE_CONFLICT = "RuleConflict"
SECRET_NOT_FOUND = "SecretNotFound"
INVALID_SECRET = "InvalidSecret"


# --- what a table holds --------------------------------------------------------------------------------

class Endpoint(NamedTuple):
    """One address a backend sends requests to. (A tuple: endpoints key the connection pool, and a tuple
    hashes in C.)"""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, eq=False)
class Backend:
    """A Service port resolved to endpoints; shared by every rule that names the same Service port."""

    service: str  # "namespace/name"
    port: str  # the port as the Ingress names it: a number or a name
    endpoints: tuple[Endpoint, ...]
    # Why the backend cannot have endpoints (missing Service or port) and its Problem reason; "" when it
    # resolved.
    problem: str = ""
    reason: str = ""
    _turns: Iterator[int] = field(default_factory=itertools.count, repr=False)

    @property
    def unavailable(self) -> str:
        """Why a request for this backend cannot be served, for a 503's body."""
        return self.problem or f'no ready endpoints for service "{self.service}" port {self.port}'

    def next_turn(self) -> int:
        """Whose turn it is (round-robin over requests): an index into ``endpoints``, which is not empty."""
        return next(self._turns) % len(self.endpoints)

    def rotation(self, start: int | None = None) -> list[Endpoint]:
        """The endpoints in the order to try them, from ``start`` (default: `next_turn`)."""
        if len(self.endpoints) <= 1:
            return list(self.endpoints)
        if start is None:
            start = self.next_turn()
        return [*self.endpoints[start:], *self.endpoints[:start]]


@dataclass(frozen=True, slots=True)
class Route:
    """What a request matched: a rule (or a default backend) of one Ingress."""

    backend: Backend
    ingress: str  # "namespace/name"
    host: str  # the rule's host; "" for host-less rules and default backends
    path: str  # the rule's path as written; "" for a default backend
    path_type: str  # Exact, Prefix, ImplementationSpecific; "" for a default backend


@dataclass(frozen=True, slots=True)
class Certificate:
    """A TLS certificate chain and key (PEM) from a Secret."""

    secret: str  # "namespace/name"
    ingress: str  # the Ingress that claimed it for its hosts
    chain_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """Identifies the material: equal fingerprints can share one SSL context."""
        return hashlib.sha256(self.chain_pem + b"\0" + self.key_pem).hexdigest()


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one Ingress: it becomes an Event on it. ``ingress`` is the object itself."""

    ingress: Obj
    reason: str
    message: str


class PathTable:
    """The paths of one host: exact paths and element-wise prefixes (stored without a trailing '/')."""

    __slots__ = ("exact", "prefix")

    def __init__(self, exact: Mapping[str, Route], prefix: Mapping[str, Route]) -> None:
        self.exact = dict(exact)
        self.prefix = dict(prefix)

    def match(self, path: str) -> Route | None:
        """The longest rule matching ``path`` (in normal form); Exact wins a tie."""
        route = self.exact.get(path)
        if route is not None:
            return route
        prefix = self.prefix
        if not prefix:
            return None
        candidate = path.rstrip("/") or "/"
        while True:
            route = prefix.get(candidate)
            if route is not None or candidate == "/":
                return route
            candidate = candidate[:candidate.rindex("/")] or "/"


@dataclass(frozen=True, slots=True)
class RouteTable:
    """Everything the gateway needs to route a request and pick a certificate. Never mutated after it is
    built: the gateway swaps whole tables, so a request in flight keeps the table it started with."""

    hosts: Mapping[str, PathTable] = field(default_factory=dict)
    wildcards: Mapping[str, PathTable] = field(default_factory=dict)  # "*.example.com" under "example.com"
    any_host: PathTable | None = None
    default: Route | None = None
    certificates: Mapping[str, Certificate] = field(default_factory=dict)
    wildcard_certificates: Mapping[str, Certificate] = field(default_factory=dict)
    default_certificate: Certificate | None = None

    def route(self, host: str, path: str) -> Route | None:
        """The route for a request to ``host`` (`normalize_host` form) and ``path`` (`normalize_path`
        form), or None when nothing matches and there is no default backend."""
        paths = self.hosts.get(host)
        if paths is not None:
            route = paths.match(path)
            if route is not None:
                return route
        dot = host.find(".")
        if dot > 0 and self.wildcards:
            paths = self.wildcards.get(host[dot + 1:])
            if paths is not None:
                route = paths.match(path)
                if route is not None:
                    return route
        if self.any_host is not None:
            route = self.any_host.match(path)
            if route is not None:
                return route
        return self.default

    def certificate(self, server_name: str | None) -> Certificate | None:
        """The certificate for a TLS handshake naming ``server_name`` (SNI); None means the gateway's own
        default certificate."""
        if server_name:
            name = normalize_host(server_name)
            cert = self.certificates.get(name)
            if cert is not None:
                return cert
            dot = name.find(".")
            if dot > 0:
                cert = self.wildcard_certificates.get(name[dot + 1:])
                if cert is not None:
                    return cert
        return self.default_certificate

    def all_certificates(self) -> list[Certificate]:
        certs = [*self.certificates.values(), *self.wildcard_certificates.values()]
        if self.default_certificate is not None:
            certs.append(self.default_certificate)
        return certs

    def endpoints(self) -> frozenset[Endpoint]:
        """Every endpoint some route may send to."""
        tables = [*self.hosts.values(), *self.wildcards.values()]
        if self.any_host is not None:
            tables.append(self.any_host)
        routes = [r for t in tables for r in (*t.exact.values(), *t.prefix.values())]
        if self.default is not None:
            routes.append(self.default)
        return frozenset(e for r in routes for e in r.backend.endpoints)


# --- request normal forms ------------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def normalize_host(host: str) -> str:
    """A Host header (or SNI name) as rules are matched: lower case, without port and trailing dot.
    IPv6 literals keep their brackets. (Cached: the same few hosts come again and again.)"""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[:end + 1] if end > 0 else host
    colon = host.find(":")
    if colon >= 0:
        host = host[:colon]
    return host.rstrip(".")


def normalize_path(path: str) -> str | None:
    """The path a request is matched on: percent-decoded, ``.`` and ``..`` resolved, slashes merged; a
    trailing ``/`` is kept. None when the path is not absolute or climbs above the root (a 400)."""
    if not path.startswith("/"):
        return None
    if "%" not in path and "//" not in path and "/." not in path:
        return path
    if "%" in path:
        path = unquote(path, errors="surrogateescape")
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(segment)
    trailing = path.endswith(("/", "/.", "/..")) and segments
    return "/" + "/".join(segments) + ("/" if trailing else "")


def host_matches(pattern: str, host: str) -> bool:
    """Whether a rule host (maybe ``*.``-prefixed) matches a request host in normal form."""
    if pattern.startswith("*."):
        dot = host.find(".")
        return dot > 0 and host[dot + 1:] == pattern[2:]
    return pattern == host


def prefix_key(path: str) -> str:
    """The form a Prefix path is stored and looked up in: no trailing '/', except the root itself."""
    return path.rstrip("/") or "/"


# --- building --------------------------------------------------------------------------------------

class Cluster(Protocol):
    """The objects a table is built from (informer caches in production, dicts in tests)."""

    def service(self, namespace: str, name: str) -> Obj | None: ...

    def endpoint_slices(self, namespace: str, service: str) -> Sequence[Obj]: ...

    def secret(self, namespace: str, name: str) -> Obj | None: ...


@dataclass(frozen=True, slots=True)
class Build:
    table: RouteTable
    problems: tuple[Problem, ...]


def build_routes(ingresses: Iterable[Obj], cluster: Cluster) -> Build:
    """The table for ``ingresses`` (already filtered to our class) over ``cluster``; see the module doc."""
    builder = _Builder(cluster)
    for ingress in sorted(ingresses, key=age_key):
        builder.add(ingress)
    return builder.finish()


def references(ingresses: Iterable[Obj]) -> tuple[frozenset[str], frozenset[str]]:
    """The Services and Secrets (``namespace/name``) that ``ingresses`` name: only changes to these can
    change the table."""
    services: set[str] = set()
    secrets: set[str] = set()
    for ingress in ingresses:
        namespace = str((ingress.get("metadata") or {}).get("namespace") or "")
        spec = ingress.get("spec") or {}
        backends = [spec.get("defaultBackend")]
        for rule in _dicts(spec.get("rules")):
            http = rule.get("http")
            backends += [p.get("backend") for p in _dicts(http.get("paths") if isinstance(http, dict) else None)]
        for backend in backends:
            service = backend.get("service") if isinstance(backend, dict) else None
            if isinstance(service, dict) and service.get("name"):
                services.add(f"{namespace}/{service['name']}")
        secrets.update(f"{namespace}/{t['secretName']}" for t in _dicts(spec.get("tls")) if t.get("secretName"))
    return frozenset(services), frozenset(secrets)


def age_key(obj: Obj) -> tuple[str, str, str]:
    """Oldest first: creationTimestamp (RFC 3339 in UTC sorts as text), then namespace/name."""
    metadata = obj.get("metadata") or {}
    return (str(metadata.get("creationTimestamp") or ""), str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""))


def ingress_key(obj: Obj) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace') or ''}/{metadata.get('name') or ''}"


_Claim = tuple[str, str, str]  # (host, path type, path key)


class _Builder:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.backends: dict[tuple[str, str, str], Backend] = {}
        self.problems: list[Problem] = []
        self.claims: dict[_Claim, Route] = {}
        self.default: Route | None = None
        self.certs: dict[str, Certificate] = {}
        self.default_cert: Certificate | None = None

    # -- one Ingress --

    def add(self, ingress: Obj) -> None:
        spec = ingress.get("spec") or {}
        key = ingress_key(ingress)
        default = spec.get("defaultBackend")
        if isinstance(default, dict):
            backend = self.backend(ingress, default)
            if self.default is None:
                self.default = Route(backend, key, "", "", "")
            elif self.default.ingress != key:
                self.problem(ingress, RULE_CONFLICT, f"the default backend is already defined in ingress "
                             f"{self.default.ingress}; this one is ignored")
        for rule in _dicts(spec.get("rules")):
            host = normalize_host(str(rule.get("host") or ""))
            http = rule.get("http")
            for item in _dicts(http.get("paths") if isinstance(http, dict) else None):
                self.add_path(ingress, key, host, item)
        for tls in _dicts(spec.get("tls")):
            self.add_tls(ingress, key, tls)

    def add_path(self, ingress: Obj, key: str, host: str, item: Obj) -> None:
        path_type = str(item.get("pathType") or IMPLEMENTATION_SPECIFIC)
        path = str(item.get("path") or "")
        if path_type == EXACT:
            claim: _Claim = (host, EXACT, path)
        else:
            claim = (host, PREFIX, prefix_key(path or "/"))
        backend_spec = item.get("backend")
        route = Route(self.backend(ingress, backend_spec if isinstance(backend_spec, dict) else {}),
                      key, host, path, path_type)
        taken = self.claims.get(claim)
        if taken is None:
            self.claims[claim] = route
            return
        where = "this ingress" if taken.ingress == key else f"ingress {taken.ingress}"
        self.problem(ingress, RULE_CONFLICT, f'host "{host or "*"}" and path "{path or "/"}" ({claim[1]}) '
                     f"is already defined in {where}; this rule is ignored")

    def add_tls(self, ingress: Obj, key: str, tls: Obj) -> None:
        name = str(tls.get("secretName") or "")
        hosts = [normalize_host(str(h)) for h in tls.get("hosts") or [] if h]
        if not name:
            # Kubernetes allows it ("SNI routing only"): the hosts keep the default certificate.
            return
        cert = self.certificate(ingress, key, name)
        if cert is None:
            return
        if not hosts:
            if self.default_cert is None:
                self.default_cert = cert
            elif self.default_cert.secret != cert.secret:
                self.problem(ingress, RULE_CONFLICT, f"the default certificate is already set by ingress "
                             f"{self.default_cert.ingress} (secret {self.default_cert.secret}); secret {name} "
                             "is not used for it")
            return
        for host in hosts:
            taken = self.certs.get(host)
            if taken is None:
                self.certs[host] = cert
            elif taken.secret != cert.secret:
                self.problem(ingress, RULE_CONFLICT, f'TLS host "{host}" is already served with secret '
                             f"{taken.secret} by ingress {taken.ingress}; secret {name} is not used for it")

    # -- lookups --

    def backend(self, ingress: Obj, spec: Obj) -> Backend:
        namespace = str((ingress.get("metadata") or {}).get("namespace") or "")
        service = spec.get("service")
        if not isinstance(service, dict):
            resource = spec.get("resource") or {}
            what = f"{resource.get('kind', '?')} {resource.get('name', '?')}" if isinstance(resource, dict) else "?"
            message = f"resource backends are not supported ({what}); requests for it get 503"
            self.problem(ingress, UNSUPPORTED_BACKEND, message)
            return Backend("", "", (), message, UNSUPPORTED_BACKEND)
        name = str(service.get("name") or "")
        port_spec = service.get("port") or {}
        port_ref = str(port_spec.get("number") or port_spec.get("name") or "") if isinstance(port_spec, dict) else ""
        cache_key = (namespace, name, port_ref)
        backend = self.backends.get(cache_key)
        if backend is None:
            backend = self.backends[cache_key] = self.resolve(namespace, name, port_ref)
        if backend.problem:
            self.problem(ingress, backend.reason, backend.problem)
        return backend

    def resolve(self, namespace: str, name: str, port_ref: str) -> Backend:
        svc_key = f"{namespace}/{name}"
        svc = self.cluster.service(namespace, name)
        if svc is None:
            return Backend(svc_key, port_ref, (), f'service "{svc_key}" not found', SERVICE_NOT_FOUND)
        spec = svc.get("spec") or {}
        service_port = _service_port(spec, port_ref)
        if service_port is None:
            which = f"port {port_ref}" if port_ref.isdigit() else f'a port named "{port_ref}"'
            return Backend(svc_key, port_ref, (), f'service "{svc_key}" has no {which}', PORT_NOT_FOUND)
        if spec.get("type") == "ExternalName":
            external = str(spec.get("externalName") or "").rstrip(".")
            service_number = int(service_port.get("port") or 0)
            return Backend(svc_key, port_ref,
                           (Endpoint(external, service_number),) if external and service_number else ())
        port_name = str(service_port.get("name") or "")
        endpoints: dict[Endpoint, None] = {}  # ordered and without repeats (an endpoint moving between slices)
        for slice_ in self.cluster.endpoint_slices(namespace, name):
            if slice_.get("addressType") not in ("IPv4", "IPv6", "FQDN"):
                continue
            number = _slice_port(slice_, port_name)
            if number is None:
                continue  # this slice does not carry the port (yet)
            for endpoint in _dicts(slice_.get("endpoints")):
                addresses = endpoint.get("addresses") or []
                conditions = endpoint.get("conditions") or {}
                if addresses and conditions.get("ready") is not False:
                    endpoints[Endpoint(str(addresses[0]), number)] = None
        return Backend(svc_key, port_ref, tuple(sorted(endpoints, key=_endpoint_order)))

    def certificate(self, ingress: Obj, key: str, name: str) -> Certificate | None:
        namespace = str((ingress.get("metadata") or {}).get("namespace") or "")
        secret = self.cluster.secret(namespace, name)
        where = f"{namespace}/{name}"
        if secret is None:
            self.problem(ingress, SECRET_NOT_FOUND, f'secret "{where}" not found (or not of type '
                         f"{TLS_SECRET_TYPE}); its hosts get the default certificate")
            return None
        data = secret.get("data") or {}
        try:
            chain = base64.b64decode(data.get("tls.crt") or "", validate=True)
            private = base64.b64decode(data.get("tls.key") or "", validate=True)
        except (binascii.Error, TypeError):
            chain = private = b""
        if not chain or not private:
            self.problem(ingress, INVALID_SECRET, f'secret "{where}" has no tls.crt and tls.key; its hosts get '
                         "the default certificate")
            return None
        return Certificate(where, key, chain, private)

    def problem(self, ingress: Obj, reason: str, message: str) -> None:
        self.problems.append(Problem(ingress, reason, message))

    # -- the table --

    def finish(self) -> Build:
        exact: dict[str, dict[str, Route]] = {}
        prefix: dict[str, dict[str, Route]] = {}
        for (host, path_type, path), route in self.claims.items():
            (exact if path_type == EXACT else prefix).setdefault(host, {})[path] = route
            exact.setdefault(host, {})
            prefix.setdefault(host, {})
        tables = {host: PathTable(exact[host], prefix[host]) for host in exact}
        any_host = tables.pop("", None)
        hosts = {h: t for h, t in tables.items() if not h.startswith("*.")}
        wildcards = {h[2:]: t for h, t in tables.items() if h.startswith("*.")}
        certs = {h: c for h, c in self.certs.items() if not h.startswith("*.")}
        wildcard_certs = {h[2:]: c for h, c in self.certs.items() if h.startswith("*.")}
        table = RouteTable(hosts, wildcards, any_host, self.default, certs, wildcard_certs, self.default_cert)
        return Build(table, _unique(self.problems))


def _service_port(spec: Obj, port_ref: str) -> Obj | None:
    for port in _dicts(spec.get("ports")):
        if port_ref.isdigit():
            if str(port.get("port")) == port_ref:
                return port
        elif str(port.get("name") or "") == port_ref:
            return port
    return None


def _slice_port(slice_: Obj, port_name: str) -> int | None:
    for port in _dicts(slice_.get("ports")):
        if str(port.get("name") or "") == port_name and (port.get("protocol") or "TCP") == "TCP":
            number = port.get("port")
            return int(number) if isinstance(number, int) and number > 0 else None
    return None


def _endpoint_order(endpoint: Endpoint) -> tuple[str, int]:
    return (endpoint.host, endpoint.port)


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _unique(problems: list[Problem]) -> tuple[Problem, ...]:
    seen: set[tuple[str, str, str]] = set()
    out: list[Problem] = []
    for p in problems:
        mark = (ingress_key(p.ingress), p.reason, p.message)
        if mark not in seen:
            seen.add(mark)
            out.append(p)
    return tuple(out)
