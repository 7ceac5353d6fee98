"""The API server asks nodes' kubelets for their ``/stats/summary``, through the same `KubeletConnector`
(client certificate from the cluster CA) as the pod proxy, for the ``metrics.k8s.io`` API.

Each node is asked with a short `timeout`; its answer is kept for `ttl` seconds, and so is a failure, so that
a node that does not answer costs one timeout per `ttl`, not one per request. A node being asked is asked
once however many requests want it. A node that does not answer, answers an error, or has no address is
left out (logged), as metrics-server leaves out nodes it cannot scrape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from kubelite.api import meta

from .handlers.proxy import KubeletConnector, kubelet_url

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 5.0
DEFAULT_TTL = 5.0

Obj = dict[str, Any]


@dataclass(slots=True)
class _Answer:
    url: str
    at: float
    summary: Obj | None


class SummaryScraper:
    def __init__(self, connector: KubeletConnector, *, timeout: float = DEFAULT_TIMEOUT, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.connector = connector
        self.timeout = timeout
        self.ttl = ttl
        self.clock = clock
        self._answers: dict[str, _Answer] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def summaries(self, nodes: Iterable[Obj]) -> dict[str, Obj]:
        """Node name → summary, for the nodes that answered; all nodes are asked at once."""
        wanted = list(nodes)
        answers = await asyncio.gather(*(self.summary(n) for n in wanted))
        return {meta.name(n): s for n, s in zip(wanted, answers, strict=True) if s is not None}

    async def summary(self, node: Obj) -> Obj | None:
        name = meta.name(node)
        url = kubelet_url(node, self.connector.scheme)
        if url is None:
            log.info("metrics: node %s has no address to reach its kubelet", name)
            return None
        async with self._locks.setdefault(name, asyncio.Lock()):
            answer = self._answers.get(name)
            if answer is not None and answer.url == url and self.clock() - answer.at < self.ttl:
                return answer.summary
            summary = await self._fetch(name, url)
            self._answers[name] = _Answer(url, self.clock(), summary)
            return summary

    async def _fetch(self, name: str, url: str) -> Obj | None:
        try:
            async with self.connector.session().get(f"{url}/stats/summary",
                                                    timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status != 200:
                    log.info("metrics: the kubelet of node %s answered %d", name, resp.status)
                    return None
                summary = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.info("metrics: the kubelet of node %s did not answer: %s", name, e or type(e).__name__)
            return None
        return summary if isinstance(summary, dict) else None
