"""Read-only helpers over Pod dicts that several controllers share (Kubernetes' ``pkg/api/v1/pod`` and the pod
filters of ``pkg/controller/controller_utils.go``).

Everything here is pure: it reads the JSON-shaped Pod and never changes it. Times are compared with the
``now`` the caller passes, so that the decisions built on them are testable.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from kubelite.api import meta

Obj = dict[str, Any]

SUCCEEDED = "Succeeded"
FAILED = "Failed"
# The annotation a user sets to say which pods of a ReplicaSet to remove first (lower goes first).
POD_DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_DELETION_COST = re.compile(r"0|-[0-9]+|[1-9][0-9]*")


def _status(pod: Obj) -> dict[str, Any]:
    status = pod.get("status")
    return status if isinstance(status, dict) else {}


def _spec(pod: Obj) -> dict[str, Any]:
    spec = pod.get("spec")
    return spec if isinstance(spec, dict) else {}


def phase(pod: Obj) -> str:
    return str(_status(pod).get("phase") or "")


def node_name(pod: Obj) -> str:
    return str(_spec(pod).get("nodeName") or "")


def is_terminal(pod: Obj) -> bool:
    """Succeeded or Failed: the pod's containers will not run again."""
    return phase(pod) in (SUCCEEDED, FAILED)


def is_active(pod: Obj) -> bool:
    """``controller.IsPodActive``: neither terminal nor being deleted."""
    return not is_terminal(pod) and not meta.is_being_deleted(pod)


def is_terminating(pod: Obj) -> bool:
    """``controller.IsPodTerminating``: being deleted, and its containers not finished yet."""
    return not is_terminal(pod) and meta.is_being_deleted(pod)


def ready_condition(pod: Obj) -> dict[str, Any] | None:
    for cond in _status(pod).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> datetime | None:
    """When the pod became ready (its Ready condition's lastTransitionTime); None when it is not ready or the
    time is missing or unreadable."""
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def is_available(pod: Obj, min_ready_seconds: int, now: datetime) -> bool:
    """``podutil.IsPodAvailable``: ready, and ready for longer than ``min_ready_seconds``."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: datetime) -> float | None:
    """For a ready pod that is not available yet: how long until it is; None otherwise."""
    if min_ready_seconds <= 0 or not is_ready(pod) or is_available(pod, min_ready_seconds, now):
        return None
    since = ready_since(pod)
    if since is None:
        return None  # without a transition time it never becomes available
    return max((since + timedelta(seconds=min_ready_seconds) - now).total_seconds(), 0.0)


def max_container_restarts(pod: Obj) -> int:
    counts = [int(c.get("restartCount") or 0) for c in _status(pod).get("containerStatuses") or []
              if isinstance(c, dict)]
    return max(counts, default=0)


def deletion_cost(pod: Obj) -> int:
    """The ``controller.kubernetes.io/pod-deletion-cost`` annotation; 0 when absent or not an int32."""
    text = meta.annotations(pod).get(POD_DELETION_COST)
    # Kubernetes refuses a leading "+" or leading zeros, then parses a decimal int32.
    if text is None or not _DELETION_COST.fullmatch(text):
        return 0
    cost = int(text, 10)
    return cost if _INT32_MIN <= cost <= _INT32_MAX else 0


def creation_time(pod: Obj) -> datetime | None:
    return parse_time(meta.metadata(pod).get("creationTimestamp"))


def pod_ips(pod: Obj) -> list[str]:
    """``status.podIPs`` in order, or ``[status.podIP]`` when only the singular field is set."""
    status = _status(pod)
    ips = [str(entry.get("ip")) for entry in status.get("podIPs") or [] if isinstance(entry, dict) and entry.get("ip")]
    if not ips and status.get("podIP"):
        ips = [str(status["podIP"])]
    return ips


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = meta.parse_rfc3339(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
