"""The node's own CPU time and memory, read from ``/proc``: the whole machine, as the kubelet's node stats.

Kubernetes' kubelet reads the node from the root cgroup through cAdvisor; ``/proc`` says the same on every
cgroup layout (v1, v2, hybrid) and inside containers that see only part of the cgroup tree:

- CPU time: the busy ticks of ``/proc/stat``'s ``cpu`` line (user, nice, system, irq, softirq, steal; guest
  time is already counted in user), in nanoseconds;
- memory: usage is ``MemTotal - MemFree`` (page cache included, as a cgroup's usage), the working set is
  usage minus ``Inactive(file)`` (the page cache the kernel reclaims first: cAdvisor's definition), RSS is
  ``AnonPages``, and available is ``MemTotal`` minus the working set (the kubelet's ``availableBytes``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
# Fields of /proc/stat's cpu line, in order; the busy ones are summed.
_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_BUSY = ("user", "nice", "system", "irq", "softirq", "steal")


@dataclass(frozen=True, slots=True)
class HostMemory:
    """Bytes; see the module's docstring for what each one counts."""

    total: int
    usage: int
    working_set: int
    rss: int
    available: int


def cpu_time_ns(proc: Path = PROC) -> int:
    """CPU time the whole machine has spent busy since boot, in nanoseconds."""
    for line in (proc / "stat").read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = dict(zip(_CPU_FIELDS, (int(v) for v in parts[1:]), strict=False))
            ticks = sum(values.get(f, 0) for f in _BUSY)
            return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    raise ValueError(f"{proc / 'stat'} has no cpu line")


def boot_time(proc: Path = PROC) -> int:
    """When the machine booted, in unix seconds (``btime``)."""
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise ValueError(f"{proc / 'stat'} has no btime line")


def memory(proc: Path = PROC) -> HostMemory:
    info: dict[str, int] = {}
    for line in (proc / "meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields:
            # Values are in kB (KiB), except a few counts without a unit.
            info[key] = int(fields[0]) * (1024 if len(fields) > 1 and fields[1] == "kB" else 1)
    total = info["MemTotal"]
    usage = max(total - info.get("MemFree", 0), 0)
    working_set = max(usage - info.get("Inactive(file)", 0), 0)
    return HostMemory(total=total, usage=usage, working_set=working_set, rss=info.get("AnonPages", 0),
                      available=max(total - working_set, 0))
