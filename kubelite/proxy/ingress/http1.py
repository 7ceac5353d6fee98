"""HTTP/1.0 and 1.1 message heads (RFC 9112) and body framing, for a proxy that forwards bodies byte for
byte: a chunked body stays chunked, so the proxy only has to know where it ends.

Parsing is strict where leniency lets two parsers disagree about where a message ends (request
smuggling): a head with both Content-Length and Transfer-Encoding, differing Content-Lengths, a
Transfer-Encoding other than ``chunked``, folded header lines, whitespace before a colon, bare CR or LF,
a bad chunk size are all `BadMessage` (400 unless said otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubelite.proxy.ingress.channel import Channel, IncompleteRead

Headers = list[tuple[str, str]]
MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096
COPY_SIZE = 256 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header lines up to the blank line: a token, a colon, then anything but CR and LF.
_FIELDS = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r\n)*\r\n")
_FIELD = re.compile(rb"\r\n([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)")
# The fields the proxy reads or rewrites; found in one pass over a head (they start a line: after CRLF).
_NOTABLE = re.compile(rb"\r\n(content-length|transfer-encoding|connection|host|upgrade|expect|keep-alive|"
                      rb"proxy-connection|te|trailer|x-forwarded-for|x-forwarded-proto|x-forwarded-host|"
                      rb"x-forwarded-port|x-real-ip):[ \t]*([^\r\n]*)", re.IGNORECASE)
# Fields whose presence means the head cannot be passed on as it is.
_REWRITTEN = frozenset({b"connection", b"upgrade", b"keep-alive", b"proxy-connection", b"te", b"trailer",
                        b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
                        b"x-real-ip"})
# A request target: visible characters only (no space, no control character).
_TARGET = re.compile(r"[\x21-\x7e\x80-\xff]+")
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
    rewrite: bool = False


@dataclass(slots=True)
class RequestHead:
    """A parsed request head. ``raw`` is the head as received (the fields are passed on from it)."""

    method: str
    target: str  # as sent: origin-form "/p?q", absolute-form "http://h/p", "*"
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    raw: bytes
    length: int | None  # Content-Length; None when absent
    chunked: bool
    connection: frozenset[str]  # the Connection header's tokens, lower case
    host: str  # the Host header (or an absolute-form target's authority), as sent
    upgrade: str  # the Upgrade header when Connection names "upgrade", else ""
    expect_continue: bool
    # Hop-by-hop or X-Forwarded-* fields are present: the head has to be rewritten, not just extended.
    rewrite: bool

    @property
    def headers(self) -> Headers:
        """Every field as sent, in order, names in their own case."""
        return fields_of(self.raw)

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
    """A parsed response head; ``raw`` as for `RequestHead`."""

    version: str
    status: int
    reason: str
    raw: bytes
    length: int | None
    chunked: bool
    connection: frozenset[str]
    upgrade: str  # the Upgrade header, "" when absent
    rewrite: bool

    @property
    def headers(self) -> Headers:
        return fields_of(self.raw)

    @property
    def keep_alive(self) -> bool:
        if self.version == "HTTP/1.1":
            return "close" not in self.connection
        return "keep-alive" in self.connection


def parse_request_head(head: bytes) -> RequestHead:
    """Parse a request head (everything up to and including the blank line)."""
    head, start_line, end = _split(head, 400)
    parts = start_line.split(" ")
    if len(parts) != 3:
        raise BadMessage(f"malformed request line {start_line[:100]!r}")
    method, target, version = parts
    if version not in _VERSIONS:
        raise BadMessage(f"unsupported HTTP version {version[:20]!r}",
                         505 if version.startswith("HTTP/") else 400)
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target):
        raise BadMessage(f"malformed request line {start_line[:100]!r}")
    framing = _framing(head, end, 400)
    host = framing.host
    if host is None:
        host = ""
        if not target.startswith("/") and "://" in target:
            authority = target.split("://", 1)[1]
            host = authority.split("/", 1)[0].split("?", 1)[0]
        elif version == "HTTP/1.1":
            raise BadMessage("an HTTP/1.1 request needs a Host header")
    return RequestHead(method, target, version, head, framing.length, framing.chunked, framing.connection,
                       host, framing.upgrade if "upgrade" in framing.connection else "",
                       framing.expect.lower() == "100-continue", framing.rewrite)


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head; a malformed one is `BadMessage` (the gateway answers 502)."""
    head, start_line, end = _split(head, 502)
    parts = start_line.split(" ", 2)
    if len(parts) < 2 or parts[0] not in _VERSIONS or len(parts[1]) != 3 or not parts[1].isdigit():
        raise BadMessage(f"malformed status line {start_line[:100]!r}", 502)
    framing = _framing(head, end, 502)
    return ResponseHead(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", head, framing.length,
                        framing.chunked, framing.connection, framing.upgrade, framing.rewrite)


def fields_of(head: bytes) -> Headers:
    """Every field of a (valid) head, in order, names in their own case."""
    return [(n.decode("latin-1"), v.rstrip(b" \t").decode("latin-1")) for n, v in _FIELD.findall(head)]


def _split(head: bytes, status: int) -> tuple[bytes, str, int]:
    """The head without leading CRLFs, its start line, and where the start line ends; every field line is
    checked to be ``token ":" text`` (no bare CR or LF, no folding) by one regular expression."""
    if head.startswith(b"\r\n"):
        head = head.lstrip(b"\r\n")  # RFC 9112 2.2: ignore CRLFs before the start line
    end = head.find(b"\r\n")
    if end < 0 or not head.endswith(b"\r\n\r\n"):
        raise BadMessage("incomplete message head", status)
    start_line = head[:end].decode("latin-1")
    if "\n" in start_line or "\r" in start_line:
        raise BadMessage("bare CR or LF in the message head", status)
    if not _FIELDS.fullmatch(head, end + 2):
        raise BadMessage("malformed header line (folded, bare CR or LF, or a bad name)", status)
    return head, start_line, end


def _framing(head: bytes, end: int, status: int) -> _Framing:
    framing = _Framing()
    transfer_encoding: str | None = None
    for raw_name, raw_value in _NOTABLE.findall(head, end):
        name = raw_name.lower()
        if name in _REWRITTEN:
            framing.rewrite = True
        value = raw_value.rstrip(b" \t").decode("latin-1")
        if name == b"content-length":
            if not value.isdigit() or (framing.length is not None and framing.length != int(value)):
                raise BadMessage(f"bad Content-Length {value[:40]!r}", status)
            framing.length = int(value)
        elif name == b"transfer-encoding":
            transfer_encoding = value if transfer_encoding is None else f"{transfer_encoding}, {value}"
        elif name == b"connection":
            tokens = {t.strip().lower() for t in value.split(",") if t.strip()}
            framing.connection = framing.connection | tokens
        elif name == b"host":
            if framing.host is not None:
                raise BadMessage("more than one Host header", status)
            framing.host = value
        elif name == b"upgrade":
            framing.upgrade = value
        elif name == b"expect":
            framing.expect = value
    if transfer_encoding is not None:
        if framing.length is not None:
            raise BadMessage("both Content-Length and Transfer-Encoding", status)
        if transfer_encoding.strip().lower() != "chunked":
            raise BadMessage(f"unsupported Transfer-Encoding {transfer_encoding[:40]!r}",
                             501 if status == 400 else status)
        framing.chunked = True
    return framing


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
    ``src`` ends early; TimeoutError (from the channels' deadlines) when nothing moves for ``idle`` seconds."""
    while length > 0:
        data = await src.read(min(length, COPY_SIZE), within=idle)
        if not data:
            raise IncompleteRead(b"")
        length -= len(data)
        dst.write(data)
        await dst.drain(within=idle)


async def copy_chunked(src: Channel, dst: Channel, idle: float) -> None:
    """Copy a chunked body as is, through its last chunk and trailers, one write per chunk (or per piece
    of a large chunk)."""
    while True:
        line = await src.read_until(b"\r\n", MAX_CHUNK_LINE, within=idle)
        size = _chunk_size(line)
        if size == 0:
            pieces = [line]
            while True:
                trailer = await src.read_until(b"\r\n", MAX_HEAD, within=idle)
                pieces.append(trailer)
                if trailer == b"\r\n":
                    break
            dst.write(b"".join(pieces))
            await dst.drain(within=idle)
            return
        data = await src.read(size, within=idle)
        if not data:
            raise IncompleteRead(b"")
        remaining = size - len(data)
        if remaining:
            dst.write(line + data)
            await dst.drain(within=idle)
            while remaining:
                data = await src.read(min(remaining, COPY_SIZE), within=idle)
                if not data:
                    raise IncompleteRead(b"")
                remaining -= len(data)
                dst.write(data)
                await dst.drain(within=idle)
            line = data = b""
        if await src.read_exactly(2, within=idle) != b"\r\n":
            raise BadMessage("chunk data not followed by CRLF", 502)
        dst.write(line + data + b"\r\n")
        await dst.drain(within=idle)


async def copy_until_eof(src: Channel, dst: Channel, idle: float) -> None:
    """Copy until ``src`` ends (a response delimited by the connection's close)."""
    while True:
        data = await src.read(COPY_SIZE, within=idle)
        if not data:
            return
        dst.write(data)
        await dst.drain(within=idle)


def _chunk_size(line: bytes) -> int:
    text = line[:-2].split(b";", 1)[0].strip(b" \t")
    if not text or len(text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in text):
        raise BadMessage(f"bad chunk size line {line[:40]!r}")
    return int(text, 16)
