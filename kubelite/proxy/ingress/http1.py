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
from functools import lru_cache

from kubelite.proxy.ingress.channel import Channel, IncompleteRead

Headers = list[tuple[str, str]]
MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096
COPY_SIZE = 256 * 1024
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD = re.compile(rb"\r\n([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)")
# The fields the proxy reads or rewrites; found in one pass over a head (they start a line: after CRLF).
_NOTABLE = re.compile(rb"\r\n(content-length|transfer-encoding|connection|host|upgrade|expect|keep-alive|"
                      rb"proxy-connection|te|trailer|x-forwarded-for|x-forwarded-proto|x-forwarded-host|"
                      rb"x-forwarded-port|x-real-ip):[ \t]*([^\r\n]*)", re.IGNORECASE)
# A request target: visible characters only (no space, no control character).
_TARGET = re.compile(r"[\x21-\x7e\x80-\xff]+")
_VERSIONS = ("HTTP/1.1", "HTTP/1.0")
_FIELD_LINES = rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r\n)*\r\n"
# A whole request or response head in one match (the start line's parts as groups); anything that does
# not match is looked at again, slowly, for the error message.
_REQUEST = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e\x80-\xff]+) (HTTP/1\.[01])\r\n" + _FIELD_LINES)
_RESPONSE = re.compile(rb"(HTTP/1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?\r\n" + _FIELD_LINES)
_STATUS_LINE = re.compile(r"HTTP/1\.[01] [0-9]{3}(?: [^\r\n]*)?")
_NO_BODY_STATUSES = (204, 304)


class BadMessage(Exception):
    """A message the proxy refuses; ``status`` is the answer for a request (400, 501, 505)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


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
    if head[:1] == b"\r":
        head = head.lstrip(b"\r\n")  # RFC 9112 2.2: ignore CRLFs before the start line
    match = _REQUEST.fullmatch(head)
    if match is None:
        raise _request_error(head)
    raw_method, raw_target, raw_version = match.groups()
    method, target, version = raw_method.decode(), raw_target.decode("latin-1"), raw_version.decode()
    length, chunked, connection, host, upgrade, expect, rewrite = _fields(head, match.end(3), 400)
    if host is None:
        host = ""
        if not target.startswith("/") and "://" in target:
            authority = target.split("://", 1)[1]
            host = authority.split("/", 1)[0].split("?", 1)[0]
        elif version == "HTTP/1.1":
            raise BadMessage("an HTTP/1.1 request needs a Host header")
    return RequestHead(method, target, version, head, length, chunked, connection, host,
                       upgrade if "upgrade" in connection else "", expect.lower() == "100-continue", rewrite)


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a response head; a malformed one is `BadMessage` (the gateway answers 502)."""
    if head[:1] == b"\r":
        head = head.lstrip(b"\r\n")
    match = _RESPONSE.fullmatch(head)
    if match is None:
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        if _STATUS_LINE.fullmatch(line):
            raise BadMessage("malformed header line (folded, bare CR or LF, or a bad name)", 502)
        raise BadMessage(f"malformed status line {line[:100]!r}", 502)
    version, status, reason = match.groups()
    length, chunked, connection, _, upgrade, _, rewrite = _fields(head, match.end(2), 502)
    return ResponseHead(version.decode(), int(status), reason.decode("latin-1") if reason else "", head, length,
                        chunked, connection, upgrade, rewrite)


def fields_of(head: bytes) -> Headers:
    """Every field of a (valid) head, in order, names in their own case."""
    return [(n.decode("latin-1"), v.rstrip(b" \t").decode("latin-1")) for n, v in _FIELD.findall(head)]


@lru_cache(maxsize=64)
def _tokens(value: str) -> frozenset[str]:
    """The tokens of a Connection header, lower case (the same few values come again and again)."""
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def _request_error(head: bytes) -> BadMessage:
    """Why a request head does not parse (the slow path, for the message)."""
    end = head.find(b"\r\n")
    if end < 0 or not head.endswith(b"\r\n\r\n"):
        return BadMessage("incomplete message head")
    line = head[:end].decode("latin-1")
    parts = line.split(" ")
    if len(parts) == 3 and parts[2] not in _VERSIONS and parts[2].startswith("HTTP/"):
        return BadMessage(f"unsupported HTTP version {parts[2][:20]!r}", 505)
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]) \
            or parts[2] not in _VERSIONS:
        return BadMessage(f"malformed request line {line[:100]!r}")
    return BadMessage("malformed header line (folded, bare CR or LF, or a bad name)")


_Fields = tuple[int | None, bool, frozenset[str], str | None, str, str, bool]


def _fields(head: bytes, start: int, status: int) -> _Fields:
    """(Content-Length, chunked, Connection tokens, Host, Upgrade, Expect, whether the head needs rewriting)."""
    length: int | None = None
    connection: frozenset[str] = frozenset()
    host: str | None = None
    upgrade = expect = ""
    rewrite = False
    transfer_encoding: str | None = None
    for raw_name, raw_value in _NOTABLE.findall(head, start):
        name = raw_name.lower()
        value = raw_value.rstrip(b" \t").decode("latin-1")
        if name == b"host":
            if host is not None:
                raise BadMessage("more than one Host header", status)
            host = value
        elif name == b"content-length":
            if not value.isdigit() or (length is not None and length != int(value)):
                raise BadMessage(f"bad Content-Length {value[:40]!r}", status)
            length = int(value)
        elif name == b"connection":
            connection = connection | _tokens(value)
            rewrite = True
        elif name == b"transfer-encoding":
            transfer_encoding = value if transfer_encoding is None else f"{transfer_encoding}, {value}"
        elif name == b"upgrade":
            upgrade = value
            rewrite = True
        elif name == b"expect":
            expect = value
        else:
            rewrite = True  # the other hop-by-hop and X-Forwarded-* fields
    chunked = False
    if transfer_encoding is not None:
        if length is not None:
            raise BadMessage("both Content-Length and Transfer-Encoding", status)
        if transfer_encoding.strip().lower() != "chunked":
            raise BadMessage(f"unsupported Transfer-Encoding {transfer_encoding[:40]!r}",
                             501 if status == 400 else status)
        chunked = True
    return length, chunked, connection, host, upgrade, expect, rewrite


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
