"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take only pods that tolerate the
``node.kubernetes.io/unschedulable:NoSchedule`` taint (framework/plugins/nodeunschedulable)."""

from __future__ import annotations

from kubelite.scheduler.framework import ClusterEvent, CycleState, MaskVerdict
from kubelite.scheduler.nodeinfo import NodeTable, PodInfo
from kubelite.scheduler.plugins.tainttoleration import tolerates, tolerations_of

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = ("node.kubernetes.io/unschedulable", "", "NoSchedule")


class NodeUnschedulable:
    name = NAME
    events = frozenset({ClusterEvent.NODE_ADD, ClusterEvent.NODE_SPEC_UNSCHEDULABLE, ClusterEvent.NODE_TAINT})

    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict:
        cordoned = nodes.unschedulable
        if not cordoned or any(tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations_of(pod)):
            return MaskVerdict(nodes.present)
        return MaskVerdict(nodes.present & ~cordoned, lambda: [(REASON, cordoned)])
