"""Image garbage collection, as the kubelet's image manager does it: when the filesystem holding the images
is used past ``high_percent``, remove unused images, least recently used first, until usage would drop to
``low_percent``. An image is unused when no holder has it (see ``ImageStore.acquire``) and it was not used
for ``min_age`` seconds (the kubelet's ImageMinimumGCAge: a just-pulled image is about to be used).

`plan` is pure; the store applies it and then sweeps the content and layers no image keeps any more.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kubelite.kubelet.images.index import IndexState


@dataclass(frozen=True, slots=True)
class DiskUsage:
    capacity: int
    available: int

    @property
    def used_percent(self) -> float:
        return 100.0 * (self.capacity - self.available) / self.capacity if self.capacity else 0.0


def disk_usage(path: Path) -> DiskUsage:
    """Capacity and space available to unprivileged users of the filesystem holding ``path`` (statvfs)."""
    st = os.statvfs(path)
    return DiskUsage(capacity=st.f_blocks * st.f_frsize, available=st.f_bavail * st.f_frsize)


def bytes_to_free(usage: DiskUsage, *, high_percent: int, low_percent: int) -> int:
    """0 below the high threshold; else what brings usage down to the low one."""
    if not 0 <= low_percent <= high_percent <= 100:
        raise ValueError(f"thresholds must satisfy 0 <= low ({low_percent}) <= high ({high_percent}) <= 100")
    if usage.used_percent < high_percent:
        return 0
    return max(0, usage.capacity * (100 - low_percent) // 100 - usage.available)


def plan(state: IndexState, *, to_free: int, now: float, min_age: float) -> list[str]:
    """IDs of the images to remove, least recently used first, until the layers only they use add up to
    ``to_free`` bytes (a layer shared with a kept image frees nothing)."""
    if to_free <= 0:
        return []
    users = Counter(d for image in state.images.values() for d in set(image.record.diff_ids))
    candidates = sorted(
        (image for image in state.images.values() if not image.holders and now - image.last_used >= min_age),
        key=lambda image: (image.last_used, image.record.id),
    )
    chosen: list[str] = []
    freed = 0
    for image in candidates:
        if freed >= to_free:
            break
        chosen.append(image.record.id)
        for diff_id in set(image.record.diff_ids):
            users[diff_id] -= 1
            if users[diff_id] == 0:
                freed += state.layers.get(diff_id, 0)
    return chosen
