"""kubelite's controllers (kube-controller-manager's counterpart), each a client of the API server only.

`ControllerManager` runs them over one set of shared informers; `run_controller_manager` is the entry
point `kubelite server` and `kubelite controller-manager` call.
"""

from kubelite.controllers.gc import GarbageCollector
from kubelite.controllers.manager import (
    Controller,
    ControllerCrashed,
    ControllerManager,
    default_controllers,
    run_controller_manager,
)
from kubelite.controllers.namespace import NamespaceController

__all__ = [
    "Controller",
    "ControllerCrashed",
    "ControllerManager",
    "GarbageCollector",
    "NamespaceController",
    "default_controllers",
    "run_controller_manager",
]
