"""HTTP/1.0 and 1.1 message heads (RFC 9112) and body framing, for a proxy that forwards bodies byte for
byte: a chunked body stays chunked, so the proxy only has to know where it ends.

Parsing is strict where leniency lets two parsers disagree about where a message ends (request
smuggling): a head with both Content-Length and Transfer-Encoding, differing Content-Lengths, a
Transfer-Encoding other than ``chunked``, folded header lines, whitespace before a colon, bare CR or LF,
a bad chunk size are all `BadMessage` (400 unless said otherwise).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from kubelite.proxy.ingress.channel import Channel, IncompleteRead

Headers = list[tuple[str, str]]
MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096
COPY_SIZE = 256 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")
_NO_BODY_STATUSES = (204, 304)


class BadMessage(Exception):
    """A message the proxy refuses; ``status`` is the answer for a request (400, 501, 505)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class _Framing:
    length: int | None = None
    chunked: bool = False
    connection: frozenset[str] = frozenset()
    host: str | None = None
    upgrade: str = ""
    expect: str = ""


@dataclass(slots=True)
class RequestHead:
    method: str
    target: str  # as sent: origin-form "/p?q", absolute-form "http://h/p", "*"
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: Headers  # as sent, in order, names in their own case
    length: int | None  # Content-Length; None when absent
    chunked: bool
    connection: frozenset[str]  # the Connection header's tokens, lower case
    host: str  # the Host header (or an absolute-form target's authority), as sent
    upgrade: str  # the Upgrade header when Connection names "upgrade", else ""
    expect_continue: bool

    @property
    def path(self) -> str:
        """The target's path, without query (and without scheme and authority in absolute form)."""
        target = self.target
        if not target.startswith("/"):
            scheme_end = target.find("://")
            if scheme_end < 0:
                return target
            slash = target.find("/", scheme_end + 3)
            target = target[slash:] if slash >= 0 else "/"
        query = target.find("?")
        return target if query < 0 else target[:query]

    @property
    def origin_target(self) -> str:
        """The target in origin form ("/path?query"), as it is sent to an endpoint."""
        target = self.target
        if target.startswith("/") or "://" not in target:
            return target
        authority_and_rest = target.split("://", 1)[1]
        slash = authority_and_rest.find("/")
        return authority_and_rest[slash:] if slash >= 0 else "/"

    @property
    def keep_alive(self) -> bool:
        if self.version == "HTTP/1.1":
            return "close" not in self.connection
        return "keep-alive" in self.connection

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.length)


@dataclass(slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: Headers
    length: int | None
    chunked: bool
    connection: frozenset[str]

    @property
    def keep_alive(self) -> bool:
        if self.version == "HTTP/1.1":
            return "close" not in self.connection
        return "keep-alive" in self.connection


def parse_request_head(head: bytes) -> RequestHead:
    """Parse a request head (everything up to and including the blank line)."""
    lines = _lines(head)
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadMessage(f"malformed request line {lines[0][:100]!r}")
    method, target, version = parts
    if version not in _VERSIONS:
        raise BadMessage(f"unsupported HTTP version {version[:20]!r}",
                         505 if version.startswith("HTTP/") else 400)
    if not _TOKEN.fullmatch(method) or not target or any(c <= " " or c == "\x7f" for c in target):
        raise BadMessage(f"malformed request line {lines[0][:100]!r}")
    headers, framing = _headers(lines)
    host = framing.host
    if host is None:
        host = ""
        if not target.startswith("/") and "://" in target:
            authority = target.split("://", 1)[1]
            host = authority.split("/", 1)[0].split("?", 1)[0]
        elif version == "HTTP/1.1":
            raise BadMessage("an HTTP/1.1 request needs a Host header")
    return RequestHead(method, target, version, headers, framing.length, framing.chunked, framing.connection,
                       host, framing.upgrade if "upgrade" in framing.connection else "",
                       framing.expect.lower() == "100-continue")


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head; a malformed one is `BadMessage` (the gateway answers 502)."""
    lines = _lines(head)
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or parts[0] not in _VERSIONS or len(parts[1]) != 3 or not parts[1].isdigit():
        raise BadMessage(f"malformed status line {lines[0][:100]!r}", 502)
    headers, framing = _headers(lines, status=502)
    return ResponseHead(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers, framing.length,
                        framing.chunked, framing.connection)


def _lines(head: bytes) -> list[str]:
    text = head.decode("latin-1").lstrip("\r\n")  # RFC 9112 2.2: ignore CRLFs before the start line
    if not text.endswith("\r\n\r\n"):
        raise BadMessage("incomplete message head")
    lines = text[:-4].split("\r\n")
    for line in lines:
        if "\r" in line or "\n" in line:
            raise BadMessage("bare CR or LF in the message head")
    return lines


def _headers(lines: list[str], status: int = 400) -> tuple[Headers, _Framing]:
    headers: Headers = []
    framing = _Framing()
    transfer_encoding: str | None = None
    for line in lines[1:]:
        colon = line.find(":")
        if colon <= 0 or line[0] in " \t":
            raise BadMessage(f"malformed header line {line[:100]!r}", status)
        name = line[:colon]
        if not _TOKEN.fullmatch(name):
            raise BadMessage(f"malformed header name {name[:100]!r}", status)
        value = line[colon + 1:].strip(" \t")
        headers.append((name, value))
        lname = name.lower()
        if lname == "content-length":
            if not value.isdigit() or (framing.length is not None and framing.length != int(value)):
                raise BadMessage(f"bad Content-Length {value[:40]!r}", status)
            framing.length = int(value)
        elif lname == "transfer-encoding":
            transfer_encoding = value if transfer_encoding is None else f"{transfer_encoding}, {value}"
        elif lname == "connection":
            tokens = {t.strip().lower() for t in value.split(",") if t.strip()}
            framing.connection = framing.connection | tokens
        elif lname == "host":
            if framing.host is not None:
                raise BadMessage("more than one Host header", status)
            framing.host = value
        elif lname == "upgrade":
            framing.upgrade = value
        elif lname == "expect":
            framing.expect = value
    if transfer_encoding is not None:
        if framing.length is not None:
            raise BadMessage("both Content-Length and Transfer-Encoding", status)
        if transfer_encoding.strip().lower() != "chunked":
            raise BadMessage(f"unsupported Transfer-Encoding {transfer_encoding[:40]!r}",
                             501 if status == 400 else status)
        framing.chunked = True
    return headers, framing


def serialize_head(start_line: str, headers: Headers) -> bytes:
    parts = [start_line]
    parts.extend(f"{name}: {value}" for name, value in headers)
    parts.append("\r\n")
    return "\r\n".join(parts).encode("latin-1")


def response_has_body(request_method: str, status: int) -> bool:
    return not (request_method == "HEAD" or 100 <= status < 200 or status in _NO_BODY_STATUSES)


# --- copying bodies --------------------------------------------------------------------------------

async def copy_length(src: Channel, dst: Channel, length: int, idle: float) -> None:
    """Copy exactly ``length`` body bytes, writing each piece as it arrives. `IncompleteRead` when
    ``src`` ends early; TimeoutError when nothing moves for ``idle`` seconds."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + idle) as deadline:
        while length > 0:
            data = await src.read(min(length, COPY_SIZE))
            if not data:
                raise IncompleteRead(b"")
            length -= len(data)
            dst.write(data)
            await dst.drain()
            deadline.reschedule(loop.time() + idle)


async def copy_chunked(src: Channel, dst: Channel, idle: float) -> None:
    """Copy a chunked body as is, through its last chunk and trailers, one write per chunk (or per piece
    of a large chunk)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + idle) as deadline:
        while True:
            line = await src.read_until(b"\r\n", MAX_CHUNK_LINE)
            size = _chunk_size(line)
            if size == 0:
                pieces = [line]
                while True:
                    trailer = await src.read_until(b"\r\n", MAX_HEAD)
                    pieces.append(trailer)
                    if trailer == b"\r\n":
                        break
                dst.write(b"".join(pieces))
                await dst.drain()
                return
            data = await src.read(size)
            if not data:
                raise IncompleteRead(b"")
            remaining = size - len(data)
            if remaining:
                dst.write(line + data)
                await dst.drain()
                deadline.reschedule(loop.time() + idle)
                while remaining:
                    data = await src.read(min(remaining, COPY_SIZE))
                    if not data:
                        raise IncompleteRead(b"")
                    remaining -= len(data)
                    dst.write(data)
                    await dst.drain()
                    deadline.reschedule(loop.time() + idle)
                line = data = b""
            if await src.read_exactly(2) != b"\r\n":
                raise BadMessage("chunk data not followed by CRLF", 502)
            dst.write(line + data + b"\r\n")
            await dst.drain()
            deadline.reschedule(loop.time() + idle)


async def copy_until_eof(src: Channel, dst: Channel, idle: float) -> None:
    """Copy until ``src`` ends (a response delimited by the connection's close)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout_at(loop.time() + idle) as deadline:
        while data := await src.read(COPY_SIZE):
            dst.write(data)
            await dst.drain()
            deadline.reschedule(loop.time() + idle)


def _chunk_size(line: bytes) -> int:
    text = line[:-2].split(b";", 1)[0].strip(b" \t")
    if not text or len(text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in text):
        raise BadMessage(f"bad chunk size line {line[:40]!r}")
    return int(text, 16)
