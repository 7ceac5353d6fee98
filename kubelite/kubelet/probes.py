"""Liveness, readiness and startup probes: one asyncio worker per (pod, container, probe), as the kubelet's
prober workers.

A worker probes its container every ``periodSeconds`` once ``initialDelaySeconds`` have passed since the
container started, each attempt bounded by ``timeoutSeconds``. A result only counts once it repeated
``failureThreshold`` (or ``successThreshold``) times in a row. Until then:
- readiness starts as "not ready" and a container without a readiness probe is ready once started;
- liveness starts as "alive";
- startup starts as "not started"; while a startup probe has not succeeded, the liveness and readiness
  probes of the container do not run; once it succeeded it stops probing.
Every failed attempt is recorded as an ``Unhealthy`` warning event (``Liveness probe failed: HTTP probe
failed with statuscode: 500``). A liveness or startup failure is handed to the pod worker, which kills and
restarts the container; that probe then holds until the container is replaced (a new container id starts
a new worker). Whenever a result changes, ``on_change(pod uid)`` wakes the pod's worker.

Kinds: ``httpGet`` (to the pod IP, or 127.0.0.1 for hostNetwork pods, unless ``host`` is given; named
ports resolve through the container's ports; success is a status in [200, 400)), ``tcpSocket`` (a connect),
``exec`` (the runtime's ExecSync; exit 0 is success, the output is the failure message). ``grpc`` probes
are not supported yet: they count as success and a warning event says so once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import aiohttp
import grpc

from kubelite.api import meta
from kubelite.client.events import EventRecorder
from kubelite.kubelet.podstate import PodRuntimeState
from kubelite.kubelet.runtime_client import RuntimeClient, RuntimeServiceError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
USER_AGENT = "kube-probe/1.37"
MAX_OUTPUT = 10 * 1024


class Result(Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


class Kind(Enum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @property
    def field(self) -> str:
        return f"{self.value[0].lower()}{self.value[1:]}Probe"


# --- one attempt ---------------------------------------------------------------------------------

def resolve_port(port: Any, container: Obj) -> int:
    """An IntOrString port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p.get("containerPort") or 0)
    raise ValueError(f"couldn't find port: {text} in {container.get('name')}")


def probe_host(action: Obj, pod_ip: str, host_network: bool) -> str:
    return str(action.get("host") or ("127.0.0.1" if host_network else pod_ip))


def _url(action: Obj, host: str, port: int) -> str:
    scheme = str(action.get("scheme") or "HTTP").lower()
    path = str(action.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}"


async def http_get(session: aiohttp.ClientSession, action: Obj, host: str, port: int,
                   timeout: float) -> tuple[Result, str]:
    url = _url(action, host, port)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in action.get("httpHeaders") or []:
        headers[str(h.get("name"))] = str(h.get("value", ""))
    try:
        async with session.get(url, headers=headers, allow_redirects=False, ssl=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            body = await resp.content.read(MAX_OUTPUT)
            if 200 <= resp.status < 400:
                return Result.SUCCESS, body.decode("utf-8", "replace")
            return Result.FAILURE, f"HTTP probe failed with statuscode: {resp.status}"
    except TimeoutError:
        return Result.FAILURE, (f'Get "{url}": context deadline exceeded '
                                "(Client.Timeout exceeded while awaiting headers)")
    except aiohttp.ClientConnectorError as e:
        return Result.FAILURE, f'Get "{url}": dial tcp {host}:{port}: connect: {_reason(e.os_error)}'
    except (aiohttp.ClientError, OSError) as e:
        return Result.FAILURE, f'Get "{url}": {e}'


def _reason(e: BaseException) -> str:
    """An OS error as Go words it (``connection refused``), not asyncio's ``Connect call failed (...)``."""
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno).lower()
    return str(e)


async def tcp_connect(host: str, port: int, timeout: float) -> tuple[Result, str]:
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return Result.FAILURE, f"dial tcp {host}:{port}: i/o timeout"
    except OSError as e:
        return Result.FAILURE, f"dial tcp {host}:{port}: connect: {_reason(e)}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Result.SUCCESS, ""


async def exec_command(runtime: RuntimeClient, container_id: str, command: list[str],
                       timeout: float) -> tuple[Result, str]:
    seconds = max(int(timeout), 1)
    try:
        async with asyncio.timeout(seconds + 5):
            resp = await runtime.exec_sync(container_id, command, timeout=seconds)
    except TimeoutError:
        return Result.FAILURE, f'command "{" ".join(command)}" timed out'
    except RuntimeServiceError as e:
        if e.code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return Result.FAILURE, f'command "{" ".join(command)}" timed out'
        return Result.UNKNOWN, e.message
    output = (bytes(resp.stdout) + bytes(resp.stderr))[:MAX_OUTPUT].decode("utf-8", "replace")
    if resp.exit_code == 0:
        return Result.SUCCESS, output
    return Result.FAILURE, output or f'command "{" ".join(command)}" exited with {resp.exit_code}'


@dataclass(frozen=True)
class Target:
    """The container instance a probe worker probes."""

    container_id: str
    started_at: float
    pod_ip: str
    host_network: bool


async def run_probe(probe: Obj, container: Obj, target: Target, *, runtime: RuntimeClient,
                    session: aiohttp.ClientSession) -> tuple[Result, str]:
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if probe.get("exec") is not None:
            command = [str(c) for c in probe["exec"].get("command") or []]
            return await exec_command(runtime, target.container_id, command, timeout)
        if probe.get("httpGet") is not None:
            action = probe["httpGet"]
            host = probe_host(action, target.pod_ip, target.host_network)
            return await http_get(session, action, host, resolve_port(action.get("port"), container), timeout)
        if probe.get("tcpSocket") is not None:
            action = probe["tcpSocket"]
            host = probe_host(action, target.pod_ip, target.host_network)
            return await tcp_connect(host, resolve_port(action.get("port"), container), timeout)
    except ValueError as e:
        return Result.FAILURE, str(e)
    return Result.UNKNOWN, "unsupported probe"


# --- workers -------------------------------------------------------------------------------------

@dataclass
class _Worker:
    uid: str
    container: Obj
    kind: Kind
    target: Target
    task: asyncio.Task[None] | None = None
    last: Result = Result.UNKNOWN
    run_length: int = 0
    on_hold: bool = False


@dataclass
class _PodProbes:
    pod: Obj
    workers: dict[tuple[str, Kind], _Worker] = field(default_factory=dict)


class ProbeManager:
    """Runs the probes of every running container; see the module docstring."""

    def __init__(self, runtime: RuntimeClient, recorder: EventRecorder, on_change: Callable[[str], None],
                 *, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._on_change = on_change
        self._clock = clock
        self._pods: dict[str, _PodProbes] = {}
        # Results by container id (kept after a worker stops, until the pod goes).
        self._readiness: dict[str, dict[str, bool]] = {}
        self._started: dict[str, dict[str, bool]] = {}
        self._failed: dict[str, dict[str, Kind]] = {}
        self._warned_grpc: set[tuple[str, str]] = set()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session probes (and lifecycle hooks) use."""
        if self._session is None or self._session.closed:
            # No pooling: every probe is a fresh connection, as the kubelet's prober disables keep-alive.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        return self._session

    # --- results (read by the pod worker) ----------------------------------------------------------

    def readiness(self, uid: str) -> dict[str, bool]:
        return dict(self._readiness.get(uid) or {})

    def started(self, uid: str) -> dict[str, bool]:
        return dict(self._started.get(uid) or {})

    def failed(self, uid: str, kind: Kind) -> set[str]:
        """Ids of containers whose liveness (or startup) probe failed."""
        return {cid for cid, k in (self._failed.get(uid) or {}).items() if k is kind}

    # --- lifecycle ---------------------------------------------------------------------------------

    def sync_pod(self, pod: Obj, state: PodRuntimeState, pod_ip: str) -> None:
        """Run a worker for each probe of each running container of ``pod``; stop the others."""
        uid = meta.uid(pod)
        spec = pod.get("spec") or {}
        entry = self._pods.setdefault(uid, _PodProbes(pod))
        entry.pod = pod
        wanted: set[tuple[str, Kind]] = set()
        for ctr in spec.get("containers") or []:
            name = str(ctr.get("name"))
            latest = state.latest(name)
            if latest is None or not latest.running:
                continue
            target = Target(latest.id, latest.started_at or latest.created_at, pod_ip, bool(spec.get("hostNetwork")))
            for kind in Kind:
                probe = ctr.get(kind.field)
                if not probe:
                    continue
                if probe.get("grpc") is not None:
                    self._grpc_unsupported(pod, uid, name, kind, latest.id)
                    continue
                key = (name, kind)
                wanted.add(key)
                worker = entry.workers.get(key)
                if worker is not None and worker.target.container_id == target.container_id:
                    worker.container = ctr
                    if worker.target.pod_ip != pod_ip:
                        worker.target = target
                    continue
                if worker is not None and worker.task is not None:
                    worker.task.cancel()
                worker = _Worker(uid, ctr, kind, target)
                if kind is Kind.READINESS:
                    self._readiness.setdefault(uid, {}).setdefault(target.container_id, False)
                worker.task = asyncio.create_task(self._run(worker), name=f"probe-{kind.value}-{uid}-{name}")
                entry.workers[key] = worker
        for key in [k for k in entry.workers if k not in wanted]:
            worker = entry.workers.pop(key)
            if worker.task is not None:
                worker.task.cancel()

    async def remove_pod(self, uid: str) -> None:
        entry = self._pods.pop(uid, None)
        for results in (self._readiness, self._started, self._failed):
            results.pop(uid, None)
        self._warned_grpc = {w for w in self._warned_grpc if w[0] != uid}
        if entry is None:
            return
        tasks = [w.task for w in entry.workers.values() if w.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def close(self) -> None:
        for uid in list(self._pods):
            await self.remove_pod(uid)
        if self._session is not None:
            await self._session.close()

    # --- the worker --------------------------------------------------------------------------------

    async def _run(self, w: _Worker) -> None:
        probe = w.container.get(w.kind.field) or {}
        delay = w.target.started_at + float(probe.get("initialDelaySeconds") or 0) - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            try:
                await self._probe_once(w)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe %s of %s/%s failed unexpectedly", w.kind.value, w.uid, w.container.get("name"))
            await asyncio.sleep(float((w.container.get(w.kind.field) or {}).get("periodSeconds") or 10))

    async def _probe_once(self, w: _Worker) -> None:
        cid = w.target.container_id
        started = self._started.get(w.uid, {}).get(cid, False)
        if w.on_hold:
            return
        if w.kind is Kind.STARTUP and started:
            return
        if w.kind is not Kind.STARTUP and w.container.get(Kind.STARTUP.field) and not started:
            return
        probe = w.container.get(w.kind.field) or {}
        result, output = await run_probe(probe, w.container, w.target, runtime=self._runtime, session=self.session())
        entry = self._pods.get(w.uid)
        if entry is None:
            return
        if result is Result.UNKNOWN:
            log.debug("%s probe of %s: %s", w.kind.value, cid, output)
            return
        if result is Result.FAILURE:
            self._recorder.warning(entry.pod, "Unhealthy", f"{w.kind.value} probe failed: {output.strip()}")
        if result is w.last:
            w.run_length += 1
        else:
            w.last, w.run_length = result, 1
        threshold = int(probe.get("failureThreshold" if result is Result.FAILURE else "successThreshold") or 1)
        if w.run_length < threshold:
            return
        self._set(w, result is Result.SUCCESS)
        if result is Result.FAILURE and w.kind is not Kind.READINESS:
            w.on_hold = True

    def _set(self, w: _Worker, ok: bool) -> None:
        cid = w.target.container_id
        changed = False
        if w.kind is Kind.READINESS:
            results = self._readiness.setdefault(w.uid, {})
            changed = results.get(cid) != ok
            results[cid] = ok
        elif w.kind is Kind.STARTUP and ok:
            results = self._started.setdefault(w.uid, {})
            changed = not results.get(cid)
            results[cid] = True
        elif not ok:
            failed = self._failed.setdefault(w.uid, {})
            changed = cid not in failed
            failed[cid] = w.kind
        if changed:
            self._on_change(w.uid)

    def _grpc_unsupported(self, pod: Obj, uid: str, name: str, kind: Kind, container_id: str) -> None:
        if kind is Kind.READINESS:
            self._readiness.setdefault(uid, {})[container_id] = True
        elif kind is Kind.STARTUP:
            self._started.setdefault(uid, {})[container_id] = True
        if (uid, name) not in self._warned_grpc:
            self._warned_grpc.add((uid, name))
            self._recorder.warning(pod, "ProbeNotSupported",
                                   f"gRPC probes of container {name} are not supported by kubelite; "
                                   "they are treated as succeeding")
