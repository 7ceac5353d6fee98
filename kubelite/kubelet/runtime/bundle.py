"""The OCI runtime spec (``config.json``) of a container: pure functions, no I/O.

`build_spec` turns the runtime's view of a container (`ContainerSpec`), what its image says
(`ImageDefaults`), its pod sandbox (`SandboxSpec`) and the resolved `User` into the spec dict that runc
runs. The rules follow Kubernetes and containerd's CRI plugin:

- command and args: `resolve_command` (Kubernetes: ``command`` replaces the image's Entrypoint, ``args``
  replace its Cmd; the kubelet has already expanded ``$(VAR)``);
- env: a default PATH, ``HOSTNAME``, the image's env, ``TERM=xterm`` with a tty, then the container's (a
  later value of a name replaces the earlier one in place);
- cwd: ``workingDir``, else the image's WorkingDir, else ``/``;
- user: `resolve_user` (runAsUser/runAsGroup, else the image's User against the image's /etc/passwd and
  /etc/group), plus the groups the user is a member of and supplementalGroups;
- namespaces: new pid (unless hostPID) and mount namespaces per container; IPC and UTS shared by the pod
  through the sandbox's persistent namespace files (or the host's for hostIPC / hostNetwork); the pod's
  network namespace (or the host's for hostNetwork);
- mounts: proc, a /dev tmpfs, devpts, mqueue, sysfs (ro), the cgroup hierarchy (ro), the pod's /dev/shm,
  /etc/hosts, /etc/resolv.conf and /etc/hostname from the sandbox, then the container's mounts as bind
  mounts (a container mount on the same path replaces a default one);
- capabilities: containerd's default set, with securityContext add/drop (``ALL`` included); privileged
  containers get every capability, the host's devices, rw sysfs and cgroups and no masked paths;
- masked and read-only /proc paths: the kubelet's (from the security context) or Kubernetes' defaults;
- resources: cpu shares/quota/period, memory limit (and memory+swap = the same limit, so that a container
  never swaps), pids limit, oom_score_adj, and a device cgroup that denies all but runc's defaults;
- rlimits: NOFILE 1048576 as containers get under Docker and containerd with systemd's defaults, or the
  runtime's own hard limit when that is lower (raising it needs CAP_SYS_RESOURCE);
- seccomp: none. Containers run unconfined (as Kubernetes' ``Unconfined`` profile); a RuntimeDefault
  profile is not implemented yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOFILE = 1048576

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Every capability by number (linux/capability.h).
CAPABILITY_NAMES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

# Kubernetes' DefaultProcMount (pkg/securitycontext/util.go), used when the kubelet sends none.
DEFAULT_MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# CRI MountPropagation -> the bind mount's propagation option.
PROPAGATION = {"": "rprivate", "PRIVATE": "rprivate", "HOST_TO_CONTAINER": "rslave", "BIDIRECTIONAL": "rshared"}


class SpecError(ValueError):
    """The container cannot be built as asked (no command, unknown user, bad mount ...)."""


@dataclass(frozen=True)
class ImageDefaults:
    """What the image's config says, used where the container does not override it."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""


@dataclass(frozen=True)
class MountSpec:
    container_path: str
    host_path: str
    readonly: bool = False
    propagation: str = ""  # PRIVATE, HOST_TO_CONTAINER or BIDIRECTIONAL


@dataclass(frozen=True)
class Security:
    privileged: bool = False
    run_as_user: int | None = None
    run_as_group: int | None = None
    readonly_rootfs: bool = False
    supplemental_groups: tuple[int, ...] = ()
    no_new_privs: bool = False
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Resources:
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit: int = 0
    oom_score_adj: int | None = None
    pids_limit: int = 0


@dataclass(frozen=True)
class ContainerSpec:
    """The runtime's view of a CRI ContainerConfig."""

    name: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    tty: bool = False
    stdin: bool = False
    security: Security = field(default_factory=Security)
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class SandboxSpec:
    """What a container takes from its pod sandbox."""

    hostname: str = ""
    host_network: bool = False
    host_pid: bool = False
    host_ipc: bool = False
    netns_path: str = ""
    ipc_ns_path: str = ""
    uts_ns_path: str = ""
    shm_path: str = ""  # the pod's /dev/shm (a tmpfs on the host)
    # Files shared by the pod's containers: container path -> host path (/etc/hosts ...).
    files: tuple[tuple[str, str], ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True)
class HostDevice:
    """A device node of the host, given to privileged containers."""

    path: str
    type: str  # "c" or "b"
    major: int
    minor: int
    file_mode: int
    uid: int = 0
    gid: int = 0


def resolve_command(
    command: Sequence[str], args: Sequence[str], entrypoint: Sequence[str], cmd: Sequence[str]
) -> list[str]:
    """The argv of a container, as Kubernetes defines it: command replaces Entrypoint (and drops Cmd),
    args replace Cmd."""
    if command:
        argv = [*command, *args]
    elif args:
        argv = [*entrypoint, *args]
    else:
        argv = [*entrypoint, *cmd]
    if not argv:
        raise SpecError("no command specified: the image has no Entrypoint or Cmd and the container no command")
    return argv


def merge_env(*groups: Sequence[str]) -> list[str]:
    """``NAME=value`` lists merged in order: a later value of a name replaces the earlier one in place."""
    out: dict[str, str] = {}
    for group in groups:
        for item in group:
            name = item.split("=", 1)[0]
            out[name] = item
    return list(out.values())


def _parse_passwd(text: str) -> list[tuple[str, int, int]]:
    """(name, uid, gid) of each /etc/passwd entry."""
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            out.append((parts[0], int(parts[2]), int(parts[3])))
    return out


def _parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    """(name, gid, members) of each /etc/group entry."""
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit():
            out.append((parts[0], int(parts[2]), [m for m in parts[3].split(",") if m]))
    return out


def resolve_user(
    image_user: str,
    *,
    run_as_user: int | None = None,
    run_as_group: int | None = None,
    supplemental_groups: Sequence[int] = (),
    passwd: str = "",
    group: str = "",
) -> User:
    """The uid, gid and extra groups of a container's process.

    runAsUser wins over the image's User (``name``, ``uid``, ``name:group`` or ``uid:gid``); names are
    looked up in the image's /etc/passwd and /etc/group (texts given), numbers need not exist there.
    Without a group the user's primary group from /etc/passwd is used, else 0; runAsGroup wins over both.
    Extra groups: the primary group, the groups listing the user as a member, then supplementalGroups.
    """
    users = _parse_passwd(passwd)
    groups = _parse_group(group)
    spec_user, _, spec_group = image_user.partition(":")
    name = ""
    if run_as_user is not None:
        uid = run_as_user
        entry = next((u for u in users if u[1] == uid), None)
        gid = entry[2] if entry else 0
        name = entry[0] if entry else ""
        spec_group = ""  # the image's group belongs to the image's user
    elif not spec_user:
        uid, gid, name = 0, 0, "root"
    elif spec_user.isdigit():
        uid = int(spec_user)
        entry = next((u for u in users if u[1] == uid), None)
        gid = entry[2] if entry else 0
        name = entry[0] if entry else ""
    else:
        entry = next((u for u in users if u[0] == spec_user), None)
        if entry is None:
            raise SpecError(f"unable to find user {spec_user}: no matching entries in passwd file")
        name, uid, gid = entry
    if spec_group:
        if spec_group.isdigit():
            gid = int(spec_group)
        else:
            found = next((g for g in groups if g[0] == spec_group), None)
            if found is None:
                raise SpecError(f"unable to find group {spec_group}: no matching entries in group file")
            gid = found[1]
    if run_as_group is not None:
        gid = run_as_group
    extra = [gid, *(g[1] for g in groups if name and name in g[2]), *supplemental_groups]
    return User(uid=uid, gid=gid, additional_gids=tuple(dict.fromkeys(extra)))


def all_capabilities(bounding: int) -> list[str]:
    """"All capabilities" as containerd means it: those in the runtime's own bounding set (the ``CapBnd``
    mask of /proc/self/status), which are all a container can be given."""
    return [name for bit, name in enumerate(CAPABILITY_NAMES) if bounding >> bit & 1]


def bounding_set(proc_status: str) -> int:
    """The ``CapBnd`` mask of a /proc/<pid>/status text."""
    for line in proc_status.splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return 0


def _cap_name(name: str) -> str:
    upper = name.upper()
    return upper if upper.startswith("CAP_") else "CAP_" + upper


def capabilities(security: Security, all_caps: Sequence[str]) -> list[str]:
    """The container's capability set, as containerd computes it: defaults (or all when privileged), then
    ``add: [ALL]``, ``drop: [ALL]``, then the named additions and drops."""
    if security.privileged:
        return list(all_caps)
    caps = list(DEFAULT_CAPABILITIES)
    adds = [c.upper() for c in security.add_capabilities]
    drops = [c.upper() for c in security.drop_capabilities]
    if "ALL" in adds:
        caps = list(all_caps)
    if "ALL" in drops:
        caps = []
    for c in adds:
        if c != "ALL" and _cap_name(c) not in caps:
            caps.append(_cap_name(c))
    dropped = {_cap_name(c) for c in drops if c != "ALL"}
    return [c for c in caps if c not in dropped]


def _bind(destination: str, source: str, *, readonly: bool, propagation: str = "rprivate") -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", propagation, "ro" if readonly else "rw"],
    }


def _mounts(container: ContainerSpec, sandbox: SandboxSpec) -> list[dict[str, Any]]:
    privileged = container.security.privileged
    sys_ro = [] if privileged else ["ro"]
    defaults: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *sys_ro]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", *sys_ro],
        },
    ]
    if sandbox.host_ipc:
        defaults.append(_bind("/dev/shm", "/dev/shm", readonly=False))
    elif sandbox.shm_path:
        defaults.append(_bind("/dev/shm", sandbox.shm_path, readonly=False))
    else:
        defaults.append(
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            }
        )
    ro_files = container.security.readonly_rootfs
    defaults += [_bind(dst, src, readonly=ro_files) for dst, src in sandbox.files]
    own = []
    for m in container.mounts:
        if not m.container_path.startswith("/"):
            raise SpecError(f"mount path {m.container_path!r} is not absolute")
        if m.propagation not in PROPAGATION:
            raise SpecError(f"unknown mount propagation {m.propagation!r}")
        own.append(_bind(m.container_path, m.host_path, readonly=m.readonly, propagation=PROPAGATION[m.propagation]))
    taken = {m["destination"].rstrip("/") or "/" for m in own}
    return [m for m in defaults if m["destination"] not in taken] + own


def _namespaces(sandbox: SandboxSpec) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{"type": "mount"}]
    if not sandbox.host_pid:
        out.append({"type": "pid"})
    if not sandbox.host_ipc:
        out.append({"type": "ipc", "path": sandbox.ipc_ns_path} if sandbox.ipc_ns_path else {"type": "ipc"})
    if not sandbox.host_network:
        # hostNetwork pods also keep the host's UTS namespace (the node's hostname), as in Kubernetes.
        out.append({"type": "uts", "path": sandbox.uts_ns_path} if sandbox.uts_ns_path else {"type": "uts"})
        out.append({"type": "network", "path": sandbox.netns_path} if sandbox.netns_path else {"type": "network"})
    return out


def _resources(container: ContainerSpec, *, memory_swap: bool) -> dict[str, Any]:
    r = container.resources
    devices = [{"allow": container.security.privileged, "access": "rwm"}]
    out: dict[str, Any] = {"devices": devices}
    cpu: dict[str, int] = {}
    if r.cpu_shares > 0:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota > 0:
        cpu["quota"] = r.cpu_quota
    if r.cpu_period > 0:
        cpu["period"] = r.cpu_period
    if cpu:
        out["cpu"] = cpu
    if r.memory_limit > 0:
        out["memory"] = {"limit": r.memory_limit, **({"swap": r.memory_limit} if memory_swap else {})}
    if r.pids_limit > 0:
        out["pids"] = {"limit": r.pids_limit}
    return out


def build_spec(
    container: ContainerSpec,
    image: ImageDefaults,
    sandbox: SandboxSpec,
    *,
    user: User,
    cgroups_path: str,
    all_caps: Sequence[str],
    host_devices: Sequence[HostDevice] = (),
    memory_swap: bool = False,
    nofile: int = NOFILE,
    min_oom_score_adj: int = -1000,
) -> dict[str, Any]:
    """The OCI spec of a container whose bundle holds the root filesystem in ``rootfs``.

    ``host_devices`` are given to privileged containers only; ``memory_swap`` says whether the host
    accounts swap (then memory+swap is limited to the memory limit); ``nofile`` is RLIMIT_NOFILE.
    """
    sec = container.security
    caps = capabilities(sec, all_caps)
    env = merge_env(
        [DEFAULT_PATH],
        [f"HOSTNAME={sandbox.hostname}"] if sandbox.hostname else [],
        image.env,
        # containerd's WithTTY: a terminal wants a TERM.
        ["TERM=xterm"] if container.tty else [],
        [f"{k}={v}" for k, v in container.env],
    )
    process: dict[str, Any] = {
        "terminal": container.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.additional_gids)},
        "args": resolve_command(container.command, container.args, image.entrypoint, image.cmd),
        "env": env,
        "cwd": container.working_dir or image.working_dir or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
        "noNewPrivileges": sec.no_new_privs,
    }
    if container.resources.oom_score_adj is not None:
        # containerd's restrict_oom_score_adj: without CAP_SYS_RESOURCE a process may not go below its own
        # score, and runc fails outright when asked to (Guaranteed pods ask for -997).
        process["oomScoreAdj"] = max(container.resources.oom_score_adj, min_oom_score_adj)
    namespaces = _namespaces(sandbox)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": _resources(container, memory_swap=memory_swap),
        "maskedPaths": [] if sec.privileged else list(sec.masked_paths or DEFAULT_MASKED_PATHS),
        "readonlyPaths": [] if sec.privileged else list(sec.readonly_paths or DEFAULT_READONLY_PATHS),
    }
    if sandbox.sysctls:
        linux["sysctl"] = dict(sandbox.sysctls)
    if sec.privileged and host_devices:
        linux["devices"] = [
            {
                "path": d.path,
                "type": d.type,
                "major": d.major,
                "minor": d.minor,
                "fileMode": d.file_mode,
                "uid": d.uid,
                "gid": d.gid,
            }
            for d in host_devices
        ]
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": sec.readonly_rootfs},
        "mounts": _mounts(container, sandbox),
        "linux": linux,
    }
    # A joined UTS namespace already carries the pod's hostname (set when the sandbox made it).
    if sandbox.hostname and {"type": "uts"} in namespaces:
        spec["hostname"] = sandbox.hostname
    return spec
