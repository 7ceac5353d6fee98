"""Pod volumes on the node: emptyDir, configMap, secret, downwardAPI, projected and hostPath.

Each volume of a pod lives under ``<pods>/<uid>/volumes/kubernetes.io~<plugin>/<name>`` (the kubelet's
layout); the runtime bind-mounts these folders (or a subPath inside them) into the containers.

- **emptyDir**: a folder (mode 0777); ``medium: Memory`` makes it a tmpfs, ``sizeLimit`` its size.
- **configMap**, **secret**, **downwardAPI**, **projected**: files projected from API objects by an
  `AtomicWriter`, as Kubernetes' does: the files live in a timestamped folder ``..2024_01_31_12_00_00.xyz``,
  ``..data`` is a symlink to it, and each top-level name is a symlink through ``..data``. An update writes a
  new timestamped folder and swaps ``..data`` with one ``rename(2)``, so a reader never sees half an update;
  nothing is written when nothing changed. ``items`` choose and rename keys, ``defaultMode``/``mode`` set file
  modes; a missing object or key fails the mount unless ``optional``. The kubelet calls `setup` again when a
  referenced object changes, which updates the files (subPath mounts, as in Kubernetes, do not see updates).
  These volumes are mounted read-only into containers.
- Secrets never touch a disk: secret, downwardAPI and projected volumes (Kubernetes' memory-backed ones)
  are tmpfs mounts, and before anything is written into one the writer checks, from
  ``/proc/self/mountinfo``, that the folder really is on a tmpfs — a failed or missing mount is an error,
  never a fallback to disk. (Where mount(2) is not permitted, a folder that already lies on a tmpfs is
  accepted, e.g. a node rooted under /dev/shm.)
- **hostPath**: the host's path, checked against ``type`` (``DirectoryOrCreate`` and ``FileOrCreate`` create
  it), with Kubernetes' messages (``hostPath type check failed: /x is not a directory``).

Errors are `VolumeError`s naming the volume; the pod worker reports them as ``FailedMount`` events
(``MountVolume.SetUp failed for volume "x" : configmap "y" not found``) and retries.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import errno
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubelite.api import meta
from kubelite.api.quantity import parse_quantity
from kubelite.kubelet.containerspec import VolumePath
from kubelite.kubelet.envvars import EnvError, PodContext, field_value, resource_value, secret_values
from kubelite.kubelet.paths import AgentPaths

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]

DATA_DIR = "..data"
NEW_DATA_DIR = "..data_tmp"
DEFAULT_MODE = 0o644
MAX_PATH = 4096
MAX_NAME = 255

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIGMAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"


class VolumeError(Exception):
    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume
        self.message = message


# --- the atomic writer -----------------------------------------------------------------------------

@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = DEFAULT_MODE


Payload = dict[str, FileProjection]


def validate_path(path: str) -> None:
    if not path:
        raise ValueError("invalid path: must not be empty")
    if os.path.isabs(path):
        raise ValueError(f"invalid path: must be relative path: {path}")
    if len(path) > MAX_PATH:
        raise ValueError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    items = path.split("/")
    for item in items:
        if item == "..":
            raise ValueError(f"invalid path: must not contain '..': {path}")
        if len(item) > MAX_NAME:
            raise ValueError(f"invalid path: filenames must be less than or equal to {MAX_NAME} characters")
    if items[0].startswith("..") and len(items[0]) > 2:
        raise ValueError(f"invalid path: must not start with '..': {path}")


class AtomicWriter:
    """Projects a payload into ``target`` atomically (see the module docstring). ``target`` must exist."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def write(self, payload: Mapping[str, FileProjection]) -> bool:
        """Make ``target`` show exactly ``payload``; returns whether anything was written."""
        clean: Payload = {}
        for path, projection in payload.items():
            validate_path(path)
            clean[os.path.normpath(path)] = projection
        data_dir = self.target / DATA_DIR
        old_ts = os.readlink(data_dir) if os.path.islink(data_dir) else ""
        old_path = self.target / old_ts if old_ts else None
        to_remove: set[str] = set()
        if old_path is not None:
            to_remove = self._paths_to_remove(clean, old_path)
            if not self._should_write(clean, old_path) and not to_remove:
                return False
        ts_dir = Path(tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()),
                                       dir=self.target))
        try:
            os.chmod(ts_dir, 0o755)
            for path, projection in clean.items():
                full = ts_dir / path
                full.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, projection.mode)
                with os.fdopen(fd, "wb") as f:
                    f.write(projection.data)
                os.chmod(full, projection.mode)
            self._create_user_visible(clean)
            tmp_link = self.target / NEW_DATA_DIR
            if os.path.lexists(tmp_link):
                os.unlink(tmp_link)
            os.symlink(ts_dir.name, tmp_link)
            os.rename(tmp_link, data_dir)
        except BaseException:
            shutil.rmtree(ts_dir, ignore_errors=True)
            raise
        for path in to_remove:
            if "/" not in path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.target / path)
        if old_path is not None:
            shutil.rmtree(old_path, ignore_errors=True)
        return True

    @staticmethod
    def _should_write(payload: Payload, old: Path) -> bool:
        for path, projection in payload.items():
            full = old / path
            try:
                st = os.lstat(full)
                if stat.S_IMODE(st.st_mode) != projection.mode or full.read_bytes() != projection.data:
                    return True
            except FileNotFoundError:
                return True
        return False

    @staticmethod
    def _paths_to_remove(payload: Payload, old: Path) -> set[str]:
        existing: set[str] = set()
        for root, dirs, files in os.walk(old):
            for name in dirs + files:
                existing.add(os.path.relpath(os.path.join(root, name), old))
        wanted: set[str] = set()
        for path in payload:
            while path:
                wanted.add(path)
                path = os.path.dirname(path)
        return existing - wanted

    def _create_user_visible(self, payload: Payload) -> None:
        for path in payload:
            top = path.split("/", 1)[0]
            link = self.target / top
            if not os.path.lexists(link):
                os.symlink(os.path.join(DATA_DIR, top), link)


# --- projections (pure) ----------------------------------------------------------------------------

def _mode(item: Obj, default: int) -> int:
    mode = item.get("mode")
    return int(mode) if mode is not None else default


def _items_payload(values: Mapping[str, bytes], items: list[Obj], default_mode: int, optional: bool,
                   missing_key: Callable[[str], str]) -> Payload:
    if not items:
        return {key: FileProjection(value, default_mode) for key, value in values.items()}
    payload: Payload = {}
    for item in items:
        key = str(item.get("key") or "")
        if key not in values:
            if optional:
                continue
            raise EnvError(missing_key(key))
        payload[str(item.get("path") or key)] = FileProjection(values[key], _mode(item, default_mode))
    return payload


def configmap_values(cm: Obj) -> dict[str, bytes]:
    values = {str(k): str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for key, value in (cm.get("binaryData") or {}).items():
        values[str(key)] = base64.b64decode(str(value))
    return values


def project_configmap(source: Obj, namespace: str, configmaps: Lookup, default_mode: int | None = None) -> Payload:
    name = str(source.get("name") or "")
    optional = bool(source.get("optional"))
    mode = default_mode if default_mode is not None else int(source.get("defaultMode", DEFAULT_MODE))
    cm = configmaps(namespace, name)
    if cm is None:
        if optional:
            return {}
        raise EnvError(f'configmap "{name}" not found')
    return _items_payload(configmap_values(cm), list(source.get("items") or []), mode, optional,
                          lambda key: f"configmap references non-existent config key: {key}")


def project_secret(source: Obj, namespace: str, secrets: Lookup, default_mode: int | None = None) -> Payload:
    name = str(source.get("secretName") or source.get("name") or "")
    optional = bool(source.get("optional"))
    mode = default_mode if default_mode is not None else int(source.get("defaultMode", DEFAULT_MODE))
    secret = secrets(namespace, name)
    if secret is None:
        if optional:
            return {}
        raise EnvError(f'secret "{name}" not found')
    return _items_payload(secret_values(secret), list(source.get("items") or []), mode, optional,
                          lambda key: f"references non-existent secret key: {key}")


def project_downward_api(source: Obj, pod: Obj, context: PodContext, default_mode: int | None = None) -> Payload:
    mode = default_mode if default_mode is not None else int(source.get("defaultMode", DEFAULT_MODE))
    payload: Payload = {}
    for item in source.get("items") or []:
        path = str(item.get("path") or "")
        if item.get("fieldRef") is not None:
            value = field_value(pod, str(item["fieldRef"].get("fieldPath") or ""), context)
        elif item.get("resourceFieldRef") is not None:
            ref = item["resourceFieldRef"]
            value = resource_value(pod, _named_container(pod, ref.get("containerName")), ref, context)
        else:
            continue
        payload[path] = FileProjection(value.encode(), _mode(item, mode))
    return payload


def _named_container(pod: Obj, name: Any) -> Obj:
    spec = pod.get("spec") or {}
    for ctr in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if ctr.get("name") == name:
            return dict(ctr)
    raise EnvError(f"container {name} not found")


def project_projected(source: Obj, pod: Obj, configmaps: Lookup, secrets: Lookup, context: PodContext) -> Payload:
    mode = int(source.get("defaultMode", DEFAULT_MODE))
    namespace = meta.namespace(pod)
    payload: Payload = {}
    for src in source.get("sources") or []:
        if src.get("configMap") is not None:
            payload.update(project_configmap(src["configMap"], namespace, configmaps, mode))
        elif src.get("secret") is not None:
            payload.update(project_secret(src["secret"], namespace, secrets, mode))
        elif src.get("downwardAPI") is not None:
            payload.update(project_downward_api(src["downwardAPI"], pod, context, mode))
        elif src.get("serviceAccountToken") is not None:
            raise EnvError("serviceAccountToken projections are not supported by kubelite (no TokenRequest API)")
        else:
            raise EnvError(f"unsupported projected volume source: {sorted(src)}")
    return payload


# --- mounting --------------------------------------------------------------------------------------

def _unescape(field_text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field_text):
        code = field_text[i + 1:i + 4]
        if field_text[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field_text[i])
            i += 1
    return "".join(out)


def read_mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount, in mount order."""
    out = []
    for line in mountinfo.read_text().splitlines():
        pre, sep, post = line.partition(" - ")
        fields = pre.split()
        if not sep or len(fields) < 5:
            continue
        out.append((_unescape(fields[4]), post.split()[0] if post.split() else ""))
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class Mounter(Protocol):
    def mount_tmpfs(self, target: Path, *, size: int | None = None) -> None: ...

    def unmount(self, target: Path) -> None: ...

    def fs_type(self, path: Path) -> str: ...

    def mount_points_under(self, root: Path) -> list[Path]: ...


class SystemMounter:
    """mount(2)/umount2(2) through libc; filesystem types from /proc/self/mountinfo."""

    MS_NOSUID = 2
    MS_NODEV = 4
    MNT_DETACH = 2

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)

    def mount_tmpfs(self, target: Path, *, size: int | None = None) -> None:
        options = "mode=0755" + (f",size={size}" if size else "")
        rc = self._libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", self.MS_NOSUID | self.MS_NODEV,
                              options.encode())
        if rc != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount tmpfs on {target}: {os.strerror(err)}")

    def unmount(self, target: Path) -> None:
        rc = self._libc.umount2(str(target).encode(), self.MNT_DETACH)
        if rc != 0:
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
                raise OSError(err, f"unmount {target}: {os.strerror(err)}")

    def fs_type(self, path: Path) -> str:
        real = os.path.realpath(path)
        best, kind = "", ""
        for point, fstype in read_mounts():
            if _under(real, point) and len(point) >= len(best):
                best, kind = point, fstype
        return kind

    def mount_points_under(self, root: Path) -> list[Path]:
        real = os.path.realpath(root)
        return [Path(p) for p, _ in read_mounts() if _under(p, real)]


# --- the manager -----------------------------------------------------------------------------------

@dataclass
class _Plan:
    """What `setup` does for one volume, computed in the event loop and applied in a thread."""

    name: str
    kind: str  # "emptyDir", "tmpfs-emptyDir", "files", "tmpfs-files", "hostPath"
    path: Path
    payload: Payload = field(default_factory=dict)
    size: int | None = None
    host_type: str = ""


class VolumeManager:
    """Sets up and tears down the volumes of the pods on this node."""

    def __init__(self, paths: AgentPaths, mounter: Mounter | None = None) -> None:
        self.paths = paths
        self.mounter: Mounter = mounter or SystemMounter()

    def pod_dir(self, uid: str) -> Path:
        return self.paths.pods / uid

    def volume_dir(self, uid: str, plugin: str, name: str) -> Path:
        return self.pod_dir(uid) / "volumes" / plugin / name

    def container_dir(self, uid: str, container: str) -> Path:
        """Per-container files of a pod (termination-message files)."""
        return self.pod_dir(uid) / "containers" / container

    async def setup(self, pod: Obj, *, configmaps: Lookup, secrets: Lookup,
                    context: PodContext) -> dict[str, VolumePath]:
        """Create or update every volume of ``pod``; returns where each lives. Raises `VolumeError`."""
        plans = [self._plan(pod, vol, configmaps, secrets, context)
                 for vol in (pod.get("spec") or {}).get("volumes") or []]
        return await asyncio.to_thread(self._apply_all, meta.uid(pod), plans)

    def _plan(self, pod: Obj, vol: Obj, configmaps: Lookup, secrets: Lookup, context: PodContext) -> _Plan:
        uid, name, namespace = meta.uid(pod), str(vol.get("name") or ""), meta.namespace(pod)
        try:
            if vol.get("emptyDir") is not None:
                source = vol["emptyDir"] or {}
                memory = source.get("medium") == "Memory"
                size = int(parse_quantity(source["sizeLimit"])) if memory and source.get("sizeLimit") else None
                return _Plan(name, "tmpfs-emptyDir" if memory else "emptyDir",
                             self.volume_dir(uid, EMPTY_DIR, name), size=size)
            if vol.get("configMap") is not None:
                return _Plan(name, "files", self.volume_dir(uid, CONFIGMAP, name),
                             project_configmap(vol["configMap"], namespace, configmaps))
            if vol.get("secret") is not None:
                return _Plan(name, "tmpfs-files", self.volume_dir(uid, SECRET, name),
                             project_secret(vol["secret"], namespace, secrets))
            if vol.get("downwardAPI") is not None:
                return _Plan(name, "tmpfs-files", self.volume_dir(uid, DOWNWARD_API, name),
                             project_downward_api(vol["downwardAPI"], pod, context))
            if vol.get("projected") is not None:
                return _Plan(name, "tmpfs-files", self.volume_dir(uid, PROJECTED, name),
                             project_projected(vol["projected"], pod, configmaps, secrets, context))
            if vol.get("hostPath") is not None:
                source = vol["hostPath"]
                return _Plan(name, "hostPath", Path(str(source.get("path") or "")),
                             host_type=str(source.get("type") or ""))
        except (EnvError, ValueError) as e:
            raise VolumeError(name, str(e)) from None
        kinds = sorted(k for k in vol if k != "name")
        raise VolumeError(name, f"volume type {', '.join(kinds) or '(none)'} is not supported by kubelite")

    def _apply_all(self, uid: str, plans: list[_Plan]) -> dict[str, VolumePath]:
        out = {}
        for plan in plans:
            try:
                out[plan.name] = self._apply(plan)
            except (OSError, ValueError) as e:
                raise VolumeError(plan.name, _describe(e)) from None
        self.pod_dir(uid).mkdir(parents=True, exist_ok=True)
        return out

    def _apply(self, plan: _Plan) -> VolumePath:
        if plan.kind == "hostPath":
            check_host_path(plan.path, plan.host_type)
            return VolumePath(plan.path, contained=False)
        fresh = not plan.path.exists()
        plan.path.mkdir(parents=True, exist_ok=True)
        if plan.kind == "emptyDir":
            if fresh:
                os.chmod(plan.path, 0o777)
            return VolumePath(plan.path)
        if plan.kind.startswith("tmpfs-"):
            self._ensure_tmpfs(plan.path, plan.size)
        if plan.kind == "tmpfs-emptyDir":
            os.chmod(plan.path, 0o777)
            return VolumePath(plan.path)
        AtomicWriter(plan.path).write(plan.payload)
        return VolumePath(plan.path, read_only=True)

    def _ensure_tmpfs(self, path: Path, size: int | None) -> None:
        if path in self.mounter.mount_points_under(path):
            if self.mounter.fs_type(path) == "tmpfs":
                return
        try:
            self.mounter.mount_tmpfs(path, size=size)
        except OSError as e:
            if e.errno != errno.EPERM or self.mounter.fs_type(path) != "tmpfs":
                raise OSError(e.errno, f"cannot mount a tmpfs for it: {e.strerror}") from None
        if self.mounter.fs_type(path) != "tmpfs":
            raise OSError(errno.EIO, f"{path} is not on a tmpfs; refusing to write secret data to disk")

    async def teardown(self, uid: str) -> None:
        """Unmount and remove every volume of the pod ``uid`` (idempotent)."""
        await asyncio.to_thread(self._teardown, uid)

    def _teardown(self, uid: str) -> None:
        pod_dir = self.pod_dir(uid)
        if not pod_dir.exists():
            return
        for point in sorted(self.mounter.mount_points_under(pod_dir), key=lambda p: len(str(p)), reverse=True):
            self.mounter.unmount(point)
        left = self.mounter.mount_points_under(pod_dir)
        if left:
            raise OSError(errno.EBUSY, f"cannot remove {pod_dir}: still mounted: {', '.join(map(str, left))}")
        shutil.rmtree(pod_dir, ignore_errors=True)

    def pod_uids_on_disk(self) -> set[str]:
        """The pods that have a folder here (to clean up after pods that went while the kubelet was down)."""
        try:
            return {p.name for p in self.paths.pods.iterdir() if p.is_dir()}
        except FileNotFoundError:
            return set()


def _describe(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e)


def check_host_path(path: Path, kind: str) -> None:
    """Kubernetes' hostPath type checks (and creation for the *OrCreate types)."""
    if not path.is_absolute():
        raise ValueError(f"hostPath {path} must be absolute")
    if kind == "DirectoryOrCreate":
        if not os.path.lexists(path):
            path.mkdir(mode=0o755, parents=True)
            os.chmod(path, 0o755)
        kind = "Directory"
    elif kind == "FileOrCreate":
        if not os.path.lexists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
        kind = "File"
    checks: dict[str, tuple[Callable[[int], bool], str]] = {
        "Directory": (stat.S_ISDIR, "is not a directory"),
        "File": (stat.S_ISREG, "is not a file"),
        "Socket": (stat.S_ISSOCK, "is not a socket file"),
        "CharDevice": (stat.S_ISCHR, "is not a character device"),
        "BlockDevice": (stat.S_ISBLK, "is not a block device"),
    }
    if kind not in checks:
        if kind:
            raise ValueError(f"hostPath type {kind} is not supported")
        return
    test, what = checks[kind]
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = 0
    if not test(mode):
        raise ValueError(f"hostPath type check failed: {path} {what}")
