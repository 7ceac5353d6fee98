"""The pod lifecycle event generator: notices what changed in the runtime by relisting it.

kubelite's runtime sends no events, so — as the kubelet's generic PLEG — this lists every sandbox and
container every ``period`` seconds, compares each one's state with the previous list, and calls
``on_change(pod uid)`` for every pod with a container or sandbox that appeared, changed state or vanished.
That is what wakes a pod worker when a container exits, so the relist period bounds how late a crash is
noticed. The last relist is kept (`pod_uids`) for the housekeeping that finds containers of pods that no
longer exist. A relist that fails is logged and retried at the next period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubelite.kubelet.containerspec import POD_UID_LABEL
from kubelite.kubelet.runtime_client import RuntimeClient, RuntimeServiceError

log = logging.getLogger(__name__)

Snapshot = dict[str, tuple[str, int]]  # sandbox or container id -> (pod uid, state)


class Pleg:
    def __init__(self, runtime: RuntimeClient, period: float, on_change: Callable[[str], None]) -> None:
        self._runtime = runtime
        self._period = period
        self._on_change = on_change
        self._snapshot: Snapshot | None = None
        self.relisted = asyncio.Event()

    def pod_uids(self) -> set[str] | None:
        """The pods the runtime held at the last relist (None before the first one)."""
        if self._snapshot is None:
            return None
        return {uid for uid, _ in self._snapshot.values() if uid}

    async def relist(self) -> None:
        sandboxes, containers = await asyncio.gather(self._runtime.list_pod_sandboxes(),
                                                     self._runtime.list_containers())
        current: Snapshot = {}
        for sb in sandboxes:
            current["s:" + sb.id] = (sb.labels.get(POD_UID_LABEL, ""), int(sb.state))
        for c in containers:
            current["c:" + c.id] = (c.labels.get(POD_UID_LABEL, ""), int(c.state))
        previous = self._snapshot
        self._snapshot = current
        if previous is not None:
            changed = {uid for key, (uid, state) in current.items() if previous.get(key) != (uid, state)}
            changed |= {uid for key, (uid, _) in previous.items() if key not in current}
            for uid in changed:
                if uid:
                    self._on_change(uid)
        self.relisted.set()

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except RuntimeServiceError as e:
                log.warning("relisting the runtime failed: %s", e)
            await asyncio.sleep(self._period)
