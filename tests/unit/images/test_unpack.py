"""Unpacking layers: overlay whiteouts and opaque directories, tar safety, diff IDs, compression."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from kubelite.kubelet.images.errors import DigestMismatch, InvalidImage, UnsafeLayer
from kubelite.kubelet.images.unpack import clean_path, is_whiteout, opaque_xattr, unpack_layer
from tests.support.images import layer_tar

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="overlay whiteouts and trusted.* xattrs need root")


def _unpack(tmp_path: Path, data: bytes, *, name: str = "layer", diff_id: str | None = None) -> Path:
    blob = tmp_path / f"{name}.tar"
    blob.write_bytes(data)
    dest = tmp_path / name
    dest.mkdir()
    unpack_layer(blob, dest, expected_diff_id=diff_id)
    return dest


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _raw_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **attrs: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def test_files_dirs_and_symlinks_are_kept(tmp_path: Path) -> None:
    data = layer_tar([("bin", "dir", ""), ("bin/tool", "file", "#!/bin/sh\n"), ("bin/alias", "symlink", "tool"),
                      ("abs", "symlink", "/etc/passwd"), ("bin/hard", "hardlink", "bin/tool")])
    root = _unpack(tmp_path, data, diff_id=_digest(data))
    assert (root / "bin/tool").read_text() == "#!/bin/sh\n"
    assert os.readlink(root / "bin/alias") == "tool"
    assert os.readlink(root / "abs") == "/etc/passwd"  # kept as is, never followed
    assert (root / "bin/hard").stat().st_ino == (root / "bin/tool").stat().st_ino


def test_modes_times_and_ownership(tmp_path: Path) -> None:
    data = _raw_tar(
        (_info("suid", mode=0o4755, mtime=1_000_000, uid=1234, gid=5678), b"x"),
        (_info("ro", tarfile.DIRTYPE, mode=0o555, mtime=2_000_000), None),
        (_info("ro/file", mode=0o600, mtime=3_000_000), b"y"),
    )
    root = _unpack(tmp_path, data)
    suid = (root / "suid").stat()
    assert stat.S_IMODE(suid.st_mode) == 0o4755
    assert suid.st_mtime == 1_000_000
    # Written into before its own mode and time were set, a read-only directory still gets both.
    assert stat.S_IMODE((root / "ro").stat().st_mode) == 0o555
    assert (root / "ro").stat().st_mtime == 2_000_000
    if os.geteuid() == 0:
        assert (suid.st_uid, suid.st_gid) == (1234, 5678)


@needs_root
def test_whiteout_becomes_an_overlay_whiteout(tmp_path: Path) -> None:
    data = layer_tar([("etc", "dir", ""), ("etc/.wh.passwd", "file", ""), ("etc/kept", "file", "k")])
    root = _unpack(tmp_path, data)
    st = os.lstat(root / "etc/passwd")
    assert is_whiteout(st)
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert not (root / "etc/.wh.passwd").exists()
    assert (root / "etc/kept").read_text() == "k"


@needs_root
def test_opaque_directory_gets_the_overlay_xattr(tmp_path: Path) -> None:
    data = layer_tar([("data/.wh..wh..opq", "file", ""), ("data/new", "file", "n")])
    root = _unpack(tmp_path, data)
    assert os.getxattr(root / "data", opaque_xattr()) == b"y"
    assert opaque_xattr() == "trusted.overlay.opaque"
    assert sorted(os.listdir(root / "data")) == ["new"]


@needs_root
def test_a_whiteout_does_not_hide_an_entry_of_its_own_layer(tmp_path: Path) -> None:
    # OCI image spec: a whiteout applies to lower layers only, whatever the order in the tarball.
    data = layer_tar([("a", "file", "before"), (".wh.a", "file", ""), (".wh.b", "file", ""), ("b", "file", "after")])
    root = _unpack(tmp_path, data)
    assert (root / "a").read_text() == "before"
    assert (root / "b").read_text() == "after"


@needs_root
def test_directory_recreated_over_its_whiteout_is_opaque(tmp_path: Path) -> None:
    data = layer_tar([(".wh.d", "file", ""), ("d/x", "file", "x")])
    root = _unpack(tmp_path, data)
    assert (root / "d").is_dir()
    assert os.getxattr(root / "d", opaque_xattr()) == b"y"


@needs_root
def test_aufs_metadata_is_skipped(tmp_path: Path) -> None:
    data = layer_tar([(".wh..wh.plnk", "dir", ""), (".wh..wh.aufs", "file", ""), ("f", "file", "f")])
    root = _unpack(tmp_path, data)
    assert sorted(os.listdir(root)) == ["f"]


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/../escape", "./../../etc/passwd"])
def test_paths_climbing_out_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeLayer, match="escapes the layer"):
        _unpack(tmp_path, layer_tar([(name, "file", "evil")]))
    assert not (tmp_path / "escape").exists()


def test_clean_path_keeps_inner_dotdot_within_the_root() -> None:
    assert clean_path("./a/b/../c/") == ["a", "c"]
    assert clean_path("/abs/path") == ["abs", "path"]


def test_symlinks_on_the_way_are_followed_inside_the_layer(tmp_path: Path) -> None:
    # "evil -> /" then "evil/etc/owned": the container's "/" is the layer root, never the host's.
    outside = tmp_path / "outside"
    outside.mkdir()
    data = layer_tar([("evil", "symlink", "/"), ("evil/etc/owned", "file", "x"),
                      ("up", "symlink", "../../../../../.."), ("up/also", "file", "y"),
                      ("out", "symlink", str(outside)), ("out/file", "file", "z")])
    root = _unpack(tmp_path, data)
    assert (root / "etc/owned").read_text() == "x"
    assert (root / "also").read_text() == "y"
    assert not list(outside.iterdir())
    assert (root / outside.relative_to("/") / "file").read_text() == "z"


def test_hard_links_out_of_the_layer_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeLayer):
        _unpack(tmp_path, layer_tar([("link", "hardlink", "../../etc/passwd")]))
    with pytest.raises(UnsafeLayer, match="not in the layer"):
        _unpack(tmp_path, layer_tar([("link", "hardlink", "missing-file")]), name="second")


def test_an_existing_entry_is_replaced(tmp_path: Path) -> None:
    data = layer_tar([("x", "dir", ""), ("x/inner", "file", "i"), ("x", "file", "now a file"),
                      ("y", "file", "old"), ("y", "symlink", "x")])
    root = _unpack(tmp_path, data)
    assert (root / "x").read_text() == "now a file"
    assert os.readlink(root / "y") == "x"


def test_device_nodes_need_root_fifos_do_not(tmp_path: Path) -> None:
    data = _raw_tar((_info("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666), None),
                    (_info("pipe", tarfile.FIFOTYPE, mode=0o644), None))
    root = _unpack(tmp_path, data)
    assert stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)
    if os.geteuid() == 0:
        st = os.lstat(root / "dev/null")
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    else:
        assert not (root / "dev/null").exists()


def test_overlay_xattrs_from_the_tarball_are_ignored(tmp_path: Path) -> None:
    info = _info("dir", tarfile.DIRTYPE, mode=0o755)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/elsewhere", "SCHILY.xattr.user.note": "kept"}
    root = _unpack(tmp_path, _raw_tar((info, None)))
    names = os.listxattr(root / "dir")
    assert "trusted.overlay.redirect" not in names
    if os.geteuid() == 0:
        assert os.getxattr(root / "dir", "user.note") == b"kept"


def test_the_diff_id_is_the_digest_of_the_uncompressed_stream(tmp_path: Path) -> None:
    data = layer_tar([("f", "file", "content")])
    _unpack(tmp_path, gzip.compress(data), name="gz", diff_id=_digest(data))
    with pytest.raises(DigestMismatch, match="diff ID mismatch"):
        _unpack(tmp_path, data, name="wrong", diff_id=_digest(b"something else"))


def test_zstd_layers(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard", reason="the zstandard package is not installed")
    data = layer_tar([("f", "file", "zstd content")])
    root = _unpack(tmp_path, zstandard.ZstdCompressor().compress(data), diff_id=_digest(data))
    assert (root / "f").read_text() == "zstd content"


def test_garbage_is_an_invalid_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidImage):
        _unpack(tmp_path, gzip.compress(b"not a tar archive" * 100))


def test_zstd_without_the_package_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard now raises ImportError
    with pytest.raises(InvalidImage, match="needs the Python package 'zstandard'"):
        _unpack(tmp_path, b"\x28\xb5\x2f\xfd" + b"\0" * 64)
