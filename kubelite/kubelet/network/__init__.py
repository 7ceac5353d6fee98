"""The pod network of the kubelet: network namespaces (pyroute2) and a CNI 1.0 runtime executing plugin
binaries, with kubelite's default bridge/host-local/portmap configuration. See `podnetwork` for the
contract the container runtime uses; `cni`, `config`, `cache`, `netns` and `hostlocal` are its parts."""

from kubelite.kubelet.network.errors import (
    CniError,
    CniPluginError,
    CniTimeout,
    ConfigError,
    NetworkError,
    NetworkNotReady,
)
from kubelite.kubelet.network.podnetwork import NetworkStatus, PodNetwork, PortMapping
from kubelite.kubelet.paths import DEFAULT_CNI_BIN_DIRS

__all__ = [
    "DEFAULT_CNI_BIN_DIRS",
    "CniError",
    "CniPluginError",
    "CniTimeout",
    "ConfigError",
    "NetworkError",
    "NetworkNotReady",
    "NetworkStatus",
    "PodNetwork",
    "PortMapping",
]
