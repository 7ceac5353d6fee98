"""Where containers' cgroups are and what they say: usage for stats, OOM kills for exit reasons.

runc creates and fills the cgroups (from the spec's ``linux.cgroupsPath`` and ``linux.resources``); this
module only finds and reads them, for cgroup v1, v2 and the hybrid layout (v1 controllers plus an empty
v2 hierarchy, as on Debian with systemd's hybrid mode).

A cgroup is described by its directories, one per hierarchy, keyed by controller name (``memory``,
``cpuacct``, ``name=systemd`` ...) with ``""`` for the v2 hierarchy: `CgroupDirs`. runc resolves a
*relative* cgroupsPath against its own cgroup in each hierarchy and an absolute one against each
hierarchy's root; `resolve` does the same so that the runtime knows where a pod's cgroup is before any
container exists.

This module only uses the standard library: the shim reads OOM kills with it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CgroupDirs = dict[str, Path]

# Mount options of a v1 hierarchy that are not controllers.
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"}


@dataclass(frozen=True)
class CgroupStats:
    cpu_usage_ns: int
    memory_usage: int
    working_set: int
    rss: int


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` as controller -> path ("" for the v2 hierarchy)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def parse_mountinfo(text: str) -> dict[str, Path]:
    """The cgroup hierarchies of ``/proc/self/mountinfo`` as controller -> mount point ("" for v2)."""
    out: dict[str, Path] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fstype, _source, options = [*right.split(" "), "", ""][:3]
        mountpoint = Path(left.split(" ")[4].replace("\\040", " "))
        if fstype == "cgroup2":
            out.setdefault("", mountpoint)
        elif fstype == "cgroup":
            for opt in options.split(","):
                if opt in _NOT_CONTROLLERS or (not opt.startswith("name=") and "=" in opt):
                    continue
                out.setdefault(opt, mountpoint)
    return out


def hierarchies() -> dict[str, Path]:
    return parse_mountinfo(Path("/proc/self/mountinfo").read_text())


def dirs_of(proc_cgroup: dict[str, str], mounts: dict[str, Path]) -> CgroupDirs:
    """Absolute directories of the cgroups named by a parsed ``/proc/<pid>/cgroup``."""
    return {c: mounts[c] / p.lstrip("/") for c, p in proc_cgroup.items() if c in mounts}


def process_dirs(pid: int | str) -> CgroupDirs:
    """The directories of the cgroups a process is in."""
    return dirs_of(parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text()), hierarchies())


def resolve(cgroups_path: str) -> CgroupDirs:
    """The directories runc would use for ``linux.cgroupsPath``, resolved from this process."""
    mounts = hierarchies()
    if cgroups_path.startswith("/"):
        return {c: mp / cgroups_path.lstrip("/") for c, mp in mounts.items()}
    own = parse_proc_cgroup(Path("/proc/self/cgroup").read_text())
    return {c: mp / own.get(c, "/").lstrip("/") / cgroups_path for c, mp in mounts.items()}


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, memory.events, memory.oom_control)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    try:
        return parse_flat_keyed(path.read_text())
    except OSError:
        return {}


def read_stats(dirs: CgroupDirs) -> CgroupStats | None:
    """CPU time and memory of a cgroup (None if it is gone). The working set is usage minus inactive
    file pages, as cAdvisor and the kubelet compute it."""
    if "memory" in dirs or "cpuacct" in dirs:  # cgroup v1 controllers (also in the hybrid layout)
        cpu = _read_int(dirs["cpuacct"] / "cpuacct.usage") if "cpuacct" in dirs else None
        mem_dir = dirs.get("memory")
        usage = _read_int(mem_dir / "memory.usage_in_bytes") if mem_dir else None
        stat = _read_keyed(mem_dir / "memory.stat") if mem_dir else {}
        inactive, rss = stat.get("total_inactive_file", 0), stat.get("total_rss", 0)
    elif "" in dirs:
        cpu_stat = _read_keyed(dirs[""] / "cpu.stat")
        cpu = cpu_stat["usage_usec"] * 1000 if "usage_usec" in cpu_stat else None
        usage = _read_int(dirs[""] / "memory.current")
        stat = _read_keyed(dirs[""] / "memory.stat")
        inactive, rss = stat.get("inactive_file", 0), stat.get("anon", 0)
    else:
        return None
    if cpu is None and usage is None:
        return None
    usage = usage or 0
    return CgroupStats(cpu_usage_ns=cpu or 0, memory_usage=usage, working_set=max(usage - inactive, 0), rss=rss)


def oom_kills(dirs: CgroupDirs) -> int:
    """How many processes of the cgroup the kernel's OOM killer killed (v1 memory.oom_control, v2
    memory.events; both have an ``oom_kill`` counter since Linux 4.13)."""
    if "memory" in dirs:
        return _read_keyed(dirs["memory"] / "memory.oom_control").get("oom_kill", 0)
    if "" in dirs:
        return _read_keyed(dirs[""] / "memory.events").get("oom_kill", 0)
    return 0


def remove(dirs: CgroupDirs) -> None:
    """Remove empty cgroup directories (children first is the caller's business); busy or missing ones
    are left alone."""
    for d in dirs.values():
        try:
            os.rmdir(d)
        except OSError:
            pass
