"""NodeName: a pod that names its node fits only there (framework/plugins/nodename)."""

from __future__ import annotations

from kubelite.scheduler.framework import SKIP, SUCCESS, ClusterEvent, CycleState, MaskVerdict, Status
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


def wanted_node(pod: PodInfo) -> str:
    return str((pod.pod.get("spec") or {}).get("nodeName") or "")


class NodeName:
    name = NAME
    events = frozenset({ClusterEvent.NODE_ADD})

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        return SUCCESS if wanted_node(pod) else SKIP

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        passed = nodes.name_mask(wanted_node(pod))
        return MaskVerdict(passed, lambda: [(REASON, ~passed)])
