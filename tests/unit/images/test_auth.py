"""Registry credentials from imagePullSecrets, matched as the kubelet's docker keyring matches them."""

from __future__ import annotations

import base64

from kubelite.kubelet.images import RegistryAuth, credentials_for


def _entry(user: str, password: str = "pw") -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_docker_hub_login_applies_to_short_names() -> None:
    config = {"auths": {"https://index.docker.io/v1/": _entry("hub")}}
    assert credentials_for("busybox", [config]) == [RegistryAuth("hub", "pw")]
    assert credentials_for("docker.io/me/app:1", [config]) == [RegistryAuth("hub", "pw")]
    assert credentials_for("quay.io/me/app", [config]) == []


def test_host_port_path_and_glob_matching() -> None:
    config = {"auths": {
        "registry.example.com:5000": _entry("port"),
        "quay.io/team": _entry("team"),
        "quay.io": _entry("quay"),
        "*.corp.example": _entry("glob"),
    }}
    assert [a.username for a in credentials_for("registry.example.com:5000/x", [config])] == ["port"]
    assert credentials_for("registry.example.com/x", [config]) == []
    # The most specific key first: the kubelet tries them in turn.
    assert [a.username for a in credentials_for("quay.io/team/app", [config])] == ["team", "quay"]
    assert [a.username for a in credentials_for("quay.io/other/app", [config])] == ["quay"]
    assert [a.username for a in credentials_for("r.corp.example/app", [config])] == ["glob"]
    assert credentials_for("corp.example/app", [config]) == []


def test_explicit_fields_legacy_dockercfg_and_registry_tokens() -> None:
    legacy = {"https://r.example": {"username": "u", "password": "p", "email": "x@example"}}
    token = {"auths": {"t.example": {"registrytoken": "abc"}}}
    assert credentials_for("r.example/a", [legacy]) == [RegistryAuth("u", "p")]
    assert credentials_for("t.example/a", [token]) == [RegistryAuth(token="abc")]


def test_secrets_are_not_printed() -> None:
    assert "pw" not in repr(RegistryAuth("user", "pw", "tok"))
