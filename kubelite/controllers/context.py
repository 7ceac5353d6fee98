"""What every controller is built from: the API client, an event recorder source, and the options of the
controller manager (``kubelite server`` / ``kubelite controller-manager`` flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kubelite.client.events import EventBroadcaster, EventRecorder
from kubelite.client.rest import Client


@dataclass(frozen=True)
class ControllerOptions:
    # A node whose Lease is older than this is NotReady/Unknown (kube-controller-manager's default: 40 s).
    node_monitor_grace_period: float = 40.0
    # How often the node lifecycle controller looks at node Leases.
    node_monitor_period: float = 5.0
    # Pod CIDRs are carved out of this range for each Node (--cluster-cidr, --node-cidr-mask-size).
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24


@dataclass
class ControllerContext:
    client: Client
    events: EventBroadcaster
    options: ControllerOptions = field(default_factory=ControllerOptions)

    def recorder(self, component: str) -> EventRecorder:
        return self.events.recorder(component)
