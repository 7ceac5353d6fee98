"""The scheduler cache: nodes and the pods counted on them, including pods this scheduler has *assumed*
(kube-scheduler's backend/cache/cache.go).

A pod's life here:
- the scheduler picks a node and calls `assume_pod` (a copy with ``spec.nodeName`` set) before it sends
  the binding, so the next pod already sees the node's resources taken: a burst never overcommits a node;
- the binding succeeds → `finish_binding` starts the assumed pod's expiry clock (``ttl``; 0 = never);
- the informer shows the bound pod → `add_pod` *confirms* it: from now on the informer owns it;
- the binding fails → `forget_pod` gives the resources back;
- an assumed pod whose binding finished but that the informer never showed within ``ttl`` is dropped by
  `cleanup_expired` (the pod was deleted, or the scheduler missed the event).

Pods the informer reports (bound, not terminal) are added, updated and removed with `add_pod`,
`update_pod`, `remove_pod`. Keys are pod uids. No I/O, no locking: one asyncio loop calls everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

log = logging.getLogger(__name__)

Obj = dict[str, Any]
# How long an assumed pod whose binding finished may wait for the informer (kube-scheduler once used 30 s;
# today it waits forever, but then a missed event would hold the resources for good).
DEFAULT_ASSUMED_TTL = 30.0


@dataclass(slots=True)
class _PodState:
    info: PodInfo
    assumed: bool
    binding_finished: bool = False
    deadline: float | None = None


class Cache:
    def __init__(self, *, ttl: float = DEFAULT_ASSUMED_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.nodes = NodeTable()
        self._pods: dict[str, _PodState] = {}
        self._ttl = ttl
        self._clock = clock

    # --- nodes -------------------------------------------------------------------------------------

    def add_node(self, node: Obj) -> None:
        self.nodes.set_node(node)

    def update_node(self, node: Obj) -> None:
        self.nodes.set_node(node)

    def remove_node(self, node: Obj) -> None:
        self.nodes.remove_node(meta.name(node))

    # --- assumed pods ------------------------------------------------------------------------------

    def assume_pod(self, info: PodInfo) -> None:
        """Count a pod on ``info.node_name`` before it is bound (``info.pod`` carries that nodeName)."""
        uid = info.uid
        if not info.node_name:
            raise ValueError(f"pod {meta.key(info.pod)}: an assumed pod needs a node name")
        if uid in self._pods:
            raise ValueError(f"pod {meta.key(info.pod)} ({uid}) is already in the cache")
        self._pods[uid] = _PodState(info, assumed=True)
        self.nodes.add_pod(info)

    def finish_binding(self, pod: Obj) -> None:
        state = self._pods.get(meta.uid(pod))
        if state is not None and state.assumed:
            state.binding_finished = True
            state.deadline = self._clock() + self._ttl if self._ttl > 0 else None

    def forget_pod(self, pod: Obj) -> None:
        """Undo `assume_pod` (the binding failed). A pod the informer confirmed meanwhile stays."""
        uid = meta.uid(pod)
        state = self._pods.get(uid)
        if state is None or not state.assumed:
            return
        del self._pods[uid]
        self.nodes.remove_pod(state.info)

    def is_assumed(self, pod: Obj) -> bool:
        state = self._pods.get(meta.uid(pod))
        return state is not None and state.assumed

    def cleanup_expired(self) -> list[Obj]:
        """Drop assumed pods whose binding finished more than ``ttl`` ago; returns them."""
        now = self._clock()
        expired = [s for s in self._pods.values()
                   if s.assumed and s.binding_finished and s.deadline is not None and s.deadline <= now]
        for state in expired:
            log.warning("scheduler cache: assumed pod %s on %s expired before the informer confirmed it",
                        meta.key(state.info.pod), state.info.node_name)
            del self._pods[meta.uid(state.info.pod)]
            self.nodes.remove_pod(state.info)
        return [s.info.pod for s in expired]

    # --- pods the informer reports -----------------------------------------------------------------

    def add_pod(self, pod: Obj) -> None:
        """A bound pod seen by the informer: confirms an assumed pod (on the node it was really bound to)."""
        uid = meta.uid(pod)
        state = self._pods.get(uid)
        if state is not None:
            self.nodes.remove_pod(state.info)
        info = PodInfo.of(pod)
        self._pods[uid] = _PodState(info, assumed=False)
        self.nodes.add_pod(info)

    def update_pod(self, pod: Obj) -> None:
        self.add_pod(pod)

    def remove_pod(self, pod: Obj) -> None:
        state = self._pods.pop(meta.uid(pod), None)
        if state is not None:
            self.nodes.remove_pod(state.info)

    def pod_count(self) -> int:
        return len(self._pods)

    def has_pod(self, pod: Obj) -> bool:
        return meta.uid(pod) in self._pods
