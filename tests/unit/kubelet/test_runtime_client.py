"""The typed gRPC client of the runtime, against the fake runtime on a real unix socket."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from kubelite.kubelet.runtime_client import NotFoundError, RuntimeClient, RuntimeServiceError, UnavailableError
from kubelite.proto import runtime_pb2 as pb
from tests.unit.kubelet.fake_runtime import serve


async def test_a_container_round_trip() -> None:
    async with serve() as fake:
        fake.add_image("busybox:1", "sha256:bb")
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            version = await rc.version()
            assert version.runtime_name == "kubelite-fake"
            config = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="p", uid="u", namespace="ns"),
                                         labels={"io.kubernetes.pod.uid": "u"})
            sid = await rc.run_pod_sandbox(config)
            assert (await rc.pod_sandbox_status(sid)).network.ip.startswith("10.88.")
            assert [s.id for s in await rc.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": "u"})] == [sid]
            assert await rc.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": "other"}) == []
            cid = await rc.create_container(sid, pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image="busybox:1"),
                labels={"io.kubernetes.pod.uid": "u"}), config)
            await rc.start_container(cid)
            running = await rc.list_containers(state=pb.CONTAINER_RUNNING)
            assert [c.id for c in running] == [cid]
            status = await rc.container_status(cid)
            assert status.state == pb.CONTAINER_RUNNING and status.image_ref == "sha256:bb"
            result = await rc.exec_sync(cid, ["true"], timeout=1)
            assert result.exit_code == 0
            await rc.stop_container(cid, 3)
            assert fake.stops == [("app", 3)]
            assert (await rc.container_status(cid)).exit_code == 143
            await rc.remove_container(cid)
            with pytest.raises(NotFoundError) as info:
                await rc.container_status(cid)
            assert info.value.code == grpc.StatusCode.NOT_FOUND
            await rc.stop_pod_sandbox(sid)
            await rc.remove_pod_sandbox(sid)


async def test_images() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            assert await rc.image_status("busybox:1") is None
            seen: list[str] = []
            ref = await rc.pull_image("busybox:1", auth=pb.AuthConfig(username="u", password="p"),
                                      progress=lambda m: seen.append(m.status))
            assert seen == ["resolving", "done"]
            assert fake.pull_auths[0].username == "u"
            image = await rc.image_status("busybox:1")
            assert image is not None and image.id == ref
            assert [i.id for i in await rc.list_images()] == [ref]
            fake.pull_errors["nope:1"] = "manifest unknown"
            with pytest.raises(RuntimeServiceError) as info:
                await rc.pull_image("nope:1")
            assert info.value.message == "manifest unknown"
            await rc.remove_image("busybox:1")
            assert await rc.image_status("busybox:1") is None


async def test_unreachable_runtime(tmp_path: Path) -> None:
    async with RuntimeClient(tmp_path / "missing.sock", timeout=2) as rc:
        with pytest.raises(UnavailableError):
            await rc.version()
