"""The WebSocket channel protocol: negotiation, messages, close signals and Status payloads."""

from __future__ import annotations

import json

import pytest

from kubelite.kubelet.streaming import wsstream


@pytest.mark.parametrize(("header", "supported", "chosen"), [
    pytest.param("v5.channel.k8s.io", wsstream.EXEC_PROTOCOLS, wsstream.V5, id="kubectl"),
    pytest.param("v5.channel.k8s.io,v4.channel.k8s.io", wsstream.EXEC_PROTOCOLS, wsstream.V5, id="python"),
    pytest.param("v4.channel.k8s.io, v5.channel.k8s.io", wsstream.EXEC_PROTOCOLS, wsstream.V4, id="client-order"),
    pytest.param("SPDY/3.1+portforward.k8s.io", wsstream.PORT_FORWARD_PROTOCOLS, wsstream.SPDY_PORT_FORWARD,
                 id="kubectl-port-forward"),
    pytest.param("channel.k8s.io", wsstream.EXEC_PROTOCOLS, None, id="v1-unsupported"),
    pytest.param("", wsstream.EXEC_PROTOCOLS, None, id="none"),
])
def test_negotiate(header: str, supported: tuple[str, ...], chosen: str | None) -> None:
    assert wsstream.negotiate(wsstream.offered_protocols(header), supported) == chosen


def test_decode_messages() -> None:
    assert wsstream.decode(b"\x00hello", wsstream.V5) == wsstream.Message(0, b"hello")
    assert wsstream.decode("\x00text stdin", wsstream.V4) == wsstream.Message(0, b"text stdin")
    assert wsstream.decode(b"\xff\x00", wsstream.V5) == wsstream.Message(0, b"", closed=True)
    # v4 has no close signal: 255 is just a channel number there.
    assert wsstream.decode(b"\xff\x00", wsstream.V4) == wsstream.Message(255, b"\x00")
    assert wsstream.decode(b"", wsstream.V5) is None
    assert wsstream.decode(b"\xff", wsstream.V5) is None


def test_encode() -> None:
    assert wsstream.encode(wsstream.STDOUT, b"hi") == b"\x01hi"
    assert wsstream.encode(wsstream.ERROR) == b"\x03"
    assert wsstream.close_signal(0) == b"\xff\x00"


def test_statuses_as_kubectl_reads_them() -> None:
    assert json.loads(wsstream.success_status()) == {"metadata": {}, "status": "Success"}
    failed = json.loads(wsstream.exit_code_status(3, ["sh", "-c", "exit 3"]))
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert failed["message"] == ("command terminated with non-zero exit code: error executing command "
                                 "[sh -c exit 3], exit code 3")
    internal = json.loads(wsstream.internal_error_status("boom"))
    assert (internal["reason"], internal["code"], internal["message"]) == \
        ("InternalError", 500, "Internal error occurred: boom")


def test_parse_resize() -> None:
    assert wsstream.parse_resize(b'{"Width":80,"Height":24}') == (80, 24)
    assert wsstream.parse_resize(b"{}") is None
    assert wsstream.parse_resize(b"not json") is None
