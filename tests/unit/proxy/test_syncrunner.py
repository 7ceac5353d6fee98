"""The bounded-frequency runner: bursts, spacing, coalescing, the periodic run and retries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from kubelite.proxy.syncrunner import SyncRunner


class Recorder:
    def __init__(self, duration: float = 0.0) -> None:
        self.times: list[float] = []
        self.duration = duration
        self.started = time.monotonic()

    async def __call__(self) -> None:
        self.times.append(time.monotonic() - self.started)
        if self.duration:
            await asyncio.sleep(self.duration)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition`` (a positive condition never rests on timing: a slow machine only waits longer)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(runner: SyncRunner) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)


async def test_a_burst_runs_at_once_then_runs_are_spaced() -> None:
    fn = Recorder()
    runner = SyncRunner(fn, min_interval=0.2, max_interval=60, burst=2)
    async with running(runner):
        for i in range(3):
            runner.request()
            await until(lambda i=i: len(fn.times) == i + 1)  # type: ignore[misc]
    # two runs may follow each other at once; the third waits for a token
    assert fn.times[2] - fn.times[0] >= 0.15


async def test_requests_during_a_run_coalesce_into_one_more_run() -> None:
    fn = Recorder(duration=0.1)
    runner = SyncRunner(fn, min_interval=0, max_interval=60)
    async with running(runner):
        runner.request()
        await until(lambda: len(fn.times) == 1)
        for _ in range(10):
            runner.request()
        await until(lambda: len(fn.times) == 2)
        await asyncio.sleep(0.15)
    assert len(fn.times) == 2


async def test_it_runs_every_max_interval_without_requests() -> None:
    fn = Recorder()
    async with running(SyncRunner(fn, min_interval=0, max_interval=0.1)):
        await until(lambda: len(fn.times) == 2)
    assert fn.times[1] - fn.times[0] >= 0.09


async def test_retry_after_a_failure() -> None:
    calls: list[float] = []
    start = time.monotonic()

    async def flaky() -> None:
        calls.append(time.monotonic() - start)
        if len(calls) == 1:
            runner.retry_after(0.1)

    runner = SyncRunner(flaky, min_interval=0, max_interval=60)
    async with running(runner):
        runner.request()
        await until(lambda: len(calls) == 2)
    assert calls[1] - calls[0] >= 0.09


async def test_an_exception_is_logged_and_retried() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    runner = SyncRunner(broken, min_interval=0, max_interval=60)
    async with running(runner):
        runner.request()
        await until(lambda: calls == 1)
        runner.request()
        await until(lambda: calls == 2)  # the runner survived
