"""What one kubelet is told: its node, its folders, its runtime, and the knobs Kubernetes' KubeletConfiguration
has for the parts kubelite implements.

Every duration is in seconds (floats, so that tests can run a node on a fast clock). The defaults are
Kubernetes' own: a crashing container is restarted after 10 s, doubling up to 5 min, and the back-off is
forgotten once a container has run for 10 min; the node Lease lasts 40 s and is renewed every 10 s; node
status is posted every 10 s when it changed and at least every 5 min; 110 pods per node.

The crash-loop and image-pull back-offs are configurable per node (``crashloop_backoff_initial``,
``crashloop_backoff_max``), which upstream users have long asked for (kubernetes/kubernetes#57291).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from kubelite import __version__
from kubelite.kubelet.paths import AgentPaths

# The Kubernetes minor this kubelet speaks, spelt as the API server spells its own version.
KUBELET_VERSION = f"v1.37.0+kubelite-{__version__}"
DEFAULT_MAX_PODS = 110
MEBIBYTE = 1024 * 1024


@dataclass
class KubeletConfig:
    """The configuration of one kubelet. ``node_name`` and ``paths`` are required; the rest has defaults."""

    node_name: str
    paths: AgentPaths
    # The runtime's gRPC unix socket; None means ``paths.runtime_socket``.
    runtime_socket: Path | None = None
    # The node's InternalIP; None means the address of the interface that routes to the outside (or
    # 127.0.0.1 on a machine without a route).
    node_ip: str | None = None
    hostname: str = field(default_factory=socket.gethostname)
    node_labels: dict[str, str] = field(default_factory=dict)
    # Taints the Node is registered with (Node.spec.taints entries), as --register-with-taints.
    register_with_taints: list[dict[str, str]] = field(default_factory=list)
    max_pods: int = DEFAULT_MAX_PODS
    # Where pod cgroups go: ``<cgroup_root>/<qos class>/pod<uid>`` (Guaranteed pods directly under the root),
    # the kubelet's cgroupfs layout; a relative root is taken from the runtime's own cgroup. Empty leaves the
    # choice to the runtime.
    cgroup_root: str = ""
    # The port the kubelet's own HTTPS endpoint listens on (Node.status.daemonEndpoints).
    kubelet_port: int = 10250

    # Pod DNS (dnsPolicy ClusterFirst): the cluster DNS servers and domain; the node's resolv.conf for
    # dnsPolicy Default (and ClusterFirst when no cluster DNS is configured).
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    resolv_conf: Path = Path("/etc/resolv.conf")

    # Restart back-off of crashing containers (CrashLoopBackOff) and of failing image pulls
    # (ImagePullBackOff): the first delay, the cap, and how long a container must run (or a pull must
    # not fail again) before the delay starts from the beginning again.
    crashloop_backoff_initial: float = 10.0
    crashloop_backoff_max: float = 300.0
    backoff_reset: float = 600.0
    image_pull_backoff_initial: float = 10.0
    image_pull_backoff_max: float = 300.0

    # Container log files (the runtime writes them; these are handed to it by whoever starts it).
    container_log_max_size: int = 10 * MEBIBYTE
    container_log_max_files: int = 5

    # How often each pod worker re-syncs its pod when nothing happened (Kubernetes' syncFrequency is 1 min;
    # kubelite's runtime reports no events, so the relist below is what notices exits quickly).
    sync_period: float = 10.0
    # How often the runtime's containers are relisted to notice state changes (PLEG's relist period).
    pleg_period: float = 1.0
    # How often pods that no longer exist are looked for among the runtime's sandboxes and containers.
    housekeeping_period: float = 2.0
    runtime_request_timeout: float = 120.0

    node_status_update_period: float = 10.0
    node_status_report_period: float = 300.0
    lease_duration_seconds: int = 40
    # Wait for the node IPAM controller to give the node a spec.podCIDR before the node is Ready and pods
    # that need a network are started.
    wait_for_pod_cidr: bool = True

    # Hard eviction thresholds, used for allocatable and the pressure conditions.
    eviction_memory_available: int = 100 * MEBIBYTE
    eviction_nodefs_available_percent: float = 10.0
    # The node reports PIDPressure when fewer PIDs than this share of pid_max are free (0 disables it,
    # as Kubernetes does unless pid.available is configured).
    eviction_pid_available_percent: float = 0.0

    def __post_init__(self) -> None:
        if not self.node_name:
            raise ValueError("node_name is required")
        for name in ("crashloop_backoff_initial", "image_pull_backoff_initial", "sync_period", "pleg_period",
                     "housekeeping_period", "node_status_update_period"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.crashloop_backoff_max < self.crashloop_backoff_initial:
            raise ValueError("crashloop_backoff_max must not be smaller than crashloop_backoff_initial")
        if self.image_pull_backoff_max < self.image_pull_backoff_initial:
            raise ValueError("image_pull_backoff_max must not be smaller than image_pull_backoff_initial")
        if self.max_pods < 1:
            raise ValueError("max_pods must be at least 1")

    @property
    def socket_path(self) -> Path:
        return self.runtime_socket or self.paths.runtime_socket

    @property
    def lease_renew_interval(self) -> float:
        """A quarter of the lease's duration, as the kubelet's nodelease controller renews."""
        return self.lease_duration_seconds / 4
