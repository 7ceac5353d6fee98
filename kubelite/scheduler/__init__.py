"""kubelite's scheduler (kube-scheduler's shape): a queue of pending pods, a cache of nodes with assumed
pods, a framework of filter and score plugins over vectorised node state, and asynchronous binding.

`run_scheduler(client, stop)` is what ``kubelite server`` and ``kubelite scheduler`` run.
"""

from __future__ import annotations

import asyncio

from kubelite.client.rest import Client
from kubelite.scheduler.config import ConfigError, Profile, load_file
from kubelite.scheduler.scheduler import Scheduler


async def run_scheduler(client: Client, stop: asyncio.Event, *, config_path: str | None = None) -> None:
    """Schedule pods through ``client`` until ``stop`` is set. ``config_path`` is a
    KubeSchedulerConfiguration YAML file (see `kubelite.scheduler.config`); `ConfigError` if it is bad.

    Leader election wraps `Scheduler.run_active` (see `Scheduler.run`)."""
    await Scheduler(client, profile=load_file(config_path)).run(stop)


__all__ = ["ConfigError", "Profile", "Scheduler", "run_scheduler"]
