"""Container lifecycle hooks (``postStart``, ``preStop``): the kubelet's handler runner.

A handler is ``exec`` (a command run in the container through the runtime's ExecSync), ``httpGet`` (a GET to
the pod's address, as probes do) or ``sleep`` (wait ``seconds``). `run_handler` returns None on success and
the reason otherwise; it never raises for a failing handler, and it gives up after ``timeout`` seconds (for
``preStop``, the pod's grace period).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from kubelite.kubelet.probes import Result, exec_command, http_get, probe_host, resolve_port
from kubelite.kubelet.runtime_client import RuntimeClient

Obj = dict[str, Any]


async def run_handler(handler: Obj, *, container: Obj, container_id: str, pod_ip: str, host_network: bool,
                      runtime: RuntimeClient, session: aiohttp.ClientSession, timeout: float) -> str | None:
    try:
        async with asyncio.timeout(max(timeout, 0.001)):
            return await _run(handler, container=container, container_id=container_id, pod_ip=pod_ip,
                              host_network=host_network, runtime=runtime, session=session, timeout=timeout)
    except TimeoutError:
        return f"the handler did not finish within {timeout:g}s"


async def _run(handler: Obj, *, container: Obj, container_id: str, pod_ip: str, host_network: bool,
               runtime: RuntimeClient, session: aiohttp.ClientSession, timeout: float) -> str | None:
    if handler.get("exec") is not None:
        command = [str(c) for c in handler["exec"].get("command") or []]
        result, output = await exec_command(runtime, container_id, command, timeout)
        if result is Result.SUCCESS:
            return None
        return f"command '{' '.join(command)}' failed: {output.strip()}"
    if handler.get("httpGet") is not None:
        action = handler["httpGet"]
        try:
            port = resolve_port(action.get("port"), container)
        except ValueError as e:
            return str(e)
        result, output = await http_get(session, action, probe_host(action, pod_ip, host_network), port, timeout)
        return None if result is Result.SUCCESS else output
    if handler.get("sleep") is not None:
        await asyncio.sleep(float(handler["sleep"].get("seconds") or 0))
        return None
    return "the handler has no action (exec, httpGet or sleep)"
