"""A container's environment and the ``$(VAR)`` expansion of its env values, command and args.

Expansion follows Kubernetes' ``third_party/forked/golang/expansion``: ``$(NAME)`` is replaced by the value
of NAME when NAME is defined and left as written otherwise; ``$$`` is an escaped ``$`` (so ``$$(NAME)``
yields the literal ``$(NAME)``); a ``$`` followed by anything else, or an unterminated ``$(``, is kept.

`make_environment` resolves ``envFrom`` and ``env`` in the order Kubernetes does (``makeEnvironmentVariables``):
envFrom sources first (a later source overrides an earlier one, invalid names are skipped and reported),
then each ``env`` entry, whose ``value`` is expanded against the variables defined before it and the Service
variables (which are added last, for names not defined otherwise); ``valueFrom``
reads a ConfigMap or Secret key, a field of the pod, or a resource of a container. A missing ConfigMap,
Secret or key is an `EnvError` with Kubernetes' message (the container then waits with
CreateContainerConfigError), unless the reference is ``optional``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubelite.api import meta
from kubelite.api.quantity import parse_quantity

Obj = dict[str, Any]
Lookup = Callable[[str, str], Obj | None]  # (namespace, name) -> object or None when it does not exist

_OPERATOR = "$"
_OPENER = "("
_CLOSER = ")"


class EnvError(Exception):
    """A variable could not be resolved; the message is what Kubernetes reports."""


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Replace every ``$(NAME)`` in ``text`` by ``mapping(NAME)`` (see the module docstring)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == _OPERATOR and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_variable_name(text[cursor + 1:])
            out.append(mapping(read) if is_var else read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def _read_variable_name(rest: str) -> tuple[str, bool, int]:
    if rest[0] == _OPERATOR:
        return _OPERATOR, False, 1
    if rest[0] == _OPENER:
        for i in range(1, len(rest)):
            if rest[i] == _CLOSER:
                return rest[1:i], True, i + 1
        return _OPERATOR + _OPENER, False, 1
    return _OPERATOR + rest[0], False, 1


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    """A mapping that looks NAME up in each context in turn and keeps ``$(NAME)`` when none defines it."""
    def lookup(name: str) -> str:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"
    return lookup


def expand_command(container: Obj, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The container's command and args with ``$(VAR)`` expanded from its environment."""
    mapping = mapping_for(env)
    command = [expand(str(c), mapping) for c in container.get("command") or []]
    args = [expand(str(a), mapping) for a in container.get("args") or []]
    return command, args


def is_env_var_name(name: str) -> bool:
    """Kubernetes' relaxed rule (RelaxedEnvironmentVariableValidation): printable ASCII except '='."""
    return bool(name) and all(" " <= ch <= "~" and ch != "=" for ch in name)


@dataclass
class PodContext:
    """What ``fieldRef`` and ``resourceFieldRef`` may read besides the pod itself."""

    pod_ips: list[str] = field(default_factory=list)
    host_ips: list[str] = field(default_factory=list)
    # The node's allocatable resources: the value of a limit the container does not set.
    node_allocatable: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Environment:
    """The resolved variables, in the order they were defined, and the envFrom keys that were skipped."""

    variables: dict[str, str]
    invalid_keys: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (kind, ns/name, keys)

    def as_pairs(self) -> list[tuple[str, str]]:
        return list(self.variables.items())


def make_environment(pod: Obj, container: Obj, *, configmaps: Lookup, secrets: Lookup, context: PodContext,
                     service_env: Mapping[str, str] | None = None) -> Environment:
    """The container's variables; ``service_env`` (see `serviceenv`) is visible to ``$(VAR)`` expansion and
    comes last, for the names the container does not define itself."""
    namespace = meta.namespace(pod)
    services = service_env or {}
    env: dict[str, str] = {}
    result = Environment(env)
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if source.get("configMapRef") is not None:
            ref = source["configMapRef"]
            data = _configmap_data(configmaps, namespace, ref, "configmap")
            kind = "configMap"
        elif source.get("secretRef") is not None:
            ref = source["secretRef"]
            data = _secret_data(secrets, namespace, ref)
            kind = "secret"
        else:
            continue
        if data is None:
            continue
        invalid = []
        for key, value in data.items():
            name = prefix + key
            if not is_env_var_name(name):
                invalid.append(name)
                continue
            env[name] = value
        if invalid:
            result.invalid_keys.append((kind, f"{namespace}/{ref.get('name', '')}", sorted(invalid)))

    for var in container.get("env") or []:
        name = str(var.get("name") or "")
        value = var.get("value")
        if value:
            env[name] = expand(str(value), mapping_for(env, services))
            continue
        source = var.get("valueFrom")
        if not source:
            env[name] = ""
            continue
        resolved = _value_from(pod, container, source, configmaps=configmaps, secrets=secrets, context=context)
        if resolved is not None:
            env[name] = resolved
    for name, value in services.items():
        env.setdefault(name, value)
    return result


def _value_from(pod: Obj, container: Obj, source: Obj, *, configmaps: Lookup, secrets: Lookup,
                context: PodContext) -> str | None:
    """One ``valueFrom``; None when an optional reference is missing (the variable is then not set)."""
    namespace = meta.namespace(pod)
    if source.get("fieldRef") is not None:
        return field_value(pod, str(source["fieldRef"].get("fieldPath") or ""), context)
    if source.get("resourceFieldRef") is not None:
        return resource_value(pod, container, source["resourceFieldRef"], context)
    if source.get("configMapKeyRef") is not None:
        ref = source["configMapKeyRef"]
        optional = bool(ref.get("optional"))
        obj = configmaps(namespace, str(ref.get("name") or ""))
        if obj is None:
            if optional:
                return None
            raise EnvError(f'configmap "{ref.get("name", "")}" not found')
        data = obj.get("data") or {}
        key = str(ref.get("key") or "")
        if key not in data:
            if optional:
                return None
            raise EnvError(f"couldn't find key {key} in ConfigMap {namespace}/{ref.get('name', '')}")
        return str(data[key])
    if source.get("secretKeyRef") is not None:
        ref = source["secretKeyRef"]
        optional = bool(ref.get("optional"))
        obj = secrets(namespace, str(ref.get("name") or ""))
        if obj is None:
            if optional:
                return None
            raise EnvError(f'secret "{ref.get("name", "")}" not found')
        values = secret_values(obj)
        key = str(ref.get("key") or "")
        if key not in values:
            if optional:
                return None
            raise EnvError(f"couldn't find key {key} in Secret {namespace}/{ref.get('name', '')}")
        return values[key].decode("utf-8", "replace")
    return None


def _configmap_data(lookup: Lookup, namespace: str, ref: Obj, what: str) -> dict[str, str] | None:
    obj = lookup(namespace, str(ref.get("name") or ""))
    if obj is None:
        if ref.get("optional"):
            return None
        raise EnvError(f'{what} "{ref.get("name", "")}" not found')
    return {str(k): str(v) for k, v in (obj.get("data") or {}).items()}


def _secret_data(lookup: Lookup, namespace: str, ref: Obj) -> dict[str, str] | None:
    obj = lookup(namespace, str(ref.get("name") or ""))
    if obj is None:
        if ref.get("optional"):
            return None
        raise EnvError(f'secret "{ref.get("name", "")}" not found')
    return {k: v.decode("utf-8", "replace") for k, v in secret_values(obj).items()}


def secret_values(secret: Obj) -> dict[str, bytes]:
    """A Secret's keys and decoded values: ``data`` is base64 on the wire; ``stringData`` (write-only, but
    accepted here for objects that were never stored) is plain text and wins."""
    values: dict[str, bytes] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(value), validate=True)
        except ValueError:
            values[str(key)] = str(value).encode()
    for key, value in (secret.get("stringData") or {}).items():
        values[str(key)] = str(value).encode()
    return values


# --- the downward API ------------------------------------------------------------------------------

def field_value(pod: Obj, path: str, context: PodContext) -> str:
    """The value of a pod field as ``fieldRef`` exposes it (env and downwardAPI volumes)."""
    metadata = meta.metadata(pod)
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.name(pod),
        "metadata.namespace": meta.namespace(pod),
        "metadata.uid": meta.uid(pod),
        "spec.nodeName": str(spec.get("nodeName") or ""),
        "spec.serviceAccountName": str(spec.get("serviceAccountName") or ""),
        "status.podIP": context.pod_ips[0] if context.pod_ips else "",
        "status.podIPs": ",".join(context.pod_ips),
        "status.hostIP": context.host_ips[0] if context.host_ips else "",
        "status.hostIPs": ",".join(context.host_ips),
    }
    if path in simple:
        return simple[path]
    if path == "metadata.labels":
        return format_map(metadata.get("labels") or {})
    if path == "metadata.annotations":
        return format_map(metadata.get("annotations") or {})
    for prefix, source in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            key = path[len(prefix) + 2:-2]
            return str((metadata.get(source) or {}).get(key, ""))
    raise EnvError(f"unsupported fieldPath: {path}")


def format_map(values: Mapping[str, Any]) -> str:
    """``key="value"`` lines sorted by key, as Kubernetes' fieldpath.FormatMap (Go's %q quoting)."""
    return "\n".join(f"{k}={json.dumps(str(values[k]), ensure_ascii=False)}" for k in sorted(values))


def resource_value(pod: Obj, container: Obj, ref: Obj, context: PodContext) -> str:
    """``resourceFieldRef``: a container's limit or request, divided by ``divisor`` and rounded up.

    An unset limit is the node's allocatable amount, as the kubelet merges it in."""
    name = ref.get("containerName") or container.get("name")
    target = container
    if name != container.get("name"):
        spec = pod.get("spec") or {}
        found = [c for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])
                 if c.get("name") == name]
        if not found:
            raise EnvError(f"container {name} not found")
        target = found[0]
    resource = str(ref.get("resource") or "")
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or res not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported container resource : {resource}")
    resources = target.get("resources") or {}
    raw = (resources.get(kind) or {}).get(res)
    if raw is None and kind == "limits":
        raw = context.node_allocatable.get(res)
    if raw is None and kind == "requests":
        raw = (resources.get("limits") or {}).get(res)
    value = parse_quantity(raw) if raw is not None else Decimal(0)
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor == 0:
        divisor = Decimal(1)
    if res == "cpu":
        # Kubernetes divides milli-values, so a divisor below 1m counts as 1m.
        millis = math.ceil(value * 1000)
        div_millis = max(math.ceil(divisor * 1000), 1)
        return str(math.ceil(millis / div_millis))
    return str(math.ceil(value / divisor))
