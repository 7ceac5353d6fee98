"""From a Pod to the runtime's messages: the pod sandbox config and each container's config.

Pure functions over the pod dict and what the kubelet resolved for it (environment, volume paths, the
image). What goes where follows the kubelet's ``kuberuntime_sandbox.go`` and ``kuberuntime_container.go``:

- labels that identify a sandbox or container as the kubelet's: ``io.kubernetes.pod.{name,namespace,uid}``
  and ``io.kubernetes.container.name``; the restarted kubelet finds (adopts) its containers by them;
- annotations the kubelet reads back: the container spec's hash (a changed spec restarts the container),
  its restart count, the termination message path and policy, and the pod's grace period (to stop an
  orphaned container politely);
- DNS per ``dnsPolicy``; host ports; host namespaces; sysctls; the cgroup parent of the pod's QoS class;
- resources: ``limits.cpu`` → CFS quota over a 100 ms period, ``requests.cpu`` → shares, ``limits.memory``
  → memory limit, an OOM score adjustment per QoS class;
- the effective security context (container over pod), with Kubernetes' default masked and read-only
  ``/proc`` paths unless the container is privileged or asks for an unmasked ``procMount``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubelite.api import meta, qos
from kubelite.api.quantity import parse_quantity
from kubelite.kubelet.envvars import expand, expand_command, mapping_for
from kubelite.proto import runtime_pb2 as pb

Obj = dict[str, Any]

POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
CONTAINER_HASH_ANNOTATION = "io.kubernetes.container.hash"
RESTART_COUNT_ANNOTATION = "io.kubernetes.container.restartCount"
TERMINATION_MESSAGE_PATH_ANNOTATION = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY_ANNOTATION = "io.kubernetes.container.terminationMessagePolicy"
GRACE_PERIOD_ANNOTATION = "io.kubernetes.pod.terminationGracePeriod"
PRESTOP_ANNOTATION = "io.kubernetes.container.preStopHandler"

CPU_PERIOD = 100_000  # microseconds (quotaPeriod)
MIN_QUOTA = 1_000  # minQuotaPeriod
MIN_SHARES = 2
SHARES_PER_CPU = 1024
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
DEFAULT_DNS_OPTIONS = ("ndots:5",)
MAX_DNS_SEARCHES = 32
HOSTNAME_MAX = 63

DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
_PROPAGATION = {None: "PRIVATE", "None": "PRIVATE", "HostToContainer": "HOST_TO_CONTAINER",
                "Bidirectional": "BIDIRECTIONAL"}


class ConfigError(Exception):
    """The container cannot be configured as asked (CreateContainerConfigError); the message says why."""


# --- identity ----------------------------------------------------------------------------------------

def pod_labels(pod: Obj) -> dict[str, str]:
    return {POD_NAME_LABEL: meta.name(pod), POD_NAMESPACE_LABEL: meta.namespace(pod), POD_UID_LABEL: meta.uid(pod)}


def container_hash(container: Obj) -> str:
    """A stable hash of the container's spec: a different hash means the spec changed."""
    text = json.dumps(container, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def pod_full_name(pod: Obj) -> str:
    """``name_namespace(uid)``, how Kubernetes names a pod in its messages (format.Pod)."""
    return f"{meta.name(pod)}_{meta.namespace(pod)}({meta.uid(pod)})"


def log_directory(logs_root: Path, pod: Obj) -> Path:
    return logs_root / f"{meta.namespace(pod)}_{meta.name(pod)}_{meta.uid(pod)}"


def grace_period(pod: Obj) -> int:
    """The grace period the pod's containers get: the deletion's, else the spec's (default 30 s)."""
    metadata = meta.metadata(pod)
    if metadata.get("deletionTimestamp") and metadata.get("deletionGracePeriodSeconds") is not None:
        return max(int(metadata["deletionGracePeriodSeconds"]), 0)
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return max(int(grace), 0) if grace is not None else 30


# --- the sandbox -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ResolvConf:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> ResolvConf:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


@dataclass(frozen=True)
class DNSSettings:
    """The node's DNS knowledge: cluster DNS servers and domain, and the host's resolv.conf."""

    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    host: ResolvConf = field(default_factory=ResolvConf)


def pod_dns_type(pod: Obj, settings: DNSSettings) -> str:
    """"cluster", "host" or "none" (GetPodDNS's podDNSType); "cluster" falls back to "host" without
    cluster DNS servers (the caller reports MissingClusterDNS)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.get("hostNetwork")):
        return "cluster" if settings.cluster_dns else "host"
    return "host"


def missing_cluster_dns(pod: Obj, settings: DNSSettings) -> bool:
    """The pod asks for cluster DNS but the node has none configured (the MissingClusterDNS event)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    wants = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.get("hostNetwork"))
    return wants and not settings.cluster_dns


def dns_config(pod: Obj, settings: DNSSettings) -> pb.DNSConfig:
    kind = pod_dns_type(pod, settings)
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    if kind == "host":
        servers, searches, options = list(settings.host.servers), list(settings.host.searches), \
            list(settings.host.options)
    elif kind == "cluster":
        ns, domain = meta.namespace(pod), settings.cluster_domain
        servers = list(settings.cluster_dns)
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain, *settings.host.searches]
        options = list(DEFAULT_DNS_OPTIONS)
    custom = (pod.get("spec") or {}).get("dnsConfig") or {}
    servers += [s for s in custom.get("nameservers") or [] if s not in servers]
    searches += [s for s in custom.get("searches") or [] if s not in searches]
    options = _merge_dns_options(options, custom.get("options") or [])
    deduped = list(dict.fromkeys(searches))[:MAX_DNS_SEARCHES]
    return pb.DNSConfig(servers=servers, searches=deduped, options=options)


def _merge_dns_options(existing: Sequence[str], custom: Sequence[Obj]) -> list[str]:
    """Pod options override the ones of the same name (``ndots:5`` vs ``{"name": "ndots", "value": "2"}``)."""
    merged: dict[str, str] = {}
    for text in existing:
        name, _, value = text.partition(":")
        merged[name] = value
    for option in custom:
        name = str(option.get("name") or "")
        if name:
            merged[name] = str(option.get("value") or "")
    return [f"{k}:{v}" if v else k for k, v in merged.items()]


def pod_hostname(pod: Obj) -> str:
    """spec.hostname or the pod's name, cut to 63 characters without a trailing '-' or '.'."""
    name = (pod.get("spec") or {}).get("hostname") or meta.name(pod)
    if len(name) > HOSTNAME_MAX:
        name = name[:HOSTNAME_MAX].rstrip("-.")
    return str(name)


def cgroup_parent(pod: Obj, root: str) -> str:
    """The kubelet's cgroupfs layout under ``root``: Guaranteed pods directly under it, the others under their
    QoS class (``/kubepods/burstable/pod<uid>``). Empty when ``root`` is: the runtime then chooses."""
    if not root:
        return ""
    qos_class = qos.pod_qos(pod)
    uid = meta.uid(pod)
    base = root.rstrip("/")
    if qos_class == qos.GUARANTEED:
        return f"{base}/pod{uid}"
    return f"{base}/{qos_class.lower()}/pod{uid}"


def port_mappings(pod: Obj) -> list[pb.PortMapping]:
    spec = pod.get("spec") or {}
    out = []
    for ctr in spec.get("containers") or []:
        for port in ctr.get("ports") or []:
            if port.get("hostPort"):
                out.append(pb.PortMapping(protocol=str(port.get("protocol") or "TCP"),
                                          container_port=int(port.get("containerPort") or 0),
                                          host_port=int(port["hostPort"]), host_ip=str(port.get("hostIP") or "")))
    return out


def sandbox_config(pod: Obj, *, attempt: int, logs_root: Path, dns: DNSSettings,
                   cgroup_root: str = "") -> pb.PodSandboxConfig:
    spec = pod.get("spec") or {}
    security = spec.get("securityContext") or {}
    sysctls = {str(s.get("name")): str(s.get("value", "")) for s in security.get("sysctls") or []}
    linux = pb.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent(pod, cgroup_root),
                                     host_network=bool(spec.get("hostNetwork")), host_pid=bool(spec.get("hostPID")),
                                     host_ipc=bool(spec.get("hostIPC")), sysctls=sysctls)
    aliases = [pb.HostAlias(ip=str(a.get("ip") or ""), hostnames=[str(h) for h in a.get("hostnames") or []])
               for a in spec.get("hostAliases") or []]
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=meta.name(pod), uid=meta.uid(pod), namespace=meta.namespace(pod),
                                       attempt=attempt),
        hostname=pod_hostname(pod),
        subdomain=str(spec.get("subdomain") or ""),
        log_directory=str(log_directory(logs_root, pod)),
        dns_config=dns_config(pod, dns),
        port_mappings=port_mappings(pod),
        labels={**meta.labels(pod), **pod_labels(pod)},
        annotations=meta.annotations(pod),
        linux=linux,
        host_aliases=aliases,
    )


# --- one container -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class VolumePath:
    """Where a pod volume lives on the host, and whether every mount of it is read-only (API data volumes)."""

    path: Path
    read_only: bool = False
    # Whether subPath mounts must stay inside ``path`` (everything but hostPath).
    contained: bool = True


def volume_mounts(container: Obj, volumes: Mapping[str, VolumePath], env: Mapping[str, str]) -> list[pb.Mount]:
    """The runtime mounts of ``container.volumeMounts``; creates missing subPath directories as the kubelet does."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        name = str(vm.get("name") or "")
        volume = volumes.get(name)
        if volume is None:
            raise ConfigError(f'cannot find volume "{name}" to mount into container "{container.get("name")}"')
        host = volume.path
        sub = str(vm.get("subPath") or "")
        if not sub and vm.get("subPathExpr"):
            sub = expand(str(vm["subPathExpr"]), mapping_for(env))
        if sub:
            host = _sub_path(volume, sub)
        propagation = _PROPAGATION.get(vm.get("mountPropagation"), "PRIVATE")
        mounts.append(pb.Mount(container_path=str(vm.get("mountPath") or ""), host_path=str(host),
                               readonly=bool(vm.get("readOnly")) or volume.read_only, propagation=propagation))
    return mounts


def _sub_path(volume: VolumePath, sub: str) -> Path:
    parts = Path(sub).parts
    if Path(sub).is_absolute() or ".." in parts:
        raise ConfigError(f"subPath {sub!r} must be a relative path without '..'")
    host = volume.path / sub
    if not os.path.lexists(host):
        host.mkdir(mode=0o750, parents=True, exist_ok=True)
    if volume.contained:
        real, base = os.path.realpath(host), os.path.realpath(volume.path)
        if real != base and not real.startswith(base + os.sep):
            raise ConfigError(f"subPath {sub!r} leads outside the volume")
    return host


def linux_resources(pod: Obj, container: Obj, *, node_memory: int) -> pb.LinuxContainerResources:
    resources = container.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    out = pb.LinuxContainerResources(cpu_period=CPU_PERIOD)
    cpu_request = requests.get("cpu", limits.get("cpu"))
    shares = MIN_SHARES
    if cpu_request is not None:
        shares = max(math.floor(parse_quantity(cpu_request) * 1000) * SHARES_PER_CPU // 1000, MIN_SHARES)
    out.cpu_shares = shares
    if limits.get("cpu") is not None:
        millis = math.ceil(parse_quantity(limits["cpu"]) * 1000)
        out.cpu_quota = max(millis * CPU_PERIOD // 1000, MIN_QUOTA)
    if limits.get("memory") is not None:
        out.memory_limit_in_bytes = int(parse_quantity(limits["memory"]))
    out.oom_score_adj = oom_score_adj(pod, container, node_memory=node_memory)
    return out


def oom_score_adj(pod: Obj, container: Obj, *, node_memory: int) -> int:
    qos_class = qos.pod_qos(pod)
    if qos_class == qos.GUARANTEED:
        return GUARANTEED_OOM_SCORE_ADJ
    if qos_class == qos.BEST_EFFORT:
        return BEST_EFFORT_OOM_SCORE_ADJ
    request = (container.get("resources") or {}).get("requests", {}).get("memory")
    memory = int(parse_quantity(request)) if request is not None else 0
    adj = 1000 - (1000 * memory) // max(node_memory, 1)
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adj == BEST_EFFORT_OOM_SCORE_ADJ:
        return adj - 1
    return int(adj)


def effective_security_context(pod: Obj, container: Obj) -> Obj:
    """The container's securityContext with the pod's defaults filled in (DetermineEffectiveSecurityContext)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    ctr_sc = dict(container.get("securityContext") or {})
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions", "seccompProfile",
                "appArmorProfile"):
        if ctr_sc.get(key) is None and pod_sc.get(key) is not None:
            ctr_sc[key] = pod_sc[key]
    return ctr_sc


def security_context(pod: Obj, container: Obj) -> pb.LinuxContainerSecurityContext:
    sc = effective_security_context(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    out = pb.LinuxContainerSecurityContext(privileged=bool(sc.get("privileged")),
                                           readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")))
    caps = sc.get("capabilities") or {}
    out.capabilities.add_capabilities.extend(str(c) for c in caps.get("add") or [])
    out.capabilities.drop_capabilities.extend(str(c) for c in caps.get("drop") or [])
    if sc.get("runAsUser") is not None:
        out.run_as_user.value = int(sc["runAsUser"])
    if sc.get("runAsGroup") is not None:
        out.run_as_group.value = int(sc["runAsGroup"])
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None and int(pod_sc["fsGroup"]) not in groups:
        groups.append(int(pod_sc["fsGroup"]))
    out.supplemental_groups.extend(groups)
    if sc.get("allowPrivilegeEscalation") is not None:
        out.no_new_privs = not sc["allowPrivilegeEscalation"]
    if not out.privileged and sc.get("procMount") != "Unmasked":
        out.masked_paths.extend(DEFAULT_MASKED_PATHS)
        out.readonly_paths.extend(DEFAULT_READONLY_PATHS)
    return out


def verify_run_as_non_root(pod: Obj, container: Obj, image_user: str) -> None:
    """Refuse a container that must not run as root but would (verifyRunAsNonRoot)."""
    sc = effective_security_context(pod, container)
    if not sc.get("runAsNonRoot"):
        return
    where = f"(pod: \"{pod_full_name(pod)}\", container: {container.get('name')})"
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    user = image_user.split(":", 1)[0]
    if user in ("", "0", "root"):
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")
    if not user.isdigit():
        raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({user}), "
                          f"cannot verify user is non-root {where}")


@dataclass(frozen=True)
class ContainerInputs:
    """What the kubelet resolved for one container before building its config."""

    image_ref: str
    env: list[tuple[str, str]]
    volumes: Mapping[str, VolumePath]
    restart_count: int
    node_memory: int
    # The host file mounted at terminationMessagePath, if the kubelet made one.
    termination_log: Path | None = None


def container_config(pod: Obj, container: Obj, inputs: ContainerInputs) -> pb.ContainerConfig:
    env = dict(inputs.env)
    command, args = expand_command(container, env)
    mounts = volume_mounts(container, inputs.volumes, env)
    if inputs.termination_log is not None and container.get("terminationMessagePath"):
        mounts.append(pb.Mount(container_path=str(container["terminationMessagePath"]),
                               host_path=str(inputs.termination_log)))
    name = str(container.get("name") or "")
    annotations = {
        CONTAINER_HASH_ANNOTATION: container_hash(container),
        RESTART_COUNT_ANNOTATION: str(inputs.restart_count),
        TERMINATION_MESSAGE_PATH_ANNOTATION: str(container.get("terminationMessagePath") or ""),
        TERMINATION_MESSAGE_POLICY_ANNOTATION: str(container.get("terminationMessagePolicy") or "File"),
        GRACE_PERIOD_ANNOTATION: str((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)),
    }
    pre_stop = (container.get("lifecycle") or {}).get("preStop")
    if pre_stop:
        annotations[PRESTOP_ANNOTATION] = json.dumps(pre_stop, sort_keys=True)
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=inputs.restart_count),
        image=pb.ImageSpec(image=inputs.image_ref),
        command=command,
        args=args,
        working_dir=str(container.get("workingDir") or ""),
        envs=[pb.KeyValue(key=k, value=v) for k, v in inputs.env],
        mounts=mounts,
        labels={**pod_labels(pod), CONTAINER_NAME_LABEL: name},
        annotations=annotations,
        log_path=f"{name}/{inputs.restart_count}.log",
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=pb.LinuxContainerConfig(resources=linux_resources(pod, container, node_memory=inputs.node_memory),
                                      security_context=security_context(pod, container)),
    )

