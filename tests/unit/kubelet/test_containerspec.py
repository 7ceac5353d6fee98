"""From a Pod to the runtime's sandbox and container configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubelite.kubelet import containerspec as cs
from kubelite.proto import runtime_pb2 as pb

Obj = dict[str, Any]
HOST = cs.parse_resolv_conf("# comment\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch corp.example\n"
                            "options edns0 ndots:2\n")
DNS = cs.DNSSettings(("10.43.0.10",), "cluster.local", HOST)


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"},
                         "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def test_resolv_conf() -> None:
    assert HOST == cs.ResolvConf(("1.1.1.1", "8.8.8.8"), ("corp.example",), ("edns0", "ndots:2"))


@pytest.mark.parametrize(("spec", "servers", "searches", "options"), [
    pytest.param({}, ["10.43.0.10"], ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local",
                                      "corp.example"], ["ndots:5"], id="cluster-first"),
    pytest.param({"dnsPolicy": "Default"}, ["1.1.1.1", "8.8.8.8"], ["corp.example"], ["edns0", "ndots:2"],
                 id="default"),
    pytest.param({"hostNetwork": True}, ["1.1.1.1", "8.8.8.8"], ["corp.example"], ["edns0", "ndots:2"],
                 id="host-network-cluster-first"),
    pytest.param({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, ["10.43.0.10"],
                 ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"], ["ndots:5"],
                 id="cluster-first-with-host-net"),
    pytest.param({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["9.9.9.9"], "searches": ["a.b"],
                                                     "options": [{"name": "ndots", "value": "1"}, {"name": "rotate"}]}},
                 ["9.9.9.9"], ["a.b"], ["ndots:1", "rotate"], id="none"),
    pytest.param({"dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}}, ["10.43.0.10"],
                 ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"], ["ndots:2"],
                 id="override-option"),
])
def test_dns(spec: Obj, servers: list[str], searches: list[str], options: list[str]) -> None:
    got = cs.dns_config(pod(**spec), DNS)
    assert (list(got.servers), list(got.searches), list(got.options)) == (servers, searches, options)


def test_cluster_first_without_cluster_dns_falls_back_to_the_host() -> None:
    settings = cs.DNSSettings((), "cluster.local", HOST)
    assert cs.missing_cluster_dns(pod(), settings)
    assert list(cs.dns_config(pod(), settings).servers) == ["1.1.1.1", "8.8.8.8"]
    assert not cs.missing_cluster_dns(pod(dnsPolicy="Default"), settings)


def test_sandbox_config() -> None:
    p = pod(hostname="h" * 70, subdomain="sub", hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}],
            securityContext={"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]},
            containers=[{"name": "app", "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"},
                                                  {"containerPort": 81}]}])
    cfg = cs.sandbox_config(p, attempt=2, logs_root=Path("/var/log/pods"), dns=DNS, cgroup_root="/kubepods")
    assert (cfg.metadata.name, cfg.metadata.namespace, cfg.metadata.uid, cfg.metadata.attempt) == \
        ("web", "prod", "u1", 2)
    assert cfg.hostname == "h" * 63 and cfg.subdomain == "sub"
    assert cfg.log_directory == "/var/log/pods/prod_web_u1"
    assert [(m.container_port, m.host_port, m.protocol) for m in cfg.port_mappings] == [(80, 8080, "TCP")]
    assert dict(cfg.labels) == {"app": "web", "io.kubernetes.pod.name": "web", "io.kubernetes.pod.namespace": "prod",
                                "io.kubernetes.pod.uid": "u1"}
    assert dict(cfg.linux.sysctls) == {"net.core.somaxconn": "1024"}
    assert cfg.linux.cgroup_parent == "/kubepods/besteffort/podu1"
    assert cfg.host_aliases[0].ip == "1.2.3.4"
    assert cs.sandbox_config(p, attempt=0, logs_root=Path("/l"), dns=DNS).linux.cgroup_parent == ""


def test_cgroup_parent_follows_the_qos_class() -> None:
    guaranteed = pod(containers=[{"name": "app", "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                               "requests": {"cpu": "1", "memory": "1Gi"}}}])
    burstable = pod(containers=[{"name": "app", "resources": {"requests": {"cpu": "1"}}}])
    assert cs.cgroup_parent(guaranteed, "/kubepods") == "/kubepods/podu1"
    assert cs.cgroup_parent(burstable, "kubelite/kubepods/") == "kubelite/kubepods/burstable/podu1"


def test_resources() -> None:
    ctr = {"name": "app", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                        "requests": {"cpu": "250m", "memory": "64Mi"}}}
    r = cs.linux_resources(pod(containers=[ctr]), ctr, node_memory=8 * 2**30)
    assert (r.cpu_period, r.cpu_quota, r.cpu_shares, r.memory_limit_in_bytes) == (100_000, 50_000, 256, 128 * 2**20)
    assert 2 < r.oom_score_adj < 1000
    tiny = {"name": "app", "resources": {"limits": {"cpu": "1m"}, "requests": {"cpu": "1m"}}}
    r = cs.linux_resources(pod(containers=[tiny]), tiny, node_memory=2**30)
    assert (r.cpu_quota, r.cpu_shares) == (1000, 2)
    none = {"name": "app"}
    r = cs.linux_resources(pod(containers=[none]), none, node_memory=2**30)
    assert (r.cpu_quota, r.cpu_shares, r.memory_limit_in_bytes, r.oom_score_adj) == (0, 2, 0, 1000)
    guaranteed = {"name": "app", "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                               "requests": {"cpu": "1", "memory": "1Gi"}}}
    assert cs.oom_score_adj(pod(containers=[guaranteed]), guaranteed, node_memory=2**33) == -997


def test_security_context_merges_pod_and_container() -> None:
    p = pod(securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]})
    ctr = {"name": "app", "securityContext": {"runAsUser": 1001, "readOnlyRootFilesystem": True,
                                              "allowPrivilegeEscalation": False,
                                              "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    sc = cs.security_context(p, ctr)
    assert sc.run_as_user.value == 1001 and sc.run_as_group.value == 3000
    assert list(sc.supplemental_groups) == [4000, 2000]
    assert sc.readonly_rootfs and sc.no_new_privs
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert "/proc/kcore" in sc.masked_paths and "/proc/sys" in sc.readonly_paths
    privileged = cs.security_context(pod(), {"name": "app", "securityContext": {"privileged": True}})
    assert privileged.privileged and not privileged.masked_paths and not privileged.HasField("run_as_user")


@pytest.mark.parametrize(("pod_sc", "ctr_sc", "image_user", "error"), [
    pytest.param({}, {"runAsNonRoot": True, "runAsUser": 0}, "", "runAsUser breaks non-root policy", id="uid0"),
    pytest.param({"runAsNonRoot": True}, {}, "", "image will run as root", id="image-root"),
    pytest.param({"runAsNonRoot": True}, {}, "nginx", r"non-numeric user \(nginx\)", id="image-named"),
    pytest.param({"runAsNonRoot": True}, {}, "101:101", None, id="image-numeric"),
    pytest.param({"runAsNonRoot": True, "runAsUser": 5}, {}, "", None, id="pod-uid"),
])
def test_run_as_non_root(pod_sc: Obj, ctr_sc: Obj, image_user: str, error: str | None) -> None:
    p = pod(securityContext=pod_sc)
    ctr = {"name": "app", "securityContext": ctr_sc}
    if error is None:
        cs.verify_run_as_non_root(p, ctr, image_user)
    else:
        with pytest.raises(cs.ConfigError, match=error):
            cs.verify_run_as_non_root(p, ctr, image_user)


def test_container_config(tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    ctr = {"name": "app", "image": "busybox", "command": ["sh", "-c"], "args": ["echo $(A) $(B)"],
           "workingDir": "/w", "tty": True, "terminationMessagePath": "/dev/termination-log",
           "lifecycle": {"preStop": {"exec": {"command": ["q"]}}},
           "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True},
                            {"name": "data", "mountPath": "/sub", "subPathExpr": "$(A)/x"}]}
    inputs = cs.ContainerInputs(image_ref="sha256:1", env=[("A", "1"), ("B", "2")],
                                volumes={"data": cs.VolumePath(vol)}, restart_count=3, node_memory=2**30,
                                termination_log=tmp_path / "term")
    cfg = cs.container_config(pod(terminationGracePeriodSeconds=7, containers=[ctr]), ctr, inputs)
    assert (cfg.metadata.name, cfg.metadata.attempt, cfg.image.image) == ("app", 3, "sha256:1")
    assert list(cfg.args) == ["echo 1 2"] and cfg.working_dir == "/w" and cfg.tty
    assert cfg.log_path == "app/3.log"
    assert [(m.container_path, m.host_path, m.readonly) for m in cfg.mounts] == [
        ("/data", str(vol), True), ("/sub", str(vol / "1/x"), False),
        ("/dev/termination-log", str(tmp_path / "term"), False)]
    assert (vol / "1" / "x").is_dir()  # subPath folders are created, as the kubelet does
    assert cfg.labels["io.kubernetes.container.name"] == "app" and cfg.labels["io.kubernetes.pod.uid"] == "u1"
    assert cfg.annotations[cs.RESTART_COUNT_ANNOTATION] == "3"
    assert cfg.annotations[cs.GRACE_PERIOD_ANNOTATION] == "7"
    assert cfg.annotations[cs.CONTAINER_HASH_ANNOTATION] == cs.container_hash(ctr)
    assert cfg.annotations[cs.PRESTOP_ANNOTATION] == '{"exec": {"command": ["q"]}}'
    assert isinstance(cfg.linux.resources, pb.LinuxContainerResources)


def test_mount_errors(tmp_path: Path) -> None:
    ctr = {"name": "app", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}
    with pytest.raises(cs.ConfigError, match='cannot find volume "nope" to mount into container "app"'):
        cs.volume_mounts(ctr, {}, {})
    vol = cs.VolumePath(tmp_path)
    with pytest.raises(cs.ConfigError, match=r"without '\.\.'"):
        cs.volume_mounts({"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "../etc"}]},
                         {"v": vol}, {})
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(cs.ConfigError, match="outside the volume"):
        cs.volume_mounts({"name": "app", "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "link"}]},
                         {"v": vol}, {})


def test_grace_period() -> None:
    assert cs.grace_period(pod()) == 30
    assert cs.grace_period(pod(terminationGracePeriodSeconds=5)) == 5
    deleting = pod(terminationGracePeriodSeconds=5)
    deleting["metadata"].update(deletionTimestamp="2024-01-01T00:00:00Z", deletionGracePeriodSeconds=1)
    assert cs.grace_period(deleting) == 1
