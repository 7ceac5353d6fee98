"""The embedded default backend: etcd semantics on one SQLite file, kine-style.

The log. One append-only table holds every write as a row; the row id *is* the store revision:

    log(revision INTEGER PRIMARY KEY AUTOINCREMENT, key, created, deleted, create_revision,
        prev_revision, value)

A create row has ``created = 1``; a delete appends a tombstone (``deleted = 1``) carrying the last value, so
a DELETE event can be rebuilt from the log alone. ``prev_revision`` is the revision of the key's previous
row (0 for a key without one). The unique index on ``(key, prev_revision)`` is kine's compare-and-swap: two
writes derived from the same previous row cannot both land. The same index finds a key's latest row (the
one with the highest ``prev_revision``) and tells whether a row has been superseded (some row names it as
its ``prev_revision``), which is all that reads at a revision and compaction need. AUTOINCREMENT keeps the
head revision in ``sqlite_sequence`` even when compaction empties the table, so revisions never go back,
also across restarts; a fresh file starts at revision 1, as etcd does.

Writes are group-committed. Callers queue their request and wait on a future; one writer task hands every
queued request to the writer thread, which runs them in order in ONE transaction (each still gets its own
revision and its own success or failure), commits once, and returns; the task then publishes the committed
events to the watchers and resolves the futures. Reads run on a small pool of reader threads, each with
its own connection: WAL lets them read a consistent snapshot while the writer writes.

Watch is served in-process, never by polling the table. A watcher subscribes first (live events are
buffered from then on), then reads the log from its start revision up to the head of its read snapshot,
then drains the buffer, skipping what the log already gave it: no gap, no repeat. A watcher that falls
more than ``watch_buffer`` events behind drops its buffer and catches up from the log again, so a slow
consumer costs disk reads, not memory; one that falls behind compaction gets `Compacted`.

Compaction runs in the background every ``compact_interval`` seconds, and as soon as ``keep_revisions +
compact_after`` revisions are uncompacted, so the log stays bounded whatever the write rate. It keeps the
last ``keep_revisions`` revisions and removes older rows that are superseded, plus older tombstones (never
the latest row of a live key), in chunks that interleave with the writes. Steady churn leaves free pages
that the next writes reuse; when half the file is free (after mass deletes), the pages go back to the file
system (``auto_vacuum = INCREMENTAL``). The periodic run and ``compact(revision)`` also truncate the WAL,
which otherwise the auto-checkpoint keeps at about 4 MiB.

One process owns the file: ``<path>.lock`` is held (flock) while the store is open.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, TypeVar

from .interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    StorageError,
    Unavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS log_key_prev ON log (key, prev_revision);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO sqlite_sequence (name, seq) SELECT 'log', 1
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'log');
INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', 1), ('compacted', 0);
"""

_HEADS = (
    "SELECT (SELECT seq FROM sqlite_sequence WHERE name = 'log'),"
    " (SELECT value FROM meta WHERE name = 'compacted')"
)
_LATEST = (
    "SELECT revision, create_revision, deleted, value FROM log WHERE key = ?"
    " ORDER BY prev_revision DESC LIMIT 1"
)
_INSERT = (
    "INSERT INTO log (revision, key, created, deleted, create_revision, prev_revision, value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# {range} is a key-range condition on l.key (see _key_range); a row is live at :rev when no row at or
# below :rev succeeds it.
_LIST = (
    "SELECT l.key, l.value, l.create_revision, l.revision FROM log AS l"
    " WHERE {range} AND l.revision <= ? AND l.deleted = 0 AND NOT EXISTS ("
    "  SELECT 1 FROM log AS s WHERE s.key = l.key AND s.prev_revision = l.revision AND s.revision <= ?)"
    " ORDER BY l.key"
)
_COUNT = (
    "SELECT COUNT(*) FROM log AS l WHERE {range} AND l.deleted = 0 AND NOT EXISTS ("
    "  SELECT 1 FROM log AS s WHERE s.key = l.key AND s.prev_revision = l.revision)"
)
# The unary plus in {range} keeps SQLite from walking the key index: the log is read in revision order.
_HISTORY = (
    "SELECT l.revision, l.key, l.deleted, l.create_revision, l.value, p.revision, p.create_revision, p.value"
    " FROM log AS l LEFT JOIN log AS p ON l.created = 0 AND p.revision = l.prev_revision"
    " WHERE l.revision BETWEEN ? AND ? AND {range} ORDER BY l.revision LIMIT ?"
)
# Compacting (lo, hi]: rows superseded by a row in (lo, hi] and tombstones in [lo, hi) go; everything older
# went in earlier chunks.
_DROP_SUPERSEDED = (
    "DELETE FROM log WHERE revision IN ("
    " SELECT prev_revision FROM log WHERE revision > ? AND revision <= ? AND prev_revision > 0)"
)
_DROP_TOMBSTONES = "DELETE FROM log WHERE revision >= ? AND revision < ? AND deleted = 1"
_SET_COMPACTED = "UPDATE meta SET value = ? WHERE name = 'compacted'"

_COMPACT_CHUNK = 5_000  # revisions per compaction transaction: keeps each writer pause short
_VACUUM_CHUNK = 2_048  # pages returned to the file system per writer turn
_VACUUM_MIN_PAGES = 64  # fewer free pages than this are left for the next writes to reuse
_HISTORY_CHUNK = 1_000  # log rows per catch-up read of a watcher
_WAL_LIMIT = 4 * 1024 * 1024  # bytes a reset WAL is truncated to (the auto-checkpoint's 1000 pages)


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: no upper bound)."""
    for i in range(len(prefix) - 1, -1, -1):
        code = ord(prefix[i]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates have no UTF-8 form; the next code point does
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:i] + chr(code)
    return None


def _key_range(prefix: str, column: str) -> tuple[str, tuple[str, ...]]:
    """An SQL condition selecting ``column`` values that start with ``prefix``, and its parameters.
    SQLite compares TEXT bytewise, and UTF-8 preserves code point order."""
    end = _prefix_end(prefix)
    if not prefix:
        return "1", ()
    if end is None:
        return f"{column} >= ?", (prefix,)
    return f"{column} >= ? AND {column} < ?", (prefix, end)


@dataclass(slots=True)
class _Write:
    op: Literal["create", "update", "delete"]
    key: str
    value: bytes
    expected: int | None
    future: asyncio.Future[KeyValue]


class _Subscriber:
    """Live events for one watcher, buffered between its reads."""

    __slots__ = ("error", "events", "limit", "overflowed", "prefix", "wake")

    def __init__(self, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self.limit = limit
        self.events: list[Event] = []
        self.overflowed = False
        self.error: StorageError | None = None
        self.wake = asyncio.Event()

    def offer(self, events: list[Event]) -> None:
        if self.overflowed:
            return
        prefix = self.prefix
        matched = [e for e in events if e.kv.key.startswith(prefix)] if prefix else events
        if not matched:
            return
        self.events.extend(matched)
        if len(self.events) > self.limit:
            # Too far behind: forget the buffer, the watcher re-reads the log from where it is.
            self.events = []
            self.overflowed = True
        self.wake.set()

    def fail(self, error: StorageError) -> None:
        self.error = error
        self.wake.set()

    def reset(self) -> None:
        self.events = []
        self.overflowed = False

    def take(self) -> list[Event]:
        events, self.events = self.events, []
        self.wake.clear()
        return events


class SQLiteStore:
    """A `Store` in one SQLite file at ``path`` (see the module docstring for the design).

    ``start()`` opens (and creates) the file, ``close()`` drains queued writes and closes it; the store
    then raises `Unavailable`, and so do its open watches.
    """

    def __init__(
        self,
        path: str,
        *,
        compact_interval: float = 60.0,
        keep_revisions: int = 1000,
        compact_after: int = 1000,
        read_threads: int = 2,
        watch_buffer: int = 10_000,
    ) -> None:
        self.path = path
        self.compact_interval = compact_interval
        self.keep_revisions = keep_revisions
        self.compact_after = compact_after
        self.read_threads = read_threads
        self.watch_buffer = watch_buffer
        self._head = 0
        self._compacted = 0
        self._open = False
        self._lock_fd: int | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconns: list[sqlite3.Connection] = []
        self._rlocal = threading.local()
        self._pending: list[_Write] = []
        self._has_pending = asyncio.Event()
        self._subscribers: set[_Subscriber] = set()
        self._compact_due = asyncio.Event()
        self._compact_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> SQLiteStore:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._open:
            return
        # Made here, not in __init__: they belong to the loop the store runs on.
        self._has_pending = asyncio.Event()
        self._compact_due = asyncio.Event()
        self._compact_lock = asyncio.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(self.read_threads, thread_name_prefix="sqlite-reader")
        try:
            self._head, self._compacted = await self._in_writer(self._open_writer)
        except BaseException:
            self._shutdown_threads()
            raise
        self._open = True
        self._tasks = [
            asyncio.create_task(self._write_loop(), name="sqlite-writer"),
            asyncio.create_task(self._compact_loop(), name="sqlite-compactor"),
        ]
        for task in self._tasks:
            task.add_done_callback(_report_death)

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        self._has_pending.set()  # the write loop drains what is queued, then ends
        writer_loop, compactor = self._tasks
        compactor.cancel()
        await asyncio.gather(writer_loop, compactor, return_exceptions=True)
        self._tasks = []
        for sub in self._subscribers:
            sub.fail(Unavailable("sqlite store is closed"))
        try:
            await self._in_writer(self._close_writer)
        finally:
            self._shutdown_threads()

    def _shutdown_threads(self) -> None:
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        for conn in self._rconns:
            conn.close()
        self._rconns = []
        self._rlocal = threading.local()
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def _check_open(self) -> None:
        if not self._open:
            raise Unavailable("sqlite store is closed")

    # -- threads ---------------------------------------------------------------------------------------

    async def _in_writer(self, fn: Callable[..., T], *args: object) -> T:
        assert self._writer is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)
        except sqlite3.Error as e:
            raise Unavailable(f"sqlite: {e}") from e

    async def _in_reader(self, fn: Callable[..., T], *args: object) -> T:
        self._check_open()
        assert self._readers is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, self._read, fn, *args)
        except sqlite3.Error as e:
            raise Unavailable(f"sqlite: {e}") from e

    def _read(self, fn: Callable[..., T], *args: object) -> T:
        conn: sqlite3.Connection | None = getattr(self._rlocal, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = 1")
            conn.execute("PRAGMA busy_timeout = 5000")
            self._rlocal.conn = conn
            self._rconns.append(conn)
        return fn(conn, *args)

    def _open_writer(self) -> tuple[int, int]:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self._lock_fd = _lock_file(self.path + ".lock")
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._wconn = conn
        # auto_vacuum only takes effect before the first table is created, i.e. on a new file.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA journal_size_limit = {_WAL_LIMIT}")
        conn.execute("PRAGMA cache_size = -16000")
        # The writer only waits for readers on wal_checkpoint(TRUNCATE); never long.
        conn.execute("PRAGMA busy_timeout = 200")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            head, compacted = conn.execute(_HEADS).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(head), int(compacted)

    def _close_writer(self) -> None:
        assert self._wconn is not None
        with contextlib.suppress(sqlite3.Error):
            self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- reads -----------------------------------------------------------------------------------------

    async def current_revision(self) -> int:
        self._check_open()
        return self._head

    async def compacted_revision(self) -> int:
        self._check_open()
        return self._compacted

    async def get(self, key: str) -> KeyValue | None:
        return await self._in_reader(_get, key)

    async def list(self, prefix: str, revision: int = 0) -> tuple[list[KeyValue], int]:
        return await self._in_reader(_list, prefix, revision)

    async def count(self, prefix: str) -> int:
        return await self._in_reader(_count, prefix)

    # -- writes ----------------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, value, None)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        return await self._submit("update", key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Delete ``key``; the result is the last value with the deletion revision as ``mod_revision``
        (the ``kv`` of the DELETE event)."""
        return await self._submit("delete", key, b"", expected_revision)

    async def _submit(
        self, op: Literal["create", "update", "delete"], key: str, value: bytes, expected: int | None
    ) -> KeyValue:
        self._check_open()
        future: asyncio.Future[KeyValue] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(op, key, value, expected, future))
        self._has_pending.set()
        return await future

    async def _write_loop(self) -> None:
        # Runs until the store is closed and every write queued before that is done.
        while self._open or self._pending:
            if not self._pending:
                self._has_pending.clear()
                await self._has_pending.wait()
                continue
            # A caller that was cancelled before its write was taken does not get it applied.
            batch = [w for w in self._pending if not w.future.done()]
            self._pending = []
            if not batch:
                continue
            try:
                results, events, head = await self._in_writer(self._apply, batch, self._head)
            except Exception as e:  # the whole transaction rolled back: every request in it failed
                error = e if isinstance(e, StorageError) else Unavailable(f"sqlite: {e}")
                for w in batch:
                    if not w.future.done():
                        w.future.set_exception(error)
                continue
            # Head first, then watchers, then callers: whoever learns of a revision can read it.
            self._head = head
            if events:
                for sub in self._subscribers:
                    sub.offer(events)
            for w, result in zip(batch, results, strict=True):
                if w.future.done():
                    continue
                if isinstance(result, KeyValue):
                    w.future.set_result(result)
                else:
                    w.future.set_exception(result)
            if head - self._compacted >= self.keep_revisions + self.compact_after:
                self._compact_due.set()

    def _apply(
        self, batch: builtins.list[_Write], head: int
    ) -> tuple[builtins.list[KeyValue | StorageError], builtins.list[Event], int]:
        """Run ``batch`` in one transaction (writer thread). Returns each request's outcome, the events
        of the successful ones and the new head."""
        conn = self._wconn
        assert conn is not None
        results: builtins.list[KeyValue | StorageError] = []
        events: builtins.list[Event] = []
        rows: builtins.list[tuple[int, str, int, int, int, int, bytes]] = []
        # The latest row of each key touched so far in this batch: (its revision, the live value or None).
        latest: dict[str, tuple[int, KeyValue | None]] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for w in batch:
                known = latest.get(w.key)
                if known is None:
                    row = conn.execute(_LATEST, (w.key,)).fetchone()
                    if row is None:
                        known = (0, None)
                    else:
                        known = (row[0], None if row[2] else KeyValue(w.key, row[3], row[1], row[0]))
                prev_revision, live = known
                revision = head + 1
                if w.op == "create":
                    if live is not None:
                        results.append(KeyExists(w.key))
                        continue
                    kv = KeyValue(w.key, w.value, revision, revision)
                    rows.append((revision, w.key, 1, 0, revision, prev_revision, w.value))
                    events.append(Event("PUT", kv, None))
                    latest[w.key] = (revision, kv)
                elif live is None:
                    results.append(KeyNotFound(w.key))
                    continue
                elif w.expected is not None and w.expected != live.mod_revision:
                    results.append(RevisionMismatch(w.key, live))
                    continue
                elif w.op == "update":
                    kv = KeyValue(w.key, w.value, live.create_revision, revision)
                    rows.append((revision, w.key, 0, 0, live.create_revision, prev_revision, w.value))
                    events.append(Event("PUT", kv, live))
                    latest[w.key] = (revision, kv)
                else:
                    kv = KeyValue(w.key, live.value, live.create_revision, revision)
                    rows.append((revision, w.key, 0, 1, live.create_revision, prev_revision, live.value))
                    events.append(Event("DELETE", kv, live))
                    latest[w.key] = (revision, None)
                head = revision
                results.append(kv)
            if rows:
                conn.executemany(_INSERT, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return results, events, head

    # -- watch -----------------------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncGenerator[builtins.list[Event], None]:
        """Events under ``prefix`` from ``start_revision`` on (0: from the next write), in batches."""
        self._check_open()
        next_rev = start_revision if start_revision > 0 else self._head + 1
        sub = _Subscriber(prefix, self.watch_buffer)
        self._subscribers.add(sub)
        try:
            while True:
                # Subscribed before this read: whatever the read misses is in the buffer.
                sub.reset()
                while True:
                    events, head = await self._in_reader(_history, prefix, next_rev, _HISTORY_CHUNK)
                    if events:
                        next_rev = events[-1].revision + 1
                        yield events
                    if len(events) < _HISTORY_CHUNK:
                        next_rev = max(next_rev, head + 1)
                        break
                while not sub.overflowed:
                    await sub.wake.wait()
                    if sub.error is not None:
                        raise sub.error
                    fresh = [e for e in sub.take() if e.revision >= next_rev]
                    if fresh:
                        next_rev = fresh[-1].revision + 1
                        yield fresh
        finally:
            self._subscribers.discard(sub)

    # -- compaction ------------------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        """Drop history older than ``revision``; a revision at or below the last compaction is a no-op."""
        self._check_open()
        if revision > self._head:
            raise FutureRevision(revision, self._head)
        await self._compact_to(revision, tidy=True)

    async def _compact_to(self, target: int, *, tidy: bool) -> None:
        """Compact up to ``target`` in chunks. Then give free pages back to the file system if a large
        part of the file is free (after a burst of deletes; the slack that steady churn leaves is reused
        by the next writes), and truncate the WAL if pages moved or ``tidy`` asks for it."""
        async with self._compact_lock:
            if target <= self._compacted:
                return
            while self._compacted < target:
                hi = min(target, self._compacted + _COMPACT_CHUNK)
                await self._in_writer(self._compact_chunk, self._compacted, hi)
                self._compacted = hi
            free, pages = await self._in_writer(self._free_pages)
            vacuum = free >= _VACUUM_MIN_PAGES and free * 2 >= pages
            if vacuum:
                while await self._in_writer(self._vacuum_step):
                    pass
            if vacuum or tidy:
                await self._in_writer(self._checkpoint)

    async def _compact_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._compact_due.wait(), self.compact_interval)
                periodic = False
            except TimeoutError:
                periodic = True
            self._compact_due.clear()
            target = self._head - self.keep_revisions
            try:
                # The periodic run also truncates the WAL; the ones the writes trigger leave it be.
                await self._compact_to(target, tidy=periodic)
            except StorageError as e:
                log.warning("sqlite compaction to %d failed, will retry: %s", target, e)

    def _compact_chunk(self, lo: int, hi: int) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_DROP_SUPERSEDED, (lo, hi))
            conn.execute(_DROP_TOMBSTONES, (lo, hi))
            conn.execute(_SET_COMPACTED, (hi,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _free_pages(self) -> tuple[int, int]:
        conn = self._wconn
        assert conn is not None
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        return int(free), int(pages)

    def _vacuum_step(self) -> bool:
        """Give up to a chunk of free pages back to the file system; True while free pages remain."""
        conn = self._wconn
        assert conn is not None
        # Each step of this statement frees one page, and sqlite3's execute() steps only once.
        conn.executescript(f"PRAGMA incremental_vacuum({_VACUUM_CHUNK})")
        return bool(conn.execute("PRAGMA freelist_count").fetchone()[0] > 0)

    def _checkpoint(self) -> None:
        conn = self._wconn
        assert conn is not None
        # Busy (a reader still on an old snapshot) is fine: the next compaction tries again.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


# -- read queries (reader threads) -------------------------------------------------------------------


def _get(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(_LATEST, (key,)).fetchone()
    if row is None or row[2]:
        return None
    return KeyValue(key, row[3], row[1], row[0])


def _heads(conn: sqlite3.Connection) -> tuple[int, int]:
    head, compacted = conn.execute(_HEADS).fetchone()
    return int(head), int(compacted)


def _list(conn: sqlite3.Connection, prefix: str, revision: int) -> tuple[list[KeyValue], int]:
    cond, params = _key_range(prefix, "l.key")
    conn.execute("BEGIN")  # one snapshot for the heads and the rows
    try:
        head, compacted = _heads(conn)
        if revision and revision < compacted:
            raise Compacted(revision, compacted)
        if revision > head:
            raise FutureRevision(revision, head)
        at = revision or head
        rows = conn.execute(_LIST.format(range=cond), (*params, at, at)).fetchall()
    finally:
        conn.execute("COMMIT")
    return [KeyValue(r[0], r[1], r[2], r[3]) for r in rows], at


def _count(conn: sqlite3.Connection, prefix: str) -> int:
    cond, params = _key_range(prefix, "l.key")
    return int(conn.execute(_COUNT.format(range=cond), params).fetchone()[0])


def _history(conn: sqlite3.Connection, prefix: str, start: int, limit: int) -> tuple[list[Event], int]:
    """Up to ``limit`` events under ``prefix`` from revision ``start`` on, and the head they were read at."""
    cond, params = _key_range(prefix, "+l.key")
    conn.execute("BEGIN")
    try:
        head, compacted = _heads(conn)
        if start < compacted:
            raise Compacted(start, compacted)
        rows = conn.execute(_HISTORY.format(range=cond), (start, head, *params, limit)).fetchall()
    finally:
        conn.execute("COMMIT")
    events = []
    for revision, key, deleted, create_revision, value, prev_rev, prev_create, prev_value in rows:
        prev = None if prev_rev is None else KeyValue(key, prev_value, prev_create, prev_rev)
        kv = KeyValue(key, value, create_revision, revision)
        events.append(Event("DELETE" if deleted else "PUT", kv, prev))
    return events, head


def _report_death(task: asyncio.Task[None]) -> None:
    """Both background tasks only end on close(): any other end is a bug to shout about."""
    if not task.cancelled() and task.exception() is not None:
        log.error("sqlite store: %s task died", task.get_name(), exc_info=task.exception())


def _lock_file(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Unavailable(f"{path} is held: another process has this database open") from None
    return fd
