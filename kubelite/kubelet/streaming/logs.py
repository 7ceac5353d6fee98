"""Reading container logs in the CRI log format, as the kubelet serves them to ``kubectl logs``.

A log is the live file ``<attempt>.log`` and the files rotated from it (``<attempt>.log.<stamp>``, see
`kubelite.kubelet.runtime.crilog`). Each record is ``<RFC 3339 time> <stdout|stderr> <F|P> <content>\\n``;
``P`` marks part of a longer line continued by the next record of the stream.

Output, as kubelet's kuberuntime/logs: the content of each record, a newline after full (``F``) records and
none after partial ones; with ``timestamps`` each line starts with its record's time in RFC 3339 with nine
fraction digits and a space (not repeated on the continuation of a partial line). ``since`` drops records
older than that time; ``tail_lines`` keeps the last N records; ``limit_bytes`` cuts the output after N
bytes. Unlike the kubelet, which reads only the live file, the rotated files still on disk are read too
(oldest first), so that ``--tail`` and ``--since`` reach across a rotation.

``follow`` keeps reading as the container writes, also across rotations (the live file is renamed away and
a new one created: the old file is read to its end, then the new one from its start), until the container
is no longer running (``still_running``) and everything written has been sent, or the reader stops.
Lines that do not parse are skipped, as the kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from kubelite.kubelet.runtime.crilog import format_timestamp, rotated_files

_CHUNK = 64 * 1024
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$")

Write = Callable[[bytes], Awaitable[None]]
StillRunning = Callable[[], Awaitable[bool]]


class LimitReached(Exception):
    """``limit_bytes`` were written: the reader stops."""


@dataclass(frozen=True, slots=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Record:
    timestamp_ns: int
    stream: str
    partial: bool
    content: bytes


def parse_timestamp(text: str) -> int:
    """RFC 3339 (any fraction up to nanoseconds, ``Z`` or an offset) as Unix nanoseconds."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((m.group(7) or "0").ljust(9, "0"))


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (no time zone or leap second business)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_record(line: bytes) -> Record | None:
    """One CRI log line (with or without its newline), or None when it is not one."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tags = parts[0], parts[1], parts[2]
    if stream not in (b"stdout", b"stderr"):
        return None
    try:
        ns = parse_timestamp(stamp.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    # Tags are ':'-separated for forward compatibility; the first is F or P.
    partial = tags.split(b":", 1)[0] == b"P"
    return Record(ns, stream.decode(), partial, parts[3] if len(parts) > 3 else b"")


def log_files(path: Path) -> list[Path]:
    """The files of a log, oldest first: the rotated ones, then the live one (when it exists)."""
    files = rotated_files(path)
    if path.exists():
        files.append(path)
    return files


def _tail_start(path: Path, lines: int) -> tuple[int, int]:
    """Where the last ``lines`` complete lines of ``path`` start, and how many were found (fewer when the
    file is shorter). Reads backwards in blocks, so a long file costs only its tail."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos, found, skip_last = end, 0, True
        while pos > 0:
            step = min(_CHUNK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            i = len(block)
            while True:
                i = block.rfind(b"\n", 0, i)
                if i < 0:
                    break
                if skip_last and pos + i == end - 1:
                    skip_last = False  # the newline ending the last line does not start a line
                    continue
                skip_last = False
                found += 1
                if found == lines:
                    return pos + i + 1, found
        return 0, found + (1 if end > 0 else 0)


def start_positions(files: list[Path], tail_lines: int | None) -> list[tuple[Path, int]]:
    """The files to read and the offset to start each at, for ``tail_lines`` over all of them."""
    if tail_lines is None:
        return [(f, 0) for f in files]
    out: list[tuple[Path, int]] = []
    wanted = tail_lines
    for f in reversed(files):
        if wanted <= 0:
            break
        try:
            offset, found = _tail_start(f, wanted)
        except FileNotFoundError:  # rotated away meanwhile
            continue
        out.append((f, offset))
        wanted -= found
    return list(reversed(out))


class _Output:
    """Renders records as the kubelet does and counts bytes against ``limit_bytes``."""

    def __init__(self, opts: LogOptions, write: Write) -> None:
        self.opts = opts
        self._write = write
        self._remaining = opts.limit_bytes
        self._new_line = {"stdout": True, "stderr": True}

    async def record(self, rec: Record) -> None:
        if self.opts.since_ns is not None and rec.timestamp_ns < self.opts.since_ns:
            return
        out = rec.content if rec.partial else rec.content + b"\n"
        if self.opts.timestamps and self._new_line[rec.stream]:
            out = format_timestamp(rec.timestamp_ns).encode() + b" " + out
        self._new_line[rec.stream] = not rec.partial
        if self._remaining is not None:
            out = out[: self._remaining]
            self._remaining -= len(out)
        if out:
            await self._write(out)
        if self._remaining is not None and self._remaining <= 0:
            raise LimitReached


class _FileReader:
    """Complete lines of one open file, from an offset on; a line still being written waits for its end."""

    def __init__(self, path: Path, offset: int) -> None:
        self.path = path
        self._file = open(path, "rb")  # closed by close()
        self._file.seek(offset)
        self._pending = b""
        self.inode = os.fstat(self._file.fileno()).st_ino

    def modified_ns(self) -> int:
        return os.fstat(self._file.fileno()).st_mtime_ns

    async def lines(self) -> list[bytes] | None:
        """The lines completed by the next chunk of the file (maybe none); None at the end of the file."""
        data = await asyncio.to_thread(self._file.read, _CHUNK)
        if not data:
            return None
        chunk = self._pending + data
        *complete, self._pending = chunk.split(b"\n")
        return complete

    def rest(self) -> bytes:
        """What is left of an unfinished last line (only meaningful once the file will not grow)."""
        rest, self._pending = self._pending, b""
        return rest

    def close(self) -> None:
        self._file.close()


async def _drain(reader: _FileReader, out: _Output, *, final: bool) -> bool:
    """Send every complete line available now; ``final`` also sends an unfinished last line.
    True if anything was read."""
    progressed = False
    while (lines := await reader.lines()) is not None:
        progressed = True
        for line in lines:
            rec = parse_record(line)
            if rec is not None:
                await out.record(rec)
    if final and (rest := reader.rest()):
        rec = parse_record(rest)
        if rec is not None:
            await out.record(rec)
    return progressed


def _next_file(path: Path, current: _FileReader) -> Path:
    """The file written after ``current`` among the log's files (the live one when none is left)."""
    files = log_files(path)
    stats = []
    for f in files:
        with contextlib.suppress(FileNotFoundError):
            stats.append((f, f.stat()))
    for i, (_, st) in enumerate(stats):
        if st.st_ino == current.inode:
            return stats[i + 1][0] if i + 1 < len(stats) else path
    # Ours was removed already: the oldest file written after it.
    mtime = current.modified_ns()
    return next((f for f, st in stats if st.st_mtime_ns >= mtime), path)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


async def stream_log(path: Path, opts: LogOptions, write: Write, *, still_running: StillRunning | None = None,
                     alive: Callable[[], bool] = lambda: True, poll_interval: float = 0.2,
                     running_check_interval: float = 1.0) -> None:
    """Write the log of ``path`` (the live file's path) to ``write`` as the options say (module doc).

    Following stops when ``still_running`` answers False and the files hold nothing more, or when
    ``alive`` answers False (the client went away). Returns normally when ``limit_bytes`` is reached.
    """
    out = _Output(opts, write)
    try:
        positions = start_positions(log_files(path), opts.tail_lines)
        for f, offset in positions[:-1] if opts.follow else positions:
            try:
                reader = _FileReader(f, offset)
            except FileNotFoundError:
                continue
            try:
                await _drain(reader, out, final=True)
            finally:
                reader.close()
        if opts.follow:
            last = positions[-1] if positions else (path, 0)
            await _follow(path, last, out, still_running, alive, poll_interval, running_check_interval)
    except LimitReached:
        return


async def _follow(path: Path, start: tuple[Path, int], out: _Output, still_running: StillRunning | None,
                  alive: Callable[[], bool], poll_interval: float, running_check_interval: float) -> None:
    reader: _FileReader | None = None
    file, offset = start
    try:
        while reader is None:
            try:
                reader = _FileReader(file, offset)
            except FileNotFoundError:
                # The file was rotated away before we opened it, or the container has not written yet.
                if file != path:
                    file, offset = path, 0
                    continue
                if not alive() or (still_running is not None and not await still_running()):
                    return
                await asyncio.sleep(poll_interval)
        checked = float("-inf")  # the first time the files run dry, ask at once (a container that has exited)
        while True:
            if await _drain(reader, out, final=False):
                continue
            if _inode(path) not in (None, reader.inode):
                # Rotated: finish the old file (the writer has closed it), then go on with the file that came
                # after it, which is the live one unless the writer rotated several times meanwhile.
                await _drain(reader, out, final=True)
                following = _next_file(path, reader)
                reader.close()
                reader = None
                while reader is None:
                    try:
                        reader = _FileReader(following, 0)
                    except FileNotFoundError:  # rotated again (or removed) just now
                        following = path
                continue
            if not alive():
                return
            now = time.monotonic()
            if still_running is not None and now - checked >= running_check_interval:
                checked = now
                if not await still_running():
                    await _drain(reader, out, final=True)
                    return
            await asyncio.sleep(poll_interval)
    finally:
        if reader is not None:
            reader.close()
