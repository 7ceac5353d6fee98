"""The environment variables Kubernetes gives every container for Services (``enableServiceLinks``).

For each Service with a cluster IP in the pod's namespace (when ``enableServiceLinks``, the default) and
always for the ``kubernetes`` Service of the ``default`` namespace, the Docker-link-style variables of
``pkg/kubelet/envvars``: ``<NAME>_SERVICE_HOST``, ``<NAME>_SERVICE_PORT`` (the first port),
``<NAME>_SERVICE_PORT_<PORTNAME>`` per named port, and ``<NAME>_PORT``, ``<NAME>_PORT_<port>_<PROTO>``
with ``_PROTO``, ``_PORT`` and ``_ADDR``, where NAME is the Service name upper-cased with '-' as '_'.
They are visible to ``$(VAR)`` expansion, and a variable the container defines itself wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]
MASTER_SERVICES = ("kubernetes",)


def _name(text: str) -> str:
    return text.replace("-", "_").upper()


def _ip_set(service: Obj) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def service_env(services: Iterable[Obj], namespace: str, enable_service_links: bool) -> dict[str, str]:
    chosen: dict[str, Obj] = {}
    for svc in services:
        metadata = svc.get("metadata") or {}
        name, ns = str(metadata.get("name") or ""), str(metadata.get("namespace") or "")
        if not _ip_set(svc):
            continue
        if ns == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(service_variables(chosen[name]))
    return env


def service_variables(service: Obj) -> dict[str, str]:
    spec = service.get("spec") or {}
    ports = list(spec.get("ports") or [])
    if not ports:
        return {}
    prefix = _name(str((service.get("metadata") or {}).get("name") or ""))
    ip = str(spec["clusterIP"])
    env = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for port in ports:
        if port.get("name"):
            env[f"{prefix}_SERVICE_PORT_{_name(str(port['name']))}"] = str(port.get("port"))
    for i, port in enumerate(ports):
        protocol = str(port.get("protocol") or "TCP")
        number = int(port.get("port") or 0)
        host_port = f"[{ip}]:{number}" if ":" in ip else f"{ip}:{number}"
        url = f"{protocol.lower()}://{host_port}"
        if i == 0:
            env[f"{prefix}_PORT"] = url
        port_prefix = f"{prefix}_PORT_{number}_{protocol.upper()}"
        env[port_prefix] = url
        env[f"{port_prefix}_PROTO"] = protocol.lower()
        env[f"{port_prefix}_PORT"] = str(number)
        env[f"{port_prefix}_ADDR"] = ip
    return env
