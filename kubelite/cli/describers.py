"""Kind-specific sections of ``kubelite describe``, after kubectl's describers for Pod, Deployment, ReplicaSet,
Service, Node and Namespace. Each `Describer` writes what follows the common header (`describing.header`);
it may read related objects (a Deployment's ReplicaSets, a Node's pods, a Service's Endpoints).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_kind
from kubelite.api.selectors import label_selector_from_dict
from kubelite.cli import reads
from kubelite.cli.describing import NONE, Writer, label_lines, scalar, timestamp
from kubelite.client.rest import Client, NotFound

Describer = Callable[[Client, dict[str, Any], Writer], Awaitable[None]]

POD = by_kind("v1", "Pod")
REPLICASET = by_kind("apps/v1", "ReplicaSet")
ENDPOINTS = by_kind("v1", "Endpoints")


# --- shared pieces ---------------------------------------------------------------------------------

def _selector_text(selector: Mapping[str, Any] | None) -> str:
    if not selector:
        return NONE
    text = str(label_selector_from_dict(dict(selector)))
    return text or NONE


def _map_lines(w: Writer, level: int, title: str, values: Mapping[str, Any] | None) -> None:
    if not values:
        w.line(level, f"{title}:", NONE)
        return
    w.line(level, f"{title}:")
    for k in sorted(values):
        w.line(level + 1, f"{k}:", scalar(values[k]))


def _conditions(w: Writer, conditions: list[dict[str, Any]] | None, columns: tuple[str, ...]) -> None:
    if not conditions:
        return
    w.line(0, "Conditions:")
    w.line(1, *[c[:1].upper() + c[1:] for c in columns])
    w.line(1, *["-" * len(c) for c in columns])
    for cond in conditions:
        w.line(1, *[timestamp(cond.get(c)) if c.endswith("Time") else scalar(cond.get(c)) for c in columns])


def _ports(ports: list[dict[str, Any]], key: str) -> str:
    """kubectl's ``80/TCP (http), 443/TCP``."""
    return ", ".join(f"{p.get(key, 0)}/{p.get('protocol') or 'TCP'}" + (f" ({p['name']})" if p.get("name") else "")
                     for p in ports)


def _state(w: Writer, level: int, title: str, state: Mapping[str, Any] | None) -> None:
    if not state:
        w.line(level, f"{title}:", "Waiting")
        return
    name, detail = next(iter(state.items()))
    w.line(level, f"{title}:", name[:1].upper() + name[1:])
    detail = detail or {}
    for field, label in (("reason", "Reason"), ("message", "Message"), ("exitCode", "Exit Code"),
                         ("startedAt", "Started"), ("finishedAt", "Finished")):
        if field in detail:
            value = detail[field]
            w.line(level + 1, f"{label}:", timestamp(value) if field.endswith("At") else scalar(value))


def _container(w: Writer, level: int, c: dict[str, Any], status: dict[str, Any] | None,
               prefix: str = "") -> None:
    """One container: its name at ``level`` (after ``prefix``, kubectl's extra space in pod templates),
    its fields one level deeper."""
    w.line(level, f"{prefix}{c.get('name', '')}:")
    inner = level + 1
    if status is not None:
        w.line(inner, "Container ID:", status.get("containerID") or "")
    w.line(inner, "Image:", c.get("image") or "")
    if status is not None:
        w.line(inner, "Image ID:", status.get("imageID") or "")
    ports = c.get("ports") or []
    plural = "s" if len(ports) > 1 else ""
    w.line(inner, f"Port{plural}:", _ports(ports, "containerPort") or NONE)
    w.line(inner, f"Host Port{plural}:", _ports(ports, "hostPort") or NONE)
    for field, title in (("command", "Command"), ("args", "Args")):
        if c.get(field):
            w.line(inner, f"{title}:")
            for part in c[field]:
                w.line(inner + 1, part)
    if status is not None:
        _state(w, inner, "State", status.get("state"))
        if status.get("lastState"):
            _state(w, inner, "Last State", status.get("lastState"))
        w.line(inner, "Ready:", "True" if status.get("ready") else "False")
        w.line(inner, "Restart Count:", status.get("restartCount", 0))
    resources = c.get("resources") or {}
    for field, title in (("limits", "Limits"), ("requests", "Requests")):
        if resources.get(field):
            _map_lines(w, inner, title, resources[field])
    env = c.get("env") or []
    if not env:
        w.line(inner, "Environment:", NONE)
    else:
        w.line(inner, "Environment:")
        for e in env:
            value = e.get("value") if "value" in e else _env_source(e.get("valueFrom") or {})
            w.line(inner + 1, f"{e.get('name', '')}:", value)
    mounts = c.get("volumeMounts") or []
    if not mounts:
        w.line(inner, "Mounts:", NONE)
    else:
        w.line(inner, "Mounts:")
        for m in mounts:
            mode = "ro" if m.get("readOnly") else "rw"
            w.line(inner + 1, f"{m.get('mountPath', '')} from {m.get('name', '')} ({mode})")


def _env_source(source: Mapping[str, Any]) -> str:
    for field, label in (("configMapKeyRef", "config map"), ("secretKeyRef", "secret")):
        ref = source.get(field)
        if isinstance(ref, dict):
            return f"<set to the key '{ref.get('key', '')}' in {label} '{ref.get('name', '')}'>"
    ref = source.get("fieldRef")
    if isinstance(ref, dict):
        return f"({ref.get('apiVersion', 'v1')}:{ref.get('fieldPath', '')})"
    return "<unknown source>"


_VOLUME_TYPES = {
    "emptyDir": "EmptyDir (a temporary directory that shares a pod's lifetime)",
    "configMap": "ConfigMap (a volume populated by a ConfigMap)",
    "secret": "Secret (a volume populated by a Secret)",
    "hostPath": "HostPath (bare host directory volume)",
    "persistentVolumeClaim": "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)",
}


def _volumes(w: Writer, level: int, volumes: list[dict[str, Any]] | None) -> None:
    if not volumes:
        w.line(level, "Volumes:", NONE)
        return
    w.line(level, "Volumes:")
    for v in volumes:
        w.line(level + 1, f"{v.get('name', '')}:")
        source = next(((k, s) for k, s in v.items() if k != "name"), None)
        if source is None:
            continue
        kind, body = source
        w.line(level + 2, "Type:", _VOLUME_TYPES.get(kind, kind[:1].upper() + kind[1:]))
        if kind == "emptyDir":
            w.line(level + 2, "Medium:", (body or {}).get("medium", ""))
            w.line(level + 2, "SizeLimit:", (body or {}).get("sizeLimit", "<unset>"))
            continue
        for k in sorted(body or {}):
            if not isinstance(body[k], (dict, list)):
                w.line(level + 2, f"{k[:1].upper() + k[1:]}:", scalar(body[k]))


def _pod_template(w: Writer, template: Mapping[str, Any] | None) -> None:
    template = template or {}
    spec = template.get("spec") or {}
    w.line(0, "Pod Template:")
    label_lines(w, 1, "Labels", (template.get("metadata") or {}).get("labels"))
    if spec.get("serviceAccountName"):
        w.line(1, "Service Account:", spec["serviceAccountName"])
    for field, title in (("initContainers", "Init Containers"), ("containers", "Containers")):
        if spec.get(field):
            w.line(1, f"{title}:")
            for c in spec[field]:
                _container(w, 1, c, None, prefix=" ")
    _volumes(w, 1, spec.get("volumes"))
    _scheduling(w, 1, spec)


def _controlled_by(w: Writer, obj: dict[str, Any]) -> None:
    ref = meta.controller_ref(obj)
    if ref:
        w.line(0, "Controlled By:", f"{ref.get('kind', '')}/{ref.get('name', '')}")


# --- describers ------------------------------------------------------------------------------------

async def pod(client: Client, obj: dict[str, Any], w: Writer) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    w.line(0, "Priority:", spec.get("priority", 0))
    if spec.get("serviceAccountName"):
        w.line(0, "Service Account:", spec["serviceAccountName"])
    node = spec.get("nodeName")
    w.line(0, "Node:", f"{node}/{status.get('hostIP', '')}" if node and status.get("hostIP") else node or NONE)
    if status.get("startTime"):
        w.line(0, "Start Time:", timestamp(status["startTime"]))
    phase = str(status.get("phase") or "")
    if meta.deletion_timestamp(obj):
        phase = f"Terminating (since {timestamp(meta.deletion_timestamp(obj))})"
    w.line(0, "Status:", phase)
    for field, title in (("reason", "Reason"), ("message", "Message")):
        if status.get(field):
            w.line(0, f"{title}:", status[field])
    w.line(0, "IP:", status.get("podIP") or "")
    ips = status.get("podIPs") or []
    if ips:
        w.line(0, "IPs:")
        for ip in ips:
            w.line(1, "IP:", ip.get("ip", ""))
    else:
        w.line(0, "IPs:", NONE)
    _controlled_by(w, obj)
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    init_statuses = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
    for field, title, known in (("initContainers", "Init Containers", init_statuses),
                                ("containers", "Containers", statuses)):
        if spec.get(field):
            w.line(0, f"{title}:")
            for c in spec[field]:
                _container(w, 1, c, known.get(c.get("name")))
    _conditions(w, status.get("conditions"), ("type", "status"))
    _volumes(w, 0, spec.get("volumes"))
    w.line(0, "QoS Class:", status.get("qosClass") or "BestEffort")
    _scheduling(w, 0, spec)


def _scheduling(w: Writer, level: int, spec: Mapping[str, Any]) -> None:
    selector = spec.get("nodeSelector") or {}
    w.line(level, "Node-Selectors:", ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or NONE)
    tolerations = spec.get("tolerations") or []
    w.line(level, "Tolerations:", ", ".join(_toleration(t) for t in tolerations) or NONE)


def _toleration(t: Mapping[str, Any]) -> str:
    text = str(t.get("key") or "")
    if t.get("value"):
        text += f"={t['value']}"
    if t.get("effect"):
        text += f":{t['effect']}"
    if t.get("operator") == "Exists" and not t.get("key"):
        text = f":{t['effect']}" if t.get("effect") else "op=Exists"
    if t.get("tolerationSeconds") is not None:
        text += f" for {t['tolerationSeconds']}s"
    return text


async def deployment(client: Client, obj: dict[str, Any], w: Writer) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    w.line(0, "Selector:", _selector_text(spec.get("selector")))
    desired = spec.get("replicas", 1)
    w.line(0, "Replicas:", f"{desired} desired | {status.get('updatedReplicas', 0)} updated | "
                           f"{status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} available | "
                           f"{status.get('unavailableReplicas', 0)} unavailable")
    strategy = spec.get("strategy") or {}
    w.line(0, "StrategyType:", strategy.get("type") or "RollingUpdate")
    w.line(0, "MinReadySeconds:", spec.get("minReadySeconds", 0))
    rolling = strategy.get("rollingUpdate")
    if rolling:
        w.line(0, "RollingUpdateStrategy:", f"{rolling.get('maxUnavailable', '25%')} max unavailable, "
                                            f"{rolling.get('maxSurge', '25%')} max surge")
    _pod_template(w, spec.get("template"))
    _conditions(w, status.get("conditions"), ("type", "status", "reason"))
    old, new = await _replicasets_of(client, obj)
    if old or new:
        w.line(0, "OldReplicaSets:", ", ".join(_rs_summary(rs) for rs in old) or NONE)
        w.line(0, "NewReplicaSet:", _rs_summary(new) if new else NONE)


async def _replicasets_of(client: Client, deploy: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                                          dict[str, Any] | None]:
    """The ReplicaSets the Deployment controls: the one matching its template (new) and the others."""
    selector = _selector_text((deploy.get("spec") or {}).get("selector"))
    if selector == NONE:
        return [], None
    items, _ = await reads.list_objects(client, REPLICASET, meta.namespace(deploy), label_selector=selector)
    owned = [rs for rs in items if (meta.controller_ref(rs) or {}).get("uid") == meta.uid(deploy)]
    revision = meta.annotations(deploy).get("deployment.kubernetes.io/revision")
    new = next((rs for rs in owned
                if revision and meta.annotations(rs).get("deployment.kubernetes.io/revision") == revision), None)
    return [rs for rs in owned if rs is not new and (rs.get("spec") or {}).get("replicas")], new


def _rs_summary(rs: dict[str, Any]) -> str:
    return f"{meta.name(rs)} ({(rs.get('status') or {}).get('replicas', 0)}/" \
           f"{(rs.get('spec') or {}).get('replicas', 0)} replicas created)"


async def replicaset(client: Client, obj: dict[str, Any], w: Writer) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = _selector_text(spec.get("selector"))
    w.line(0, "Selector:", selector)
    _controlled_by(w, obj)
    w.line(0, "Replicas:", f"{status.get('replicas', 0)} current / {spec.get('replicas', 1)} desired")
    phases = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
    if selector != NONE:
        pods, _ = await reads.list_objects(client, POD, meta.namespace(obj), label_selector=selector)
        for p in pods:
            if (meta.controller_ref(p) or {}).get("uid") == meta.uid(obj):
                phase = (p.get("status") or {}).get("phase") or "Pending"
                phases[phase] = phases.get(phase, 0) + 1
    w.line(0, "Pods Status:", f"{phases['Running']} Running / {phases['Pending']} Waiting / "
                              f"{phases['Succeeded']} Succeeded / {phases['Failed']} Failed")
    _pod_template(w, spec.get("template"))
    _conditions(w, status.get("conditions"), ("type", "status", "reason"))


async def service(client: Client, obj: dict[str, Any], w: Writer) -> None:
    spec = obj.get("spec") or {}
    selector = spec.get("selector") or {}
    w.line(0, "Selector:", ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or NONE)
    w.line(0, "Type:", spec.get("type") or "ClusterIP")
    if spec.get("ipFamilyPolicy"):
        w.line(0, "IP Family Policy:", spec["ipFamilyPolicy"])
    if spec.get("ipFamilies"):
        w.line(0, "IP Families:", ",".join(spec["ipFamilies"]))
    w.line(0, "IP:", spec.get("clusterIP") or "")
    w.line(0, "IPs:", ",".join(spec.get("clusterIPs") or []) or NONE)
    endpoints = await _endpoints(client, obj)
    for port in spec.get("ports") or []:
        proto = port.get("protocol") or "TCP"
        name = port.get("name") or "<unset>"
        w.line(0, "Port:", f"{name}  {port.get('port')}/{proto}")
        target = port.get("targetPort", port.get("port"))
        w.line(0, "TargetPort:", f"{target}/{proto}")
        if port.get("nodePort"):
            w.line(0, "NodePort:", f"{name}  {port['nodePort']}/{proto}")
        w.line(0, "Endpoints:", _endpoint_text(endpoints, port.get("name") or "") or NONE)
    w.line(0, "Session Affinity:", spec.get("sessionAffinity") or "None")
    for field, title in (("externalTrafficPolicy", "External Traffic Policy"),
                         ("internalTrafficPolicy", "Internal Traffic Policy")):
        if spec.get(field):
            w.line(0, f"{title}:", spec[field])


async def _endpoints(client: Client, svc: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return await client.get(ENDPOINTS, meta.name(svc), meta.namespace(svc))
    except NotFound:
        return None


def _endpoint_text(endpoints: dict[str, Any] | None, port_name: str) -> str:
    addresses: list[str] = []
    for subset in (endpoints or {}).get("subsets") or []:
        for p in subset.get("ports") or []:
            if (p.get("name") or "") == port_name:
                addresses.extend(f"{a.get('ip')}:{p.get('port')}" for a in subset.get("addresses") or [])
    return ",".join(addresses) if addresses else ""


async def node(client: Client, obj: dict[str, Any], w: Writer) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    roles = sorted(k.split("/", 1)[1] for k in meta.labels(obj) if k.startswith("node-role.kubernetes.io/"))
    w.line(0, "Roles:", ",".join(roles) or NONE)
    taints = spec.get("taints") or []
    w.line(0, "Taints:", ", ".join(f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"
                                   for t in taints) or NONE)
    w.line(0, "Unschedulable:", "true" if spec.get("unschedulable") else "false")
    _conditions(w, status.get("conditions"),
                ("type", "status", "lastHeartbeatTime", "lastTransitionTime", "reason", "message"))
    w.line(0, "Addresses:")
    for a in status.get("addresses") or []:
        w.line(1, f"{a.get('type', '')}:", a.get("address", ""))
    _map_lines(w, 0, "Capacity", status.get("capacity"))
    _map_lines(w, 0, "Allocatable", status.get("allocatable"))
    info = status.get("nodeInfo") or {}
    if info:
        w.line(0, "System Info:")
        for key in sorted(info):
            w.line(1, f"{key[:1].upper() + key[1:]}:", scalar(info[key]))
    w.line(0, "PodCIDR:", spec.get("podCIDR") or "")
    w.line(0, "PodCIDRs:", ",".join(spec.get("podCIDRs") or []))
    pods, _ = await reads.list_objects(client, POD, None, field_selector=f"spec.nodeName={meta.name(obj)}")
    running = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    w.line(0, "Non-terminated Pods:", f"({len(running)} in total)")
    if running:
        w.line(1, "Namespace", "Name")
        w.line(1, "---------", "----")
        for p in running:
            w.line(1, meta.namespace(p), meta.name(p))


async def namespace(client: Client, obj: dict[str, Any], w: Writer) -> None:
    w.line(0, "Status:", (obj.get("status") or {}).get("phase") or "Active")


async def configmap(client: Client, obj: dict[str, Any], w: Writer) -> None:
    """Each key, a ``----`` rule and the value as is (kubectl's ConfigMap describer)."""
    w.line(0, "")
    w.line(0, "Data")
    w.line(0, "====")
    for key, value in sorted((obj.get("data") or {}).items()):
        w.line(0, f"{key}:")
        w.line(0, "----")
        w.line(0, f"{value}\n")  # the value verbatim, then a blank line (kubectl's "%s\n\n")
    w.line(0, "")
    w.line(0, "BinaryData")
    w.line(0, "====")
    for key, value in sorted((obj.get("binaryData") or {}).items()):
        w.line(0, f"{key}:", f"{len(value) * 3 // 4} bytes")
    w.line(0, "")


async def secret(client: Client, obj: dict[str, Any], w: Writer) -> None:
    """The type and each key's size, never the values (kubectl's Secret describer)."""
    w.line(0, "")
    w.line(0, "Type:", obj.get("type") or "Opaque")
    w.line(0, "")
    w.line(0, "Data")
    w.line(0, "====")
    for key, value in sorted((obj.get("data") or {}).items()):
        w.line(0, f"{key}:", f"{len(base64.b64decode(value or ''))} bytes")


async def ingress(client: Client, obj: dict[str, Any], w: Writer) -> None:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    lb = (status.get("loadBalancer") or {}).get("ingress") or []
    w.line(0, "Address:", ",".join(i.get("ip") or i.get("hostname") or "" for i in lb))
    w.line(0, "Ingress Class:", spec.get("ingressClassName") or NONE)
    default = spec.get("defaultBackend")
    w.line(0, "Default backend:", _backend(default) if default else "<default>")
    for tls in spec.get("tls") or []:
        w.line(0, "TLS:")
        w.line(1, f"{tls.get('secretName', '')} terminates {','.join(tls.get('hosts') or [])}")
    rules = spec.get("rules") or []
    if rules:
        w.line(0, "Rules:")
        w.line(1, "Host", "Path", "Backends")
        w.line(1, "----", "----", "--------")
        for rule in rules:
            w.line(1, rule.get("host") or "*", "")
            for path in (rule.get("http") or {}).get("paths") or []:
                w.line(1, "", path.get("path") or "/", _backend(path.get("backend") or {}))


def _backend(backend: Mapping[str, Any]) -> str:
    svc = backend.get("service") or {}
    port = svc.get("port") or {}
    return f"{svc.get('name', '')}:{port.get('number') or port.get('name') or ''}"


DESCRIBERS: dict[tuple[str, str], Describer] = {
    ("v1", "Pod"): pod,
    ("apps/v1", "Deployment"): deployment,
    ("apps/v1", "ReplicaSet"): replicaset,
    ("v1", "Service"): service,
    ("v1", "Node"): node,
    ("v1", "Namespace"): namespace,
    ("v1", "ConfigMap"): configmap,
    ("v1", "Secret"): secret,
    ("networking.k8s.io/v1", "Ingress"): ingress,
}
