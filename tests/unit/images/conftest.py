"""Test images built once per module from Debian's busybox (tests/support/images.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.images import (
    BUSYBOX,
    LayoutImage,
    build_busybox_image,
    docker_save_tarball,
    layout_image,
    oci_tarball,
)


@dataclass(frozen=True)
class Tarballs:
    image: LayoutImage
    oci: Path
    docker: Path
    # A second image sharing the first one's base layer.
    other: LayoutImage
    other_oci: Path


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory: pytest.TempPathFactory) -> Tarballs:
    if not BUSYBOX.is_file():
        pytest.skip(f"{BUSYBOX} is missing (Debian package busybox-static)")
    root = tmp_path_factory.mktemp("images")
    layout = build_busybox_image(root)
    other = build_busybox_image(root, name="kubelite.test/other:v2", extra_files={"etc/other": b"other\n"})
    return Tarballs(
        image=layout_image(layout),
        oci=oci_tarball(layout, root / "busybox-oci.tar"),
        docker=docker_save_tarball(layout, root / "busybox-docker.tar", repo_tags=["busybox:1.0", "me/tool:2"]),
        other=layout_image(other),
        other_oci=oci_tarball(other, root / "other-oci.tar"),
    )
