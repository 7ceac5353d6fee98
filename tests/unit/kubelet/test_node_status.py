"""The Node's status from machine facts (pure), and parsing the host's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubelite.kubelet.config import KUBELET_VERSION, KubeletConfig
from kubelite.kubelet.node import Health, Machine, new_lease, new_node, node_status, parse_meminfo, parse_os_release
from kubelite.kubelet.paths import AgentPaths

CONFIG = KubeletConfig(node_name="n1", paths=AgentPaths(Path("/tmp/n1")), hostname="host1",
                       node_labels={"zone": "a"}, register_with_taints=[{"key": "k", "effect": "NoSchedule"}])
MACHINE = Machine(cpus=2, memory_total=4 * 2**30, memory_available=3 * 2**30, fs_total=50 * 2**30,
                  fs_available=20 * 2**30, boot_id="b", kernel_version="6.1", os_image="Debian GNU/Linux 12 (bookworm)")


HEALTHY = Health()


def status(machine: Machine = MACHINE, health: Health = HEALTHY, old: list[dict[str, str]] | None = None,
           now: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
    return node_status(CONFIG, machine, health=health, host_ip="10.0.0.1", runtime_name="kubelite-process",
                       runtime_version="0.1.0", images=[], old_conditions=old or [], now=now)


def test_parse_host_files() -> None:
    assert parse_meminfo("MemTotal:        8000 kB\nMemAvailable:    6000 kB\nHugePages_Total:       0\n") == {
        "MemTotal": 8_192_000, "MemAvailable": 6_144_000, "HugePages_Total": 0}
    assert parse_os_release('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12"\n# x\n')["PRETTY_NAME"] == \
        "Debian GNU/Linux 12"


def test_capacity_allocatable_and_info() -> None:
    s = status()
    assert s["capacity"] == {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "50Gi",
                             "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    assert s["allocatable"]["memory"] == "3996Mi"
    assert s["allocatable"]["ephemeral-storage"] == str(45 * 2**30)
    assert s["nodeInfo"]["containerRuntimeVersion"] == "kubelite-process://0.1.0"
    assert s["nodeInfo"]["kubeletVersion"] == KUBELET_VERSION
    assert s["addresses"] == [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "host1"}]
    assert s["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}


def test_conditions_and_their_times() -> None:
    s = status()
    conds = {c["type"]: c for c in s["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["reason"] == "KubeletReady"
    assert conds["MemoryPressure"]["reason"] == "KubeletHasSufficientMemory"
    assert conds["DiskPressure"]["message"] == "kubelet has no disk pressure"
    assert conds["PIDPressure"]["reason"] == "KubeletHasSufficientPID"
    later = status(old=s["conditions"], now="2024-01-01T00:01:00Z")
    ready = next(c for c in later["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert ready["lastHeartbeatTime"] == "2024-01-01T00:01:00Z"


def test_pressure_and_not_ready() -> None:
    low = Machine(cpus=2, memory_total=4 * 2**30, memory_available=50 * 2**20, fs_total=100, fs_available=5)
    conds = {c["type"]: c for c in status(low, Health(runtime_error="dial unix: no such file",
                                                      network_ready=False))["conditions"]}
    assert conds["MemoryPressure"]["status"] == "True"
    assert conds["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert conds["DiskPressure"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "KubeletNotReady"
    assert conds["Ready"]["message"].startswith("container runtime is down: dial unix: no such file, container "
                                                "runtime network not ready: NetworkReady=false")


def test_new_node_and_lease() -> None:
    node = new_node(CONFIG)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "n1" and labels["kubernetes.io/os"] == "linux" and labels["zone"] == "a"
    assert node["spec"]["taints"] == [{"key": "k", "effect": "NoSchedule"}]
    lease = new_lease("n1", "uid-1", 40, "2024-01-01T00:00:00.000000Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["spec"] == {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                             "renewTime": "2024-01-01T00:00:00.000000Z"}
    assert lease["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "n1",
                                                     "uid": "uid-1"}]


def test_machine_read_works_on_this_host(tmp_path: Path) -> None:
    machine = Machine.read(tmp_path / "not" / "yet")
    assert machine.cpus >= 1 and machine.memory_total > 0 and machine.fs_total > 0
