"""Garbage collection planning: thresholds, least recently used first, shared layers."""

from __future__ import annotations

import pytest

from kubelite.kubelet.images import gc
from kubelite.kubelet.images.index import IndexState, StoredImage
from kubelite.kubelet.images.model import ImageConfig, ImageRecord

GIB = 1 << 30


def _image(n: int, layers: list[str], *, last_used: float, holders: list[str] | None = None) -> StoredImage:
    record = ImageRecord(id=f"sha256:{n:064x}", repo_tags=[], repo_digests=[], size=1, config=ImageConfig(),
                         diff_ids=layers)
    return StoredImage(record=record, holders=holders or [], last_used=last_used)


def _state(*images: StoredImage, layers: dict[str, int]) -> IndexState:
    return IndexState(images={i.record.id: i for i in images}, layers=layers)


def test_thresholds() -> None:
    usage = gc.DiskUsage(capacity=100 * GIB, available=10 * GIB)  # 90 % used
    assert gc.bytes_to_free(usage, high_percent=95, low_percent=80) == 0
    assert gc.bytes_to_free(usage, high_percent=85, low_percent=80) == 10 * GIB
    assert gc.bytes_to_free(usage, high_percent=90, low_percent=90) == 0
    with pytest.raises(ValueError):
        gc.bytes_to_free(usage, high_percent=80, low_percent=85)


def test_least_recently_used_first_until_enough_is_freed() -> None:
    state = _state(_image(1, ["l1"], last_used=30), _image(2, ["l2"], last_used=10), _image(3, ["l3"], last_used=20),
                   layers={"l1": 100, "l2": 100, "l3": 100})
    ids = gc.plan(state, to_free=150, now=1000, min_age=0)
    assert ids == [f"sha256:{2:064x}", f"sha256:{3:064x}"]
    assert gc.plan(state, to_free=0, now=1000, min_age=0) == []


def test_held_and_recent_images_stay() -> None:
    state = _state(_image(1, ["l1"], last_used=0, holders=["c"]), _image(2, ["l2"], last_used=990),
                   _image(3, ["l3"], last_used=0), layers={"l1": 1, "l2": 1, "l3": 1})
    assert gc.plan(state, to_free=10**9, now=1000, min_age=120) == [f"sha256:{3:064x}"]


def test_a_shared_layer_frees_nothing_until_its_last_image_goes() -> None:
    state = _state(_image(1, ["base", "a"], last_used=1), _image(2, ["base", "b"], last_used=2),
                   layers={"base": 1000, "a": 10, "b": 10})
    # Removing image 1 frees 10 bytes; 500 needs image 2 as well (then "base" goes too).
    assert gc.plan(state, to_free=500, now=100, min_age=0) == [f"sha256:{1:064x}", f"sha256:{2:064x}"]
    assert gc.plan(state, to_free=10, now=100, min_age=0) == [f"sha256:{1:064x}"]
