"""Kubernetes' WebSocket channel protocol (``*.channel.k8s.io``), the framing of exec, attach and the
plain-WebSocket port-forward.

Every data message starts with one channel byte; the rest is the payload. For exec: 0 stdin, 1 stdout,
2 stderr, 3 the final Status (JSON), 4 terminal resize (``{"Width": W, "Height": H}``). For port-forward:
for the i-th port, channel 2i carries data and 2i+1 errors. ``v5.channel.k8s.io`` adds one signal,
``[255, channel]``: the sender will write no more on that channel (kubectl sends ``[255, 0]`` at the end of
its stdin). The ``v4`` protocol is the same without that signal; the ``v4`` of port-forward is the same
framing too.

Messages are binary; a text message (the Python client sends ``str`` stdin that way) carries the channel
as its first character. The ``base64.channel.k8s.io`` variants are not served.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
SPDY_PORT_FORWARD = "SPDY/3.1+portforward.k8s.io"

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

# A WebSocket client sees the headers of a refused handshake but not its body: kubelite's kubelet puts the
# Status of a refusal, as compact JSON, in this header too (the API server's proxy reads it).
STATUS_HEADER = "X-Kubelite-Status"

EXEC_PROTOCOLS = (V5, V4)
PORT_FORWARD_PROTOCOLS = (SPDY_PORT_FORWARD, V5, V4)


def offered_protocols(header: str) -> list[str]:
    """The subprotocols of a ``Sec-WebSocket-Protocol`` request header, in the client's order."""
    return [p.strip() for p in header.split(",") if p.strip()]


def negotiate(offered: Sequence[str], supported: Iterable[str]) -> str | None:
    """The first protocol the client offered that we support (the client lists its preference first)."""
    ours = set(supported)
    return next((p for p in offered if p in ours), None)


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded channel message; ``closed`` marks a v5 close signal for ``channel``."""

    channel: int
    data: bytes
    closed: bool = False


def decode(message: bytes | str, protocol: str) -> Message | None:
    """A received data message as a `Message`; None for an empty message (nothing to do)."""
    raw = message.encode() if isinstance(message, str) else message
    if not raw:
        return None
    if raw[0] == CLOSE and protocol == V5:
        return Message(raw[1], b"", closed=True) if len(raw) > 1 else None
    return Message(raw[0], raw[1:])


def encode(channel: int, data: bytes = b"") -> bytes:
    return bytes((channel,)) + data


def close_signal(channel: int) -> bytes:
    return bytes((CLOSE, channel))


def success_status() -> bytes:
    return json.dumps({"metadata": {}, "status": "Success"}).encode()


def exit_code_status(code: int, command: Sequence[str]) -> bytes:
    """The Status kubelet sends for a command that exited non-zero; kubectl exits with the cause's code."""
    return json.dumps({
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command {_go_list(command)}, "
                   f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }).encode()


def internal_error_status(message: str) -> bytes:
    return json.dumps({
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }).encode()


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message, or None when it is not one."""
    try:
        size = json.loads(payload)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None


def _go_list(items: Sequence[str]) -> str:
    """How Go's %v prints a []string: ``[sh -c exit 3]``."""
    return "[" + " ".join(items) + "]"
