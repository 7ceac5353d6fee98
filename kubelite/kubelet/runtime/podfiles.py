"""The files a pod's containers share: /etc/hosts, /etc/resolv.conf and /etc/hostname (pure functions).

They follow the kubelet (pkg/kubelet/kubelet_pods.go ``managedHostsFileContent``) and containerd's CRI
plugin: the hosts file of a pod on the pod network names localhost, the IPv6 specials and the pod itself
(with its FQDN when it has a subdomain), then the pod's hostAliases; a hostNetwork pod gets the node's own
hosts file plus its hostAliases. resolv.conf is written from the sandbox's DNSConfig, or is the node's
when the kubelet sent none (dnsPolicy Default).
"""

from __future__ import annotations

from collections.abc import Sequence

MANAGED_HEADER = "# Kubernetes-managed hosts file.\n"
ALIASES_HEADER = "\n# Entries added by HostAliases.\n"


def cluster_domain(searches: Sequence[str], namespace: str) -> str:
    """The cluster domain read off the DNS search path (``<namespace>.svc.<domain>``), or ""."""
    prefix = f"{namespace}.svc."
    return next((s[len(prefix) :] for s in searches if s.startswith(prefix)), "")


def hosts_file(
    *,
    hostname: str,
    ips: Sequence[str],
    host_aliases: Sequence[tuple[str, Sequence[str]]] = (),
    subdomain: str = "",
    namespace: str = "",
    domain: str = "",
    host_network: bool = False,
    node_hosts: str = "",
) -> str:
    """The pod's /etc/hosts. ``node_hosts`` is the node's /etc/hosts (used for hostNetwork pods)."""
    if host_network:
        text = node_hosts if not node_hosts or node_hosts.endswith("\n") else node_hosts + "\n"
    else:
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            "fe00::0\tip6-localnet",
            "fe00::0\tip6-mcastprefix",
            "fe00::1\tip6-allnodes",
            "fe00::2\tip6-allrouters",
        ]
        names = [f"{hostname}.{subdomain}.{namespace}.svc.{domain}", hostname] if subdomain and domain else [hostname]
        lines += [f"{ip}\t" + "\t".join(names) for ip in ips if hostname]
        text = MANAGED_HEADER + "\n".join(lines) + "\n"
    if host_aliases:
        text += ALIASES_HEADER + "".join(f"{ip}\t" + "\t".join(names) + "\n" for ip, names in host_aliases)
    return text


def resolv_conf(
    *, servers: Sequence[str], searches: Sequence[str], options: Sequence[str], node_resolv: str = ""
) -> str:
    """The pod's /etc/resolv.conf: from the DNSConfig, or the node's when the DNSConfig is empty."""
    if not (servers or searches or options):
        return node_resolv
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {s}" for s in servers]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def hostname_file(hostname: str) -> str:
    return hostname + "\n"
