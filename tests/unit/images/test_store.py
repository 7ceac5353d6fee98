"""The image store without a registry: tarball imports, names, removal, holders, garbage collection."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from kubelite.kubelet.images import (
    DigestMismatch,
    ImageInUse,
    ImageNotFound,
    ImageRecord,
    ImageStore,
    InvalidImage,
    PullProgress,
)
from kubelite.kubelet.images.content import Ingest
from kubelite.kubelet.images.locks import FileLock
from kubelite.kubelet.images.manifest import Platform
from kubelite.kubelet.images.model import ImageConfig
from tests.support.images import (
    DELETED_BY_LAYER2,
    OPAQUE_NEW_FILE,
    build_busybox_image,
    image_index_layout,
    layout_image,
    oci_tarball,
)
from tests.unit.images.conftest import Tarballs

NAME = "kubelite.test/busybox:latest"


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


def _blobs(store: ImageStore) -> set[str]:
    return set(store.content.digests())


async def test_import_an_oci_layout_tarball(store: ImageStore, tarballs: Tarballs) -> None:
    steps: list[PullProgress] = []
    [record] = await store.import_tarball(tarballs.oci, progress=steps.append)
    image = tarballs.image
    assert record.id == image.config_digest
    assert record.repo_tags == [NAME]
    assert record.repo_digests == [f"kubelite.test/busybox@{image.manifest_digest}"]
    assert record.diff_ids == image.diff_ids
    assert record.manifest_digest == image.manifest_digest
    assert record.config.cmd == ["sh"]
    assert record.config.exposed_ports == ["80/tcp"]
    assert record.architecture == Platform.host().architecture
    # The layer tarballs are dropped once unpacked: only the manifest and configuration stay.
    assert _blobs(store) == {image.manifest_digest, image.config_digest}
    base, top = store.layer_dirs(record)
    assert (base / "bin/busybox").is_file()
    assert os.readlink(base / "bin/sh") == "busybox"
    assert (top / OPAQUE_NEW_FILE).is_file()
    if os.geteuid() == 0:
        assert stat.S_ISCHR(os.lstat(top / DELETED_BY_LAYER2).st_mode)
    assert {s.status for s in steps} >= {"Reading", "Extracting", "Pull complete"}
    assert store.list() == [record]


async def test_import_a_docker_save_tarball(store: ImageStore, tarballs: Tarballs) -> None:
    [record] = await store.import_tarball(tarballs.docker)
    assert record.id == tarballs.image.config_digest
    assert record.repo_tags == ["docker.io/library/busybox:1.0", "docker.io/me/tool:2"]
    assert record.repo_digests == []
    assert record.manifest_digest == ""
    assert [p.name for p in store.layer_dirs(record)] == [
        d.replace(":", "-") for d in tarballs.image.diff_ids]
    assert _blobs(store) == {tarballs.image.config_digest}
    # The same image from the other format is the same record, with both sets of names.
    [merged] = await store.import_tarball(tarballs.oci)
    assert merged.id == record.id
    assert set(merged.repo_tags) == {NAME, *record.repo_tags}


async def test_import_a_compressed_tarball(store: ImageStore, tarballs: Tarballs, tmp_path: Path) -> None:
    compressed = tmp_path / "busybox.tar.gz"
    compressed.write_bytes(gzip.compress(tarballs.docker.read_bytes(), compresslevel=1))
    [record] = await store.import_tarball(compressed)
    assert record.id == tarballs.image.config_digest


async def test_import_the_platform_of_this_machine_from_a_multi_platform_layout(
        store: ImageStore, tarballs: Tarballs, tmp_path: Path) -> None:
    host = Platform.host().architecture
    foreign = "arm64" if host != "arm64" else "amd64"
    other = build_busybox_image(tmp_path / "foreign", architecture=foreign, extra_files={"etc/arch": b"foreign\n"})
    layout = image_index_layout(tmp_path / "multi", [tarballs.image.layout, other], name="kubelite.test/multi:1")
    [record] = await store.import_tarball(oci_tarball(layout, tmp_path / "multi.tar"))
    assert record.id == tarballs.image.config_digest
    assert record.repo_tags == ["kubelite.test/multi:1"]
    assert record.repo_digests == [f"kubelite.test/multi@{layout_image(layout).digest}"]
    # The other platform's blobs were not kept.
    assert layout_image(other).config_digest not in _blobs(store)


async def test_bad_tarballs(store: ImageStore, tarballs: Tarballs, tmp_path: Path) -> None:
    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w"):
        pass
    with pytest.raises(InvalidImage, match="neither an OCI image layout nor a docker save tarball"):
        await store.import_tarball(empty)
    (tmp_path / "junk.tar").write_bytes(b"junk" * 1000)
    with pytest.raises(InvalidImage):
        await store.import_tarball(tmp_path / "junk.tar")
    # A blob whose content does not match the digest it is filed under.
    layout = tmp_path / "tampered"
    shutil.copytree(tarballs.image.layout, layout)
    config = layout / "blobs/sha256" / tarballs.image.config_digest.split(":")[1]
    config.write_bytes(config.read_bytes().replace(b'"sh"', b'"rm"'))
    with pytest.raises(DigestMismatch):
        await store.import_tarball(oci_tarball(layout, tmp_path / "tampered.tar"))
    assert store.list() == []


async def test_resolve_by_name_digest_and_id(store: ImageStore, tarballs: Tarballs) -> None:
    [record] = await store.import_tarball(tarballs.docker)
    await store.import_tarball(tarballs.oci)
    hex_id = record.id.split(":")[1]
    for ref in ("busybox:1.0", "docker.io/library/busybox:1.0", "me/tool:2", NAME, record.id, hex_id,
                hex_id[:12], f"sha256:{hex_id[:6]}", f"kubelite.test/busybox@{tarballs.image.manifest_digest}"):
        found = store.resolve(ref)
        assert found is not None and found.id == record.id, ref
    for ref in ("busybox", "busybox:2.0", "kubelite.test/busybox@sha256:" + "0" * 64, "0000", "BAD REF"):
        assert store.resolve(ref) is None, ref


async def test_remove_untags_then_deletes_with_its_layers(store: ImageStore, tarballs: Tarballs) -> None:
    [record] = await store.import_tarball(tarballs.docker)
    await store.remove("busybox:1.0")
    assert store.resolve(record.id) is not None
    assert store.resolve("busybox:1.0") is None
    await store.remove("me/tool:2")
    assert store.list() == []
    assert _blobs(store) == set()
    assert list(store.layers.diff_ids()) == []
    with pytest.raises(ImageNotFound, match="no such image: me/tool:2"):
        await store.remove("me/tool:2")


async def test_shared_layers_stay_while_an_image_uses_them(store: ImageStore, tarballs: Tarballs) -> None:
    [first] = await store.import_tarball(tarballs.oci)
    steps: list[PullProgress] = []
    [second] = await store.import_tarball(tarballs.other_oci, progress=steps.append)
    assert first.diff_ids[0] == second.diff_ids[0]
    assert [s.layer for s in steps if s.status == "Already exists"] == [tarballs.other.layer_digests[0]]
    await store.remove(first.id)
    assert [p.is_dir() for p in store.layer_dirs(second)] == [True, True]
    assert not store.layers.exists(first.diff_ids[1])


async def test_held_images_are_not_removed(store: ImageStore, tarballs: Tarballs) -> None:
    [record] = await store.import_tarball(tarballs.oci)
    store.acquire(record.id, "container-1")
    store.acquire(record.id, "container-1")
    store.acquire(record.id, "container-2")
    assert store.holders(record.id) == ["container-1", "container-2"]
    with pytest.raises(ImageInUse, match="in use by container-1, container-2"):
        await store.remove(NAME)
    store.release(record.id, "container-1")
    store.retain_holders({"container-1"})  # container-2 went away while the agent was down
    assert store.holders(record.id) == []
    await store.remove(NAME)
    with pytest.raises(ImageNotFound):
        store.acquire(record.id, "container-3")
    store.release(record.id, "container-3")  # unknown images are ignored


async def test_garbage_collection_removes_unused_images_only(store: ImageStore, tarballs: Tarballs) -> None:
    [held] = await store.import_tarball(tarballs.oci)
    [unused] = await store.import_tarball(tarballs.other_oci)
    store.acquire(held.id, "c1")
    # Below the threshold nothing happens.
    assert await store.garbage_collect(high_percent=100, low_percent=100, min_age_seconds=0) == 0
    # A just-used image is kept for min_age_seconds.
    await store.garbage_collect(high_percent=0, low_percent=0, min_age_seconds=3600)
    assert store.resolve(unused.id) is not None
    freed = await store.garbage_collect(high_percent=0, low_percent=0, min_age_seconds=0)
    assert freed > 0
    assert store.resolve(unused.id) is None
    assert store.resolve(held.id) is not None
    assert [p.is_dir() for p in store.layer_dirs(held)] == [True, True]
    assert not store.layers.exists(unused.diff_ids[1])
    with pytest.raises(ValueError, match="thresholds"):
        await store.garbage_collect(high_percent=50, low_percent=80)


async def test_a_sweep_waits_for_writers(store: ImageStore, tarballs: Tarballs) -> None:
    [record] = await store.import_tarball(tarballs.oci)
    writer = FileLock(store.root / "sweep.lock", shared=True)
    assert writer.try_acquire()
    try:
        await store.remove(record.id)
        # The image is gone, but its layers stay until no pull or import is writing.
        assert store.resolve(record.id) is None
        assert store.layers.exists(record.diff_ids[0])
    finally:
        writer.release()
    await store.garbage_collect(high_percent=0, low_percent=0, min_age_seconds=0)
    assert not store.layers.exists(record.diff_ids[0])


async def test_stores_on_one_folder_see_each_other(tmp_path: Path, tarballs: Tarballs) -> None:
    agent, command = ImageStore(tmp_path / "images"), ImageStore(tmp_path / "images")
    [record] = await command.import_tarball(tarballs.oci)
    assert agent.resolve(NAME) == record
    agent.acquire(record.id, "c1")
    with pytest.raises(ImageInUse):
        await command.remove(NAME)
    index = json.loads((tmp_path / "images/index.json").read_text())
    assert index["images"][record.id]["holders"] == ["c1"]


async def test_tags_move_to_the_newest_image(store: ImageStore, tarballs: Tarballs, tmp_path: Path) -> None:
    [old] = await store.import_tarball(tarballs.oci)
    layout = build_busybox_image(tmp_path, extra_files={"etc/version": b"2\n"})  # same name, new content
    [new] = await store.import_tarball(oci_tarball(layout, tmp_path / "new.tar"))
    assert new.id != old.id
    assert store.resolve(NAME) == new
    dangling = store.resolve(old.id)
    assert dangling is not None and dangling.repo_tags == []


async def test_dropin_folder(store: ImageStore, tarballs: Tarballs, tmp_path: Path) -> None:
    dropin = tmp_path / "dropin"
    dropin.mkdir()
    shutil.copy(tarballs.oci, dropin / "busybox.tar")
    (dropin / "broken.tar").write_bytes(b"not a tarball")
    (dropin / "README").write_text("ignored")
    assert [r.repo_tags for r in await store.import_dropin(dropin)] == [[NAME]]
    assert await store.import_dropin(dropin) == []  # unchanged: not imported again
    await store.remove(NAME)
    assert [r.repo_tags for r in await store.import_dropin(dropin)] == [[NAME]]  # its image was removed
    assert await store.import_dropin(tmp_path / "missing") == []


def test_layer_dirs_keep_a_repeated_layer_at_its_highest_place(store: ImageStore) -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    for diff_id in (a, b):
        store.layers.path(diff_id).mkdir(parents=True)
    record = ImageRecord(id="sha256:" + "c" * 64, repo_tags=[], repo_digests=[], size=0, config=ImageConfig(),
                         diff_ids=[a, b, a])
    assert store.layer_dirs(record) == [store.layers.path(b), store.layers.path(a)]
    record.diff_ids.append("sha256:" + "d" * 64)
    with pytest.raises(InvalidImage, match="missing"):
        store.layer_dirs(record)


async def test_partial_downloads_stay_for_resuming_until_space_is_short(store: ImageStore,
                                                                        tarballs: Tarballs) -> None:
    [record] = await store.import_tarball(tarballs.oci)
    digest = "sha256:" + "e" * 64
    with Ingest(store.content, digest) as ingest:
        ingest.write(b"half a blob")
    await store.remove(record.id)
    assert sorted(p.name for p in store.content.ingest_dir.iterdir()) == [f"sha256-{'e' * 64}.partial"]
    await store.garbage_collect(high_percent=0, low_percent=0, min_age_seconds=0)
    assert list(store.content.ingest_dir.iterdir()) == []
