"""Translations between the protobuf messages of runtime.proto and the runtime's own types (pure)."""

from __future__ import annotations

from kubelite.kubelet.images.model import ImageRecord
from kubelite.kubelet.network import PortMapping
from kubelite.kubelet.runtime import bundle
from kubelite.kubelet.runtime.state import ContainerRecord, SandboxRecord
from kubelite.proto import runtime_pb2 as pb

SANDBOX_STATES = {"ready": pb.SANDBOX_READY, "notready": pb.SANDBOX_NOTREADY}
CONTAINER_STATES = {
    "creating": pb.CONTAINER_UNKNOWN,
    "created": pb.CONTAINER_CREATED,
    "running": pb.CONTAINER_RUNNING,
    "exited": pb.CONTAINER_EXITED,
}


def container_spec(config: pb.ContainerConfig) -> bundle.ContainerSpec:
    linux = config.linux
    sc = linux.security_context
    r = linux.resources
    security = bundle.Security(
        privileged=sc.privileged,
        run_as_user=sc.run_as_user.value if sc.HasField("run_as_user") else None,
        run_as_group=sc.run_as_group.value if sc.HasField("run_as_group") else None,
        readonly_rootfs=sc.readonly_rootfs,
        supplemental_groups=tuple(sc.supplemental_groups),
        no_new_privs=sc.no_new_privs,
        add_capabilities=tuple(sc.capabilities.add_capabilities),
        drop_capabilities=tuple(sc.capabilities.drop_capabilities),
        masked_paths=tuple(sc.masked_paths),
        readonly_paths=tuple(sc.readonly_paths),
    )
    resources = bundle.Resources(
        cpu_period=r.cpu_period,
        cpu_quota=r.cpu_quota,
        cpu_shares=r.cpu_shares,
        memory_limit=r.memory_limit_in_bytes,
        oom_score_adj=r.oom_score_adj if linux.HasField("resources") else None,
        pids_limit=r.pids_limit,
    )
    return bundle.ContainerSpec(
        name=config.metadata.name,
        command=tuple(config.command),
        args=tuple(config.args),
        working_dir=config.working_dir,
        env=tuple((kv.key, kv.value) for kv in config.envs),
        mounts=tuple(
            bundle.MountSpec(
                container_path=m.container_path, host_path=m.host_path, readonly=m.readonly, propagation=m.propagation
            )
            for m in config.mounts
        ),
        tty=config.tty,
        stdin=config.stdin,
        security=security,
        resources=resources,
    )


def image_defaults(image: ImageRecord) -> bundle.ImageDefaults:
    c = image.config
    return bundle.ImageDefaults(
        entrypoint=tuple(c.entrypoint), cmd=tuple(c.cmd), env=tuple(c.env), working_dir=c.working_dir, user=c.user
    )


def port_mappings(config: pb.PodSandboxConfig) -> list[PortMapping]:
    return [
        PortMapping(container_port=p.container_port, host_port=p.host_port, protocol=p.protocol or "TCP",
                    host_ip=p.host_ip)
        for p in config.port_mappings
    ]


def sandbox_metadata(sb: SandboxRecord) -> pb.PodSandboxMetadata:
    return pb.PodSandboxMetadata(name=sb.name, uid=sb.uid, namespace=sb.namespace, attempt=sb.attempt)


def sandbox_to_pb(sb: SandboxRecord) -> pb.PodSandbox:
    return pb.PodSandbox(
        id=sb.id,
        metadata=sandbox_metadata(sb),
        state=SANDBOX_STATES[sb.state],
        created_at=sb.created_at,
        labels=sb.labels,
        annotations=sb.annotations,
    )


def sandbox_status_to_pb(sb: SandboxRecord) -> pb.PodSandboxStatus:
    return pb.PodSandboxStatus(
        id=sb.id,
        metadata=sandbox_metadata(sb),
        state=SANDBOX_STATES[sb.state],
        created_at=sb.created_at,
        network=pb.PodSandboxNetworkStatus(
            ip=sb.ip, additional_ips=[pb.PodIP(ip=ip) for ip in sb.ips if ip != sb.ip]
        ),
        netns_path=sb.netns_path,
        labels=sb.labels,
        annotations=sb.annotations,
    )


def container_metadata(c: ContainerRecord) -> pb.ContainerMetadata:
    return pb.ContainerMetadata(name=c.name, attempt=c.attempt)


def container_to_pb(c: ContainerRecord) -> pb.Container:
    return pb.Container(
        id=c.id,
        pod_sandbox_id=c.sandbox_id,
        metadata=container_metadata(c),
        image=pb.ImageSpec(image=c.image),
        image_ref=c.image_ref,
        state=CONTAINER_STATES[c.state],
        created_at=c.created_at,
        labels=c.labels,
        annotations=c.annotations,
    )


def container_status_to_pb(c: ContainerRecord) -> pb.ContainerStatus:
    return pb.ContainerStatus(
        id=c.id,
        metadata=container_metadata(c),
        state=CONTAINER_STATES[c.state],
        created_at=c.created_at,
        started_at=c.started_at,
        finished_at=c.finished_at,
        exit_code=c.exit_code,
        image=pb.ImageSpec(image=c.image),
        image_ref=c.image_ref,
        reason=c.reason,
        message=c.message,
        labels=c.labels,
        annotations=c.annotations,
        mounts=[pb.Mount(**m) for m in c.mounts],
        log_path=c.log_path,
        pid=c.pid if c.state == "running" else 0,
    )


def image_to_pb(image: ImageRecord) -> pb.Image:
    c = image.config
    return pb.Image(
        id=image.id,
        repo_tags=image.repo_tags,
        repo_digests=image.repo_digests,
        size=image.size,
        spec=pb.ImageSpec(image=image.id),
        entrypoint=c.entrypoint,
        cmd=c.cmd,
        env=c.env,
        working_dir=c.working_dir,
        user=c.user,
    )
