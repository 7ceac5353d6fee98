"""Volume files: the atomic writer, projections from ConfigMaps/Secrets/the downward API, hostPath checks, and
the volume manager (tmpfs mounts for secrets, when root)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kubelite.kubelet.envvars import EnvError, PodContext
from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.volumes import (
    AtomicWriter,
    FileProjection,
    SystemMounter,
    VolumeError,
    VolumeManager,
    check_host_path,
    project_configmap,
    project_downward_api,
    project_projected,
    project_secret,
    read_mounts,
    validate_path,
)

Obj = dict[str, Any]
ROOT = os.geteuid() == 0


def visible(folder: Path) -> dict[str, str]:
    """The user-visible files (following the symlinks) and their contents."""
    out = {}
    for root, _, files in os.walk(folder, followlinks=True):
        rel_root = os.path.relpath(root, folder)
        if rel_root.split(os.sep)[0].startswith(".."):
            continue
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            out[rel] = (Path(root) / name).read_text()
    return out


def test_atomic_writer_projects_and_swaps(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    assert w.write({"a": FileProjection(b"1"), "dir/b": FileProjection(b"2", 0o600)})
    assert visible(tmp_path) == {"a": "1", "dir/b": "2"}
    assert (tmp_path / "a").is_symlink() and os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "dir") == "..data/dir"
    first = os.readlink(tmp_path / "..data")
    assert first.startswith("..") and (tmp_path / first).is_dir()
    assert stat.S_IMODE((tmp_path / "dir" / "b").stat().st_mode) == 0o600

    assert not w.write({"a": FileProjection(b"1"), "dir/b": FileProjection(b"2", 0o600)})  # nothing changed
    assert os.readlink(tmp_path / "..data") == first

    assert w.write({"a": FileProjection(b"one"), "c": FileProjection(b"3")})
    assert visible(tmp_path) == {"a": "one", "c": "3"}
    assert not os.path.lexists(tmp_path / "dir") and not (tmp_path / first).exists()
    assert not os.path.lexists(tmp_path / "..data_tmp")


def test_mode_change_alone_is_written(tmp_path: Path) -> None:
    w = AtomicWriter(tmp_path)
    w.write({"a": FileProjection(b"1", 0o644)})
    assert w.write({"a": FileProjection(b"1", 0o400)})
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o400


@pytest.mark.parametrize("path", ["", "/abs", "a/../b", "..hidden", "../x", "x" * 256])
def test_invalid_paths(path: str) -> None:
    with pytest.raises(ValueError):
        validate_path(path)


CMS = {("ns", "cfg"): {"data": {"a": "1", "b": "2"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}}
SECRETS = {("ns", "s"): {"data": {"token": base64.b64encode(b"t0k3n").decode()}}}


def cms(ns: str, name: str) -> Obj | None:
    return CMS.get((ns, name))


def secrets(ns: str, name: str) -> Obj | None:
    return SECRETS.get((ns, name))


def test_configmap_projection() -> None:
    assert project_configmap({"name": "cfg"}, "ns", cms) == {
        "a": FileProjection(b"1"), "b": FileProjection(b"2"), "bin": FileProjection(b"\x00\x01")}
    got = project_configmap({"name": "cfg", "defaultMode": 0o600, "items": [{"key": "a", "path": "x/y"},
                                                                           {"key": "b", "path": "b", "mode": 0o444}]},
                            "ns", cms)
    assert got == {"x/y": FileProjection(b"1", 0o600), "b": FileProjection(b"2", 0o444)}


def test_configmap_projection_errors() -> None:
    with pytest.raises(EnvError, match='configmap "nope" not found'):
        project_configmap({"name": "nope"}, "ns", cms)
    assert project_configmap({"name": "nope", "optional": True}, "ns", cms) == {}
    with pytest.raises(EnvError, match="configmap references non-existent config key: zz"):
        project_configmap({"name": "cfg", "items": [{"key": "zz", "path": "zz"}]}, "ns", cms)


def test_secret_projection() -> None:
    assert project_secret({"secretName": "s"}, "ns", secrets) == {"token": FileProjection(b"t0k3n")}
    with pytest.raises(EnvError, match="references non-existent secret key: x"):
        project_secret({"secretName": "s", "items": [{"key": "x", "path": "x"}]}, "ns", secrets)
    with pytest.raises(EnvError, match='secret "gone" not found'):
        project_secret({"secretName": "gone"}, "ns", secrets)


POD = {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"b": "2", "a": "1"}},
       "spec": {"containers": [{"name": "app", "resources": {"limits": {"memory": "64Mi"}}}]}}


def test_downward_api_projection() -> None:
    source = {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory",
                                                             "divisor": "1Mi"}}]}
    got = project_downward_api(source, POD, PodContext())
    assert got == {"name": FileProjection(b"web"), "labels": FileProjection(b'a="1"\nb="2"'),
                   "mem": FileProjection(b"64")}


def test_projected_volume_merges_sources() -> None:
    source = {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "conf/a"}]}},
        {"secret": {"name": "s"}},
        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}
    got = project_projected(source, POD, cms, secrets, PodContext())
    assert got == {"conf/a": FileProjection(b"1", 0o440), "token": FileProjection(b"t0k3n", 0o440),
                   "ns": FileProjection(b"ns", 0o440)}
    with pytest.raises(EnvError, match="serviceAccountToken"):
        project_projected({"sources": [{"serviceAccountToken": {"path": "token"}}]}, POD, cms, secrets, PodContext())


def test_host_path_types(tmp_path: Path) -> None:
    check_host_path(tmp_path, "Directory")
    check_host_path(tmp_path / "new" / "dir", "DirectoryOrCreate")
    assert (tmp_path / "new" / "dir").is_dir()
    check_host_path(tmp_path / "f", "FileOrCreate")
    assert (tmp_path / "f").is_file()
    check_host_path(tmp_path / "f", "File")
    check_host_path(tmp_path / "anything", "")
    with pytest.raises(ValueError, match=f"hostPath type check failed: {tmp_path / 'f'} is not a directory"):
        check_host_path(tmp_path / "f", "Directory")
    with pytest.raises(ValueError, match="is not a file"):
        check_host_path(tmp_path / "missing", "File")
    with pytest.raises(ValueError, match="is not a socket file"):
        check_host_path(tmp_path / "f", "Socket")
    with pytest.raises(ValueError, match="is not a character device"):
        check_host_path(tmp_path / "f", "CharDevice")


def pod_with(volumes: list[Obj]) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1"}, "spec": {"volumes": volumes}}


async def test_manager_sets_up_disk_volumes(tmp_path: Path) -> None:
    manager = VolumeManager(AgentPaths(tmp_path))
    host = tmp_path / "host"
    paths = await manager.setup(pod_with([{"name": "scratch", "emptyDir": {}},
                                          {"name": "conf", "configMap": {"name": "cfg"}},
                                          {"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}]),
                                configmaps=cms, secrets=secrets, context=PodContext())
    assert paths["scratch"].path == tmp_path / "pods/u1/volumes/kubernetes.io~empty-dir/scratch"
    assert stat.S_IMODE(paths["scratch"].path.stat().st_mode) == 0o777 and not paths["scratch"].read_only
    assert paths["conf"].read_only and (paths["conf"].path / "a").read_text() == "1"
    assert paths["h"].path == host and host.is_dir() and not paths["h"].contained
    await manager.teardown("u1")
    assert not (tmp_path / "pods/u1").exists() and host.is_dir()


async def test_manager_reports_the_failing_volume(tmp_path: Path) -> None:
    manager = VolumeManager(AgentPaths(tmp_path))
    with pytest.raises(VolumeError) as info:
        await manager.setup(pod_with([{"name": "conf", "configMap": {"name": "nope"}}]), configmaps=cms,
                            secrets=secrets, context=PodContext())
    assert str(info.value) == 'MountVolume.SetUp failed for volume "conf" : configmap "nope" not found'
    with pytest.raises(VolumeError, match="not supported by kubelite"):
        await manager.setup(pod_with([{"name": "data", "persistentVolumeClaim": {"claimName": "x"}}]),
                            configmaps=cms, secrets=secrets, context=PodContext())


class NoMounts:
    """A mounter that cannot mount (as without root) on a folder that is not a tmpfs."""

    def mount_tmpfs(self, target: Path, *, size: int | None = None) -> None:
        raise PermissionError(1, "Operation not permitted")

    def unmount(self, target: Path) -> None:
        pass

    def fs_type(self, path: Path) -> str:
        return "ext4"

    def mount_points_under(self, root: Path) -> list[Path]:
        return []


async def test_secrets_are_never_written_to_disk(tmp_path: Path) -> None:
    manager = VolumeManager(AgentPaths(tmp_path), NoMounts())
    with pytest.raises(VolumeError, match="cannot mount a tmpfs"):
        await manager.setup(pod_with([{"name": "s", "secret": {"secretName": "s"}}]), configmaps=cms,
                            secrets=secrets, context=PodContext())
    assert not any(p.name == "token" for p in tmp_path.rglob("*"))


@pytest.mark.skipif(not ROOT, reason="mounting a tmpfs needs root")
async def test_secret_and_memory_volumes_are_tmpfs(tmp_path: Path) -> None:
    manager = VolumeManager(AgentPaths(tmp_path))
    mounter = SystemMounter()
    try:
        paths = await manager.setup(pod_with([{"name": "s", "secret": {"secretName": "s"}},
                                              {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]),
                                    configmaps=cms, secrets=secrets, context=PodContext())
        assert mounter.fs_type(paths["s"].path) == "tmpfs" and mounter.fs_type(paths["mem"].path) == "tmpfs"
        assert (paths["s"].path / "token").read_bytes() == b"t0k3n"
        vfs = os.statvfs(paths["mem"].path)
        assert vfs.f_blocks * vfs.f_frsize == 1024 * 1024
        # A second setup keeps the mount (no stacking).
        await manager.setup(pod_with([{"name": "s", "secret": {"secretName": "s"}}]), configmaps=cms,
                            secrets=secrets, context=PodContext())
        assert len([p for p, _ in read_mounts() if p == str(paths["s"].path)]) == 1
        await manager.teardown("u1")
        assert not any(p.startswith(str(tmp_path)) for p, _ in read_mounts())
        assert not (tmp_path / "pods/u1").exists()
    finally:
        for point, _ in reversed(read_mounts()):
            if point.startswith(str(tmp_path)):
                mounter.unmount(Path(point))
