"""crilog: the CRI log format and rotation."""

from __future__ import annotations

import itertools
from pathlib import Path

from kubelite.kubelet.runtime import crilog
from kubelite.kubelet.runtime.crilog import CriLogWriter

T0 = 1_700_000_000_123_456_789


def clock() -> itertools.count[int]:
    return itertools.count(T0, 1000)


def test_timestamp_is_rfc3339_nano_utc() -> None:
    assert crilog.format_timestamp(T0) == "2023-11-14T22:13:20.123456789Z"
    assert crilog.format_timestamp(1_000_000_000) == "1970-01-01T00:00:01.000000000Z"


def test_full_lines_and_held_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "c" / "0.log"
    w = CriLogWriter(path, clock=clock().__next__)
    w.write("stdout", b"hello\nwor")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"ld\n\n")
    w.write("stdout", b"no newline")
    w.close()
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "stdout F hello",
        "stderr F oops",
        "stdout F world",
        "stdout F ",
        "stdout F no newline",
    ]
    assert lines[0].startswith("2023-11-14T22:13:20.123456789Z ")


def test_long_lines_are_cut_into_partial_records(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = CriLogWriter(path, clock=clock().__next__)
    w.write("stdout", b"a" * (crilog.MAX_LINE + 10) + b"\n")
    w.write("stdout", b"b" * (crilog.MAX_LINE * 2 + 1))
    w.close()
    records = [line.split(" ", 3) for line in path.read_text().splitlines()]
    assert [(r[1], r[2], len(r[3])) for r in records] == [
        ("stdout", "P", crilog.MAX_LINE),
        ("stdout", "F", 10),
        ("stdout", "P", crilog.MAX_LINE),
        ("stdout", "P", crilog.MAX_LINE),
        ("stdout", "F", 1),
    ]


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text("2023-11-14T22:13:20.000000000Z stdout F before\n")
    w = CriLogWriter(path, clock=clock().__next__)
    w.write("stdout", b"after\n")
    w.close()
    assert [line.rsplit(" ", 1)[1] for line in path.read_text().splitlines()] == ["before", "after"]


def test_rotation_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = CriLogWriter(path, max_size=200, max_files=3, clock=clock().__next__)
    for i in range(40):
        w.write("stdout", f"line {i:03d} {'x' * 20}\n".encode())
    w.close()
    rotated = crilog.rotated_files(path)
    assert len(rotated) == 2
    assert all(p.name.startswith("0.log.2023") for p in rotated)
    assert path.stat().st_size <= 200 and all(p.stat().st_size <= 200 for p in rotated)
    # The newest lines are in the live file, the ones just before them in the newest rotated file.
    live = path.read_text().splitlines()
    assert live[-1].endswith("line 039 " + "x" * 20)
    previous = rotated[-1].read_text().splitlines()
    assert int(previous[-1].split()[4]) + 1 == int(live[0].split()[4])


def test_no_rotation_when_max_size_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    w = CriLogWriter(path, max_size=0, clock=clock().__next__)
    for _ in range(100):
        w.write("stdout", b"x" * 100 + b"\n")
    w.close()
    assert crilog.rotated_files(path) == []
    assert len(path.read_text().splitlines()) == 100
