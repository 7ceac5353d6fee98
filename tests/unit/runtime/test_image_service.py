"""The ImageService over a fake image store, through a real gRPC server on a unix socket (no root)."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path

import grpc
import pytest
from grpc import aio

from kubelite.kubelet.images.errors import ImageInUse, ImageNotFound, RegistryError
from kubelite.kubelet.images.model import ImageConfig, ImageRecord, PullProgress, RegistryAuth
from kubelite.kubelet.runtime.service import ImageServicer
from kubelite.proto import runtime_pb2 as pb
from kubelite.proto import runtime_pb2_grpc as pb_grpc

IMAGE = ImageRecord(id="sha256:" + "a" * 64, repo_tags=["example.test/app:1"], repo_digests=[], size=1234,
                    config=ImageConfig(entrypoint=["/app"], cmd=["serve"], env=["A=1"], working_dir="/w", user="10"))


class FakeStore:
    def __init__(self) -> None:
        self.images: dict[str, ImageRecord] = {}
        self.auth: RegistryAuth | None = None
        self.holders: dict[str, list[str]] = {}

    async def pull(self, ref: str, *, auth: RegistryAuth | None = None,
                   progress: Callable[[PullProgress], None] | None = None) -> ImageRecord:
        self.auth = auth
        if ref == "example.test/denied:1":
            raise RegistryError("unauthorized: authentication required")
        assert progress is not None
        progress(PullProgress("Resolving", ref))
        progress(PullProgress("Downloading", "sha256:layer", 10, 20))
        self.images[IMAGE.id] = IMAGE
        return IMAGE

    def resolve(self, ref: str) -> ImageRecord | None:
        return next((r for r in self.images.values() if ref in (r.id, *r.repo_tags)), None)

    def list(self) -> builtins.list[ImageRecord]:
        return builtins.list(self.images.values())

    async def remove(self, ref: str) -> None:
        found = self.resolve(ref)
        if found is None:
            raise ImageNotFound(ref)
        if self.holders.get(found.id):
            raise ImageInUse(ref, self.holders[found.id])
        del self.images[found.id]

    def layer_dirs(self, image: ImageRecord) -> builtins.list[Path]:
        return []

    def acquire(self, image_id: str, holder: str) -> None:
        self.holders.setdefault(image_id, []).append(holder)

    def release(self, image_id: str, holder: str) -> None:
        self.holders.get(image_id, []).remove(holder)

    def retain_holders(self, live: Collection[str]) -> None:
        pass


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[tuple[pb_grpc.ImageServiceStub, FakeStore]]:
    store = FakeStore()
    server = aio.server()
    pb_grpc.add_ImageServiceServicer_to_server(ImageServicer(store, tmp_path), server)  # type: ignore[no-untyped-call]
    sock = tmp_path / "s.sock"
    server.add_insecure_port(f"unix://{sock}")
    await server.start()
    channel = aio.insecure_channel(f"unix://{sock}")
    try:
        yield pb_grpc.ImageServiceStub(channel), store  # type: ignore[no-untyped-call]
    finally:
        await channel.close()
        await server.stop(0)


async def test_pull_streams_progress_then_the_image(service: tuple[pb_grpc.ImageServiceStub, FakeStore]) -> None:
    stub, store = service
    request = pb.PullImageRequest(image=pb.ImageSpec(image="example.test/app:1"),
                                  auth=pb.AuthConfig(username="me", password="pw"))
    messages = [m async for m in stub.PullImage(request)]
    assert [(m.status, m.layer, m.current, m.total) for m in messages[:2]] == [
        ("Resolving", "example.test/app:1", 0, 0), ("Downloading", "sha256:layer", 10, 20)]
    assert messages[-1].image_ref == IMAGE.id and all(not m.image_ref for m in messages[:-1])
    assert store.auth == RegistryAuth(username="me", password="pw")


async def test_a_refused_pull_carries_the_registry_reason(service: tuple[pb_grpc.ImageServiceStub, FakeStore]) -> None:
    stub, _ = service
    with pytest.raises(aio.AioRpcError) as info:
        async for _ in stub.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="example.test/denied:1"))):
            pass
    assert info.value.code() == grpc.StatusCode.UNKNOWN
    assert info.value.details() == "unauthorized: authentication required"


async def test_status_list_and_remove(service: tuple[pb_grpc.ImageServiceStub, FakeStore]) -> None:
    stub, store = service
    empty = await stub.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="example.test/app:1")))
    assert not empty.HasField("image")
    store.images[IMAGE.id] = IMAGE
    st = await stub.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="example.test/app:1")))
    assert (st.image.id, list(st.image.entrypoint), list(st.image.cmd), st.image.user) == (
        IMAGE.id, ["/app"], ["serve"], "10")
    listed = await stub.ListImages(pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image="nope"))))
    assert list(listed.images) == []
    store.holders[IMAGE.id] = ["c1"]
    with pytest.raises(aio.AioRpcError) as info:
        await stub.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=IMAGE.id)))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "c1" in (info.value.details() or "")
    store.holders[IMAGE.id] = []
    await stub.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=IMAGE.id)))
    await stub.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=IMAGE.id)))  # gone already: fine
    assert list((await stub.ListImages(pb.ListImagesRequest())).images) == []
