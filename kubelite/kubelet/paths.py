"""Where a node agent keeps its files. Every part of the kubelet (runtime, images, network, volumes, logs)
takes its folders from one `AgentPaths`, so that a test can put a whole node under a temporary directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Debian's containernetworking-plugins installs here; /opt/cni/bin is where upstream's tarball goes.
DEFAULT_CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


@dataclass(frozen=True)
class AgentPaths:
    root: Path

    @property
    def images(self) -> Path:
        """Content-addressed blobs, unpacked layers and the image index."""
        return self.root / "images"

    @property
    def images_dropin(self) -> Path:
        """Tarballs placed here are imported at start (as k3s's agent/images)."""
        return self.root / "images-dropin"

    @property
    def containers(self) -> Path:
        """Runtime state: one folder per sandbox and container (OCI bundles, state files)."""
        return self.root / "containers"

    @property
    def runc_root(self) -> Path:
        """runc's --root, kept apart from other users of runc on the machine."""
        return self.root / "runc"

    @property
    def pods(self) -> Path:
        """Per-pod folders: volumes, etc-hosts, resolv.conf."""
        return self.root / "pods"

    @property
    def logs(self) -> Path:
        """Container logs in the CRI format: logs/<namespace>_<pod>_<uid>/<container>/<attempt>.log."""
        return self.root / "logs"

    @property
    def runtime_socket(self) -> Path:
        return self.root / "runtime.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_cache_dir(self) -> Path:
        return self.root / "cni" / "cache"

    @property
    def cni_ipam_dir(self) -> Path:
        """host-local IPAM's dataDir."""
        return self.root / "cni" / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        """The kubelet's own state (serving certificate, checkpoints)."""
        return self.root / "kubelet"
