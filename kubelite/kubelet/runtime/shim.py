"""The per-container shim: ``python -m kubelite.kubelet.runtime.shim <container-dir>/shim.json``.

Like containerd-shim, one small process per container owns what must outlive the runtime: the
container's stdout and stderr (pipes, or a pty for ``tty`` containers), the log file written from them
in the CRI format (`crilog`), and the wait for the container's first process, whose exit status it
records. A restarted runtime therefore finds its containers still running and still logging.

Protocol with the runtime:
1. The runtime writes ``shim.json`` (`ShimConfig` as JSON) and runs the shim.
2. The shim forks; the child starts a new session (so it is nobody's foreground job), becomes a child
   subreaper (so the container's first process, once runc has exited, is its child to wait for) and
   starts the container: ``runc create`` (mode ``runc``; the runtime later runs ``runc start``) or the
   command itself (mode ``process``).
3. The child reports one JSON line to the parent: ``{"pid": N, "shim_pid": N, "cgroups": {...}}`` or
   ``{"error": "..."}``; the parent prints it on its stdout and exits (0 or 1). The runtime reads that.
4. When the container's first process exits the shim drains the output (at most `DRAIN_SECONDS` more,
   as a daemonised grandchild of a process container may hold the pipes), closes the log, writes
   ``exit.json`` (`exit_code` as a shell reports it, 128+signal when killed, `finished_at` in unix ns,
   ``oom_killed`` from the container's memory cgroup) and exits. Until the record is written the
   container's process stays a zombie, so its pid is not reused while the runtime may still signal it.

In mode ``process`` the command runs in a new session; when it exits, the rest of its process group is
killed, as the kernel kills the rest of a pid namespace when its first process exits.

This module only imports the standard library and kubelite's stdlib-only helpers: it starts once per
container and must start fast (a burst of pods starts a burst of shims, and each one's interpreter start is
CPU the containers wait for). What only ``tty`` containers need (``socket``, ``tempfile``, ``shutil``, which
loads the compression modules) is imported where it is used.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubelite.kubelet.runtime import cgroups
from kubelite.kubelet.runtime.crilog import CriLogWriter

if TYPE_CHECKING:
    import socket

DRAIN_SECONDS = 2.0
PR_SET_CHILD_SUBREAPER = 36
CONFIG_FILE = "shim.json"
EXIT_FILE = "exit.json"
LOG_FILE = "shim.log"


@dataclass
class ShimConfig:
    id: str
    mode: str  # "runc" or "process"
    log_path: str
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 5
    tty: bool = False
    # mode runc
    runc: str = "runc"
    runc_root: str = ""
    bundle: str = ""
    # mode process: argv, env (NAME=value), cwd, and uid/gid (None: the shim's own)
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int | None = None
    gid: int | None = None


@dataclass
class ExitRecord:
    exit_code: int
    finished_at: int
    oom_killed: bool = False
    signal: int = 0


def write_config(directory: Path, config: ShimConfig) -> Path:
    path = directory / CONFIG_FILE
    path.write_text(json.dumps(asdict(config)))
    return path


def read_exit(directory: Path) -> ExitRecord | None:
    """The exit record a shim left in a container's folder, if the container has exited."""
    try:
        data = json.loads((directory / EXIT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return ExitRecord(**data)


def recv_fd(conn: socket.socket) -> int:
    """The file descriptor runc sends over its --console-socket (the pty master)."""
    import socket

    fds = array.array("i")
    _msg, ancdata, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not fds:
        raise RuntimeError("runc sent no console file descriptor")
    return fds[0]


class Shim:
    def __init__(self, config: ShimConfig, directory: Path) -> None:
        self.config = config
        self.dir = directory
        self.pid = 0
        self.cgroup_dirs: cgroups.CgroupDirs = {}
        self.exit: ExitRecord | None = None
        self.sel = selectors.DefaultSelector()
        self.streams: dict[int, str] = {}  # readable fd -> "stdout" / "stderr"
        self.process: subprocess.Popen[bytes] | None = None

    # -- starting ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the container; on return ``self.pid`` is its first process."""
        if self.config.mode == "runc":
            self._start_runc()
        else:
            self._start_process()

    def _outputs(self) -> tuple[int, int, list[int]]:
        """(stdout fd, stderr fd) to give the container, and the fds to close once it has them."""
        if self.config.tty:
            master, slave = os.openpty()
            self.streams[master] = "stdout"
            return slave, slave, [slave]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.streams[out_r] = "stdout"
        self.streams[err_r] = "stderr"
        return out_w, err_w, [out_w, err_w]

    def _start_process(self) -> None:
        out, err, close = self._outputs()
        c = self.config
        try:
            proc = subprocess.Popen(
                c.args,
                env=dict(e.split("=", 1) for e in c.env if "=" in e),
                cwd=c.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                user=c.uid,
                group=c.gid,
            )
        except OSError as e:
            raise RuntimeError(f"cannot start {c.args[0]!r}: {e.strerror or e}") from e
        finally:
            for fd in close:
                os.close(fd)
        self.pid = proc.pid
        # Held so that Popen never reaps the process behind our back: the shim's loop waits for it.
        self.process = proc

    def _start_runc(self) -> None:
        c = self.config
        pid_file = self.dir / "init.pid"
        argv = [c.runc, "--root", c.runc_root, "--log", str(self.dir / "runc.log"), "--log-format", "json"]
        argv += ["create", "--bundle", c.bundle, "--pid-file", str(pid_file)]
        console: socket.socket | None = None
        if c.tty:
            import shutil
            import socket
            import tempfile

            # A short private folder: a socket's path must fit in 108 bytes, container folders may not.
            sock_path = Path(tempfile.mkdtemp(prefix="kubelite-console-")) / "sock"
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            console.bind(str(sock_path))
            console.listen(1)
            argv += ["--console-socket", str(sock_path)]
            # The container's output comes through the pty; runc's own stderr is kept for its errors.
            runc_out = os.open(os.devnull, os.O_WRONLY)
            err_r, err_w = os.pipe()
            self.streams[err_r] = "runc"
            out, err, close = runc_out, err_w, [runc_out, err_w]
        else:
            out, err, close = self._outputs()
        proc = subprocess.Popen([*argv, c.id], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        for fd in close:
            os.close(fd)
        try:
            if console is not None:
                self._accept_console(console, proc)
            code = proc.wait()
        finally:
            if console is not None:
                console.close()
                shutil.rmtree(sock_path.parent, ignore_errors=True)
        if code != 0:
            raise RuntimeError(self._runc_error())
        for fd in [fd for fd, s in self.streams.items() if s == "runc"]:
            os.close(fd)
            del self.streams[fd]
        self.pid = int(pid_file.read_text().strip())

    def _accept_console(self, listener: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        listener.settimeout(0.1)
        while True:
            try:
                conn, _ = listener.accept()
                break
            except TimeoutError:
                if proc.poll() is not None:
                    return  # runc failed before it sent the console; its error is read from stderr
        with conn:
            master = recv_fd(conn)
        self.streams[master] = "stdout"

    def _runc_error(self) -> str:
        """runc's own message for a failed create (its stderr, which is the container's, or its log)."""
        chunks = []
        for fd in list(self.streams):
            os.set_blocking(fd, False)
            with contextlib.suppress(OSError):
                chunks.append(os.read(fd, 65536))
        text = b"".join(chunks).decode(errors="replace").strip()
        if text:
            return text
        with contextlib.suppress(OSError, ValueError):
            lines = (self.dir / "runc.log").read_text().splitlines()
            for line in reversed(lines):
                entry = json.loads(line)
                if entry.get("level") in ("error", "fatal"):
                    return str(entry.get("msg", line))
        return "runc create failed"

    # -- running -----------------------------------------------------------------------------------

    def serve(self, log: CriLogWriter) -> None:
        """Copy output into the log until the container has exited and its output is drained."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        signal.set_wakeup_fd(wake_w)
        for fd in self.streams:
            self.sel.register(fd, selectors.EVENT_READ)
        self.sel.register(wake_r, selectors.EVENT_READ)
        deadline: float | None = None
        self._reap()
        while self.streams:
            if self.exit is not None and deadline is None:
                deadline = time.monotonic() + DRAIN_SECONDS
            timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
            if timeout == 0:
                break
            for key, _ in self.sel.select(timeout):
                fd = int(key.fd)
                if fd == wake_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 4096)
                    self._reap()
                    continue
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the pty's other side is gone
                    data = b""
                if data:
                    log.write(self.streams[fd], data)
                else:
                    self.sel.unregister(fd)
                    os.close(fd)
                    del self.streams[fd]
        while self.exit is None:  # the output closed before the process exited
            self.sel.select(1.0)
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
            self._reap()
        log.close()

    def _reap(self) -> None:
        """Notice the container's exit. Its process is left a zombie (waitid WNOWAIT) until the exit record
        is written, so that its pid cannot be reused while the runtime may still signal it; other children
        (runc, orphans) are reaped as they go."""
        while self.exit is None:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            if info.si_pid != self.pid:
                os.waitpid(info.si_pid, 0)
                continue
            killed = info.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
            code, sig = (128 + info.si_status, info.si_status) if killed else (info.si_status, 0)
            oom = bool(self.cgroup_dirs) and cgroups.oom_kills(self.cgroup_dirs) > 0
            self.exit = ExitRecord(exit_code=code, finished_at=time.time_ns(), oom_killed=oom, signal=sig)
            if self.config.mode == "process":
                with contextlib.suppress(OSError):
                    os.killpg(self.pid, signal.SIGKILL)

    def reap_all(self) -> None:
        """Reap the container's process and what was left to the shim (briefly: the killed go quickly)."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                time.sleep(0.01)

    def write_exit(self) -> None:
        assert self.exit is not None
        tmp = self.dir / (EXIT_FILE + ".tmp")
        tmp.write_text(json.dumps(asdict(self.exit)))
        os.replace(tmp, self.dir / EXIT_FILE)


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _daemonize(directory: Path) -> None:
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(directory / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def _run_child(config: ShimConfig, directory: Path, ready: int) -> int:
    def report(message: dict[str, Any]) -> None:
        os.write(ready, (json.dumps(message) + "\n").encode())
        os.close(ready)

    try:
        _daemonize(directory)
        _become_subreaper()
        # A no-op handler so that SIGCHLD reaches the wakeup fd; the loop reaps.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        # Opened first: a log that cannot be written is an error the runtime hears about.
        log = CriLogWriter(Path(config.log_path), max_size=config.log_max_size, max_files=config.log_max_files)
        shim = Shim(config, directory)
        shim.start()
        if config.mode == "runc":  # a process container is in the runtime's own cgroup: not its to read
            with contextlib.suppress(OSError):
                shim.cgroup_dirs = cgroups.process_dirs(shim.pid)
    except Exception as e:  # everything that fails before the container runs goes back to the runtime
        report({"error": str(e) or type(e).__name__})
        return 1
    report({"pid": shim.pid, "shim_pid": os.getpid(), "cgroups": {k: str(v) for k, v in shim.cgroup_dirs.items()}})
    shim.serve(log)
    shim.write_exit()
    shim.reap_all()
    return 0


def main(argv: list[str]) -> int:
    config_path = Path(argv[1])
    config = ShimConfig(**json.loads(config_path.read_text()))
    directory = config_path.parent
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        code = 1
        try:
            code = _run_child(config, directory, w)
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        answer = f.read().decode()
    sys.stdout.write(answer or json.dumps({"error": "the shim died before starting the container"}) + "\n")
    return 0 if answer.startswith('{"pid"') else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
