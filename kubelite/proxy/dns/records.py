"""The cluster zone: what exists at each name, per Kubernetes' DNS specification (kubernetes/dns
docs/specification.md, schema 1.1.0) and CoreDNS's ``kubernetes`` plugin where the spec leaves a choice.

Names under the cluster domain (``<zone>``, e.g. ``cluster.local``), compared case-insensitively:

- ``<zone>``: SOA and NS (``ns.dns.<zone>``, whose A/AAAA are the ``kube-system/kube-dns`` Service's IPs);
  ``dns-version.<zone>``: TXT with the schema version.
- ``<svc>.<ns>.svc.<zone>``: A/AAAA with the cluster IP(s); for a headless Service the addresses of its ready
  endpoints (the name does not exist while it has none); for an ExternalName Service a CNAME to that name.
- ``<hostname>.<svc>.<ns>.svc.<zone>``: A/AAAA of the Service's ready endpoints whose hostname (or, without
  one, dashed first address: ``10-1-2-3``) is ``<hostname>``.
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV for each named port: to the Service's name and port, or for a
  headless Service one per ready endpoint to ``<hostname>.<svc>...`` and the endpoint's port, with the
  targets' addresses in the additional section.
- ``<a-b-c-d>.<ns>.pod.<zone>``: A (AAAA for ``fd00--1``) of that IP: in ``verified`` mode only when a pod of
  ``<ns>`` has it, in ``insecure`` mode always, never in ``disabled`` mode.
- Empty non-terminals (``svc.<zone>``, ``<ns>.svc.<zone>`` of a known namespace, ``_tcp.<svc>...`` with
  named TCP ports, ...) exist with no data (RFC 8020: NXDOMAIN means nothing exists below either).

Reverse names (``in-addr.arpa``, ``ip6.arpa``) of cluster IPs, of headless Services' ready endpoints and
(``verified`` mode) of pods get PTR records; any other reverse name is not the zone's and is forwarded, as
CoreDNS's ``fallthrough in-addr.arpa ip6.arpa`` does.

A name that does not exist is NXDOMAIN and an existing name without the type asked for is NODATA
(NOERROR, empty answer), both with the zone's SOA in the authority section for negative caching. An answer
that is a CNAME names its target in `Answer.chase` so that the caller resolves it further.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from kubelite.proxy.dns.answer import Answer, servfail
from kubelite.proxy.dns.config import DEFAULT_CLUSTER_DOMAIN, DEFAULT_TTL, PodMode
from kubelite.proxy.dns.view import ClusterView, Endpoint, canonical_ip, dashed, service_ips

Obj = dict[str, Any]
RdataType = dns.rdatatype.RdataType
IN = dns.rdataclass.IN
DNS_SCHEMA_VERSION = "1.1.0"
VERSION_TTL = 28800  # what CoreDNS gives dns-version
DNS_SERVICE = ("kube-system", "kube-dns")
# SOA timers (CoreDNS's); the minimum, which bounds negative caching, is the zone's TTL.
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 7200, 1800, 86400
SRV_PRIORITY = 0
SRV_TOTAL_WEIGHT = 100
_REVERSE_ZONES = (dns.reversename.ipv4_reverse_domain, dns.reversename.ipv6_reverse_domain)


@dataclass(slots=True)
class _Node:
    """The records at one existing name: rdata by type (owner and TTL are set when answering)."""

    data: dict[RdataType, list[dns.rdata.Rdata]] = field(default_factory=dict)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    ttl: int | None = None  # None: the zone's


class Zone:
    """Answers questions about the cluster domain from a `ClusterView`; pure (no I/O, no clock)."""

    def __init__(self, view: ClusterView, *, domain: str = DEFAULT_CLUSTER_DOMAIN, ttl: int = DEFAULT_TTL,
                 pods: PodMode = "verified") -> None:
        self.view = view
        self.origin = dns.name.from_text(domain.lower())
        self.ttl = ttl
        if pods == "verified" and not view.has_pods:
            raise ValueError("pods: verified needs a view with a pod store")
        self.pods = pods
        self._ns_name = dns.name.from_text("ns.dns", self.origin)
        self._hostmaster = dns.name.from_text("hostmaster", self.origin)

    def lookup(self, qname: dns.name.Name, qtype: RdataType) -> Answer | None:
        """The answer to ``qname``/``qtype`` (class IN), or None when the name is not the zone's to answer."""
        if qname.is_subdomain(self.origin):
            if not self.view.synced:
                return servfail()
            labels = [label.lower().decode("ascii", "replace") for label in qname.relativize(self.origin).labels]
            return self._answer(qname, qtype, self._find(labels))
        if any(qname.is_subdomain(z) for z in _REVERSE_ZONES):
            node = self._reverse(qname)
            return None if node is None else self._answer(qname, qtype, node, authoritative=False)
        return None

    def generation(self) -> int | None:
        """Changes whenever any answer of the zone may have changed; None while answers are provisional
        (the caches are not filled yet). Lets callers keep rendered answers while it stays the same."""
        return self.view.serial if self.view.synced else None

    def soa(self) -> dns.rrset.RRset:
        rd = _rdata(SOA, self._ns_name, self._hostmaster, self.view.serial,
                 SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, self.ttl)
        return dns.rrset.from_rdata_list(self.origin, self.ttl, [rd])

    # --- answering -----------------------------------------------------------------------------------------

    def _answer(self, qname: dns.name.Name, qtype: RdataType, node: _Node | None,
                *, authoritative: bool = True) -> Answer:
        negative = [self.soa()] if authoritative else []
        if node is None:
            return Answer(dns.rcode.NXDOMAIN, authority=negative, authoritative=authoritative)
        ttl = self.ttl if node.ttl is None else node.ttl
        if qtype == dns.rdatatype.ANY:
            types = list(node.data)
        elif qtype in node.data:
            types = [qtype]
        elif dns.rdatatype.CNAME in node.data:
            target = node.data[dns.rdatatype.CNAME][0]
            assert isinstance(target, CNAME)
            cname = dns.rrset.from_rdata_list(qname, ttl, node.data[dns.rdatatype.CNAME])
            return Answer(dns.rcode.NOERROR, [cname], chase=target.target, authoritative=authoritative)
        else:
            return Answer(dns.rcode.NOERROR, authority=negative, authoritative=authoritative)
        answer = [dns.rrset.from_rdata_list(qname, ttl, node.data[t]) for t in types]
        additional = node.additional if dns.rdatatype.SRV in types or dns.rdatatype.NS in types else []
        return Answer(dns.rcode.NOERROR, answer, additional=list(additional), authoritative=authoritative)

    # --- the names of the zone ---------------------------------------------------------------------------

    def _find(self, labels: Sequence[str]) -> _Node | None:
        """The records at the name whose labels (leftmost first) lie below the origin; None: no such name."""
        path = list(reversed(labels))
        if not path:
            return self._apex()
        top, rest = path[0], path[1:]
        if top == "dns-version" and not rest:
            return _Node({dns.rdatatype.TXT: [_rdata(TXT, [DNS_SCHEMA_VERSION.encode()])]},
                         ttl=VERSION_TTL)
        if top == "dns" and len(rest) <= 1:
            if not rest:
                return _Node()
            return _Node(_addresses(self._dns_ips())) if rest[0] == "ns" else None
        if top == "svc":
            return self._svc_tree(rest)
        if top == "pod":
            return self._pod_tree(rest)
        return None

    def _apex(self) -> _Node:
        ns = _rdata(NS, self._ns_name)
        soa = self.soa()[0]
        glue = _address_rrsets(self._ns_name, self.ttl, self._dns_ips())
        return _Node({dns.rdatatype.SOA: [soa], dns.rdatatype.NS: [ns]}, glue)

    def _dns_ips(self) -> list[str]:
        svc = self.view.service(*DNS_SERVICE)
        return service_ips(svc) if svc is not None else []

    def _svc_tree(self, path: Sequence[str]) -> _Node | None:
        """``path`` = [ns, svc, (hostname | _proto), (_port)] below ``svc.<zone>``."""
        if not path:
            return _Node()
        namespace = path[0]
        if len(path) == 1:
            return _Node() if self.view.has_namespace(namespace) else None
        svc = self.view.service(namespace, path[1])
        if svc is None or len(path) > 4:
            return None
        name = dns.name.from_text(f"{path[1]}.{namespace}.svc", self.origin)
        if len(path) == 2:
            return self._service(svc, name)
        if _spec(svc).get("type") == "ExternalName":
            return None
        if len(path) == 3 and not path[2].startswith("_"):
            addresses = [a for ep in self.view.endpoints(svc) if ep.dns_label == path[2] for a in ep.addresses]
            return _Node(_addresses(addresses)) if addresses else None
        if not path[2].startswith("_") or (len(path) == 4 and not path[3].startswith("_")):
            return None
        proto = path[2][1:]
        port = path[3][1:] if len(path) == 4 else None
        records, additional = self._srv(svc, name, proto, port)
        if not records:
            return None
        # `_proto.svc...` only exists as the parent of the SRV names.
        return _Node({dns.rdatatype.SRV: records}, additional) if port is not None else _Node()

    def _service(self, svc: Obj, name: dns.name.Name) -> _Node | None:
        spec = _spec(svc)
        if spec.get("type") == "ExternalName":
            target = dns.name.from_text(str(spec.get("externalName") or "").rstrip(".") + ".")
            return _Node({dns.rdatatype.CNAME: [_rdata(CNAME, target)]})
        ips = service_ips(svc)
        if ips:
            return _Node(_addresses(ips))
        # Headless: the ready endpoints; with none, the name does not exist (the spec's rule).
        addresses = [a for ep in self.view.endpoints(svc) for a in ep.addresses]
        return _Node(_addresses(addresses)) if addresses else None

    def _srv(self, svc: Obj, name: dns.name.Name, proto: str,
             port_name: str | None) -> tuple[list[dns.rdata.Rdata], list[dns.rrset.RRset]]:
        """SRV rdata for the Service's named ports of protocol ``proto`` (all of them when ``port_name`` is
        None) and the targets' address records."""
        ips = service_ips(svc)
        if ips:
            ports = [int(p["port"]) for p in _spec(svc).get("ports") or []
                     if isinstance(p, dict) and isinstance(p.get("port"), int)
                     and _matches(p.get("name"), p.get("protocol"), port_name, proto)]
            records = [_srv(n, name, SRV_TOTAL_WEIGHT) for n in dict.fromkeys(ports)]
            return records, _address_rrsets(name, self.ttl, ips) if records else []
        # Headless: one record per (endpoint, port), to the endpoint's own name.
        targets: dict[tuple[str, int], Endpoint] = {}
        for ep in self.view.endpoints(svc):
            for p_name, p_proto, number in ep.ports:
                if _matches(p_name, p_proto, port_name, proto):
                    targets.setdefault((ep.dns_label, number), ep)
        weight = max(1, SRV_TOTAL_WEIGHT // max(1, len(targets)))
        records = []
        addresses: dict[dns.name.Name, list[str]] = {}
        for (label, number), ep in targets.items():
            target = dns.name.Name((label.encode(), *name.labels))
            records.append(_srv(number, target, weight))
            addresses.setdefault(target, []).extend(ep.addresses)
        additional = [rr for target, ips in addresses.items() for rr in _address_rrsets(target, self.ttl, ips)]
        return records, additional

    def _pod_tree(self, path: Sequence[str]) -> _Node | None:
        """``path`` = [ns, a-b-c-d] below ``pod.<zone>``."""
        if self.pods == "disabled":
            return _Node() if not path else None
        if not path:
            return _Node()
        namespace = path[0]
        if len(path) == 1:
            return _Node() if self.pods == "insecure" or self.view.has_namespace(namespace) else None
        if len(path) > 2:
            return None
        ip = _undash(path[1])
        if ip is None:
            return None
        if self.pods == "verified" and not any(
                _namespace(p) == namespace for p in self.view.pods_with_ip(ip)):
            return None
        return _Node(_addresses([ip]))

    # --- reverse names -------------------------------------------------------------------------------------

    def _reverse(self, qname: dns.name.Name) -> _Node | None:
        try:
            ip = canonical_ip(dns.reversename.to_address(qname))
        except (dns.exception.SyntaxError, ValueError):
            return None
        if ip is None:
            return None
        names = [dns.name.from_text(f"{_name(s)}.{_namespace(s)}.svc", self.origin)
                 for s in self.view.services_with_ip(ip)]
        names += [dns.name.from_text(f"{ep.dns_label}.{_name(s)}.{_namespace(s)}.svc", self.origin)
                  for s, ep in self.view.endpoints_with_ip(ip) if _spec(s).get("clusterIP") == "None"]
        if self.pods == "verified":
            names += [dns.name.from_text(f"{dashed(ip)}.{_namespace(p)}.pod", self.origin)
                      for p in self.view.pods_with_ip(ip)]
        if not names:
            return None
        return _Node({dns.rdatatype.PTR: [_rdata(PTR, n) for n in dict.fromkeys(names)]})


# --- helpers ---------------------------------------------------------------------------------------------

def _spec(obj: Obj) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _matches(name: Any, protocol: Any, want_name: str | None, want_proto: str) -> bool:
    """A named port of protocol ``want_proto`` (and name ``want_name`` unless None); unnamed ports have no SRV."""
    if not name or str(protocol or "TCP").lower() != want_proto:
        return False
    return want_name is None or str(name).lower() == want_name


def _rdata(cls: Callable[..., dns.rdata.Rdata], *fields: Any) -> dns.rdata.Rdata:
    """Rdata of class IN built from its fields (no text to parse; dnspython's constructors are untyped)."""
    rdtype = dns.rdatatype.from_text(cls.__name__)
    return cls(IN, rdtype, *fields)


def _srv(port: int, target: dns.name.Name, weight: int) -> dns.rdata.Rdata:
    return _rdata(SRV, SRV_PRIORITY, weight, port, target)


def _addresses(ips: Iterable[str]) -> dict[RdataType, list[dns.rdata.Rdata]]:
    """A and AAAA rdata for canonical IPs (duplicates dropped, order kept)."""
    out: dict[RdataType, list[dns.rdata.Rdata]] = {}
    for ip in dict.fromkeys(ips):
        if ":" in ip:
            out.setdefault(dns.rdatatype.AAAA, []).append(_rdata(AAAA, ip))
        else:
            out.setdefault(dns.rdatatype.A, []).append(_rdata(A, ip))
    return out


def _address_rrsets(owner: dns.name.Name, ttl: int, ips: Iterable[str]) -> list[dns.rrset.RRset]:
    return [dns.rrset.from_rdata_list(owner, ttl, rds) for rds in _addresses(ips).values()]


def _undash(label: str) -> str | None:
    """``10-1-2-3`` → ``10.1.2.3``, ``fd00--1`` → ``fd00::1`` (canonical); None when it spells no IP."""
    text = label.replace("-", ".") if label.count("-") == 3 and "--" not in label else label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
