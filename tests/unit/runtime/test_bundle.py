"""bundle: the OCI spec of a container, command and user resolution."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.kubelet.runtime import bundle
from kubelite.kubelet.runtime.bundle import (
    ContainerSpec,
    ImageDefaults,
    MountSpec,
    Resources,
    SandboxSpec,
    Security,
    SpecError,
    User,
)

ALL_CAPS = bundle.all_capabilities((1 << 41) - 1)
SANDBOX = SandboxSpec(
    hostname="web-0",
    netns_path="/run/netns/kubelite-abc",
    ipc_ns_path="/sb/ns/ipc",
    uts_ns_path="/sb/ns/uts",
    shm_path="/sb/shm",
    files=(("/etc/hosts", "/sb/hosts"), ("/etc/resolv.conf", "/sb/resolv.conf"), ("/etc/hostname", "/sb/hostname")),
)
IMAGE = ImageDefaults(entrypoint=("/entry",), cmd=("serve",), env=("PATH=/img/bin", "A=image"), working_dir="/app")


def spec(container: ContainerSpec | None = None, sandbox: SandboxSpec = SANDBOX, **kw: Any) -> dict[str, Any]:
    return bundle.build_spec(
        container or ContainerSpec(name="c"),
        kw.pop("image", IMAGE),
        sandbox,
        user=kw.pop("user", User(0, 0, (0,))),
        cgroups_path="kubelite/sb/c1",
        all_caps=ALL_CAPS,
        **kw,
    )


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        pytest.param((), (), ["/entry", "serve"], id="image-defaults"),
        pytest.param(("sh", "-c"), (), ["sh", "-c"], id="command-drops-cmd"),
        pytest.param((), ("x", "y"), ["/entry", "x", "y"], id="args-replace-cmd"),
        pytest.param(("sh",), ("-c", "echo"), ["sh", "-c", "echo"], id="command-and-args"),
    ],
)
def test_resolve_command(command: tuple[str, ...], args: tuple[str, ...], expected: list[str]) -> None:
    assert bundle.resolve_command(command, args, IMAGE.entrypoint, IMAGE.cmd) == expected


def test_no_command_at_all_is_an_error() -> None:
    with pytest.raises(SpecError, match="no command specified"):
        bundle.resolve_command((), (), (), ())


def test_env_merges_defaults_image_and_container_in_place() -> None:
    c = ContainerSpec(name="c", env=(("A", "container"), ("B", "b")))
    env = spec(c)["process"]["env"]
    assert env == ["PATH=/img/bin", "HOSTNAME=web-0", "A=container", "B=b"]


def test_tty_adds_term() -> None:
    s = spec(ContainerSpec(name="c", tty=True))
    assert s["process"]["terminal"] is True
    assert "TERM=xterm" in s["process"]["env"]


def test_cwd_from_container_then_image_then_root() -> None:
    assert spec(ContainerSpec(name="c", working_dir="/w"))["process"]["cwd"] == "/w"
    assert spec()["process"]["cwd"] == "/app"
    assert spec(image=ImageDefaults(cmd=("x",)))["process"]["cwd"] == "/"


PASSWD = "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
GROUP = "root:x:0:\nwebgrp:x:1001:\nextra:x:2000:web,other\nstaff:x:50:\n"


@pytest.mark.parametrize(
    ("image_user", "kw", "expected"),
    [
        pytest.param("", {}, User(0, 0, (0,)), id="root-by-default"),
        pytest.param("web", {}, User(1000, 1001, (1001, 2000)), id="name"),
        pytest.param("1000", {}, User(1000, 1001, (1001, 2000)), id="uid-in-passwd"),
        pytest.param("4242", {}, User(4242, 0, (0,)), id="uid-not-in-passwd"),
        pytest.param("web:staff", {}, User(1000, 50, (50, 2000)), id="name-and-group-name"),
        pytest.param("1000:7", {}, User(1000, 7, (7, 2000)), id="numbers"),
        pytest.param("web", {"run_as_user": 65534}, User(65534, 65534, (65534,)), id="run-as-user-wins"),
        pytest.param("web", {"run_as_group": 3}, User(1000, 3, (3, 2000)), id="run-as-group-overrides"),
        pytest.param("", {"run_as_user": 5, "supplemental_groups": (9, 5)}, User(5, 0, (0, 9, 5)), id="supplemental"),
    ],
)
def test_resolve_user(image_user: str, kw: dict[str, Any], expected: User) -> None:
    assert bundle.resolve_user(image_user, passwd=PASSWD, group=GROUP, **kw) == expected


@pytest.mark.parametrize("user", ["ghost", "web:nogroup"])
def test_unknown_names_are_errors(user: str) -> None:
    with pytest.raises(SpecError, match="unable to find"):
        bundle.resolve_user(user, passwd=PASSWD, group=GROUP)


def test_user_goes_into_the_process() -> None:
    assert spec(user=User(1000, 1001, (1001, 2000)))["process"]["user"] == {
        "uid": 1000,
        "gid": 1001,
        "additionalGids": [1001, 2000],
    }


def test_default_capabilities_and_add_drop() -> None:
    caps = spec()["process"]["capabilities"]
    assert caps["bounding"] == list(bundle.DEFAULT_CAPABILITIES) == caps["effective"] == caps["permitted"]
    sec = Security(add_capabilities=("NET_ADMIN", "CAP_SYS_TIME"), drop_capabilities=("kill", "MKNOD"))
    got = bundle.capabilities(sec, ALL_CAPS)
    assert "CAP_NET_ADMIN" in got and "CAP_SYS_TIME" in got
    assert "CAP_KILL" not in got and "CAP_MKNOD" not in got


def test_drop_all_then_add_one() -> None:
    sec = Security(add_capabilities=("NET_BIND_SERVICE",), drop_capabilities=("ALL",))
    assert bundle.capabilities(sec, ALL_CAPS) == ["CAP_NET_BIND_SERVICE"]


def test_add_all_then_drop_one() -> None:
    got = bundle.capabilities(Security(add_capabilities=("ALL",), drop_capabilities=("CHOWN",)), ALL_CAPS)
    assert len(got) == len(ALL_CAPS) - 1 and "CAP_CHOWN" not in got


def test_namespaces_join_the_pod() -> None:
    ns = spec()["linux"]["namespaces"]
    assert {"type": "mount"} in ns and {"type": "pid"} in ns
    assert {"type": "ipc", "path": "/sb/ns/ipc"} in ns
    assert {"type": "uts", "path": "/sb/ns/uts"} in ns
    assert {"type": "network", "path": "/run/netns/kubelite-abc"} in ns
    # The hostname lives in the shared UTS namespace already.
    assert "hostname" not in spec()


def test_host_namespaces() -> None:
    s = spec(sandbox=SandboxSpec(hostname="node", host_network=True, host_pid=True, host_ipc=True))
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["mount"]
    assert "hostname" not in s
    shm = next(m for m in s["mounts"] if m["destination"] == "/dev/shm")
    assert shm["source"] == "/dev/shm"


def test_a_new_uts_namespace_gets_the_hostname() -> None:
    s = spec(sandbox=SandboxSpec(hostname="solo"))
    assert s["hostname"] == "solo"
    assert {"type": "uts"} in s["linux"]["namespaces"]


def test_default_mounts_and_pod_files() -> None:
    mounts = {m["destination"]: m for m in spec()["mounts"]}
    assert list(mounts)[:6] == ["/proc", "/dev", "/dev/pts", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
    assert "ro" in mounts["/sys"]["options"] and "ro" in mounts["/sys/fs/cgroup"]["options"]
    assert mounts["/dev/shm"] == {"destination": "/dev/shm", "type": "bind", "source": "/sb/shm",
                                  "options": ["rbind", "rprivate", "rw"]}
    assert mounts["/etc/hosts"]["source"] == "/sb/hosts"
    assert mounts["/etc/resolv.conf"]["source"] == "/sb/resolv.conf"
    assert mounts["/etc/hostname"]["source"] == "/sb/hostname"


def test_container_mounts_are_binds_and_replace_defaults() -> None:
    c = ContainerSpec(
        name="c",
        mounts=(
            MountSpec("/data", "/host/data", readonly=True, propagation="HOST_TO_CONTAINER"),
            MountSpec("/etc/hosts", "/kubelet/etc-hosts"),
            MountSpec("/shared/", "/host/shared", propagation="BIDIRECTIONAL"),
        ),
    )
    mounts = spec(c)["mounts"]
    by_dest = {m["destination"]: m for m in mounts}
    assert by_dest["/data"]["options"] == ["rbind", "rslave", "ro"]
    assert by_dest["/shared/"]["options"] == ["rbind", "rshared", "rw"]
    assert [m["source"] for m in mounts if m["destination"] == "/etc/hosts"] == ["/kubelet/etc-hosts"]


def test_relative_mount_paths_are_refused() -> None:
    with pytest.raises(SpecError, match="not absolute"):
        spec(ContainerSpec(name="c", mounts=(MountSpec("data", "/x"),)))


def test_readonly_rootfs_and_pod_files() -> None:
    s = spec(ContainerSpec(name="c", security=Security(readonly_rootfs=True)))
    assert s["root"] == {"path": "rootfs", "readonly": True}
    hosts = next(m for m in s["mounts"] if m["destination"] == "/etc/hosts")
    assert "ro" in hosts["options"]


def test_masked_and_readonly_paths() -> None:
    s = spec()
    assert s["linux"]["maskedPaths"] == list(bundle.DEFAULT_MASKED_PATHS)
    assert s["linux"]["readonlyPaths"] == list(bundle.DEFAULT_READONLY_PATHS)
    own = spec(ContainerSpec(name="c", security=Security(masked_paths=("/proc/x",), readonly_paths=("/proc/y",))))
    assert own["linux"]["maskedPaths"] == ["/proc/x"] and own["linux"]["readonlyPaths"] == ["/proc/y"]


def test_privileged() -> None:
    dev = bundle.HostDevice(path="/dev/loop0", type="b", major=7, minor=0, file_mode=0o660, gid=6)
    s = spec(ContainerSpec(name="c", security=Security(privileged=True)), host_devices=[dev])
    assert s["process"]["capabilities"]["bounding"] == ALL_CAPS
    assert s["linux"]["maskedPaths"] == [] and s["linux"]["readonlyPaths"] == []
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert s["linux"]["devices"][0]["path"] == "/dev/loop0" and s["linux"]["devices"][0]["gid"] == 6
    sys_mount = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sys_mount["options"]


def test_unprivileged_containers_get_no_host_devices() -> None:
    dev = bundle.HostDevice(path="/dev/loop0", type="b", major=7, minor=0, file_mode=0o660)
    s = spec(host_devices=[dev])
    assert "devices" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": False, "access": "rwm"}]


def test_resources() -> None:
    r = Resources(cpu_period=100000, cpu_quota=50000, cpu_shares=512, memory_limit=64 << 20, oom_score_adj=999,
                  pids_limit=100)
    s = spec(ContainerSpec(name="c", resources=r), memory_swap=True)
    res = s["linux"]["resources"]
    assert res["cpu"] == {"shares": 512, "quota": 50000, "period": 100000}
    assert res["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert res["pids"] == {"limit": 100}
    assert s["process"]["oomScoreAdj"] == 999
    assert s["linux"]["cgroupsPath"] == "kubelite/sb/c1"


def test_no_limits_means_no_resource_sections() -> None:
    s = spec(memory_swap=True)
    assert set(s["linux"]["resources"]) == {"devices"}
    assert "oomScoreAdj" not in s["process"]
    no_swap = spec(ContainerSpec(name="c", resources=Resources(memory_limit=1 << 20)))
    assert no_swap["linux"]["resources"]["memory"] == {"limit": 1 << 20}


def test_rlimits_sysctls_and_no_new_privs() -> None:
    s = spec(ContainerSpec(name="c", security=Security(no_new_privs=True)),
             sandbox=SandboxSpec(sysctls=(("net.ipv4.ip_unprivileged_port_start", "0"),)), nofile=4096)
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}]
    assert s["process"]["noNewPrivileges"] is True
    assert s["linux"]["sysctl"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert "seccomp" not in s["linux"]  # unconfined, on purpose (see the module's docstring)


def test_all_capabilities_are_the_runtime_bounding_set() -> None:
    status = "Name:\tx\nCapPrm:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n"
    caps = bundle.all_capabilities(bundle.bounding_set(status))
    assert len(caps) == 40 and "CAP_SYS_RESOURCE" not in caps and caps[-1] == "CAP_CHECKPOINT_RESTORE"
    assert len(ALL_CAPS) == len(bundle.CAPABILITY_NAMES) == 41
