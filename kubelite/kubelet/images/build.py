"""Building OCI images from files on this machine, with no registry and no image builder.

`busybox_image(dest)` makes a complete, small image from Debian's static ``/bin/busybox`` (package
busybox-static) with a link for every applet it has (sh, httpd, wget, nc, nslookup, ...): what an offline
machine can run pods from, and what ``kubelite image busybox`` imports. The lower-level `write_layout` and
`oci_tarball` write any image as an OCI image layout and its tarball (``kubelite image import`` reads it).

Builds are deterministic (fixed times and owners), so the same inputs give the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import Platform

BUSYBOX = Path("/bin/busybox")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
MTIME = 1_700_000_000  # fixed, for reproducible digests
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class BusyboxMissing(RuntimeError):
    """/bin/busybox is missing (Debian package busybox-static)."""


@dataclass
class TarEntry:
    """One entry of a layer: a file (data), directory, symlink (target) or hard link (target)."""

    path: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""


def layer_tar(entries: list[TarEntry]) -> bytes:
    """An uncompressed layer tarball, owned by root, with fixed times."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime, info.mode, info.uid, info.gid = MTIME, entry.mode, 0, 0
            info.uname = info.gname = "root"
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif entry.kind == "symlink":
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
            elif entry.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry.target
            else:
                info.size = len(entry.data)
            tar.addfile(info, io.BytesIO(entry.data) if entry.kind == "file" else None)
    return buffer.getvalue()


def write_layout(layout: Path, layers: list[bytes], *, config: dict[str, Any], name: str,
                 compression: str = "gzip", architecture: str | None = None, created_by: str = "kubelite") -> Path:
    """An OCI image layout at ``layout`` holding one image, named ``name``, from uncompressed layer tarballs
    (lowest first) and the image's runtime ``config`` (Env, Cmd, WorkingDir, ...)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    diff_ids, descriptors = [], []
    for layer in layers:
        diff_ids.append(digest_of(layer))
        blob = compress(layer, compression)
        descriptors.append({"mediaType": LAYER_TYPES[compression], "digest": write_blob(blobs, blob),
                            "size": len(blob)})
    arch = architecture or Platform.host().architecture
    config_blob = canonical_json({
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": created_by} for _ in layers],
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": write_blob(blobs, config_blob), "size": len(config_blob)},
        "layers": descriptors,
    })
    entry = {"mediaType": OCI_MANIFEST, "digest": write_blob(blobs, manifest), "size": len(manifest),
             "platform": {"architecture": arch, "os": "linux"}, "annotations": name_annotations(name)}
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (layout / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                        "manifests": [entry]}))
    return layout


def oci_tarball(layout: Path, dest: Path) -> Path:
    """The layout as a tarball (what ``docker save`` writes since Docker 25, without manifest.json)."""
    with tarfile.open(dest, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False, filter=_normalise)
    return dest


def busybox_applets() -> list[str]:
    """Every applet this busybox has (``busybox --list``)."""
    if not BUSYBOX.is_file():
        raise BusyboxMissing(f"{BUSYBOX} not found: install the Debian package busybox-static")
    out = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout
    return sorted({a for a in out.split() if a and a != "busybox" and "/" not in a})


def busybox_base() -> list[TarEntry]:
    """A minimal root filesystem: busybox, a link per applet in /bin, /etc/passwd and /etc/group."""
    if not BUSYBOX.is_file():
        raise BusyboxMissing(f"{BUSYBOX} not found: install the Debian package busybox-static")
    return [
        TarEntry("bin", "dir", mode=0o755),
        TarEntry("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755),
        *(TarEntry(f"bin/{applet}", "symlink", target="busybox") for applet in busybox_applets()),
        TarEntry("usr", "dir", mode=0o755),
        TarEntry("usr/bin", "dir", mode=0o755),
        TarEntry("usr/bin/env", "symlink", target="/bin/busybox"),
        TarEntry("etc", "dir", mode=0o755),
        TarEntry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
                                    b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        TarEntry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n"),
        TarEntry("root", "dir", mode=0o700),
        TarEntry("tmp", "dir", mode=0o1777),
        TarEntry("var", "dir", mode=0o755),
        TarEntry("var/www", "dir", mode=0o755),
        *(TarEntry(d, "dir", mode=0o755) for d in ("dev", "proc", "sys")),
    ]


def busybox_image(dest: Path, *, name: str = "docker.io/library/busybox:latest") -> Path:
    """An OCI tarball ``dest`` of a busybox image named ``name`` (default: what ``busybox`` means)."""
    layout = dest.with_suffix(".layout")
    write_layout(layout, [layer_tar(busybox_base())], config={"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"},
                 name=name, created_by="kubelite image busybox")
    return oci_tarball(layout, dest)


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard

        return bytes(zstandard.ZstdCompressor().compress(data))
    return data


def name_annotations(name: str) -> dict[str, str]:
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    return {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_blob(blobs: Path, data: bytes) -> str:
    digest = digest_of(data)
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return digest


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
    return info
