"""Helpers for tests that put a "node" in a network namespace of its own (needs root).

`node_netns()` makes ``/run/netns/<prefix><random>`` with ``lo`` up (pyroute2) and removes it at the end,
which also removes everything made inside it: the CNI bridge, veth host ends, the iptables/nftables rules
of ``ipMasq`` and ``portmap``. Give its name to ``PodNetwork(host_netns=...)`` so that the CNI plugins treat
it as the node. `run_in_netns` runs a command inside a namespace (``nsenter --net``).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from pyroute2 import AsyncIPRoute

from kubelite.kubelet.network import netns

NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"


@asynccontextmanager
async def node_netns(prefix: str = "kltest-") -> AsyncIterator[Path]:
    """A fresh network namespace with ``lo`` up, removed on exit (also on failure)."""
    path = netns.NETNS_DIR / f"{prefix}{secrets.token_hex(4)}"
    await netns.create(path)
    try:
        async with AsyncIPRoute(netns=str(path)) as ipr:
            await ipr.link("set", index=(await ipr.link_lookup(ifname="lo"))[0], state="up")
        yield path
    finally:
        await netns.remove(path)


async def links(path: Path | str) -> dict[str, str]:
    """name -> operational state ("up"/"down") of every link in the namespace at ``path``."""
    async with AsyncIPRoute(netns=str(path)) as ipr:
        return {link.get("ifname"): link.get("state") async for link in await ipr.get_links()}


async def delete_link(path: Path | str, name: str) -> None:
    async with AsyncIPRoute(netns=str(path)) as ipr:
        await ipr.link("del", index=(await ipr.link_lookup(ifname=name))[0])


def run_in_netns(path: Path | str, argv: Sequence[str], *, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside the namespace at ``path``; output captured as text, never raises on exit status."""
    return subprocess.run([NSENTER, f"--net={path}", "--", *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


@asynccontextmanager
async def tcp_server_in_netns(path: Path | str, port: int, reply: str, *, host: str = "0.0.0.0") -> AsyncIterator[None]:
    """A tiny TCP server inside the namespace: every connection gets ``reply`` and is closed. Ready when
    entered; killed on exit."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(({host!r}, {port})); s.listen(16); print('ready', flush=True)\n"
        "while True:\n"
        "    c,_=s.accept(); c.sendall(sys.argv[1].encode()); c.close()\n"
    )
    proc = await asyncio.create_subprocess_exec(NSENTER, f"--net={path}", "--", sys.executable, "-c", code, reply,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 10)
        if line.strip() != b"ready":
            stderr = await proc.stderr.read() if proc.stderr else b""
            raise RuntimeError(f"the test server did not start: {stderr.decode(errors='replace')}")
        yield
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def tcp_get(path: Path | str, host: str, port: int) -> str:
    """Connect from inside the namespace at ``path`` and return what the server sent (or raise)."""
    code = (
        "import socket,sys\n"
        "c=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
        "data=b''\n"
        "while chunk := c.recv(4096): data += chunk\n"
        "sys.stdout.write(data.decode())\n"
    )
    done = run_in_netns(path, [sys.executable, "-c", code, host, str(port)])
    if done.returncode != 0:
        raise ConnectionError(f"connecting to {host}:{port} from {path} failed: {done.stderr.strip()}")
    return done.stdout
