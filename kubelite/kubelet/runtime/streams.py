"""Exec and port-forward: processes started in a running container, and TCP connections opened inside a
pod's network namespace.

Exec. The backend gives the command line (`ExecCommand`): ``runc exec`` for runc containers, which enters
the container's namespaces and cgroups and takes the container's env, user, cwd and capabilities, or the
command itself for the process runtime. `exec_sync` runs it to completion with a timeout; on timeout the
exec'd process is killed (its pid comes from ``runc exec --pid-file``) and `ExecTimeout` is raised.
`ExecSession` is an interactive exec: stdin, stdout and stderr as pipes, or one pty of the runtime's when
``tty`` (see `ExecSession._start_tty`).

Port-forward. `connect_in_netns` opens the connection from a short-lived thread of its own that enters the
pod's network namespace with setns(2) (a network namespace is per thread), connects to the port on
127.0.0.1 (else ::1), and returns to the runtime's namespace before it ends; the socket keeps the
namespace it was made in and is then used from the event loop like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import secrets
import signal
import socket
import struct
import termios
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

MAX_EXEC_SYNC_OUTPUT = 16 * 1024 * 1024  # containerd's maxExecSyncSize
CLONE_NEWNET = 0x40000000
_CHUNK = 32 * 1024


class ExecTimeout(Exception):
    pass


@dataclass
class ExecCommand:
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: str | None = None
    # runc writes the exec'd process's pid here, so that a timeout can kill it.
    pid_file: Path | None = None


def exit_code(returncode: int) -> int:
    """A subprocess return code as a shell reports it (128+signal when killed)."""
    return 128 - returncode if returncode < 0 else returncode


def scratch_path(directory: Path, suffix: str) -> Path:
    return directory / f"exec-{secrets.token_hex(6)}{suffix}"


def _kill_exec(cmd: ExecCommand, proc: asyncio.subprocess.Process) -> None:
    if cmd.pid_file is not None:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(cmd.pid_file.read_text().strip()), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


async def exec_sync(cmd: ExecCommand, timeout: float | None) -> tuple[bytes, bytes, int]:
    """Run to completion: (stdout, stderr, exit code). Output beyond `MAX_EXEC_SYNC_OUTPUT` is cut."""
    proc = await asyncio.create_subprocess_exec(
        *cmd.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cmd.env,
        cwd=cmd.cwd,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        _kill_exec(cmd, proc)
        await proc.wait()
        raise ExecTimeout(f"command {' '.join(cmd.argv)!r} timed out after {timeout} s") from None
    except BaseException:
        _kill_exec(cmd, proc)
        raise
    finally:
        if cmd.pid_file is not None:
            cmd.pid_file.unlink(missing_ok=True)
    assert proc.returncode is not None
    return out[:MAX_EXEC_SYNC_OUTPUT], err[:MAX_EXEC_SYNC_OUTPUT], exit_code(proc.returncode)


class ExecSession:
    """One interactive exec. `output` yields ``("stdout" | "stderr", bytes)`` until the process's output
    ends; then `wait` gives its exit code. `close` kills what is left (always call it)."""

    def __init__(self, cmd: ExecCommand, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.cmd = cmd
        self.proc = proc
        self.master = master
        self._queue: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue()
        self._open = 0
        self._readers: list[asyncio.Task[None]] = []

    @classmethod
    async def start(cls, cmd: ExecCommand, *, tty: bool, stdin: bool, stdout: bool, stderr: bool) -> ExecSession:
        if tty:
            return await cls._start_tty(cmd)
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            *cmd.argv,
            stdin=pipe if stdin else null,
            stdout=pipe if stdout else null,
            stderr=pipe if stderr else null,
            env=cmd.env,
            cwd=cmd.cwd,
            start_new_session=True,
        )
        session = cls(cmd, proc, None)
        for name, stream in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            if stream is not None:
                session._follow(name, stream)
        return session

    @classmethod
    async def _start_tty(cls, cmd: ExecCommand) -> ExecSession:
        """The command on a pty of ours. For runc that is ``runc exec --tty`` in the foreground: runc
        makes the container's pty and copies between it and ours (its stdio), puts ours in raw mode and
        copies our window size on SIGWINCH; for the process runtime it is the command itself."""
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd.argv, stdin=slave, stdout=slave, stderr=slave, env=cmd.env, cwd=cmd.cwd, start_new_session=True
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        session = cls(cmd, proc, master)
        session._follow_fd("stdout", master)
        return session

    def _follow(self, name: str, stream: asyncio.StreamReader) -> None:
        async def pump() -> None:
            try:
                while data := await stream.read(_CHUNK):
                    await self._queue.put((name, data))
            finally:
                await self._queue.put(None)

        self._open += 1
        self._readers.append(asyncio.ensure_future(pump()))

    def _follow_fd(self, name: str, fd: int) -> None:
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        self._open += 1

        def readable() -> None:
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: every holder of the pty's other side is gone
                data = b""
            if data:
                self._queue.put_nowait((name, data))
            else:
                loop.remove_reader(fd)
                self._queue.put_nowait(None)

        loop.add_reader(fd, readable)

    async def output(self) -> AsyncIterator[tuple[str, bytes]]:
        while self._open:
            item = await self._queue.get()
            if item is None:
                self._open -= 1
            else:
                yield item

    async def write(self, data: bytes) -> None:
        if self.master is not None:
            await self._write_master(data)
        elif self.proc.stdin is not None:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()

    async def _write_master(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self.master is not None:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:  # the terminal's input buffer is full: the process is not reading
                await asyncio.sleep(0.01)

    async def close_stdin(self) -> None:
        if self.master is not None:
            await self._write_master(b"\x04")  # end of input on a terminal is ^D
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
                # Our pty is not the command's controlling terminal: tell it (runc passes the size on).
                os.kill(self.proc.pid, signal.SIGWINCH)

    async def wait(self) -> int:
        return exit_code(await self.proc.wait())

    async def close(self) -> None:
        if self.proc.returncode is None:
            _kill_exec(self.cmd, self.proc)
            await self.proc.wait()
        for task in self._readers:
            task.cancel()
        if self.master is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.master)
            os.close(self.master)
            self.master = None
        if self.cmd.pid_file is not None:
            self.cmd.pid_file.unlink(missing_ok=True)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _connect_local(port: int) -> socket.socket:
    errors = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(10)
            sock.connect((host, port))
            sock.setblocking(False)
            return sock
        except OSError as e:
            sock.close()
            errors.append(f"{host}: {e.strerror or e}")
    raise ConnectionError(f"cannot connect to port {port}: {'; '.join(errors)}")


def _connect_in(netns_path: str, port: int) -> socket.socket:
    with open("/proc/thread-self/ns/net", "rb") as own, open(netns_path, "rb") as target:
        _setns(target.fileno())
        try:
            return _connect_local(port)
        finally:
            _setns(own.fileno())


async def connect_in_netns(netns_path: str, port: int) -> socket.socket:
    """A connected non-blocking socket to ``port`` on the loopback of a network namespace ("" = the
    runtime's own)."""
    if not netns_path:
        return await asyncio.to_thread(_connect_local, port)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[socket.socket] = loop.create_future()

    def settle(sock: socket.socket | None, error: BaseException | None) -> None:
        if done.cancelled():
            if sock is not None:
                sock.close()
        elif error is not None:
            done.set_exception(error)
        elif sock is not None:
            done.set_result(sock)

    def run() -> None:  # a thread of its own: it changes its network namespace
        try:
            sock = _connect_in(netns_path, port)
        except Exception as e:
            loop.call_soon_threadsafe(settle, None, e)
        else:
            loop.call_soon_threadsafe(settle, sock, None)

    threading.Thread(target=run, name=f"portforward-{port}", daemon=True).start()
    return await done
