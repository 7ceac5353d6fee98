"""The in-tree plugins, by name, and kube-scheduler's default profile.

`DEFAULT_FILTER` is the order filters run in (it decides which plugin a node rejected by several is counted
under), `DEFAULT_SCORE` the score plugins with their default weights: both as in kube-scheduler's
``getDefaultPlugins``, less the volume and preemption plugins kubelite does not have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kubelite.scheduler.framework import Plugin
from kubelite.scheduler.plugins.interpodaffinity import InterPodAffinity, NamespaceLabels
from kubelite.scheduler.plugins.nodeaffinity import NodeAffinity
from kubelite.scheduler.plugins.nodename import NodeName
from kubelite.scheduler.plugins.nodeports import NodePorts
from kubelite.scheduler.plugins.noderesources import NodeResourcesBalancedAllocation, NodeResourcesFit
from kubelite.scheduler.plugins.nodeunschedulable import NodeUnschedulable
from kubelite.scheduler.plugins.podtopologyspread import PodTopologySpread
from kubelite.scheduler.plugins.tainttoleration import TaintToleration


@dataclass(frozen=True)
class Handle:
    """What plugins may ask of the scheduler: namespace labels (for namespaceSelector terms)."""

    namespace_labels: NamespaceLabels


Factory = Callable[[Handle], Plugin]

REGISTRY: dict[str, Factory] = {
    "NodeUnschedulable": lambda h: NodeUnschedulable(),
    "NodeName": lambda h: NodeName(),
    "TaintToleration": lambda h: TaintToleration(),
    "NodeAffinity": lambda h: NodeAffinity(),
    "NodePorts": lambda h: NodePorts(),
    "NodeResourcesFit": lambda h: NodeResourcesFit(),
    "PodTopologySpread": lambda h: PodTopologySpread(),
    "InterPodAffinity": lambda h: InterPodAffinity(h.namespace_labels),
    "NodeResourcesBalancedAllocation": lambda h: NodeResourcesBalancedAllocation(),
}

DEFAULT_FILTER: tuple[str, ...] = ("NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts",
                                   "NodeResourcesFit", "PodTopologySpread", "InterPodAffinity")
DEFAULT_SCORE: tuple[tuple[str, int], ...] = (("TaintToleration", 3), ("NodeAffinity", 2),
                                              ("NodeResourcesFit", 1), ("PodTopologySpread", 2),
                                              ("InterPodAffinity", 2), ("NodeResourcesBalancedAllocation", 1))

__all__ = ["DEFAULT_FILTER", "DEFAULT_SCORE", "REGISTRY", "Factory", "Handle"]
