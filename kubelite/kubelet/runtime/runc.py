"""An asyncio wrapper over the runc command line (``runc --root <AgentPaths.runc_root> ...``).

``runc create`` is not here: the container's shim runs it, so that the container's stdio belong to the
shim (see `shim`). Exec is a long-running child of the runtime; `exec_argv` builds its command line and
`streams` runs it.

Errors come back as `RuncError` carrying runc's own message (the ``msg`` of its last error log line).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


class RuncError(Exception):
    pass


class ContainerNotFound(RuncError):
    pass


def error_message(stderr: str) -> str:
    """runc's message from its stderr (logrus text or JSON lines), else the stderr itself."""
    for line in reversed(stderr.strip().splitlines()):
        if line.startswith("{"):
            try:
                return str(json.loads(line).get("msg", line))
            except ValueError:
                continue
        m = _MSG.search(line)
        if m:
            return m.group(1).encode().decode("unicode_escape")
    return stderr.strip()


class Runc:
    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root

    def argv(self, *args: str) -> list[str]:
        return [self.binary, "--root", str(self.root), *args]

    async def _run(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            message = error_message(err.decode(errors="replace"))
            if "does not exist" in message:
                raise ContainerNotFound(message)
            raise RuncError(message or f"runc {args[0]} failed with exit code {proc.returncode}")
        return out.decode(errors="replace")

    async def start(self, id_: str) -> None:
        await self._run("start", id_)

    async def kill(self, id_: str, signal: int) -> None:
        """Signal the container's first process (with a pid namespace the rest dies with it)."""
        await self._run("kill", id_, str(signal))

    async def delete(self, id_: str, *, force: bool = False) -> None:
        """Forget a stopped container (``force``: kill it first); a missing container is not an error."""
        try:
            await self._run("delete", *(["--force"] if force else []), id_)
        except ContainerNotFound:
            pass

    async def state(self, id_: str) -> dict[str, Any] | None:
        """runc's state of a container (``status``: created, running, paused, stopped), None if unknown."""
        try:
            data = json.loads(await self._run("state", id_))
        except ContainerNotFound:
            return None
        return data if isinstance(data, dict) else None

    async def list_ids(self) -> list[str]:
        out = await self._run("list", "--format", "json")
        data = json.loads(out or "null") or []
        return [str(c["id"]) for c in data]

    def exec_argv(self, id_: str, cmd: Sequence[str], *, tty: bool = False, pid_file: str = "") -> list[str]:
        """``runc exec`` of a command in a running container, in the foreground, with the container's own
        process settings (env, user, cwd, capabilities) as runc takes them from the bundle. With ``tty``
        runc's own stdio must be a terminal: it makes the container's pty and copies between the two."""
        args = ["exec", *(["--tty"] if tty else [])]
        if pid_file:
            args += ["--pid-file", pid_file]
        return self.argv(*args, id_, *cmd)
