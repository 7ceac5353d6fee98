"""Image pulls: references, pull-secret credentials, policies, events and back-off."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kubelite.kubelet.backoff import Backoff
from kubelite.kubelet.imagepull import (
    ImagePuller,
    ImagePullError,
    credentials_for,
    go_duration,
    registry_of,
    with_default_tag,
)
from kubelite.kubelet.runtime_client import RuntimeClient
from tests.unit.kubelet.fake_runtime import serve
from tests.unit.kubelet.recorder import RecordingRecorder

Obj = dict[str, Any]


@pytest.mark.parametrize(("image", "expected"), [
    ("busybox", "busybox:latest"), ("busybox:1.36", "busybox:1.36"),
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost:5000/app:v1", "localhost:5000/app:v1"), ("app@sha256:abc", "app@sha256:abc"),
])
def test_default_tag(image: str, expected: str) -> None:
    assert with_default_tag(image) == expected


def test_invalid_image_names() -> None:
    for bad in ("", "Busybox", " busybox"):
        with pytest.raises(ImagePullError) as info:
            with_default_tag(bad)
        assert info.value.reason == "InvalidImageName"


@pytest.mark.parametrize(("image", "registry"), [
    ("busybox", ("docker.io", "library/busybox")), ("nginx:1.25", ("docker.io", "library/nginx")),
    ("user/app:v1", ("docker.io", "user/app")), ("index.docker.io/user/app", ("docker.io", "user/app")),
    ("localhost:5000/team/app:v2", ("localhost:5000", "team/app")), ("ghcr.io/o/a@sha256:x", ("ghcr.io", "o/a")),
])
def test_registry_of(image: str, registry: tuple[str, str]) -> None:
    assert registry_of(image) == registry


def pull_secret(auths: Obj, kind: str = "kubernetes.io/dockerconfigjson") -> Obj:
    key = ".dockerconfigjson" if kind.endswith("json") else ".dockercfg"
    doc = {"auths": auths} if kind.endswith("json") else auths
    return {"type": kind, "data": {key: base64.b64encode(json.dumps(doc).encode()).decode()}}


def test_credentials_match_registry_and_path() -> None:
    secrets = [
        pull_secret({"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}}),
        pull_secret({"registry.test:5000": {"username": "any", "password": "1"},
                     "registry.test:5000/team": {"username": "team", "password": "2"}}),
        pull_secret({"other.test": {"username": "o", "password": "3"}}, "kubernetes.io/dockercfg"),
        {"type": "Opaque", "data": {"x": "eA=="}},
    ]
    hub = credentials_for("busybox:1", secrets)
    assert [(a.username, a.password, a.server_address) for a in hub] == [("hub", "pw", "docker.io")]
    team = credentials_for("registry.test:5000/team/app:1", secrets)
    assert [a.username for a in team] == ["team", "any"]
    assert [a.username for a in credentials_for("registry.test:5000/teamx/app", secrets)] == ["any"]
    assert [a.username for a in credentials_for("other.test/x", secrets)] == ["o"]
    assert credentials_for("quay.io/x", secrets) == []


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.0004, "0s"), (0.512, "512ms"), (1.2345, "1.234s"), (2, "2s"), (10, "10s"), (65.5, "1m5.5s"),
    (300, "5m0s"), (3725, "1h2m5s"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


POD = {"metadata": {"name": "web", "namespace": "default", "uid": "u1"}}


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_policies_events_and_back_off() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        fake.add_image("present:1", "sha256:p")
        clock = Clock()
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            recorder = RecordingRecorder()
            puller = ImagePuller(rc, recorder, Backoff(10, 40, reset_after=600, clock=clock))

            pulled = await puller.ensure(POD, {"image": "present:1", "imagePullPolicy": "IfNotPresent"},
                                         pull_secrets=[])
            assert pulled.ref == "sha256:p" and "PullImage" not in fake.calls
            assert recorder.events[-1] == ("Normal", "Pulled", 'Container image "present:1" already present on machine')

            await puller.ensure(POD, {"image": "present:1", "imagePullPolicy": "Always"}, pull_secrets=[])
            assert fake.calls.count("PullImage") == 1
            assert recorder.reasons()[-2:] == ["Pulling", "Pulled"]
            assert recorder.messages()[-1].startswith('Successfully pulled image "present:1" in ')
            assert recorder.messages()[-1].endswith(" including waiting). Image size: 1234 bytes.")

            with pytest.raises(ImagePullError) as info:
                await puller.ensure(POD, {"image": "absent:1", "imagePullPolicy": "Never"}, pull_secrets=[])
            assert info.value.reason == "ErrImageNeverPull"
            assert info.value.message == 'Container image "absent:1" is not present with pull policy of Never'

            fake.pull_errors["absent:1"] = "unauthorized: authentication required"
            with pytest.raises(ImagePullError) as info:
                await puller.ensure(POD, {"image": "absent:1"}, pull_secrets=[])
            assert (info.value.reason, info.value.message) == ("ErrImagePull", "unauthorized: authentication required")
            assert recorder.events[-1] == ("Warning", "Failed", 'Failed to pull image "absent:1": unauthorized: '
                                                               "authentication required")
            with pytest.raises(ImagePullError) as info:
                await puller.ensure(POD, {"image": "absent:1"}, pull_secrets=[])
            assert info.value.reason == "ImagePullBackOff"
            assert recorder.events[-1] == ("Normal", "BackOff", 'Back-off pulling image "absent:1"')
            assert puller.backoff_remaining(POD, {"image": "absent:1"}) == 10

            clock.now += 11
            del fake.pull_errors["absent:1"]
            secret = pull_secret({"docker.io": {"username": "me", "password": "pw"}})
            assert (await puller.ensure(POD, {"image": "absent:1"}, pull_secrets=[secret])).ref
            assert fake.pull_auths[-1].username == "me"


async def test_every_matching_credential_is_tried() -> None:
    async with serve() as fake:
        assert fake.socket is not None
        fake.pull_errors["registry.test/app:1"] = "denied"
        async with RuntimeClient(fake.socket, timeout=5) as rc:
            puller = ImagePuller(rc, RecordingRecorder(), Backoff(10, 40, reset_after=600))
            secrets = [pull_secret({"registry.test": {"username": "a", "password": "1"}}),
                       pull_secret({"registry.test": {"username": "b", "password": "2"}})]
            with pytest.raises(ImagePullError):
                await puller.ensure(POD, {"image": "registry.test/app:1"}, pull_secrets=secrets)
            assert [a.username for a in fake.pull_auths] == ["a", "b"]
