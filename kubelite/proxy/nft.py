"""Running ``nft``: loading a transaction, checking that the proxy's table is still there, removing it.

`Nft.load` pipes the commands to ``nft -f -``, which applies them as one kernel transaction: all or
nothing, so a failed load leaves the previous ruleset live. With a network namespace (tests, several
"nodes" on one machine) ``nft`` runs under ``nsenter --net=<netns>``.

`Nft.table_exists` asks the kernel over netlink (pyroute2) instead of ``nft list``, which fetches the
whole ruleset first: seconds with thousands of Services, a millisecond this way.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Sequence

from kubelite.proxy.netns import NetnsThread, resolve

log = logging.getLogger(__name__)

NFT = "nft"
NSENTER = "nsenter"
NFPROTO = {"ip": 2, "ip6": 10}
# How much of nft's complaint goes into an error.
MAX_ERROR_CHARS = 4000


class NftError(Exception):
    """``nft`` refused a transaction (nothing of it was applied), or could not be run."""


class Nft:
    """The ``nft`` binary, run in ``netns`` when given (a name under /run/netns or a path)."""

    def __init__(self, *, netns: str | None = None, binary: str = NFT, timeout: float = 120.0) -> None:
        self.netns = str(resolve(netns)) if netns else None
        self.binary = binary
        self.timeout = timeout
        self._thread: NetnsThread | None = None

    def argv(self, *args: str) -> list[str]:
        prefix = [NSENTER, f"--net={self.netns}", "--"] if self.netns else []
        return [*prefix, self.binary, *args]

    def unavailable(self) -> str | None:
        """Why ``nft`` cannot be run here (None when it can be tried)."""
        if shutil.which(self.binary) is None:
            return f"the {self.binary} binary was not found (Debian package nftables)"
        if self.netns and shutil.which(NSENTER) is None:
            return "nsenter (util-linux) was not found, and a network namespace was given"
        return None

    async def run(self, args: Sequence[str], stdin: str = "") -> str:
        """Run ``nft args`` with ``stdin``; its output, or `NftError` with what it said."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(*args), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
        except OSError as e:
            raise NftError(f"cannot run {self.binary}: {e}") from e
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NftError(f"{self.binary} {' '.join(args)} did not finish within {self.timeout:.0f} s") from None
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            text = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise NftError(text[:MAX_ERROR_CHARS])
        return out.decode(errors="replace")

    async def load(self, lines: Sequence[str]) -> None:
        """Apply ``lines`` as one transaction (`NftError`: none of it was applied)."""
        await self.run(["-f", "-"], "\n".join(lines) + "\n")

    async def check(self) -> None:
        """Whether the kernel takes nftables transactions from us: a dry run creating a table."""
        await self.run(["-c", "-f", "-"], "add table ip kubelite-probe\n")

    async def delete_tables(self, table: str, families: Sequence[str] = ("ip", "ip6")) -> None:
        """Remove ``table`` in each family, whether or not it exists (adding it first makes the delete safe)."""
        lines = [line for f in families for line in (f"add table {f} {table}", f"delete table {f} {table}")]
        await self.load(lines)

    async def table_exists(self, family: str, table: str) -> bool | None:
        """Whether ``table`` exists in ``family`` (``ip``/``ip6``); None when the kernel cannot be asked."""
        if self._thread is None:
            self._thread = NetnsThread(self.netns, name="nft-netlink")
        try:
            names = await self._thread.run(_table_names, NFPROTO[family])
        except Exception as e:  # pyroute2 raises its own errors as well as OSError
            log.debug("cannot list nftables tables over netlink: %s", e)
            return None
        return table in names

    def close(self) -> None:
        if self._thread is not None:
            self._thread.close()
            self._thread = None


def _table_names(nfproto: int) -> set[str]:
    from pyroute2.nftables.main import NFTables

    with NFTables(nfgen_family=nfproto) as nft:
        return {str(t.get_attr("NFTA_TABLE_NAME")) for t in nft.get_tables()}
