"""kubelite's scheduler (kube-scheduler's shape): a queue of pending pods, a cache of nodes with assumed
pods, a framework of filter and score plugins over vectorised node state, and asynchronous binding.

`run_scheduler(client, stop)` is what ``kubelite server`` and ``kubelite scheduler`` run.
"""

from __future__ import annotations

import asyncio

from kubelite.client.leaderelection import run_with_leader_election
from kubelite.client.rest import Client
from kubelite.scheduler.config import ConfigError, Profile, load_file
from kubelite.scheduler.scheduler import Scheduler


async def run_scheduler(client: Client, stop: asyncio.Event, *, config_path: str | None = None) -> None:
    """Schedule pods through ``client`` until ``stop`` is set. ``config_path`` is a
    KubeSchedulerConfiguration YAML file (see `kubelite.scheduler.config`); `ConfigError` if it is bad.

    Only the holder of the ``kube-scheduler`` Lease schedules, so that several servers can run side by side;
    each term as leader starts from fresh informers and an empty queue."""
    profile = load_file(config_path)

    async def lead(ended: asyncio.Event) -> None:
        await Scheduler(client, profile=profile).run(ended)

    await run_with_leader_election(client, lease_name="kube-scheduler", run=lead, stop=stop)


__all__ = ["ConfigError", "Profile", "Scheduler", "run_scheduler"]
