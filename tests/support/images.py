"""Test images and a real registry, for every test that needs a container image.

- `build_busybox_image(dest_dir)` writes an OCI image layout made from Debian's static ``/bin/busybox``
  (package busybox-static) with symbolic links for common applets (`APPLETS`), in two layers: the second
  deletes a file of the first (a whiteout) and replaces a directory's content (an opaque directory), so that
  unpacking is exercised. `oci_tarball` and `docker_save_tarball` turn a layout into the two tarball
  formats ``kubelite image import`` reads; `image_index_layout` combines several layouts into one
  multi-platform image; `layout_image` reads back a layout's digests.
- `RegistryServer` runs Debian's ``docker-registry`` (package docker-registry) on a free loopback port
  with its storage in a temporary directory, optionally with htpasswd basic auth; it is always stopped
  (and killed with its parent). `push_image` pushes a layout to it over the distribution API.

The builds are deterministic (fixed times and owners), so the same inputs give the same digests.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kubelite.kubelet.images import build
from kubelite.kubelet.images.build import BUSYBOX, OCI_INDEX, BusyboxMissing, oci_tarball, write_layout
from kubelite.kubelet.images.manifest import Platform
from tests.support.etcd import _die_with_parent, free_port

REGISTRY_BINARY = "/usr/bin/docker-registry"
DEFAULT_NAME = "kubelite.test/busybox:latest"
APPLETS = ("sh", "ls", "cat", "echo", "sleep", "httpd", "wget", "nc", "env", "id", "hostname", "true",
           "false", "yes", "dd", "head")
# What the second layer does to the first (tests check these after unpacking).
DELETED_BY_LAYER2 = "etc/removed-by-layer2"
OPAQUE_DIR = "opaque"
OPAQUE_OLD_FILE = "opaque/from-layer1"
OPAQUE_NEW_FILE = "opaque/from-layer2"
LAYER2_FILE = "etc/layer2"
INDEX_HTML = "var/www/index.html"



# -- building images -----------------------------------------------------------------------------------------


@dataclass
class LayoutImage:
    """The digests of a layout's (first) image."""

    layout: Path
    name: str
    manifest_digest: str
    config_digest: str  # the image ID
    diff_ids: list[str]
    layer_digests: list[str]
    # The top descriptor's digest: the manifest, or the index of a multi-platform layout.
    digest: str = ""

    @property
    def id(self) -> str:
        return self.config_digest


def build_busybox_image(dest_dir: Path, *, name: str = DEFAULT_NAME, compression: str = "gzip",
                        architecture: str | None = None, extra_files: dict[str, bytes] | None = None,
                        cmd: list[str] | None = None) -> Path:
    """Write an OCI image layout of a busybox image to ``dest_dir/<name's last path part>-oci`` and return
    its path. ``extra_files`` (path → content) are added to the second layer (to make distinct images);
    ``architecture`` defaults to this machine's; ``compression`` is gzip, zstd or none."""
    if not BUSYBOX.is_file():
        raise BusyboxMissing(f"{BUSYBOX} not found: install the Debian package busybox-static")
    base = [
        build.TarEntry("bin", "dir", mode=0o755),
        build.TarEntry("bin/busybox", data=BUSYBOX.read_bytes(), mode=0o755),
        *(build.TarEntry(f"bin/{applet}", "symlink", target="busybox") for applet in APPLETS),
        build.TarEntry("usr", "dir", mode=0o755),
        build.TarEntry("usr/bin", "dir", mode=0o755),
        build.TarEntry("usr/bin/env", "symlink", target="/bin/busybox"),
        build.TarEntry("etc", "dir", mode=0o755),
        build.TarEntry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:"
                                  b"/bin/false\n"),
        build.TarEntry("etc/group", data=b"root:x:0:\nnogroup:x:65534:\n"),
        build.TarEntry(DELETED_BY_LAYER2, data=b"the second layer deletes this file\n"),
        build.TarEntry(OPAQUE_DIR, "dir", mode=0o755),
        build.TarEntry(OPAQUE_OLD_FILE, data=b"hidden by the second layer\n"),
        build.TarEntry("var", "dir", mode=0o755),
        build.TarEntry("var/www", "dir", mode=0o755),
        build.TarEntry(INDEX_HTML, data=b"hello from kubelite busybox\n"),
        build.TarEntry("root", "dir", mode=0o700),
        build.TarEntry("tmp", "dir", mode=0o1777),
        *(build.TarEntry(d, "dir", mode=0o755) for d in ("dev", "proc", "sys")),
    ]
    top = [
        build.TarEntry("etc", "dir", mode=0o755),
        build.TarEntry(f"etc/.wh.{Path(DELETED_BY_LAYER2).name}"),
        build.TarEntry(LAYER2_FILE, data=b"second layer\n"),
        build.TarEntry(OPAQUE_DIR, "dir", mode=0o755),
        build.TarEntry(f"{OPAQUE_DIR}/.wh..wh..opq"),
        build.TarEntry(OPAQUE_NEW_FILE, data=b"from the second layer\n"),
        *(build.TarEntry(path, data=data) for path, data in sorted((extra_files or {}).items())),
    ]
    config = {
        "Env": [build.PATH_ENV],
        "Cmd": cmd or ["sh"],
        "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.title": "kubelite test busybox"},
        "ExposedPorts": {"80/tcp": {}},
    }
    tag_name = name.rsplit("/", 1)[-1].split(":")[0].split("@")[0]
    return write_layout(dest_dir / f"{tag_name}-oci", [build.layer_tar(base), build.layer_tar(top)],
                        config=config, name=name, compression=compression, architecture=architecture,
                        created_by="tests/support/images.py")


def image_index_layout(dest: Path, layouts: list[Path], *, name: str) -> Path:
    """One layout holding a multi-platform image: an OCI index over the images of ``layouts`` (each entry
    carries the platform its layout's index.json gives), named ``name``."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    entries = []
    for layout in layouts:
        for blob in (layout / "blobs" / "sha256").iterdir():
            shutil.copyfile(blob, blobs / blob.name)
        entry = json.loads((layout / "index.json").read_bytes())["manifests"][0]
        entries.append({k: v for k, v in entry.items() if k != "annotations"})
    index = build.canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    top = {"mediaType": OCI_INDEX, "digest": build.write_blob(blobs, index), "size": len(index),
           "annotations": build.name_annotations(name)}
    (dest / "oci-layout").write_bytes(build.canonical_json({"imageLayoutVersion": "1.0.0"}))
    (dest / "index.json").write_bytes(build.canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                            "manifests": [top]}))
    return dest


def layout_image(layout: Path, *, platform: Platform | None = None) -> LayoutImage:
    """The digests of the layout's first image (for an index: the entry for ``platform``, default this
    machine's)."""
    wanted = platform or Platform.host()
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    manifest_desc = top
    if top["mediaType"] == OCI_INDEX:
        index = json.loads(_blob(layout, top["digest"]))
        manifest_desc = next(m for m in index["manifests"]
                             if m["platform"]["architecture"] == wanted.architecture)
    manifest = json.loads(_blob(layout, manifest_desc["digest"]))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    return LayoutImage(
        layout=layout,
        name=top.get("annotations", {}).get("io.containerd.image.name", ""),
        manifest_digest=manifest_desc["digest"],
        config_digest=manifest["config"]["digest"],
        diff_ids=config["rootfs"]["diff_ids"],
        layer_digests=[layer["digest"] for layer in manifest["layers"]],
        digest=top["digest"],
    )


def docker_save_tarball(layout: Path, dest: Path, *, repo_tags: list[str] | None = None) -> Path:
    """The layout's image in the classic ``docker save`` format: ``manifest.json``, ``repositories``,
    ``<config hex>.json`` and an uncompressed ``<id>/layer.tar`` per layer."""
    image = layout_image(layout)
    tags = repo_tags if repo_tags is not None else [_familiar(image.name)]
    files: dict[str, bytes] = {f"{_hex(image.config_digest)}.json": _blob(layout, image.config_digest)}
    layer_paths = []
    for digest, diff_id in zip(image.layer_digests, image.diff_ids, strict=True):
        layer_id = hashlib.sha256(f"{diff_id}".encode()).hexdigest()
        data = _decompress(_blob(layout, digest))
        files[f"{layer_id}/layer.tar"] = data
        files[f"{layer_id}/VERSION"] = b"1.0"
        files[f"{layer_id}/json"] = build.canonical_json({"id": layer_id})
        layer_paths.append(f"{layer_id}/layer.tar")
    files["manifest.json"] = build.canonical_json([{"Config": f"{_hex(image.config_digest)}.json", "RepoTags": tags,
                                     "Layers": layer_paths}])
    repositories: dict[str, dict[str, str]] = {}
    for tag in tags:
        repo, _, version = tag.rpartition(":")
        repositories.setdefault(repo, {})[version] = layer_paths[-1].split("/")[0]
    files["repositories"] = build.canonical_json(repositories)
    with tarfile.open(dest, "w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), build.MTIME, 0o644
            tar.addfile(info, io.BytesIO(data))
    return dest


def layer_tar(entries: list[tuple[str, str, bytes | str]]) -> bytes:
    """A layer tarball from (path, kind, data-or-target) triples, kind one of file, dir, symlink, hardlink
    (for unit tests of unpacking)."""
    converted = []
    for path, kind, value in entries:
        if kind in ("symlink", "hardlink"):
            converted.append(build.TarEntry(path, kind, target=str(value)))
        elif kind == "dir":
            converted.append(build.TarEntry(path, "dir", mode=0o755))
        else:
            converted.append(build.TarEntry(path, data=value if isinstance(value, bytes) else value.encode()))
    return build.layer_tar(converted)


def _decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30))
    return data


def _familiar(name: str) -> str:
    return name.removeprefix("docker.io/library/").removeprefix("docker.io/")


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / _hex(digest)).read_bytes()


# -- pushing -------------------------------------------------------------------------------------------------


def push_image(registry_url: str, layout: Path, name_tag: str, *, username: str = "",
               password: str = "") -> str:
    """Push the layout's first image (a manifest, or an index with its manifests) to ``registry_url`` as
    ``name:tag`` over the distribution API, blobs uploaded monolithically (POST, then one PUT). Returns
    the digest of the manifest (or index) pushed under the tag."""
    name, _, tag = name_tag.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"{name_tag!r} is not name:tag")
    pusher = _Pusher(registry_url.rstrip("/"), name, layout, username, password)
    top = json.loads((layout / "index.json").read_bytes())["manifests"][0]
    return pusher.push(top, tag)


@dataclass
class _Pusher:
    base: str
    name: str
    layout: Path
    username: str
    password: str
    pushed: set[str] = field(default_factory=set)

    def push(self, descriptor: dict[str, Any], reference: str) -> str:
        body = _blob(self.layout, descriptor["digest"])
        document = json.loads(body)
        if descriptor["mediaType"] in (OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"):
            for child in document["manifests"]:
                self.push(child, child["digest"])
        else:
            for blob in [document["config"], *document["layers"]]:
                self._push_blob(blob["digest"])
        self._request("PUT", f"/v2/{self.name}/manifests/{reference}", body,
                      {"Content-Type": descriptor["mediaType"]})
        return str(descriptor["digest"])

    def _push_blob(self, digest: str) -> None:
        if digest in self.pushed:
            return
        try:
            self._request("HEAD", f"/v2/{self.name}/blobs/{digest}")
            return  # already there
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        response = self._request("POST", f"/v2/{self.name}/blobs/uploads/", b"")
        location = urllib.parse.urljoin(self.base + "/", response.headers["Location"])
        separator = "&" if "?" in location else "?"
        self._request("PUT", f"{location}{separator}digest={digest}", _blob(self.layout, digest),
                      {"Content-Type": "application/octet-stream"})
        self.pushed.add(digest)

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> Any:
        url = path if path.startswith("http") else self.base + path
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if self.username:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response


# -- the registry --------------------------------------------------------------------------------------------


class RegistryMissing(RuntimeError):
    """docker-registry is not installed (Debian package docker-registry)."""


class HtpasswdUnavailable(RuntimeError):
    """No way to make a bcrypt hash here (no htpasswd, no bcrypt package, no libcrypt with bcrypt)."""


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash of ``password`` for an htpasswd file: with apache2-utils' htpasswd, the bcrypt package,
    or libxcrypt's crypt(3) (Debian's libcrypt1 does bcrypt); HtpasswdUnavailable when none is there."""
    htpasswd = shutil.which("htpasswd")
    if htpasswd:
        out = subprocess.run([htpasswd, "-nbB", "user", password], check=True, capture_output=True, text=True)
        return out.stdout.strip().split(":", 1)[1]
    try:
        import bcrypt

        return str(bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode())
    except ImportError:
        pass
    library = ctypes.util.find_library("crypt")
    if library:
        libcrypt = ctypes.CDLL(library)
        libcrypt.crypt_gensalt.restype = ctypes.c_char_p
        libcrypt.crypt.restype = ctypes.c_char_p
        salt = libcrypt.crypt_gensalt(b"$2b$", 4, None, 0)
        hashed = libcrypt.crypt(password.encode(), salt) if salt else None
        if hashed and hashed.startswith(b"$2b$"):
            return str(hashed.decode())
    raise HtpasswdUnavailable("cannot make a bcrypt hash: install apache2-utils (htpasswd) or the bcrypt package")


_REQUEST_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')


class RegistryServer:
    """Debian's docker-registry on a free loopback port, storage in a temporary directory. Not reusable:
    start once, stop once (stop is safe to call twice). ``username``/``password`` turn on htpasswd basic
    auth (HtpasswdUnavailable when no bcrypt hash can be made)."""

    def __init__(self, *, username: str = "", password: str = "", binary: str = REGISTRY_BINARY,
                 startup_timeout: float = 20.0) -> None:
        self.username = username
        self.password = password
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.host = ""
        self.url = ""
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def storage(self) -> Path:
        assert self._dir is not None
        return self._dir / "storage"

    @property
    def log_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "registry.log"

    def start(self) -> str:
        """Start the registry and wait until it answers; return its URL (``http://127.0.0.1:PORT``)."""
        if not os.access(self.binary, os.X_OK):
            raise RegistryMissing(f"{self.binary} not found: install the Debian package docker-registry")
        try:
            self._dir = Path(tempfile.mkdtemp(prefix="kubelite-registry-"))
            auth = ""
            if self.username:
                htpasswd = self._dir / "htpasswd"
                htpasswd.write_text(f"{self.username}:{bcrypt_hash(self.password)}\n")
                auth = f"auth:\n  htpasswd:\n    realm: kubelite-test\n    path: {htpasswd}\n"
            for _attempt in range(3):  # a port picked free can be taken before the registry binds it
                self.host = f"127.0.0.1:{free_port()}"
                config = self._dir / "config.yml"
                config.write_text(
                    "version: 0.1\n"
                    "log:\n  level: info\n  formatter: text\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
                    "  maintenance:\n    uploadpurging:\n      enabled: false\n"
                    f"http:\n  addr: {self.host}\n  secret: kubelite-test-secret\n" + auth)
                with open(self.log_path, "ab") as log:
                    self._proc = subprocess.Popen(
                        [self.binary, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                        stderr=subprocess.STDOUT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                        preexec_fn=_die_with_parent,
                    )
                self.url = f"http://{self.host}"
                if self._wait_ready():
                    return self.url
                self._kill()
            raise RuntimeError(f"docker-registry did not start: {self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RegistryServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the registry served so far, from its access log."""
        text = self.log_path.read_text(errors="replace")
        return [(m.group(1), m.group(2), int(m.group(3))) for m in _REQUEST_LINE.finditer(text)]

    def blob_path(self, name: str, digest: str) -> Path:
        """Where the registry keeps a blob (to corrupt it in tests)."""
        encoded = _hex(digest)
        return self.storage / "docker/registry/v2/blobs/sha256" / encoded[:2] / encoded / "data"

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except (OSError, AssertionError):
            return "(no log)"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1):
                    return True
            except urllib.error.HTTPError as e:
                if e.code == 401:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None


__all__ = ["BUSYBOX", "BusyboxMissing", "oci_tarball", "write_layout"]
