"""shim: a container's stdio, log and exit status outlive whoever started it (process mode; no root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kubelite.kubelet.runtime import shim
from kubelite.kubelet.runtime.shim import ShimConfig


def run_shim(directory: Path, config: ShimConfig) -> dict[str, Any]:
    path = shim.write_config(directory, config)
    done = subprocess.run([sys.executable, "-m", "kubelite.kubelet.runtime.shim", str(path)],
                          capture_output=True, text=True, timeout=30)
    return dict(json.loads(done.stdout), returncode=done.returncode)


def wait_exit(directory: Path, timeout: float = 10) -> shim.ExitRecord:
    deadline = time.monotonic() + timeout
    while (ex := shim.read_exit(directory)) is None:
        assert time.monotonic() < deadline, (directory / shim.LOG_FILE).read_text()
        time.sleep(0.01)
    return ex


def process(directory: Path, script: str, **kw: Any) -> ShimConfig:
    return ShimConfig(id="c1", mode="process", log_path=str(directory / "logs" / "0.log"),
                      args=["/bin/sh", "-c", script], env=["PATH=/usr/bin:/bin", "GREETING=hi"],
                      cwd=str(directory), **kw)


def records(directory: Path) -> list[tuple[str, str, str]]:
    lines = (directory / "logs" / "0.log").read_text().splitlines()
    return [tuple(line.split(" ", 3)[1:]) for line in lines]  # type: ignore[misc]


def test_logs_and_exit_code(tmp_path: Path) -> None:
    report = run_shim(tmp_path, process(tmp_path, 'echo "$GREETING"; pwd; echo warn >&2; exit 3'))
    assert report["returncode"] == 0 and report["pid"] > 0 and report["shim_pid"] != report["pid"]
    ex = wait_exit(tmp_path)
    assert (ex.exit_code, ex.signal, ex.oom_killed) == (3, 0, False)
    assert sorted(records(tmp_path)) == sorted([("stdout", "F", "hi"), ("stdout", "F", str(tmp_path)),
                                                ("stderr", "F", "warn")])


def test_killed_by_a_signal_reports_128_plus_signal(tmp_path: Path) -> None:
    report = run_shim(tmp_path, process(tmp_path, "exec sleep 30"))
    os.kill(report["pid"], 9)
    ex = wait_exit(tmp_path)
    assert (ex.exit_code, ex.signal) == (137, 9)


def test_leftover_children_do_not_hold_the_shim(tmp_path: Path) -> None:
    report = run_shim(tmp_path, process(tmp_path, "sleep 30 & echo started"))
    ex = wait_exit(tmp_path, timeout=5)
    assert ex.exit_code == 0
    # The rest of the process group went with the main process, as in a pid namespace.
    time.sleep(0.1)
    out = subprocess.run(["pgrep", "-g", str(report["pid"])], capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_tty_output_is_logged_as_stdout(tmp_path: Path) -> None:
    run_shim(tmp_path, process(tmp_path, "test -t 1 && echo tty; echo err >&2", tty=True))
    wait_exit(tmp_path)
    assert [r[2].strip() for r in records(tmp_path)] == ["tty", "err"]
    assert {r[0] for r in records(tmp_path)} == {"stdout"}


def test_a_command_that_cannot_start_is_reported(tmp_path: Path) -> None:
    config = process(tmp_path, "")
    config.args = ["/no/such/binary"]
    report = run_shim(tmp_path, config)
    assert report["returncode"] == 1
    assert "cannot start '/no/such/binary'" in report["error"]


def test_a_log_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    config = process(tmp_path, "echo never")
    config.log_path = str(tmp_path / "file" / "0.log")
    report = run_shim(tmp_path, config)
    assert report["returncode"] == 1 and str(tmp_path / "file") in report["error"]
