"""Small test helpers shared by the client tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition on state we cannot subscribe to (the fake's counters), bounded."""
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - polling another component's state is the point here
            await asyncio.sleep(0.005)
