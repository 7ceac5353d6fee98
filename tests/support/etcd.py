"""A real etcd server for tests and benchmarks: Debian's ``/usr/bin/etcd`` (3.4) on free loopback ports.

``etcd_server()`` returns an `EtcdServer`, usable as a plain or an async context manager; entering it
starts etcd in its own temporary directory and yields the client URL (``http://127.0.0.1:PORT``), leaving
it kills the process, waits for it and removes the directory, also when the body failed. The process is
also killed by the kernel when the thread that started it dies (``PR_SET_PDEATHSIG``), so a test run that
is itself killed leaves no etcd behind; that is why etcd is always spawned from the caller's own thread,
never from a worker thread that could exit first. A missing binary raises `EtcdNotInstalled`; the
``etcd_url`` fixture (tests/conftest.py) turns that into a skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

ETCD_BINARY = "/usr/bin/etcd"
_PR_SET_PDEATHSIG = 1
_POLL_INTERVAL = 0.05


class EtcdNotInstalled(RuntimeError):
    """The etcd binary is missing (Debian package ``etcd-server``)."""


class EtcdStartError(RuntimeError):
    """etcd exited or did not become healthy in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (etcd binding it may still race: see start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: have the kernel SIGKILL etcd when its parent goes away.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EtcdServer:
    """One single-member etcd on loopback. Not reusable: start it once, stop it once."""

    def __init__(
        self, *, binary: str = ETCD_BINARY, startup_timeout: float = 30.0, attempts: int = 3
    ) -> None:
        self.binary = binary
        self.startup_timeout = startup_timeout
        self.attempts = attempts
        self.url = ""
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    # -- synchronous use -------------------------------------------------------------------------------

    def start(self) -> str:
        """Start etcd and wait until it reports healthy; return its client URL."""
        try:
            # A port picked by free_port() can be taken before etcd binds it: try again on new ports.
            for attempt in range(self.attempts):
                url = self._spawn(attempt)
                deadline = time.monotonic() + self.startup_timeout
                while not self._exited() and time.monotonic() < deadline:
                    if _healthy(url):
                        self.url = url
                        return url
                    time.sleep(_POLL_INTERVAL)
                self._kill()
            raise EtcdStartError(f"etcd did not become healthy: {self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Kill etcd, wait for it and remove its directory. Safe to call more than once."""
        self._kill()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- asynchronous use ------------------------------------------------------------------------------

    async def astart(self) -> str:
        """`start` for a running event loop: spawns from this thread, polls health without blocking."""
        try:
            for attempt in range(self.attempts):
                url = self._spawn(attempt)
                deadline = time.monotonic() + self.startup_timeout
                while not self._exited() and time.monotonic() < deadline:
                    if await _ahealthy(url):
                        self.url = url
                        return url
                    await asyncio.sleep(_POLL_INTERVAL)
                self._kill()
            raise EtcdStartError(f"etcd did not become healthy: {self._log_tail()}")
        except BaseException:
            self.stop()
            raise

    async def __aenter__(self) -> str:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the process -----------------------------------------------------------------------------------

    def _spawn(self, attempt: int) -> str:
        if not os.access(self.binary, os.X_OK):
            raise EtcdNotInstalled(f"{self.binary} not found: install the Debian package etcd-server")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="kubelite-etcd-"))
        workdir = self._dir / f"run{attempt}"
        workdir.mkdir()
        client_url = f"http://127.0.0.1:{free_port()}"
        peer_url = f"http://127.0.0.1:{free_port()}"
        args = [
            self.binary,
            "--name=default",
            f"--data-dir={workdir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
            "--log-level=error",
        ]
        env = dict(os.environ)
        if os.uname().machine not in ("x86_64", "aarch64"):
            env["ETCD_UNSUPPORTED_ARCH"] = os.uname().machine
        self._log = workdir / "etcd.log"
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                preexec_fn=_die_with_parent,
            )
        return client_url

    def _exited(self) -> bool:
        return self._proc is None or self._proc.poll() is not None

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()
            self._proc = None

    def _log_tail(self, size: int = 2000) -> str:
        data = self._log.read_bytes() if self._log is not None and self._log.exists() else b""
        return data[-size:].decode(errors="replace").strip() or "(no output)"


def etcd_server(*, binary: str = ETCD_BINARY, startup_timeout: float = 30.0) -> EtcdServer:
    """``with etcd_server() as url:`` or ``async with etcd_server() as url:`` (see `EtcdServer`)."""
    return EtcdServer(binary=binary, startup_timeout=startup_timeout)


_HEALTH_REQUEST = b"GET /health HTTP/1.0\r\nHost: etcd\r\n\r\n"


def _parse_url(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


def _healthy(url: str) -> bool:
    try:
        with socket.create_connection(_parse_url(url), timeout=1) as s:
            s.sendall(_HEALTH_REQUEST)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return False
    return b'"health":"true"' in data


async def _ahealthy(url: str) -> bool:
    try:
        async with asyncio.timeout(1):
            reader, writer = await asyncio.open_connection(*_parse_url(url))
            try:
                writer.write(_HEALTH_REQUEST)
                data = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return b'"health":"true"' in data
