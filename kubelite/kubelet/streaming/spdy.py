"""SPDY/3.1 framing, as spoken by kubectl's port-forward (client-go over moby/spdystream).

Only what a port-forward server needs: parsing a byte stream into frames (`FrameReader`) and encoding the
frames it answers with (`FrameWriter`). Flow control is not implemented, as spdystream implements none
(WINDOW_UPDATE frames are parsed and may be ignored).

Wire format (SPDY draft 3, §2.2): a control frame is ``1 | version(15) | type(16) | flags(8) | length(24) |
payload``; a data frame is ``0 | stream-id(31) | flags(8) | length(24) | payload``. Header blocks of
SYN_STREAM, SYN_REPLY and HEADERS are ``count(32)`` then per pair ``len(32) name len(32) value`` (several
values joined by NUL), zlib-compressed with the SPDY/3 dictionary. Each direction of a session has ONE
compression context for all of its header blocks, each block ending in a sync flush: a `FrameWriter` and a
`FrameReader` therefore belong to one session and one direction, and frames must be encoded in the order
they are sent.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

VERSION = 3

SYN_STREAM = 1
SYN_REPLY = 2
RST_STREAM = 3
SETTINGS = 4
PING = 6
GOAWAY = 7
HEADERS = 8
WINDOW_UPDATE = 9

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02

# RST_STREAM status codes (§2.6.3).
PROTOCOL_ERROR = 1
INVALID_STREAM = 2
REFUSED_STREAM = 3
CANCEL = 5
INTERNAL_ERROR = 6

MAX_DATA_LENGTH = (1 << 24) - 1
_HEADER = struct.Struct(">IBBH")  # first word, flags, length as 8 + 16 bits (3 bytes in all)


def _dictionary() -> bytes:
    """The header compression dictionary of SPDY/3 (§2.6.10.1): length-prefixed header names and values,
    then a run of common value fragments. 1423 bytes."""
    words = [*"options head post put delete trace accept accept-charset accept-encoding accept-language "
             "accept-ranges age allow authorization cache-control connection content-base content-encoding "
             "content-language content-length content-location content-md5 content-range content-type date "
             "etag expect expires from host if-match if-modified-since if-none-match if-range "
             "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
             "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
             "user-agent vary via warning www-authenticate method get status".split(), "200 OK",
             *"version HTTP/1.1 url public set-cookie keep-alive origin".split()]
    tail = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
            "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
            "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
            "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3 (the session cannot go on)."""


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class SynStream:
    stream_id: int
    headers: dict[str, str]
    associated_to: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True, slots=True)
class SynReply:
    stream_id: int
    headers: dict[str, str] = field(default_factory=dict)
    fin: bool = False


@dataclass(frozen=True, slots=True)
class Headers:
    stream_id: int
    headers: dict[str, str]
    fin: bool = False


@dataclass(frozen=True, slots=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class Settings:
    values: dict[int, int]


@dataclass(frozen=True, slots=True)
class Ping:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True, slots=True)
class WindowUpdate:
    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | Headers | RstStream | Settings | Ping | GoAway | WindowUpdate


def encode_header_block(headers: Mapping[str, str]) -> bytes:
    """The uncompressed name/value block; names are lower-cased as SPDY requires."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, str]:
    """Parse an uncompressed name/value block; several values of one name stay NUL-joined."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos, headers = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n]
            pos += 4 + n
            (v,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + v]
            pos += 4 + v
            if len(name) != n or len(value) != v:
                raise ProtocolError("truncated header block")
            headers[name.decode("latin-1")] = value.decode("latin-1")
    except struct.error:
        raise ProtocolError("truncated header block") from None
    return headers


class FrameWriter:
    """Encodes the frames of one direction of a session (owns that direction's compression context)."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                      zdict=DICTIONARY)

    def _compress(self, headers: Mapping[str, str]) -> bytes:
        return self._zlib.compress(encode_header_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    @staticmethod
    def _control(kind: int, flags: int, payload: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            if len(frame.data) > MAX_DATA_LENGTH:
                raise ValueError("a data frame holds at most 16 MiB")
            flags = FLAG_FIN if frame.fin else 0
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF, (flags << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
            payload = struct.pack(">IIBB", frame.stream_id, frame.associated_to, (frame.priority & 7) << 5, 0)
            return self._control(SYN_STREAM, flags, payload + self._compress(frame.headers))
        if isinstance(frame, SynReply | Headers):
            kind = SYN_REPLY if isinstance(frame, SynReply) else HEADERS
            payload = struct.pack(">I", frame.stream_id) + self._compress(frame.headers)
            return self._control(kind, FLAG_FIN if frame.fin else 0, payload)
        if isinstance(frame, RstStream):
            return self._control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            entries = b"".join(struct.pack(">II", key & 0xFFFFFF, value) for key, value in frame.values.items())
            return self._control(SETTINGS, 0, struct.pack(">I", len(frame.values)) + entries)
        if isinstance(frame, Ping):
            return self._control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return self._control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        return self._control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))


class FrameReader:
    """Parses the byte stream of one direction of a session into frames.

    `feed` takes bytes as they arrive, in pieces of any size (a frame may span WebSocket messages, and one
    message may hold several frames), and yields each frame completed so far. Control frames of unknown
    types are skipped, as the specification asks.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._zlib = zlib.decompressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> Iterator[Frame]:
        self._buffer += data
        while len(self._buffer) >= 8:
            word, flags, high, low = _HEADER.unpack_from(self._buffer, 0)
            length = (high << 16) | low
            if len(self._buffer) < 8 + length:
                return
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            if word & 0x80000000:
                version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version} is not supported")
                frame = self._control(kind, flags, payload)
                if frame is not None:
                    yield frame
            else:
                yield DataFrame(word & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))

    def _headers(self, compressed: bytes) -> dict[str, str]:
        try:
            return decode_header_block(self._zlib.decompress(compressed))
        except zlib.error as e:
            raise ProtocolError(f"header block does not decompress: {e}") from None

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        fin = bool(flags & FLAG_FIN)
        try:
            if kind == SYN_STREAM:
                stream_id, associated, priority, _slot = struct.unpack_from(">IIBB", payload, 0)
                return SynStream(stream_id & 0x7FFFFFFF, self._headers(payload[10:]), associated & 0x7FFFFFFF,
                                 priority >> 5, fin, bool(flags & FLAG_UNIDIRECTIONAL))
            if kind in (SYN_REPLY, HEADERS):
                (stream_id,) = struct.unpack_from(">I", payload, 0)
                headers = self._headers(payload[4:])
                if kind == SYN_REPLY:
                    return SynReply(stream_id & 0x7FFFFFFF, headers, fin)
                return Headers(stream_id & 0x7FFFFFFF, headers, fin)
            if kind == RST_STREAM:
                stream_id, status = struct.unpack_from(">II", payload, 0)
                return RstStream(stream_id & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", payload, 0)
                values = {}
                for i in range(count):
                    key, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                    values[key & 0xFFFFFF] = value
                return Settings(values)
            if kind == PING:
                return Ping(struct.unpack_from(">I", payload, 0)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", payload + b"\0" * 4, 0)  # SPDY/2 had no status
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                stream_id, delta = struct.unpack_from(">II", payload, 0)
                return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error:
            raise ProtocolError(f"control frame of type {kind} is too short") from None
        return None
