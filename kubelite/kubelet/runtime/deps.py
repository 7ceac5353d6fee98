"""What the runtime needs from its neighbours, as Protocols: the image store (kubelite.kubelet.images) and
the pod network (kubelite.kubelet.network.PodNetwork). The real classes satisfy them structurally; tests
pass small fakes (a store over a busybox rootfs, a network that makes no namespaces)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Protocol

from kubelite.kubelet.images.model import ImageRecord, PullProgress, RegistryAuth
from kubelite.kubelet.network import NetworkStatus, PortMapping


class ImageStoreLike(Protocol):
    async def pull(
        self,
        ref: str,
        *,
        auth: RegistryAuth | None = None,
        progress: Callable[[PullProgress], None] | None = None,
    ) -> ImageRecord: ...

    def resolve(self, ref: str) -> ImageRecord | None: ...

    def list(self) -> builtins.list[ImageRecord]: ...

    async def remove(self, ref: str) -> None: ...

    def layer_dirs(self, image: ImageRecord) -> builtins.list[Path]: ...

    def acquire(self, image_id: str, holder: str) -> None: ...

    def release(self, image_id: str, holder: str) -> None: ...

    def retain_holders(self, live: Collection[str]) -> None: ...


class PodNetworkLike(Protocol):
    async def setup(
        self, *, sandbox_id: str, namespace: str, name: str, uid: str, port_mappings: list[PortMapping]
    ) -> NetworkStatus: ...

    async def teardown(self, sandbox_id: str) -> None: ...

    async def garbage_collect(self, live_sandbox_ids: set[str]) -> None: ...
