"""cgroups: finding and reading a container's cgroups (v1, v2, hybrid)."""

from __future__ import annotations

from pathlib import Path

from kubelite.kubelet.runtime import cgroups

MOUNTINFO_HYBRID = """\
25 1 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/cpuset rw shared:16 - cgroup cgroup rw,cpuset,clone_children
40 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
"""


def test_mountinfo_hierarchies() -> None:
    got = cgroups.parse_mountinfo(MOUNTINFO_HYBRID)
    assert got == {
        "": Path("/sys/fs/cgroup/unified"),
        "name=systemd": Path("/sys/fs/cgroup/systemd"),
        "cpu": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "cpuacct": Path("/sys/fs/cgroup/cpu,cpuacct"),
        "memory": Path("/sys/fs/cgroup/memory"),
        "cpuset": Path("/sys/fs/cgroup/cpuset"),
    }


def test_proc_cgroup_to_dirs() -> None:
    proc = cgroups.parse_proc_cgroup("4:memory:/pods/c1\n2:cpu,cpuacct:/pods/c1\n1:name=systemd:/x\n0::/pods/c1\n")
    assert proc == {"memory": "/pods/c1", "cpu": "/pods/c1", "cpuacct": "/pods/c1", "name=systemd": "/x",
                    "": "/pods/c1"}
    dirs = cgroups.dirs_of(proc, cgroups.parse_mountinfo(MOUNTINFO_HYBRID))
    assert dirs["memory"] == Path("/sys/fs/cgroup/memory/pods/c1")
    assert dirs[""] == Path("/sys/fs/cgroup/unified/pods/c1")


def test_flat_keyed_files() -> None:
    assert cgroups.parse_flat_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == {
        "oom_kill_disable": 0, "under_oom": 0, "oom_kill": 2}


def test_v1_stats_and_oom(tmp_path: Path) -> None:
    mem, cpu = tmp_path / "memory", tmp_path / "cpuacct"
    mem.mkdir()
    cpu.mkdir()
    (cpu / "cpuacct.usage").write_text("123456789\n")
    (mem / "memory.usage_in_bytes").write_text("1000000\n")
    (mem / "memory.stat").write_text("cache 10\ntotal_inactive_file 300000\ntotal_rss 500000\n")
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    dirs = {"memory": mem, "cpuacct": cpu}
    assert cgroups.read_stats(dirs) == cgroups.CgroupStats(cpu_usage_ns=123456789, memory_usage=1000000,
                                                           working_set=700000, rss=500000)
    assert cgroups.oom_kills(dirs) == 1


def test_v2_stats_and_oom(tmp_path: Path) -> None:
    (tmp_path / "cpu.stat").write_text("usage_usec 2000\nuser_usec 1500\n")
    (tmp_path / "memory.current").write_text("4096\n")
    (tmp_path / "memory.stat").write_text("anon 1024\ninactive_file 1000\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    dirs = {"": tmp_path}
    assert cgroups.read_stats(dirs) == cgroups.CgroupStats(cpu_usage_ns=2_000_000, memory_usage=4096,
                                                           working_set=3096, rss=1024)
    assert cgroups.oom_kills(dirs) == 1


def test_a_gone_cgroup_has_no_stats(tmp_path: Path) -> None:
    assert cgroups.read_stats({"memory": tmp_path / "gone", "cpuacct": tmp_path / "gone"}) is None
    assert cgroups.oom_kills({"memory": tmp_path / "gone"}) == 0
