"""Cluster DNS (CoreDNS's place): names of Services and pods under the cluster domain, answered from
informers, and every other name forwarded to the node's resolvers. See `records` for the records served,
`run` for the lifetime, `kubedns` for the ``kube-system/kube-dns`` Service pods reach it through.
"""

from kubelite.proxy.dns.config import DNSConfig
from kubelite.proxy.dns.kubedns import (
    DEFAULT_CLUSTER_DNS_IP,
    DNSServiceConflict,
    dns_endpoints,
    ensure_dns_service,
    remove_dns_endpoints,
)
from kubelite.proxy.dns.run import run_dns

__all__ = [
    "DEFAULT_CLUSTER_DNS_IP",
    "DNSConfig",
    "DNSServiceConflict",
    "dns_endpoints",
    "ensure_dns_service",
    "remove_dns_endpoints",
    "run_dns",
]
