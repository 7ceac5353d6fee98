"""`Channel`: one TCP or TLS connection as an asyncio Protocol with a read buffer, awaitable reads and
flow-controlled writes — asyncio's StreamReader/StreamWriter pair, plus what a proxy needs from it:

- it can be driven by callbacks (``on_data`` runs on every arrival: parse what is buffered, `find`,
  `take`) or by a coroutine (`read_until`, `read`, `read_exactly`), and go from one to the other between
  messages — the gateway's fast path and its general path share connections;
- `buffered` says how much has arrived without waiting, so a response head and the body bytes that came
  with it leave in one write, while a body that has not arrived yet is never waited for;
- ``ended``/``closed`` are known (and ``on_end`` runs) as soon as the peer goes away, also while the
  connection sits idle in a pool;
- reading stops (``pause_reading``) while more than ``limit`` bytes wait in the buffer, so a slow reader
  on one side throttles the sender on the other instead of buffering without bound.

Reads raise `ConnectionResetError` when the connection was lost with an error; a clean end of stream
is ``b""`` from `read` and `IncompleteRead` from the exact reads. Only one coroutine reads at a time.

Timeouts are deadlines rather than timers (a timer per read costs more than the rest of a small
exchange): ``deadline`` is set directly, by `wait_at_most`, or by a read or drain given ``within=S``
that has to wait; a sweeper calls `expire` now and then, which fails a read or drain still waiting past
the deadline with `TimeoutError`, or calls ``on_timeout`` when nothing waits (a callback-driven exchange).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

DEFAULT_LIMIT = 64 * 1024


class IncompleteRead(EOFError):
    """The stream ended before what was expected arrived."""


class LimitExceeded(ValueError):
    """A separator was not found within the limit (a request or response head that is too large)."""


class Channel(asyncio.Protocol):
    """See the module docstring. Hooks, each optional: ``on_open`` runs when the connection is made;
    ``on_data`` after new bytes were added to the buffer (for callers that parse in the callback rather
    than wait in a coroutine); ``on_end`` when the peer stops sending or the connection is lost (a pool
    drops an idle connection the endpoint closed); ``on_timeout`` when the deadline passed with no read
    or drain waiting (nothing else notices then)."""

    def __init__(self, *, limit: int = DEFAULT_LIMIT, on_open: Callable[[Channel], None] | None = None) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.on_open = on_open
        self.on_data: Callable[[Channel], None] | None = None
        self.on_end: Callable[[Channel], None] | None = None
        self.on_timeout: Callable[[Channel], None] | None = None
        # Where a pool keeps the connection while it is idle.
        self.pool_key: Hashable | None = None
        self._buffer = bytearray()
        # The peer finished sending (some of it may still be buffered).
        self.ended = False
        self._error: BaseException | None = None
        # Not connected yet, closed by us, or lost: nothing can be written.
        self.closed = True
        self._tls = False
        self._waiter: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        # Loop time after which a waiting read or drain fails with TimeoutError; 0 for never.
        self.deadline = 0.0

    # --- protocol callbacks ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.closed = False
        self._tls = transport.get_extra_info("ssl_object") is not None
        if self.on_open is not None:
            self.on_open(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if not self._reading_paused and len(self._buffer) > self.limit and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        if self.on_data is not None:
            self.on_data(self)

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        if self.on_end is not None:
            self.on_end(self)
        # Keep a TCP transport open: the other direction may still have to be written (half-close). TLS
        # cannot half-close (asyncio warns when asked to).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.closed = True
        if exc is not None:
            self._error = exc
        self._wake()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()
        if self.on_end is not None:
            self.on_end(self)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._drain_waiters.clear()

    # --- state -----------------------------------------------------------------------------------------

    @property
    def writing_paused(self) -> bool:
        """The transport's write buffer is above its high-water mark (the peer reads slower than we write)."""
        return self._writing_paused

    @property
    def buffered(self) -> int:
        """Bytes received and not read yet."""
        return len(self._buffer)

    def peer(self) -> tuple[str, int]:
        """The remote address (host, port)."""
        info: Any = self.transport.get_extra_info("peername") if self.transport is not None else None
        if isinstance(info, tuple) and len(info) >= 2:
            return str(info[0]), int(info[1])
        return "", 0

    # --- deadlines -------------------------------------------------------------------------------------

    def wait_at_most(self, seconds: float) -> None:
        """Reads and drains from now on may wait ``seconds`` (counted from now; 0 or less: forever)."""
        self.deadline = self._loop.time() + seconds if seconds > 0 else 0.0

    def expire(self, now: float) -> None:
        """Fail what waits past the deadline (called by a sweeper)."""
        if not self.deadline or now < self.deadline:
            return
        waiters = [w for w in (self._waiter, *self._drain_waiters) if w is not None and not w.done()]
        for waiter in waiters:
            waiter.set_exception(TimeoutError("timed out"))
        self._drain_waiters.clear()
        if not waiters and self.on_timeout is not None:
            self.deadline = 0.0
            self.on_timeout(self)

    # --- reading ---------------------------------------------------------------------------------------

    def find(self, separator: bytes) -> int:
        """The length of the buffered bytes up to and including the first ``separator``; -1 when it has
        not arrived."""
        at = self._buffer.find(separator)
        return at + len(separator) if at >= 0 else -1

    async def read_until(self, separator: bytes, limit: int | None = None, *, within: float = 0.0) -> bytes:
        """Everything up to and including ``separator``. `IncompleteRead` (with what came) at end of
        stream, `LimitExceeded` when ``limit`` bytes arrived without it."""
        limit = self.limit if limit is None else limit
        start = 0
        while True:
            at = self._buffer.find(separator, start)
            if at >= 0:
                end = at + len(separator)
                if end > limit:
                    raise LimitExceeded(f"over {limit} bytes")
                data = bytes(self._buffer[:end])
                del self._buffer[:end]
                self._resume()
                return data
            if len(self._buffer) > limit:
                raise LimitExceeded(f"over {limit} bytes")
            if self.ended:
                self._raise_error()
                partial = bytes(self._buffer)
                self._buffer.clear()
                raise IncompleteRead(partial)
            start = max(0, len(self._buffer) - len(separator) + 1)
            await self._wait(within)

    async def read(self, n: int, *, within: float = 0.0) -> bytes:
        """Up to ``n`` bytes: what is buffered, else the next bytes to arrive; ``b""`` at end of stream."""
        if not self._buffer:
            while not self._buffer and not self.ended:
                await self._wait(within)
            if not self._buffer:
                self._raise_error()
                return b""
        return self.take(n)

    async def read_exactly(self, n: int, *, within: float = 0.0) -> bytes:
        while len(self._buffer) < n:
            if self.ended:
                self._raise_error()
                raise IncompleteRead(self.take(len(self._buffer)))
            await self._wait(within)
        return self.take(n)

    def take(self, n: int) -> bytes:
        """Up to ``n`` of the buffered bytes, without waiting."""
        buffer = self._buffer
        if n >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:n])
            del buffer[:n]
        if self._reading_paused:
            self._resume()
        return data

    async def _wait(self, within: float) -> None:
        if within > 0:
            self.deadline = self._loop.time() + within
        if self._reading_paused:
            self._resume(force=True)
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _resume(self, force: bool = False) -> None:
        if self._reading_paused and (force or len(self._buffer) <= self.limit) and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise ConnectionResetError(str(self._error) or type(self._error).__name__) from self._error

    # --- writing ---------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        transport = self.transport
        if self.closed or transport is None:
            raise ConnectionResetError("connection lost")
        transport.write(data)

    async def drain(self, *, within: float = 0.0) -> None:
        """Wait while the transport's write buffer is above its high-water mark; raises when the connection
        is lost."""
        if self.closed:
            raise ConnectionResetError("connection lost")
        if self._writing_paused:
            if within > 0:
                self.deadline = self._loop.time() + within
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
            if self.closed:
                raise ConnectionResetError("connection lost")

    def write_eof(self) -> None:
        """Half-close: no more writes; the peer sees end of stream (where the transport can do that)."""
        if self.transport is not None and not self.closed and self.transport.can_write_eof():
            self.transport.write_eof()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
