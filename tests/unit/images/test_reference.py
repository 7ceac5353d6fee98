"""Image references, normalised as Docker normalises them."""

from __future__ import annotations

import pytest

from kubelite.kubelet.images.errors import InvalidReference
from kubelite.kubelet.images.reference import is_loopback_host, parse_reference

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("text", "expected", "api_host"), [
    pytest.param("busybox", "docker.io/library/busybox:latest", "registry-1.docker.io", id="short"),
    pytest.param("busybox:1.36", "docker.io/library/busybox:1.36", "registry-1.docker.io", id="tag"),
    pytest.param("me/app", "docker.io/me/app:latest", "registry-1.docker.io", id="user"),
    pytest.param("docker.io/busybox", "docker.io/library/busybox:latest", "registry-1.docker.io", id="hub"),
    pytest.param("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "registry-1.docker.io",
                 id="index-alias"),
    pytest.param("localhost/app", "localhost/app:latest", "localhost", id="localhost"),
    pytest.param("localhost:5000/a/b:v1", "localhost:5000/a/b:v1", "localhost:5000", id="port"),
    pytest.param("quay.io/coreos/etcd", "quay.io/coreos/etcd:latest", "quay.io", id="domain"),
    pytest.param(f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", "registry-1.docker.io", id="digest"),
    pytest.param(f"r.io/x:1@{DIGEST}", f"r.io/x:1@{DIGEST}", "r.io", id="tag-and-digest"),
    pytest.param("[::1]:5000/img", "[::1]:5000/img:latest", "[::1]:5000", id="ipv6"),
])
def test_normalisation(text: str, expected: str, api_host: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == expected
    assert ref.api_host == api_host


def test_parts() -> None:
    ref = parse_reference("127.0.0.1:5000/team/app:v2")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("127.0.0.1:5000", "team/app", "v2", "")
    assert ref.name == "127.0.0.1:5000/team/app"
    assert ref.tagged == "127.0.0.1:5000/team/app:v2"
    assert ref.object == "v2"
    assert parse_reference(f"app@{DIGEST}").object == DIGEST
    assert parse_reference(f"app@{DIGEST}").tagged == ""


@pytest.mark.parametrize(("text", "message"), [
    ("Busybox", "must be lowercase"),
    ("busybox:", "invalid tag"),
    ("busybox@sha256:abc", "invalid digest"),
    ("a//b", "invalid reference format"),
    ("-leading/x", "invalid reference format"),
    ("", "invalid reference format"),
])
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True), ("127.1.2.3", True),
    ("[::1]:5000", True), ("registry-1.docker.io", False), ("10.0.0.1:5000", False), ("quay.io", False),
])
def test_loopback_hosts_use_http(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
