"""Container logs in the CRI log format, with size-based rotation.

Each record is one line ``<timestamp> <stream> <tag> <content>\\n`` where the timestamp is RFC 3339 with
nanoseconds in UTC (``2016-10-06T00:17:09.669794202Z``), the stream ``stdout`` or ``stderr`` and the tag
``F`` for a full line or ``P`` for a part of a longer line that continues in the next record of the same
stream (as containerd writes them and the kubelet reads them, see
kubernetes/cri-api .../pkg/apis/runtime/v1 and kubelet's kuberuntime/logs). Content never holds the
newline.

A line longer than `MAX_LINE` bytes is cut into ``P`` records (containerd's default
max_container_log_line_size is 16 KiB). Bytes without a newline are held until the newline arrives or
the stream ends (`close`), when they become a ``F`` record, as containerd does at EOF.

Rotation follows the kubelet's container log manager: when the file would grow past ``max_size`` it is
renamed to ``<path>.<YYYYMMDD-HHMMSS>`` (UTC) and a new file is opened; only ``max_files`` files are kept
in all (the live one and the newest rotated ones). Unlike the kubelet, rotated files are not gzipped.

This module only uses the standard library: it runs in every container's shim process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

MAX_LINE = 16 * 1024
STREAMS = ("stdout", "stderr")


def format_timestamp(ns: int) -> str:
    """Unix nanoseconds as RFC 3339 in UTC with all nine fraction digits."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def format_record(ns: int, stream: str, partial: bool, content: bytes) -> bytes:
    return f"{format_timestamp(ns)} {stream} {'P' if partial else 'F'} ".encode() + content + b"\n"


class CriLogWriter:
    """Writes one container's stdout and stderr into one CRI log file.

    ``max_size`` <= 0 turns rotation off; ``max_files`` counts the live file too (at least 2 when rotating).
    `write` and `close` are synchronous and meant for one thread.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_size: int = 10 * 1024 * 1024,
        max_files: int = 5,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(max_files, 2)
        self._clock = clock
        self._pending: dict[str, bytes] = {s: b"" for s in STREAMS}
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")
        self._size = self._file.tell()

    def write(self, stream: str, data: bytes) -> None:
        """Append bytes read from a stream; complete lines become records at once."""
        buffered = self._pending[stream] + data
        lines = buffered.split(b"\n")
        rest = lines.pop()
        records = [self._records(stream, line) for line in lines]
        while len(rest) > MAX_LINE:
            records.append(format_record(self._clock(), stream, True, rest[:MAX_LINE]))
            rest = rest[MAX_LINE:]
        self._pending[stream] = rest
        for group in records:
            self._emit(group)

    def close(self) -> None:
        """Flush what is left of unfinished lines as full records and close the file."""
        for stream in STREAMS:
            if self._pending[stream]:
                self._emit(format_record(self._clock(), stream, False, self._pending[stream]))
                self._pending[stream] = b""
        self._file.close()

    def _records(self, stream: str, line: bytes) -> bytes:
        now = self._clock()
        parts = [line[i : i + MAX_LINE] for i in range(0, len(line), MAX_LINE)] or [b""]
        return b"".join(format_record(now, stream, i < len(parts) - 1, p) for i, p in enumerate(parts))

    def _emit(self, data: bytes) -> None:
        if self.max_size > 0 and self._size > 0 and self._size + len(data) > self.max_size:
            self._rotate()
        self._file.write(data)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        self._file.close()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(self._clock() // 1_000_000_000))
        target = self.path.with_name(f"{self.path.name}.{stamp}")
        n = 0
        while target.exists():  # several rotations within one second
            n += 1
            target = self.path.with_name(f"{self.path.name}.{stamp}.{n}")
        os.replace(self.path, target)
        for old in rotated_files(self.path)[: -(self.max_files - 1)]:
            old.unlink(missing_ok=True)
        self._file = open(self.path, "ab")
        self._size = 0


def rotated_files(path: Path) -> list[Path]:
    """The rotated files of a log, oldest first."""
    return sorted(path.parent.glob(f"{path.name}.*"), key=lambda p: (p.stat().st_mtime_ns, p.name))
