"""SPDY/3.1 framing: frames kubectl really sent, frames built by hand, and writer → reader round trips."""

from __future__ import annotations

import random
import zlib

import pytest

from kubelite.kubelet.streaming import spdy

# What kubectl 1.37 sent for one forwarded connection (captured from the tunnel): SYN_STREAM 1 (error),
# FIN on 1, SYN_STREAM 3 (data, its header block compressed in the same zlib context), "hi", FIN on 3.
KUBECTL_SESSION = bytes.fromhex(
    "800300010000003e0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb45e01c6061606"
    "1c0c0c0c0590489c64c50f2663400000000ffff0000000101000000800300010000001800000003000000000000c2aa19540e"
    "2512d60b000000ffff000000030000000268690000000301000000")
KUBECTL_FRAMES = [
    spdy.SynStream(1, {"streamtype": "error", "port": "8080", "requestid": "0"}),
    spdy.DataFrame(1, b"", fin=True),
    spdy.SynStream(3, {"streamtype": "data", "port": "8080", "requestid": "0"}),
    spdy.DataFrame(3, b"hi"),
    spdy.DataFrame(3, b"", fin=True),
]


def test_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    # The dictionary id in kubectl's zlib header (FDICT) is the dictionary's Adler-32.
    assert KUBECTL_SESSION[18:24] == bytes.fromhex("78f9") + zlib.adler32(spdy.DICTIONARY).to_bytes(4, "big")


@pytest.mark.parametrize("seed", range(5))
def test_reads_kubectls_session_in_any_pieces(seed: int) -> None:
    rng = random.Random(seed)
    reader, pos = spdy.FrameReader(), 0
    frames: list[spdy.Frame] = []
    while pos < len(KUBECTL_SESSION):
        step = rng.randint(1, 9)  # spdystream writes each field separately: frames span messages
        frames.extend(reader.feed(KUBECTL_SESSION[pos : pos + step]))
        pos += step
    assert frames == KUBECTL_FRAMES


def test_reads_several_frames_from_one_piece() -> None:
    assert list(spdy.FrameReader().feed(KUBECTL_SESSION)) == KUBECTL_FRAMES


@pytest.mark.parametrize(("frame", "wire"), [
    pytest.param(spdy.Ping(1), "80030006000000040000 0001", id="ping"),
    pytest.param(spdy.RstStream(3, spdy.CANCEL), "80030003 00000008 00000003 00000005", id="rst"),
    pytest.param(spdy.GoAway(5, 0), "80030007 00000008 00000005 00000000", id="goaway"),
    pytest.param(spdy.WindowUpdate(1, 65536), "80030009 00000008 00000001 00010000", id="window-update"),
    pytest.param(spdy.Settings({4: 1000}), "80030004 0000000c 00000001 00000004 000003e8", id="settings"),
    pytest.param(spdy.DataFrame(3, b"ab", fin=True), "00000003 01000002 6162", id="data-fin"),
    pytest.param(spdy.DataFrame(7, b""), "00000007 00000000", id="data-empty"),
])
def test_fixed_frames_on_the_wire(frame: spdy.Frame, wire: str) -> None:
    raw = bytes.fromhex(wire.replace(" ", ""))
    assert spdy.FrameWriter().encode(frame) == raw
    assert list(spdy.FrameReader().feed(raw)) == [frame]


def test_header_blocks_share_one_context_per_direction() -> None:
    writer, reader = spdy.FrameWriter(), spdy.FrameReader()
    frames: list[spdy.Frame] = [spdy.SynReply(1), spdy.SynReply(3, {"a": "b"}),
                                spdy.SynStream(5, {"streamtype": "data", "port": "80"}, priority=3, fin=True),
                                spdy.Headers(5, {"x": "y\x00z"})]
    wire = b"".join(writer.encode(f) for f in frames)
    assert list(reader.feed(wire)) == frames
    # A second, fresh reader cannot start in the middle of the shared context.
    second = writer.encode(spdy.SynReply(7, {"k": "v"}))
    with pytest.raises(spdy.ProtocolError):
        list(spdy.FrameReader().feed(second))
    assert list(reader.feed(second)) == [spdy.SynReply(7, {"k": "v"})]


def test_syn_reply_is_a_control_frame_with_a_compressed_block() -> None:
    raw = spdy.FrameWriter().encode(spdy.SynReply(1))
    assert raw[:4] == bytes.fromhex("80030002")
    length = int.from_bytes(raw[5:8], "big")
    assert length == len(raw) - 8 and raw[8:12] == b"\0\0\0\1"
    block = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(raw[12:])
    assert block == b"\0\0\0\0"  # no headers
    assert raw.endswith(b"\x00\x00\xff\xff")  # sync flush: the block is complete


def test_names_are_lowercased_and_unknown_control_frames_skipped() -> None:
    writer = spdy.FrameWriter()
    unknown = bytes.fromhex("8003000a 00000002 abcd".replace(" ", ""))
    wire = unknown + writer.encode(spdy.Headers(1, {"StreamType": "error"}))
    assert list(spdy.FrameReader().feed(wire)) == [spdy.Headers(1, {"streamtype": "error"})]


def test_rejects_other_versions_and_garbage() -> None:
    with pytest.raises(spdy.ProtocolError, match="version 2"):
        list(spdy.FrameReader().feed(bytes.fromhex("8002000600000004 00000001".replace(" ", ""))))
    with pytest.raises(spdy.ProtocolError):
        list(spdy.FrameReader().feed(bytes.fromhex("80030001 0000000a 00000001 00000000 0000".replace(" ", ""))
                                     + b""))
    with pytest.raises(spdy.ProtocolError, match="decompress"):
        list(spdy.FrameReader().feed(bytes.fromhex("80030002 00000008 00000001".replace(" ", "")) + b"junk"))
