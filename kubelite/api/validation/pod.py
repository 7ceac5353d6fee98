"""Pods and pod templates (ValidatePodSpec, ValidatePodTemplateSpec, ValidatePodCreate/Update).

``pod_spec`` is shared by Pods and by the templates inside Deployments and ReplicaSets; a few checks
apply only to real Pods (``is_pod``): image whitespace, hostPort == containerPort under hostNetwork,
ephemeral containers on create, projected service-account tokens without a service account.
On update a Pod's spec is immutable except container images, activeDeadlineSeconds (decrease only),
added tolerations and removed scheduling gates.
"""

from __future__ import annotations

from typing import Any

from kubelite.api.errors import duplicate, forbidden, invalid, not_supported, required

from . import formats
from .common import (
    Errs,
    as_dict,
    as_int,
    as_list,
    as_str,
    dns_label,
    dns_subdomain,
    is_int,
    label_name,
    labels,
    one_of,
    semantic_equal,
)
from .containers import PodContext, containers, init_containers
from .meta import name_is_dns_subdomain, object_meta, object_meta_update, template_meta
from .resources import resource_list
from .scheduling import affinity, dns_config, host_aliases, pod_security_context, tolerations, topology_spread
from .volumes import volumes

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]
_MAX_INT32 = 2**31 - 1
_UPDATABLE_FIELDS = ",".join([
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
])


def validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    spec = as_dict(obj.get("spec"))
    pod_spec(errs, spec, "spec", is_pod=True, pod_name=as_str(as_dict(obj.get("metadata")).get("name")))
    if old is None:
        if as_list(spec.get("ephemeralContainers")):
            errs.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        if as_str(spec.get("nodeName")) and as_list(spec.get("schedulingGates")):
            errs.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))
    else:
        object_meta_update(errs, obj, old)
        _pod_update(errs, spec, as_dict(old.get("spec")))
    return errs


def pod_template(errs: Errs, path: str, value: Any) -> None:
    """A PodTemplateSpec (``spec.template`` of workloads)."""
    template = as_dict(value)
    template_meta(errs, template, path)
    spec = as_dict(template.get("spec"))
    pod_spec(errs, spec, f"{path}.spec", is_pod=False, pod_name="")
    if as_list(spec.get("ephemeralContainers")):
        errs.append(forbidden(f"{path}.spec.ephemeralContainers", "ephemeral containers not allowed in pod template"))


def pod_spec(errs: Errs, spec: dict[str, Any], path: str, *, is_pod: bool, pod_name: str) -> None:
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        errs.append(required(f"{path}.terminationGracePeriodSeconds"))
    security = as_dict(spec.get("securityContext"))
    host_users = security.get("hostUsers") is not False
    ctx = PodContext(
        volumes=volumes(errs, f"{path}.volumes", spec.get("volumes")),
        grace_period=grace if is_int(grace) else None,
        restart_policy=as_str(spec.get("restartPolicy")),
        host_users=host_users,
        is_pod=is_pod,
        claims=_resource_claims(errs, f"{path}.resourceClaims", spec.get("resourceClaims")),
    )
    containers(errs, f"{path}.containers", spec.get("containers"), ctx)
    init_containers(errs, f"{path}.initContainers", spec.get("initContainers"), spec.get("containers"), ctx)
    _host_network_ports(errs, path, spec, is_pod)
    one_of(errs, f"{path}.restartPolicy", spec.get("restartPolicy"), RESTART_POLICIES)
    one_of(errs, f"{path}.dnsPolicy", spec.get("dnsPolicy"), DNS_POLICIES)
    labels(errs, f"{path}.nodeSelector", spec.get("nodeSelector"))
    pod_security_context(errs, f"{path}.securityContext", spec.get("securityContext"), spec)
    affinity(errs, f"{path}.affinity", spec.get("affinity"))
    dns_config(errs, f"{path}.dnsConfig", spec.get("dnsConfig"), as_str(spec.get("dnsPolicy")))
    for i, gate in enumerate(as_list(spec.get("readinessGates"))):
        label_name(errs, f"{path}.readinessGates[{i}].conditionType", as_dict(gate).get("conditionType"))
    _scheduling_gates(errs, f"{path}.schedulingGates", spec.get("schedulingGates"))
    topology_spread(errs, f"{path}.topologySpreadConstraints", spec.get("topologySpreadConstraints"))
    _host_users(errs, path, spec, host_users)
    _names(errs, path, spec)
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and not 1 <= deadline <= _MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, formats.inclusive_range_error(1, _MAX_INT32)))
    tolerations(errs, f"{path}.tolerations", spec.get("tolerations"))
    host_aliases(errs, f"{path}.hostAliases", spec.get("hostAliases"))
    if spec.get("preemptionPolicy") is not None:
        one_of(errs, f"{path}.preemptionPolicy", spec.get("preemptionPolicy"), PREEMPTION_POLICIES)
    if spec.get("overhead") is not None:
        resource_list(errs, f"{path}.overhead", spec.get("overhead"))
    _os(errs, f"{path}.os", spec.get("os"))
    if is_pod and not as_str(spec.get("serviceAccountName")):
        _no_token_without_service_account(errs, path, spec)


def _names(errs: Errs, path: str, spec: dict[str, Any]) -> None:
    """Optional references that must be valid object names when set."""
    for key in ("serviceAccountName", "nodeName", "priorityClassName"):
        value = as_str(spec.get(key))
        if value:
            dns_subdomain(errs, f"{path}.{key}", value)
    if spec.get("runtimeClassName") is not None:
        dns_subdomain(errs, f"{path}.runtimeClassName", as_str(spec.get("runtimeClassName")))
    for key in ("hostname", "subdomain"):
        value = as_str(spec.get(key))
        if value:
            dns_label(errs, f"{path}.{key}", value)


def _resource_claims(errs: Errs, path: str, value: Any) -> set[str]:
    names: set[str] = set()
    for i, claim in enumerate(as_dict(c) for c in as_list(value)):
        name = as_str(claim.get("name"))
        if not name:
            errs.append(required(f"{path}[{i}].name"))
        elif name in names:
            errs.append(duplicate(f"{path}[{i}].name", name))
        else:
            dns_label(errs, f"{path}[{i}].name", name)
            names.add(name)
    return names


def _host_network_ports(errs: Errs, path: str, spec: dict[str, Any], is_pod: bool) -> None:
    if spec.get("hostNetwork") is not True:
        return
    for i, ctr in enumerate(as_dict(c) for c in as_list(spec.get("containers"))):
        for j, port in enumerate(as_dict(p) for p in as_list(ctr.get("ports"))):
            host, container = as_int(port.get("hostPort")), as_int(port.get("containerPort"))
            # Templates may leave hostPort 0: it is defaulted when the Pod is created.
            if (is_pod or host != 0) and host != container:
                errs.append(invalid(f"{path}.containers[{i}].ports[{j}].hostPort", host,
                                    "must match `containerPort` when `hostNetwork` is true"))


def _scheduling_gates(errs: Errs, path: str, value: Any) -> None:
    seen: set[str] = set()
    for i, gate in enumerate(as_dict(g) for g in as_list(value)):
        name = as_str(gate.get("name"))
        label_name(errs, f"{path}[{i}]", name)
        if name in seen:
            errs.append(duplicate(f"{path}[{i}]", name))
        seen.add(name)


def _host_users(errs: Errs, path: str, spec: dict[str, Any], host_users: bool) -> None:
    if host_users:
        return
    for key, shown in (("hostNetwork", "hostNetwork"), ("hostPID", "HostPID"), ("hostIPC", "HostIPC")):
        if spec.get(key) is True:
            errs.append(forbidden(f"{path}.{shown}", "when `pod.Spec.HostUsers` is false"))


def _os(errs: Errs, path: str, value: Any) -> None:
    if value is None:
        return
    name = as_str(as_dict(value).get("name"))
    if not name:
        errs.append(required(f"{path}.name", "cannot be empty"))
    elif name not in ("linux", "windows"):
        errs.append(not_supported(path, name, ["linux", "windows"]))


def _no_token_without_service_account(errs: Errs, path: str, spec: dict[str, Any]) -> None:
    for vi, vol in enumerate(as_dict(v) for v in as_list(spec.get("volumes"))):
        projected = vol.get("projected")
        if projected is None:
            continue
        for si, source in enumerate(as_dict(s) for s in as_list(as_dict(projected).get("sources"))):
            if source.get("serviceAccountToken") is not None:
                errs.append(forbidden(f"{path}.volumes[{vi}].projected.sources[{si}].serviceAccountToken",
                                      "must not be specified when serviceAccountName is not set"))


def _pod_update(errs: Errs, spec: dict[str, Any], old: dict[str, Any]) -> None:
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(spec.get(key)), as_list(old.get(key))
        if len(new_list) != len(old_list):
            errs.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return
        for i, ctr in enumerate(as_dict(c) for c in new_list):
            image = as_str(ctr.get("image"))
            if not image:
                errs.append(required(f"spec.{key}[{i}].image"))
            if image != image.strip():
                errs.append(invalid(f"spec.{key}[{i}].image", image, "must not have leading or trailing whitespace"))
    deadline, old_deadline = spec.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if deadline is not None:
        value = as_int(deadline)
        if not 0 <= value <= _MAX_INT32:
            errs.append(invalid("spec.activeDeadlineSeconds", value, formats.inclusive_range_error(0, _MAX_INT32)))
            return
        if old_deadline is not None and as_int(old_deadline) < value:
            errs.append(invalid("spec.activeDeadlineSeconds", value, "must be less than or equal to previous value"))
            return
    elif old_deadline is not None:
        errs.append(invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"))
    _only_added_tolerations(errs, as_list(spec.get("tolerations")), as_list(old.get("tolerations")))
    _only_removed_gates(errs, as_list(spec.get("schedulingGates")), as_list(old.get("schedulingGates")))
    if semantic_equal(spec, old):
        return
    munged = dict(spec)
    for key in ("containers", "initContainers"):
        if key in spec:
            munged[key] = [{**as_dict(c), "image": as_dict(o).get("image")}
                           for c, o in zip(as_list(spec[key]), as_list(old.get(key)), strict=False)]
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations"):
        munged.pop(key, None)
        if key in old:
            munged[key] = old[key]
    old_grace = old.get("terminationGracePeriodSeconds")
    if is_int(old_grace) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if not semantic_equal(munged, old):
        changed = sorted(k for k in set(munged) | set(old) if not semantic_equal(munged.get(k), old.get(k)))
        errs.append(forbidden("spec", f"pod updates may not change fields other than {_UPDATABLE_FIELDS}\n"
                              f"  changed: {', '.join(changed)}"))


def _only_added_tolerations(errs: Errs, new: list[Any], old: list[Any]) -> None:
    # The new tolerations themselves were validated with the rest of the spec.
    def without_seconds(tol: Any) -> dict[str, Any]:
        return {k: v for k, v in as_dict(tol).items() if k != "tolerationSeconds"}

    remaining = [without_seconds(t) for t in new]
    for tol in old:
        if without_seconds(tol) not in remaining:
            errs.append(forbidden("spec.tolerations", "existing toleration can not be modified except its "
                                  "tolerationSeconds"))
            return


def _only_removed_gates(errs: Errs, new: list[Any], old: list[Any]) -> None:
    before = {as_str(as_dict(g).get("name")) for g in old}
    for i, gate in enumerate(as_dict(g) for g in new):
        name = as_str(gate.get("name"))
        if name not in before:
            errs.append(forbidden(f"spec.schedulingGates[{i}].name",
                                  f"only deletion is allowed, but found new scheduling gate '{name}'"))

