"""Pod and PodSpec defaults (pkg/apis/core/v1/defaults.go and the generated declarative defaults).

``pod_spec`` applies to Pods and to the pod templates of workloads; ``pod`` adds what only a Pod gets:
enableServiceLinks, requests copied from limits, hostPorts under hostNetwork, and the priority fields the
Priority admission plugin fills in (priority 0, preemptionPolicy PreemptLowerPriority).
"""

from __future__ import annotations

from typing import Any

from .quantities import canonical, canonical_list

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_SCHEDULER = "default-scheduler"
FILE_MODE_DEFAULT = 0o644  # 420: secret, configMap, downwardAPI and projected volumes
TOKEN_EXPIRATION_SECONDS = 3600
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    for key in ("containers", "initContainers"):
        for ctr in _dicts(spec.get(key)):
            _requests_from_limits(ctr)
    spec.setdefault("enableServiceLinks", True)
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for ctr in _dicts(spec.get(key)):
                for port in _dicts(ctr.get("ports")):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    # Set by the Priority admission plugin for pods without a priority class.
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    grace = spec.get("terminationGracePeriodSeconds")
    if isinstance(grace, int) and not isinstance(grace, bool) and grace < 0:
        # Kubernetes warns and stores a negative grace period as 1 (a zero would mean "kill now").
        spec["terminationGracePeriodSeconds"] = 1
    pod_spec(spec)
    _status_ips(obj.get("status"))


def _status_ips(value: Any) -> None:
    """Keep the singular and plural status IP fields in step, as the v1 conversion does."""
    status = _dict(value)
    if status is None:
        return
    for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        ips = status.get(plural)
        if status.get(single) and not ips:
            status[plural] = [{"ip": status[single]}]
        elif isinstance(ips, list) and ips and isinstance(ips[0], dict) and not status.get(single):
            status[single] = ips[0].get("ip")


def pod_template(template: Any) -> None:
    spec = _dict(_dict(template) and template.get("spec"))
    if spec is not None:
        pod_spec(spec)


def pod_spec(spec: dict[str, Any]) -> None:
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = DEFAULT_TERMINATION_GRACE_PERIOD
    if not spec.get("schedulerName"):
        spec["schedulerName"] = DEFAULT_SCHEDULER
    # The deprecated serviceAccount alias mirrors serviceAccountName (v1 conversion).
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in _CONTAINER_LISTS:
        for ctr in _dicts(spec.get(key)):
            container(ctr)
    for vol in _dicts(spec.get("volumes")):
        volume(vol)
    canonical_list(spec.get("overhead"))


def container(ctr: dict[str, Any]) -> None:
    if not ctr.get("imagePullPolicy"):
        ctr["imagePullPolicy"] = "Always" if image_tag(ctr.get("image")) == "latest" else "IfNotPresent"
    if not ctr.get("terminationMessagePath"):
        ctr["terminationMessagePath"] = "/dev/termination-log"
    if not ctr.get("terminationMessagePolicy"):
        ctr["terminationMessagePolicy"] = "File"
    if ctr.get("resources") is None:
        # A non-pointer struct in Go: always serialised, if only as {}.
        ctr["resources"] = {}
    resources = _dict(ctr.get("resources")) or {}
    canonical_list(resources.get("limits"))
    canonical_list(resources.get("requests"))
    for port in _dicts(ctr.get("ports")):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
    for var in _dicts(ctr.get("env")):
        source = _dict(var.get("valueFrom"))
        if source is not None:
            _field_ref(source.get("fieldRef"))
            _resource_field_ref(source.get("resourceFieldRef"))
    for key in _PROBES:
        probe_ = _dict(ctr.get(key))
        if probe_ is not None:
            probe(probe_)
    lifecycle = _dict(ctr.get("lifecycle")) or {}
    for hook in ("postStart", "preStop"):
        handler = _dict(lifecycle.get(hook))
        if handler is not None:
            _http_get(handler.get("httpGet"))


def probe(spec: dict[str, Any]) -> None:
    for key, default in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                         ("failureThreshold", 3)):
        if not spec.get(key):
            spec[key] = default
    _http_get(spec.get("httpGet"))
    grpc = _dict(spec.get("grpc"))
    if grpc is not None and grpc.get("service") is None:
        grpc["service"] = ""


def _http_get(value: Any) -> None:
    action = _dict(value)
    if action is None:
        return
    if not action.get("path"):
        action["path"] = "/"
    if not action.get("scheme"):
        action["scheme"] = "HTTP"


def _field_ref(value: Any) -> None:
    ref = _dict(value)
    if ref is not None and not ref.get("apiVersion"):
        ref["apiVersion"] = "v1"


def _resource_field_ref(value: Any) -> None:
    ref = _dict(value)
    if ref is None:
        return
    # Divisor is a non-pointer Quantity: absent serialises as "0".
    ref["divisor"] = canonical(ref["divisor"]) if ref.get("divisor") is not None else "0"


def volume(vol: dict[str, Any]) -> None:
    if not any(key != "name" and value is not None for key, value in vol.items()):
        vol["emptyDir"] = {}
    for key in ("secret", "configMap", "downwardAPI", "projected"):
        source = _dict(vol.get(key))
        if source is not None and source.get("defaultMode") is None:
            source["defaultMode"] = FILE_MODE_DEFAULT
    for item in _dicts((_dict(vol.get("downwardAPI")) or {}).get("items")):
        _field_ref(item.get("fieldRef"))
        _resource_field_ref(item.get("resourceFieldRef"))
    host_path = _dict(vol.get("hostPath"))
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    empty_dir = _dict(vol.get("emptyDir"))
    if empty_dir is not None and empty_dir.get("sizeLimit") is not None:
        empty_dir["sizeLimit"] = canonical(empty_dir["sizeLimit"])
    for source in _dicts((_dict(vol.get("projected")) or {}).get("sources")):
        token = _dict(source.get("serviceAccountToken"))
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = TOKEN_EXPIRATION_SECONDS
        for item in _dicts((_dict(source.get("downwardAPI")) or {}).get("items")):
            _field_ref(item.get("fieldRef"))
            _resource_field_ref(item.get("resourceFieldRef"))
    claim_spec = _dict((_dict((_dict(vol.get("ephemeral")) or {}).get("volumeClaimTemplate")) or {}).get("spec"))
    if claim_spec is not None and claim_spec.get("volumeMode") is None:
        claim_spec["volumeMode"] = "Filesystem"


def _requests_from_limits(ctr: dict[str, Any]) -> None:
    resources = _dict(ctr.get("resources"))
    limits = _dict(resources.get("limits")) if resources is not None else None
    if resources is None or limits is None:
        return
    requests = resources.setdefault("requests", {})
    if isinstance(requests, dict):
        for name, value in limits.items():
            requests.setdefault(name, value)


def image_tag(image: Any) -> str:
    """The tag ``ParseImageName`` reports: the explicit tag, ``latest`` when there is neither a tag nor a
    digest, and ``""`` for a digest-only or unparseable reference (upper-case repository paths)."""
    if not isinstance(image, str) or not image or image != image.strip():
        return ""
    name, at, _digest = image.partition("@")
    head, slash, rest = name.rpartition("/")
    repository, colon, tag = rest.partition(":")
    path = f"{head}/{repository}" if slash else repository
    first, sep, remainder = path.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        path = remainder  # a registry host may use upper case; repository paths may not
    if not repository or any(c.isupper() for c in path):
        return ""
    if colon:
        return tag
    return "" if at else "latest"
