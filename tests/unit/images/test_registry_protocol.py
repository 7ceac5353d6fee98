"""The registry's answers as the client reads them: error reasons and authentication challenges."""

from __future__ import annotations

import json

import pytest

from kubelite.kubelet.images.registry import error_from_response, parse_challenge


def _errors(*errors: tuple[str, str]) -> bytes:
    return json.dumps({"errors": [{"code": c, "message": m, "detail": None} for c, m in errors]}).encode()


@pytest.mark.parametrize(("status", "body", "reason"), [
    pytest.param(404, _errors(("MANIFEST_UNKNOWN", "manifest unknown")), "manifest unknown", id="manifest"),
    pytest.param(401, _errors(("UNAUTHORIZED", "authentication required")), "unauthorized: authentication required",
                 id="unauthorized"),
    pytest.param(404, _errors(("NAME_UNKNOWN", "repository name not known to registry")),
                 "name unknown: repository name not known to registry", id="name"),
    pytest.param(429, _errors(("TOOMANYREQUESTS", "You have reached your pull rate limit.")),
                 "toomanyrequests: You have reached your pull rate limit.", id="rate-limit"),
    pytest.param(401, json.dumps({"details": "incorrect username or password"}).encode(),
                 "unauthorized: incorrect username or password", id="hub-token-server"),
    pytest.param(503, b"<html>down</html>", "service unavailable", id="no-json"),
    pytest.param(404, b"", "not found", id="empty"),
])
def test_error_reasons(status: int, body: bytes, reason: str) -> None:
    error = error_from_response(status, body)
    assert error.reason == reason
    assert str(error) == reason
    assert error.status == status


def test_error_codes_are_kept() -> None:
    error = error_from_response(404, _errors(("MANIFEST_UNKNOWN", "manifest unknown"), ("X", "y")))
    assert error.codes == ("MANIFEST_UNKNOWN", "X")
    assert error.reason == "manifest unknown; x: y"


def test_bearer_challenge() -> None:
    scheme, params = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                                     'scope="repository:library/busybox:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/busybox:pull,push"}


def test_basic_challenge() -> None:
    assert parse_challenge('Basic realm="kubelite-test"') == ("basic", {"realm": "kubelite-test"})
