"""Reading CRI log files: parsing, tail, since, limit, timestamps, partial lines, and following a log
while it is written and rotated."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelite.kubelet.runtime.crilog import CriLogWriter
from kubelite.kubelet.streaming.logs import (
    LogOptions,
    Record,
    parse_record,
    parse_timestamp,
    start_positions,
    stream_log,
)

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z
SECOND = 1_000_000_000


def clock(start: int = T0, step: int = SECOND) -> Iterator[int]:
    now = start
    while True:
        yield now
        now += step


def writer(path: Path, *, max_size: int = 0, max_files: int = 5) -> CriLogWriter:
    ticks = clock()
    return CriLogWriter(path, max_size=max_size, max_files=max_files, clock=lambda: next(ticks))


async def read(path: Path, **opts: object) -> bytes:
    out = bytearray()

    async def write(data: bytes) -> None:
        out.extend(data)

    await stream_log(path, LogOptions(**opts), write)  # type: ignore[arg-type]
    return bytes(out)


@pytest.mark.parametrize(("text", "ns"), [
    pytest.param("2023-11-14T22:13:20Z", T0, id="no-fraction"),
    pytest.param("2023-11-14T22:13:20.000000001Z", T0 + 1, id="nanoseconds"),
    pytest.param("2023-11-14T22:13:20.5Z", T0 + SECOND // 2, id="short-fraction"),
    pytest.param("2023-11-14T23:13:20+01:00", T0, id="offset"),
    pytest.param("1970-01-01T00:00:00Z", 0, id="epoch"),
    pytest.param("2024-02-29T00:00:00Z", 1_709_164_800 * SECOND, id="leap-day"),
])
def test_parse_timestamp(text: str, ns: int) -> None:
    assert parse_timestamp(text) == ns


@pytest.mark.parametrize("text", ["2023-11-14 22:13:20Z", "yesterday", "2023-11-14T22:13:20"])
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


def test_parse_record() -> None:
    assert parse_record(b"2023-11-14T22:13:20.000000000Z stdout F hello world\n") == \
        Record(T0, "stdout", False, b"hello world")
    assert parse_record(b"2023-11-14T22:13:20Z stderr P part") == Record(T0, "stderr", True, b"part")
    assert parse_record(b"2023-11-14T22:13:20Z stdout F:x-tag ") == Record(T0, "stdout", False, b"")
    assert parse_record(b"2023-11-14T22:13:20Z stdout F") == Record(T0, "stdout", False, b"")
    for junk in (b"", b"not a log line", b"2023-11-14T22:13:20Z stdin F x", b"yesterday stdout F x"):
        assert parse_record(junk) is None


async def test_whole_log_tail_limit_since_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = writer(path)
    w.write("stdout", b"one\ntwo\n")
    w.write("stderr", b"three\n")
    w.write("stdout", b"four\n")
    w.close()
    assert await read(path) == b"one\ntwo\nthree\nfour\n"
    assert await read(path, tail_lines=2) == b"three\nfour\n"
    assert await read(path, tail_lines=0) == b""
    assert await read(path, tail_lines=10) == b"one\ntwo\nthree\nfour\n"
    assert await read(path, limit_bytes=5) == b"one\nt"
    assert await read(path, since_ns=T0 + 2 * SECOND) == b"three\nfour\n"
    assert await read(path, timestamps=True, tail_lines=1) == b"2023-11-14T22:13:23.000000000Z four\n"


async def test_partial_lines_join_and_keep_one_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_bytes(b"2023-11-14T22:13:20Z stdout P abc\n"
                     b"2023-11-14T22:13:21Z stdout P def\n"
                     b"2023-11-14T22:13:22Z stdout F ghi\n"
                     b"garbage that is skipped\n"
                     b"2023-11-14T22:13:23Z stderr F next\n")
    assert await read(path) == b"abcdefghi\nnext\n"
    assert await read(path, timestamps=True) == (b"2023-11-14T22:13:20.000000000Z abcdefghi\n"
                                                 b"2023-11-14T22:13:23.000000000Z next\n")


async def test_tail_and_since_reach_across_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = writer(path, max_size=120, max_files=10)
    for i in range(12):
        w.write("stdout", f"line {i:02d}\n".encode())
    w.close()
    rotated = sorted(tmp_path.glob("0.log.*"))
    assert len(rotated) >= 3
    assert await read(path) == b"".join(f"line {i:02d}\n".encode() for i in range(12))
    assert await read(path, tail_lines=7) == b"".join(f"line {i:02d}\n".encode() for i in range(5, 12))
    stamped = (await read(path, timestamps=True)).splitlines()
    since = parse_timestamp(stamped[10].split(b" ")[0].decode())
    assert await read(path, since_ns=since) == b"line 10\nline 11\n"


def test_start_positions_of_a_long_file(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = writer(path)
    for i in range(5000):
        w.write("stdout", f"{i}\n".encode())
    w.close()
    [(f, offset)] = start_positions([path], 3)
    with open(f, "rb") as fh:
        fh.seek(offset)
        records = [parse_record(line) for line in fh.read().splitlines()]
    assert [r.content for r in records if r is not None] == [b"4997", b"4998", b"4999"]


async def test_follow_across_rotations_until_the_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = writer(path, max_size=100, max_files=10)
    w.write("stdout", b"before\n")
    got: asyncio.Queue[bytes] = asyncio.Queue()
    running = True

    async def still_running() -> bool:
        return running

    async def write(data: bytes) -> None:
        await got.put(data)

    follower = asyncio.ensure_future(stream_log(path, LogOptions(follow=True, tail_lines=5), write,
                                                still_running=still_running, poll_interval=0.01,
                                                running_check_interval=0.01))
    try:
        assert await asyncio.wait_for(got.get(), 5) == b"before\n"
        # Several rotations between two polls (each line rotates): every line still arrives, in order.
        for i in range(6):
            w.write("stdout", f"burst line {i}\n".encode())
        for i in range(6):
            assert await asyncio.wait_for(got.get(), 5) == f"burst line {i}\n".encode()
        w.write("stdout", b"last\n")
        assert await asyncio.wait_for(got.get(), 5) == b"last\n"
        w.close()
        running = False
        await asyncio.wait_for(follower, 5)
    finally:
        follower.cancel()


async def test_follow_waits_for_the_file_and_stops_when_the_client_leaves(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    got: list[bytes] = []
    alive = True

    async def write(data: bytes) -> None:
        got.append(data)

    follower = asyncio.ensure_future(stream_log(path, LogOptions(follow=True), write, alive=lambda: alive,
                                                poll_interval=0.01))
    await asyncio.sleep(0.05)
    w = writer(path)
    w.write("stdout", b"late\n")
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    assert got == [b"late\n"]
    alive = False
    await asyncio.wait_for(follower, 5)
    w.close()


async def test_follow_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = writer(path)
    w.write("stdout", b"0123456789\n")
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    await asyncio.wait_for(stream_log(path, LogOptions(follow=True, limit_bytes=4), write), 5)
    assert out == [b"0123"]
    w.close()
