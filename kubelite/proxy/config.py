"""The service proxy's settings (kube-proxy's flags, the ones that apply here)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubelite.proxy.nftables import DEFAULT_MASQUERADE_BIT, DEFAULT_TABLE
from kubelite.proxy.services import FAMILIES, IPV4, ip_family, normalize_cidr

NFTABLES = "nftables"
USERSPACE = "userspace"
MODES = (NFTABLES, USERSPACE)


@dataclass(frozen=True)
class ProxyConfig:
    """How the proxy of one node runs.

    - ``node_name``: this node (endpoints with this ``nodeName`` are local);
    - ``cluster_cidr``: the pod network(s), comma-separated: traffic from elsewhere to a ClusterIP is
      masqueraded, and pods are told from the node under ``externalTrafficPolicy: Local``;
    - ``node_ips``: the node's addresses; with ``cluster_cidr`` they decide the IP families served (IPv4
      when neither says), and the userspace proxy listens for NodePorts on them (all addresses without);
    - ``mode``: ``nftables`` (falls back to ``userspace``, loudly, where nft cannot be used) or ``userspace``;
    - ``sync_period``: at least this often every Service is recomputed and compared with what is loaded,
      and the table is checked to still exist; ``min_sync_period``: bursts of changes coalesce into at
      most one sync per this long (after a burst of two); ``full_sync_period``: how often everything is
      rewritten regardless (kube-proxy's full sync);
    - ``netns``: run ``nft`` (and the userspace proxy's sockets) in this network namespace (a name
      under /run/netns or a path), for tests and several nodes on one machine;
    - ``masquerade_all``: masquerade all traffic to ClusterIPs; ``masquerade_bit``: the packet mark bit
      used to flag traffic to masquerade;
    - ``cleanup_on_stop``: delete the table when the proxy stops (normally it stays, so that traffic keeps
      flowing while the proxy restarts).
    """

    node_name: str
    cluster_cidr: str = ""
    node_ips: tuple[str, ...] = ()
    mode: str = NFTABLES
    sync_period: float = 30.0
    min_sync_period: float = 1.0
    full_sync_period: float = 3600.0
    netns: str | None = None
    masquerade_all: bool = False
    masquerade_bit: int = DEFAULT_MASQUERADE_BIT
    table: str = DEFAULT_TABLE
    cleanup_on_stop: bool = False
    ip_families: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"proxy mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not 0 <= self.masquerade_bit <= 31:
            raise ValueError(f"masquerade bit must be within [0, 31], not {self.masquerade_bit}")
        if self.sync_period <= 0 or self.min_sync_period < 0 or self.full_sync_period <= 0:
            raise ValueError("sync periods must be positive")
        for ip in self.node_ips:
            if ip_family(ip) is None:
                raise ValueError(f"node IP {ip!r} is not an IP address")
        self.cidrs()  # validates
        if not self.ip_families:
            families = {f for f, _ in self.cidrs()} | {ip_family(ip) for ip in self.node_ips}
            object.__setattr__(self, "ip_families", tuple(f for f in FAMILIES if f in families) or (IPV4,))

    def cidrs(self, family: str | None = None) -> tuple[tuple[str, str], ...]:
        """``(family, CIDR)`` of each cluster CIDR (of ``family`` only, when given)."""
        out = []
        for text in self.cluster_cidr.split(","):
            if text.strip():
                try:
                    out.append(normalize_cidr(text))
                except ValueError:
                    raise ValueError(f"cluster CIDR {text.strip()!r} is not a network") from None
        return tuple(c for c in out if family is None or c[0] == family)

    @property
    def dual_stack(self) -> bool:
        return len(self.ip_families) > 1
