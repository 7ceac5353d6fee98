"""NodePorts: a host port (protocol, port, hostIP) can be held by one pod per node
(framework/plugins/nodeports). The table indexes used ports, so a pod's ports are checked against every
node with a few mask operations."""

from __future__ import annotations

from kubelite.scheduler.framework import SKIP, SUCCESS, ClusterEvent, CycleState, MaskVerdict, Status
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts:
    name = NAME
    events = frozenset({ClusterEvent.NODE_ADD, ClusterEvent.ASSIGNED_POD_DELETE})

    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        return SUCCESS if pod.ports else SKIP

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        taken = 0
        for port in pod.ports:
            taken |= nodes.port_conflicts(port)
        return MaskVerdict(nodes.present & ~taken, lambda: [(REASON, taken)])
