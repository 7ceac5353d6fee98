"""Which clients may ask: the server forwards any name upstream, so on a node with a public address an
unrestricted listener would be an open resolver (abused for reflection and amplification). By default only
private, shared (CGNAT), link-local and loopback sources are answered, which covers pods, nodes and Services
on usual networks; clusters on public address ranges list theirs. Others get no reply at all.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

DEFAULT_ALLOWED_CLIENTS = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "127.0.0.0/8",
    "fc00::/7", "fe80::/10", "::1/128",
)
# Distinct client addresses remembered; past that the memo starts afresh (a spoofed-source flood stays cheap).
_MEMO_SIZE = 4096


class ClientFilter:
    def __init__(self, networks: Iterable[str] = DEFAULT_ALLOWED_CLIENTS) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._memo: dict[str, bool] = {}

    def allows(self, address: str) -> bool:
        allowed = self._memo.get(address)
        if allowed is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            try:
                ip = ipaddress.ip_address(address.partition("%")[0])
            except ValueError:
                allowed = False
            else:
                allowed = any(ip in network for network in self.networks)
            self._memo[address] = allowed
        return allowed
