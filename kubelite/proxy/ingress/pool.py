"""Keep-alive connections to endpoints, reused across requests (nginx's upstream ``keepalive``).

A connection goes back to the pool only after a complete exchange whose response said it may stay
open. Idle connections are kept newest first, at most ``max_idle`` per endpoint, for at most
``idle_timeout`` seconds; one the endpoint closes leaves the pool at once. `prune` drops the idle
connections of endpoints that no route uses any more (connections in use are never touched: they
belong to requests in flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kubelite.proxy.ingress.channel import DEFAULT_LIMIT, Channel
from kubelite.proxy.ingress.routes import Endpoint


class UpstreamPool:
    def __init__(self, *, max_idle: int = 32, idle_timeout: float = 60.0, connect_timeout: float = 5.0,
                 limit: int = DEFAULT_LIMIT, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.limit = limit
        self._clock = clock
        self._idle: dict[Endpoint, list[tuple[Channel, float]]] = {}
        self._closed = False

    def idle_count(self, endpoint: Endpoint | None = None) -> int:
        if endpoint is not None:
            return len(self._idle.get(endpoint, ()))
        return sum(len(stack) for stack in self._idle.values())

    async def acquire(self, endpoint: Endpoint) -> tuple[Channel, bool]:
        """A connection to ``endpoint`` and whether it was reused. Connecting may raise OSError
        (refused, unreachable) or TimeoutError (after ``connect_timeout``)."""
        channel = self.take(endpoint)
        if channel is not None:
            return channel, True
        return await self.connect(endpoint), False

    def take(self, endpoint: Endpoint) -> Channel | None:
        """An idle connection to ``endpoint`` that still looks alive, if there is one."""
        stack = self._idle.get(endpoint)
        if stack:
            now = self._clock()
            while stack:
                channel, since = stack.pop()
                if channel.closed or channel.ended or channel.buffered or now - since > self.idle_timeout:
                    channel.on_end = None
                    channel.close()
                    continue
                channel.on_end = None
                return channel
        return None

    async def connect(self, endpoint: Endpoint) -> Channel:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.connect_timeout):
            _, channel = await loop.create_connection(lambda: Channel(limit=self.limit), endpoint.host, endpoint.port)
        return channel

    def release(self, endpoint: Endpoint, channel: Channel) -> None:
        """Give back a connection after a complete exchange; it is closed instead when it cannot be reused."""
        if self._closed or channel.closed or channel.ended or channel.buffered:
            channel.close()
            return
        stack = self._idle.setdefault(endpoint, [])
        if len(stack) >= self.max_idle:
            channel.close()
            return
        stack.append((channel, self._clock()))
        channel.pool_key = endpoint
        channel.on_end = self._drop

    def _drop(self, channel: Channel) -> None:
        key = channel.pool_key
        stack = self._idle.get(key) if isinstance(key, Endpoint) else None
        if stack:
            for i, (idle, _) in enumerate(stack):
                if idle is channel:
                    del stack[i]
                    break
        channel.on_end = None
        channel.close()

    def expire(self) -> None:
        """Close connections idle for longer than ``idle_timeout``."""
        deadline = self._clock() - self.idle_timeout
        for endpoint, stack in list(self._idle.items()):
            keep = [(c, t) for c, t in stack if t >= deadline]
            for channel, since in stack:
                if since < deadline:
                    channel.on_end = None
                    channel.close()
            if keep:
                self._idle[endpoint] = keep
            else:
                del self._idle[endpoint]

    def prune(self, keep: frozenset[Endpoint]) -> None:
        """Close the idle connections of endpoints not in ``keep``."""
        for endpoint in [e for e in self._idle if e not in keep]:
            for channel, _ in self._idle.pop(endpoint):
                channel.on_end = None
                channel.close()

    async def run_expiry(self) -> None:
        """Expire idle connections now and then, until cancelled."""
        while True:
            await asyncio.sleep(max(self.idle_timeout / 4, 0.05))
            self.expire()

    def close(self) -> None:
        self._closed = True
        self.prune(frozenset())
