"""core/v1 Events, validated as Kubernetes validates the legacy API: the event's namespace must agree
with its involved object's, new-style events (with ``eventTime``) need reporting fields, and the name is
only checked as a URL path segment (core/v1 events skip the strict events.k8s.io/v1 rules)."""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import invalid, required

from . import formats
from .common import Errs, as_dict, as_str, each_invalid
from .meta import name_any, object_meta, object_meta_update

_LIMITS = {"reportingInstance": 128, "action": 128, "reason": 128, "message": 1024}


def validate_event(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_any)
    namespace = as_str(as_dict(obj.get("metadata")).get("namespace"))
    involved = as_str(as_dict(obj.get("involvedObject")).get("namespace"))
    mismatch = "does not match event.namespace"
    if not obj.get("eventTime"):
        if (not involved and namespace not in ("", "default")) or (involved and namespace != involved):
            errs.append(invalid("involvedObject.namespace", involved, mismatch))
    else:
        if not involved and namespace not in ("default", "kube-system"):
            errs.append(invalid("involvedObject.namespace", involved, mismatch))
        controller = as_str(obj.get("reportingComponent"))
        if not controller:
            errs.append(required("reportingController"))
        each_invalid(errs, "reportingController", controller, formats.is_qualified_name(controller))
        for key in ("reportingInstance", "action", "reason"):
            if not as_str(obj.get(key)):
                errs.append(required(key))
        for key, limit in _LIMITS.items():
            if len(as_str(obj.get(key))) > limit:
                errs.append(invalid(key, "", f"can have at most {limit} characters"))
    if old is not None:
        # Only the stricter events.k8s.io API freezes an event's fields; core/v1 updates re-run the above.
        object_meta_update(errs, obj, old)
    return errs
