"""A pod's quality-of-service class, as ``pkg/apis/core/v1/helper/qos.GetPodQOS`` computes it.

Only cpu and memory count. BestEffort: no container requests or limits anything. Guaranteed: every
container (init containers included) limits both cpu and memory, and the pod's summed requests equal its
summed limits. Anything else is Burstable.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubelite.api.quantity import parse_quantity

GUARANTEED = "Guaranteed"
BURSTABLE = "Burstable"
BEST_EFFORT = "BestEffort"
_COMPUTE = ("cpu", "memory")


def pod_qos(pod: dict[str, Any]) -> str:
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for ctr in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        resources = ctr.get("resources") or {}
        for name, raw in (resources.get("requests") or {}).items():
            if name in _COMPUTE and (value := _quantity(raw)) != 0:
                requests[name] = requests.get(name, Decimal(0)) + value
        seen: set[str] = set()
        for name, raw in (resources.get("limits") or {}).items():
            if name in _COMPUTE and (value := _quantity(raw)) != 0:
                seen.add(name)
                limits[name] = limits.get(name, Decimal(0)) + value
        if seen != set(_COMPUTE):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and all(limits.get(name) == value for name, value in requests.items()) \
            and len(requests) == len(limits):
        return GUARANTEED
    return BURSTABLE


def _quantity(raw: Any) -> Decimal:
    try:
        return parse_quantity(raw)
    except ValueError:
        return Decimal(0)
