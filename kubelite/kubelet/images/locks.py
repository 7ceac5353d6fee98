"""Advisory file locks (flock) shared by every process that opens the same image store: the agent, and
``kubelite image import`` run beside it.

flock locks belong to an open file description, so two descriptors of one process exclude each other just
as two processes do; the store relies on that to keep its own concurrent pulls and a sweep apart.
Waiting never blocks the event loop: `acquire` polls with non-blocking attempts.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from types import TracebackType

_POLL = 0.05


class FileLock:
    """One flock on ``path`` (created if missing). Not re-entrant; one holder per instance."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = path
        self._operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it in a conflicting mode; never waits."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, self._operation | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    async def acquire(self) -> None:
        # Polling, because the holder may be another process: there is nothing in this one to wait on.
        while True:
            if self.try_acquire():
                return
            await asyncio.sleep(_POLL)

    def acquire_blocking(self) -> None:
        """Wait in this thread (for short critical sections in synchronous code)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, self._operation)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the lock
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire_blocking()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> FileLock:
        await self.acquire()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()
