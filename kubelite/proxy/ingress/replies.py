"""The gateway's own answers (400, 404, 502, 503 ...): a plain-text body that says why, in one line."""

from __future__ import annotations

import email.utils

from kubelite.proxy.ingress.http1 import serialize_head

REASONS = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 431: "Request Header Fields Too Large",
           501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
           505: "HTTP Version Not Supported"}
SERVER = "kubelite-ingress"


def error_response(status: int, message: str, *, keep_alive: bool, head_only: bool = False,
                   http10: bool = False) -> bytes:
    """The whole response: ``<status> <reason>: <message>`` as its body (left out for a HEAD request);
    ``Connection: close`` unless ``keep_alive`` (``keep-alive`` for an HTTP/1.0 client that stays)."""
    reason = REASONS.get(status, "Error")
    body = f"{status} {reason}: {message}\n".encode(errors="replace")
    headers = [("Server", SERVER), ("Date", email.utils.formatdate(usegmt=True)),
               ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
               ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
    if not keep_alive:
        headers.append(("Connection", "close"))
    elif http10:
        headers.append(("Connection", "keep-alive"))
    return serialize_head(f"HTTP/1.1 {status} {reason}", headers) + (b"" if head_only else body)
