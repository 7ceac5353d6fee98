"""Containers of a pod spec: regular, init and ephemeral ones (pkg/apis/core/validation's
validateContainers, validateInitContainers and validateContainerCommon).

Every container gets: a DNS-label name unique across init and app containers, an image, ports, env and
envFrom, volume mounts that name a valid volume, pull and termination-message policies, resources and a
security context. App and restartable-init containers also get their probes and lifecycle handlers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelite.api.errors import duplicate, forbidden, invalid, not_supported, required

from . import formats, gofmt
from .common import (
    Errs,
    as_dict,
    as_int,
    as_list,
    as_str,
    dns_label,
    each_invalid,
    is_int,
    nonnegative,
    not_found,
    one_of,
    port_num_or_name,
)
from .resources import parse, resource_requirements
from .volumes import local_descending_path, object_field_selector

PROTOCOLS = ["SCTP", "TCP", "UDP"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
ENV_FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"]
RESOURCE_FIELD_PATHS = ["limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
                        "requests.ephemeral-storage", "requests.memory"]
_HUGEPAGE_FIELD_PREFIXES = ("limits.hugepages-", "requests.hugepages-")
_MEMORY_DIVISORS = frozenset({"1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei"})
_MEMORY_DIVISOR_LIST = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
_MOUNT_PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]
_RECURSIVE_READ_ONLY = ["Disabled", "Enabled", "IfPossible"]
_HANDLERS_PROBE = ("exec", "httpGet", "tcpSocket", "grpc")
_HANDLERS_LIFECYCLE = ("exec", "httpGet", "tcpSocket", "sleep")
_SCHEMES = ["HTTP", "HTTPS"]
_RESIZE_RESOURCES = ["cpu", "memory"]
_RESIZE_POLICIES = ["NotRequired", "RestartContainer"]
_SECCOMP_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
_APPARMOR_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
_PROC_MOUNTS = ["Default", "Unmasked"]


@dataclass
class PodContext:
    """What container validation needs to know about the enclosing pod spec."""

    volumes: dict[str, dict[str, Any]]
    grace_period: int | None
    restart_policy: str
    host_users: bool
    is_pod: bool
    claims: set[str] = field(default_factory=set)


def containers(errs: Errs, path: str, value: Any, ctx: PodContext) -> None:
    items = [as_dict(c) for c in as_list(value)]
    if not items:
        errs.append(required(path))
        return
    names: set[str] = set()
    for i, ctr in enumerate(items):
        at = f"{path}[{i}]"
        _common(errs, at, ctr, ctx)
        name = as_str(ctr.get("name"))
        if name in names:
            errs.append(duplicate(f"{at}.name", name))
        names.add(name)
        _probes_and_lifecycle(errs, at, ctr, ctx)
        if ctr.get("restartPolicy") is not None:
            errs.append(forbidden(f"{at}.restartPolicy", "may not be set for non-init containers"))
    _host_port_conflicts(errs, path, list(enumerate(items)))


def init_containers(errs: Errs, path: str, value: Any, app: Any, ctx: PodContext) -> None:
    names = {as_str(as_dict(c).get("name")) for c in as_list(app)}
    for i, ctr in enumerate(as_dict(c) for c in as_list(value)):
        at = f"{path}[{i}]"
        _common(errs, at, ctr, ctx)
        policy = ctr.get("restartPolicy")
        if policy is not None and policy != "Always":
            errs.append(not_supported(f"{at}.restartPolicy", policy, ["Always"]))
        name = as_str(ctr.get("name"))
        if name in names:
            errs.append(duplicate(f"{at}.name", name))
        elif name:
            names.add(name)
        _host_port_conflicts(errs, path, [(i, ctr)])
        if policy == "Always":
            _probes_and_lifecycle(errs, at, ctr, ctx)
            continue
        for key in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
            if ctr.get(key) is not None:
                errs.append(forbidden(f"{at}.{key}", "may not be set for init containers without restartPolicy=Always"))


def _common(errs: Errs, path: str, ctr: dict[str, Any], ctx: PodContext) -> None:
    name = as_str(ctr.get("name"))
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        dns_label(errs, f"{path}.name", name)
    image = as_str(ctr.get("image"))
    if not image:
        errs.append(required(f"{path}.image"))
    elif ctx.is_pod and image != image.strip():
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    one_of(errs, f"{path}.terminationMessagePolicy", ctr.get("terminationMessagePolicy"),
           TERMINATION_MESSAGE_POLICIES)
    mounts = {as_str(as_dict(m).get("name")): as_str(as_dict(m).get("mountPath"))
              for m in as_list(ctr.get("volumeMounts"))}
    devices = {as_str(as_dict(d).get("name")): as_str(as_dict(d).get("devicePath"))
               for d in as_list(ctr.get("volumeDevices"))}
    ports(errs, f"{path}.ports", ctr.get("ports"))
    env(errs, f"{path}.env", ctr.get("env"))
    env_from(errs, f"{path}.envFrom", ctr.get("envFrom"))
    volume_mounts(errs, f"{path}.volumeMounts", ctr.get("volumeMounts"), devices, ctx.volumes, ctr)
    volume_devices(errs, f"{path}.volumeDevices", ctr.get("volumeDevices"), mounts, ctx.volumes)
    one_of(errs, f"{path}.imagePullPolicy", ctr.get("imagePullPolicy"), PULL_POLICIES)
    resource_requirements(errs, f"{path}.resources", ctr.get("resources"), ctx.claims)
    _resize_policy(errs, f"{path}.resizePolicy", ctr.get("resizePolicy"), ctx.restart_policy)
    security_context(errs, f"{path}.securityContext", ctr.get("securityContext"), ctx.host_users)


def _probes_and_lifecycle(errs: Errs, path: str, ctr: dict[str, Any], ctx: PodContext) -> None:
    if ctr.get("lifecycle") is not None:
        lifecycle = as_dict(ctr.get("lifecycle"))
        for hook in ("postStart", "preStop"):
            if lifecycle.get(hook) is not None:
                _handler(errs, f"{path}.lifecycle.{hook}", as_dict(lifecycle[hook]), _HANDLERS_LIFECYCLE, ctx)
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        if ctr.get(key) is None:
            continue
        probe, at = as_dict(ctr.get(key)), f"{path}.{key}"
        _probe(errs, at, probe, ctx)
        if key != "readinessProbe" and probe.get("successThreshold", 1) != 1:
            errs.append(invalid(f"{at}.successThreshold", probe.get("successThreshold"), "must be 1"))
        if key == "readinessProbe" and probe.get("terminationGracePeriodSeconds") is not None:
            errs.append(invalid(f"{at}.terminationGracePeriodSeconds", probe.get("terminationGracePeriodSeconds"),
                                "must not be set for readinessProbes"))


def _probe(errs: Errs, path: str, probe: dict[str, Any], ctx: PodContext) -> None:
    _handler(errs, path, probe, _HANDLERS_PROBE, ctx)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        nonnegative(errs, f"{path}.{key}", probe.get(key))
    grace = probe.get("terminationGracePeriodSeconds")
    if is_int(grace) and grace <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))


def _handler(errs: Errs, path: str, handler: dict[str, Any], kinds: tuple[str, ...], ctx: PodContext) -> None:
    """Exactly one handler (exec, httpGet, tcpSocket, grpc or sleep) and its own fields."""
    count = 0
    for kind in kinds:
        if handler.get(kind) is None:
            continue
        if count:
            errs.append(forbidden(f"{path}.{kind}", "may not specify more than 1 handler type"))
            continue
        count += 1
        action, at = as_dict(handler[kind]), f"{path}.{kind}"
        if kind == "exec":
            if not as_list(action.get("command")):
                errs.append(required(f"{at}.command"))
        elif kind == "httpGet":
            _http_get(errs, at, action)
        elif kind == "tcpSocket":
            port_num_or_name(errs, f"{at}.port", action.get("port"))
        elif kind == "grpc":
            port_num_or_name(errs, f"{at}.port", as_int(action.get("port")))
        else:
            _sleep(errs, at, action, ctx.grace_period)
    if not count:
        errs.append(required(path, "must specify a handler type"))


def _http_get(errs: Errs, path: str, action: dict[str, Any]) -> None:
    if not as_str(action.get("path")):
        errs.append(required(f"{path}.path"))
    port_num_or_name(errs, f"{path}.port", action.get("port"))
    scheme = as_str(action.get("scheme"))
    if scheme not in _SCHEMES:
        errs.append(not_supported(f"{path}.scheme", scheme, _SCHEMES))
    for header in (as_dict(h) for h in as_list(action.get("httpHeaders"))):
        name = as_str(header.get("name"))
        each_invalid(errs, f"{path}.httpHeaders", name, formats.is_http_header_name(name))


def _sleep(errs: Errs, path: str, action: dict[str, Any], grace: int | None) -> None:
    seconds = as_int(action.get("seconds"))
    if grace is not None and (seconds < 0 or seconds > grace):
        errs.append(invalid(path, seconds,
                            f"must be non-negative and less than terminationGracePeriodSeconds ({grace})"))


def ports(errs: Errs, path: str, value: Any) -> None:
    names: set[str] = set()
    for i, port in enumerate(as_dict(p) for p in as_list(value)):
        at = f"{path}[{i}]"
        name = as_str(port.get("name"))
        if name:
            reasons = formats.is_valid_port_name(name)
            if reasons:
                each_invalid(errs, f"{at}.name", name, reasons)
            elif name in names:
                errs.append(duplicate(f"{at}.name", name))
            else:
                names.add(name)
        container_port = as_int(port.get("containerPort"))
        if container_port == 0:
            errs.append(required(f"{at}.containerPort"))
        else:
            each_invalid(errs, f"{at}.containerPort", container_port, formats.is_valid_port_num(container_port))
        host_port = as_int(port.get("hostPort"))
        if host_port != 0:
            each_invalid(errs, f"{at}.hostPort", host_port, formats.is_valid_port_num(host_port))
        one_of(errs, f"{at}.protocol", port.get("protocol"), PROTOCOLS)


def _host_port_conflicts(errs: Errs, path: str, items: list[tuple[int, dict[str, Any]]]) -> None:
    seen: set[str] = set()
    for ci, ctr in items:
        for pi, port in enumerate(as_dict(p) for p in as_list(ctr.get("ports"))):
            host_port = as_int(port.get("hostPort"))
            if host_port == 0:
                continue
            key = f"{as_str(port.get('protocol'))}/{as_str(port.get('hostIP'))}/{host_port}"
            if key in seen:
                errs.append(duplicate(f"{path}[{ci}].ports[{pi}].hostPort", key))
            seen.add(key)


def env(errs: Errs, path: str, value: Any) -> None:
    for i, var in enumerate(as_dict(v) for v in as_list(value)):
        at = f"{path}[{i}]"
        name = as_str(var.get("name"))
        if not name:
            errs.append(required(f"{at}.name"))
        else:
            each_invalid(errs, f"{at}.name", name, formats.is_env_var_name(name))
        if var.get("valueFrom") is not None:
            _value_from(errs, f"{at}.valueFrom", as_dict(var.get("valueFrom")), as_str(var.get("value")))


def _value_from(errs: Errs, path: str, source: dict[str, Any], value: str) -> None:
    count = 0
    if source.get("fieldRef") is not None:
        count += 1
        object_field_selector(errs, f"{path}.fieldRef", source.get("fieldRef"), ENV_FIELD_PATHS)
    if source.get("resourceFieldRef") is not None:
        count += 1
        resource_field_selector(errs, f"{path}.resourceFieldRef", source.get("resourceFieldRef"), volume=False)
    for kind in ("configMapKeyRef", "secretKeyRef"):
        if source.get(kind) is not None:
            count += 1
            _key_selector(errs, f"{path}.{kind}", as_dict(source.get(kind)))
    if count == 0:
        errs.append(invalid(path, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or "
                            "`secretKeyRef`"))
    elif value:
        errs.append(invalid(path, "", "may not be specified when `value` is not empty"))
    elif count > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))


def _key_selector(errs: Errs, path: str, selector: dict[str, Any]) -> None:
    name = as_str(selector.get("name"))
    each_invalid(errs, f"{path}.name", name, formats.is_dns1123_subdomain(name))
    key = as_str(selector.get("key"))
    if not key:
        errs.append(required(f"{path}.key"))
    else:
        each_invalid(errs, f"{path}.key", key, formats.is_config_map_key(key))


def resource_field_selector(errs: Errs, path: str, value: Any, *, volume: bool) -> None:
    selector = as_dict(value)
    resource = as_str(selector.get("resource"))
    if volume and not as_str(selector.get("containerName")):
        errs.append(required(f"{path}.containerName"))
    elif not resource:
        errs.append(required(f"{path}.resource"))
    elif resource not in RESOURCE_FIELD_PATHS and not resource.startswith(_HUGEPAGE_FIELD_PREFIXES):
        errs.append(not_supported(f"{path}.resource", resource, RESOURCE_FIELD_PATHS))
    if selector.get("divisor") is None:
        return
    divisor = parse(errs, f"{path}.divisor", selector["divisor"])
    if divisor is None or divisor.value == 0:
        return
    shown = str(divisor)
    if resource in ("limits.cpu", "requests.cpu"):
        if shown not in ("1m", "1"):
            errs.append(invalid(f"{path}.divisor", resource,
                                "only divisor's values 1m and 1 are supported with the cpu resource"))
        return
    kind = {"limits.memory": "memory", "requests.memory": "memory", "limits.ephemeral-storage":
            "local ephemeral storage", "requests.ephemeral-storage": "local ephemeral storage"}.get(resource)
    if resource.startswith(_HUGEPAGE_FIELD_PREFIXES):
        kind = "hugepages"
    if kind and shown not in _MEMORY_DIVISORS:
        errs.append(invalid(f"{path}.divisor", resource,
                            f"only divisor's values {_MEMORY_DIVISOR_LIST} are supported with the {kind} resource"))


def env_from(errs: Errs, path: str, value: Any) -> None:
    for i, source in enumerate(as_dict(s) for s in as_list(value)):
        at = f"{path}[{i}]"
        prefix = as_str(source.get("prefix"))
        if prefix:
            each_invalid(errs, f"{at}.prefix", prefix, formats.is_env_var_name(prefix))
        count = 0
        for kind in ("configMapRef", "secretRef"):
            if source.get(kind) is None:
                continue
            count += 1
            name = as_str(as_dict(source.get(kind)).get("name"))
            if not name:
                errs.append(required(f"{at}.{kind}.name"))
            else:
                # Checked as a name prefix, so a trailing dash is tolerated (as Kubernetes does).
                masked = name[:-2] + "a" if name.endswith("-") else name
                each_invalid(errs, f"{at}.{kind}.name", name, formats.is_dns1123_subdomain(masked))
        if count == 0:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif count > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a time"))


def volume_mounts(errs: Errs, path: str, value: Any, devices: dict[str, str], volumes: dict[str, dict[str, Any]],
                  ctr: dict[str, Any]) -> None:
    mount_points: set[str] = set()
    for i, mount in enumerate(as_dict(m) for m in as_list(value)):
        at = f"{path}[{i}]"
        name, mount_path = as_str(mount.get("name")), as_str(mount.get("mountPath"))
        if not name:
            errs.append(required(f"{at}.name"))
        if name not in volumes:
            errs.append(not_found(f"{at}.name", name))
        if not mount_path:
            errs.append(required(f"{at}.mountPath"))
        if mount_path in mount_points:
            errs.append(invalid(f"{at}.mountPath", mount_path, "must be unique"))
        mount_points.add(mount_path)
        if name in devices:
            errs.append(invalid(f"{at}.name", name, "must not already exist in volumeDevices"))
        if mount_path in devices.values():
            errs.append(invalid(f"{at}.mountPath", mount_path, "must not already exist as a path in volumeDevices"))
        sub_path, sub_path_expr = as_str(mount.get("subPath")), as_str(mount.get("subPathExpr"))
        if volumes.get(name, {}).get("image") is not None:
            if sub_path:
                errs.append(invalid(f"{at}.subPath", sub_path, "not allowed in image volume sources"))
            if sub_path_expr:
                errs.append(invalid(f"{at}.subPathExpr", sub_path_expr, "not allowed in image volume sources"))
        # Kubernetes reports sub-path problems on the list's path, without the index.
        if sub_path:
            local_descending_path(errs, f"{path}.subPath", sub_path)
        if sub_path_expr:
            if sub_path:
                errs.append(invalid(f"{at}.subPathExpr", sub_path_expr,
                                    "subPathExpr and subPath are mutually exclusive"))
            local_descending_path(errs, f"{path}.subPathExpr", sub_path_expr)
        _mount_propagation(errs, f"{path}.mountPropagation", mount.get("mountPropagation"), ctr)
        _recursive_read_only(errs, f"{path}.recursiveReadOnly", mount)


def _mount_propagation(errs: Errs, path: str, value: Any, ctr: dict[str, Any]) -> None:
    if value is None:
        return
    if value not in _MOUNT_PROPAGATIONS:
        errs.append(not_supported(path, value, _MOUNT_PROPAGATIONS))
    privileged = as_dict(ctr.get("securityContext")).get("privileged") is True
    if value == "Bidirectional" and not privileged:
        errs.append(forbidden(path, "Bidirectional mount propagation is available only to privileged containers"))


def _recursive_read_only(errs: Errs, path: str, mount: dict[str, Any]) -> None:
    mode = mount.get("recursiveReadOnly")
    if mode is None or mode == "Disabled":
        return
    if mode not in _RECURSIVE_READ_ONLY:
        errs.append(not_supported(path, mode, _RECURSIVE_READ_ONLY))
        return
    if mount.get("readOnly") is not True:
        errs.append(forbidden(path, "may only be specified when readOnly is true"))
    propagation = mount.get("mountPropagation")
    if propagation is not None and propagation != "None":
        errs.append(forbidden(path, "may only be specified when mountPropagation is None or not specified"))


def volume_devices(errs: Errs, path: str, value: Any, mounts: dict[str, str],
                   volumes: dict[str, dict[str, Any]]) -> None:
    paths: set[str] = set()
    names: set[str] = set()
    for i, device in enumerate(as_dict(d) for d in as_list(value)):
        at = f"{path}[{i}]"
        name, device_path = as_str(device.get("name")), as_str(device.get("devicePath"))
        vol = volumes.get(name)
        if not name:
            errs.append(required(f"{at}.name"))
        if name in names:
            errs.append(invalid(f"{at}.name", name, "must be unique"))
        if vol is not None and vol.get("persistentVolumeClaim") is None and vol.get("ephemeral") is None:
            errs.append(invalid(f"{at}.name", name,
                                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
        if vol is None:
            errs.append(not_found(f"{at}.name", name))
        if not device_path:
            errs.append(required(f"{at}.devicePath"))
        if device_path in paths:
            errs.append(invalid(f"{at}.devicePath", device_path, "must be unique"))
        if device_path and ".." in device_path.split("/"):
            errs.append(invalid(f"{at}.devicePath", device_path, "can not contain backsteps ('..')"))
        else:
            paths.add(device_path)
        if name in mounts:
            errs.append(invalid(f"{at}.name", name, "must not already exist in volumeMounts"))
        if device_path in mounts.values():
            errs.append(invalid(f"{at}.devicePath", device_path, "must not already exist as a path in volumeMounts"))
        if name:
            names.add(name)


def _resize_policy(errs: Errs, path: str, value: Any, restart_policy: str) -> None:
    seen: set[str] = set()
    for i, policy in enumerate(as_dict(p) for p in as_list(value)):
        resource, restart = as_str(policy.get("resourceName")), as_str(policy.get("restartPolicy"))
        if resource in seen:
            errs.append(duplicate(f"{path}[{i}]", resource))
        seen.add(resource)
        one_of(errs, path, resource, _RESIZE_RESOURCES)
        one_of(errs, path, restart, _RESIZE_POLICIES)
        if restart_policy == "Never" and restart != "NotRequired":
            errs.append(invalid(path, restart, "must be 'NotRequired' when `restartPolicy` is 'Never'"))


def security_context(errs: Errs, path: str, value: Any, host_users: bool) -> None:
    """A container's securityContext."""
    if value is None:
        return
    sc = as_dict(value)
    for key in ("runAsUser", "runAsGroup"):
        if is_int(sc.get(key)):
            each_invalid(errs, f"{path}.{key}", sc[key], formats.is_valid_user_id(sc[key]))
    proc_mount = sc.get("procMount")
    if proc_mount is not None:
        if proc_mount not in _PROC_MOUNTS:
            errs.append(not_supported(f"{path}.procMount", proc_mount, _PROC_MOUNTS))
        if host_users and proc_mount == "Unmasked":
            errs.append(invalid(f"{path}.procMount", proc_mount, "`hostUsers` must be false to use `Unmasked`"))
    seccomp_profile(errs, f"{path}.seccompProfile", sc.get("seccompProfile"))
    if sc.get("allowPrivilegeEscalation") is False:
        if sc.get("privileged") is True:
            errs.append(invalid(path, gofmt.raw(sc), "cannot set `allowPrivilegeEscalation` to false and "
                                "`privileged` to true"))
        if "CAP_SYS_ADMIN" in as_list(as_dict(sc.get("capabilities")).get("add")):
            errs.append(invalid(path, gofmt.raw(sc), "cannot set `allowPrivilegeEscalation` to false and "
                                "`capabilities.Add` CAP_SYS_ADMIN"))
    apparmor_profile(errs, f"{path}.appArmorProfile", sc.get("appArmorProfile"))


def seccomp_profile(errs: Errs, path: str, value: Any) -> None:
    if value is None:
        return
    profile = as_dict(value)
    kind = as_str(profile.get("type"))
    if not kind:
        errs.append(required(f"{path}.type", "type is required when seccompProfile is set"))
    elif kind not in _SECCOMP_TYPES:
        errs.append(not_supported(f"{path}.type", kind, _SECCOMP_TYPES))
    localhost = profile.get("localhostProfile")
    if kind == "Localhost":
        if localhost is None:
            errs.append(required(f"{path}.localhostProfile", "must be set when seccomp type is Localhost"))
        else:
            local_descending_path(errs, f"{path}.localhostProfile", as_str(localhost))
    elif localhost is not None:
        errs.append(invalid(f"{path}.localhostProfile", gofmt.raw(profile),
                            "can only be set when seccomp type is Localhost"))


def apparmor_profile(errs: Errs, path: str, value: Any) -> None:
    if value is None:
        return
    profile = as_dict(value)
    kind, localhost = as_str(profile.get("type")), profile.get("localhostProfile")
    if kind == "Localhost":
        text = as_str(localhost)
        if localhost is None or not text.strip():
            if localhost is not None and text != text.strip():
                errs.append(invalid(f"{path}.localhostProfile", text, "must not be padded with whitespace"))
            else:
                errs.append(required(f"{path}.localhostProfile", "must be set when AppArmor type is Localhost"))
        elif text != text.strip():
            errs.append(invalid(f"{path}.localhostProfile", text, "must not be padded with whitespace"))
    elif kind in ("RuntimeDefault", "Unconfined"):
        if localhost is not None:
            errs.append(invalid(f"{path}.localhostProfile", as_str(localhost),
                                "can only be set when AppArmor type is Localhost"))
    elif not kind:
        errs.append(required(f"{path}.type", "type is required when appArmorProfile is set"))
    else:
        errs.append(not_supported(f"{path}.type", kind, _APPARMOR_TYPES))
