"""A pod's status from what the runtime says about it, computed as the kubelet's ``generateAPIPodStatus``.

`pod_status(pod, inputs)` is pure. It returns the whole ``status`` the kubelet owns:

- ``containerStatuses`` (sorted by name) and ``initContainerStatuses`` (in spec order): the newest instance of
  each container gives ``state`` (``running.startedAt``; ``terminated`` with exitCode, reason — OOMKilled,
  Completed, Error, ... —, message, startedAt, finishedAt, containerID; ``waiting`` before the first start),
  the one before it gives ``lastState``; a container the kubelet will restart but cannot yet shows the
  reason of its last failed start (CrashLoopBackOff, ErrImagePull, ImagePullBackOff,
  CreateContainerConfigError ...) as ``waiting``, its previous run moving to ``lastState``. A container
  without any instance waits with ContainerCreating (PodInitializing while there are init containers).
  ``ready``: running, started, and its readiness probe succeeding (no probe: ready once started); an init
  container is ready once it exited 0. ``started``: running and its startup probe succeeded (or it has none).
  ``containerID`` is ``kubelite://<id>``; ``imageID`` is the runtime's image reference;
- ``phase`` (getPhase): Pending while an init container has not succeeded or a container waits; Running once
  all containers started and one runs; Succeeded/Failed when all stopped and none restarts (Failed at once
  when an init container fails under restartPolicy Never). A terminal phase is never left again;
- the kubelet's conditions, in Kubernetes' order: PodReadyToStartContainers (a ready sandbox exists),
  Initialized, Ready, ContainersReady, PodScheduled; conditions owned by others are kept. A condition keeps
  its ``lastTransitionTime`` while its status does not change;
- ``podIP``/``podIPs`` from the newest ready sandbox (the node's for hostNetwork pods; the last known ones are
  kept once the sandbox is gone), ``hostIP``/``hostIPs``, ``startTime`` (set once), ``qosClass``.

`StatusWriter` writes a status through ``pods/status`` only when it differs from what the API server has.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelite.api import meta, qos
from kubelite.api.registry import by_resource
from kubelite.client.rest import ApiException, Client, TransportError, is_not_found
from kubelite.kubelet.podstate import ContainerInfo, PodRuntimeState, State

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = by_resource("", "v1", "pods")

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
TERMINAL_PHASES = (SUCCEEDED, FAILED)

CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CONTAINER_ID_SCHEME = "kubelite://"

READY_TO_START = "PodReadyToStartContainers"
INITIALIZED = "Initialized"
READY = "Ready"
CONTAINERS_READY = "ContainersReady"
SCHEDULED = "PodScheduled"
KUBELET_CONDITIONS = (READY_TO_START, INITIALIZED, READY, CONTAINERS_READY, SCHEDULED)


def rfc3339(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return meta.format_rfc3339(datetime.fromtimestamp(seconds, UTC))


def restart_policy(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def should_restart(container: Obj, pod: Obj, state: PodRuntimeState) -> bool:
    """ShouldContainerBeRestarted: whether the kubelet will (re)start this container."""
    if meta.is_being_deleted(pod):
        return False
    latest = state.latest(str(container.get("name")))
    if latest is None:
        return True
    if latest.running:
        return False
    if latest.state in (State.UNKNOWN, State.CREATED):
        return True
    policy = restart_policy(pod)
    if policy == "Never":
        return False
    return not (policy == "OnFailure" and latest.exit_code == 0)


@dataclass
class StatusInputs:
    """What besides the pod and the runtime the status depends on."""

    state: PodRuntimeState
    # Container name -> (reason, message) of its last failed start (the kubelet's reason cache).
    reasons: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Container id -> readiness probe result; a container with a readiness probe is unready until it succeeds.
    readiness: Mapping[str, bool] = field(default_factory=dict)
    # Container id -> startup probe succeeded.
    started: Mapping[str, bool] = field(default_factory=dict)
    host_ips: list[str] = field(default_factory=list)
    # The pod's containers are stopped for good (deleted, or done): the phase becomes terminal.
    pod_is_terminal: bool = False
    now: str = field(default_factory=meta.now_rfc3339)


def pod_status(pod: Obj, inputs: StatusInputs) -> Obj:
    spec = pod.get("spec") or {}
    old: Obj = pod.get("status") or {}
    state = inputs.state
    init_specs = list(spec.get("initContainers") or [])
    has_init = bool(init_specs)
    status: Obj = {}
    status["containerStatuses"] = sorted(
        _container_statuses(pod, list(spec.get("containers") or []), inputs, old.get("containerStatuses") or [],
                            has_init=has_init, is_init=False), key=lambda s: str(s["name"]))
    if has_init:
        status["initContainerStatuses"] = _container_statuses(
            pod, init_specs, inputs, old.get("initContainerStatuses") or [], has_init=True, is_init=True)

    phase = get_phase(pod, status["containerStatuses"], status.get("initContainerStatuses") or [],
                      inputs.pod_is_terminal)
    if phase not in TERMINAL_PHASES and old.get("phase") in TERMINAL_PHASES:
        phase = old["phase"]
    status["phase"] = phase
    if phase == old.get("phase"):
        for key in ("reason", "message"):
            if old.get(key):
                status[key] = old[key]

    conditions = [c for c in old.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    sandbox = state.sandbox
    conditions.append(_condition(READY_TO_START, sandbox is not None and sandbox.ready))
    conditions.append(initialized_condition(pod, status.get("initContainerStatuses") or [],
                                            status["containerStatuses"], phase))
    containers_ready = containers_ready_condition(pod, status["containerStatuses"], phase)
    conditions.append({**containers_ready, "type": READY})
    conditions.append(containers_ready)
    conditions.append(_condition(SCHEDULED, True))
    status["conditions"] = _keep_transition_times(conditions, old.get("conditions") or [], inputs.now)

    if inputs.host_ips:
        status["hostIP"] = inputs.host_ips[0]
        status["hostIPs"] = [{"ip": ip} for ip in inputs.host_ips]
    ips = list(state.ips)
    if spec.get("hostNetwork"):
        ips = list(inputs.host_ips)
    if not ips and old.get("podIP"):
        ips = [str(p.get("ip")) for p in old.get("podIPs") or []] or [str(old["podIP"])]
    if ips:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": ip} for ip in ips]
    status["startTime"] = old.get("startTime") or inputs.now
    status["qosClass"] = qos.pod_qos(pod)
    return status


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def _keep_transition_times(conditions: list[Obj], old: list[Obj], now: str) -> list[Obj]:
    before = {c.get("type"): c for c in old}
    out = []
    for cond in conditions:
        prev = before.get(cond["type"])
        if "lastTransitionTime" not in cond:
            same = prev is not None and prev.get("status") == cond["status"] and prev.get("lastTransitionTime")
            cond = {**cond, "lastTransitionTime": prev["lastTransitionTime"] if same and prev else now}
        out.append(cond)
    return out


def _go_list(names: list[str]) -> str:
    """How Go's %s prints a []string: ``[a b]``."""
    return "[" + " ".join(names) + "]"


def containers_ready_condition(pod: Obj, statuses: list[Obj], phase: str) -> Obj:
    by_name = {s["name"]: s for s in statuses}
    if phase == SUCCEEDED:
        return _condition(CONTAINERS_READY, False, "PodCompleted")
    if phase == FAILED:
        return _condition(CONTAINERS_READY, False, "PodFailed")
    unknown, unready = [], []
    for ctr in (pod.get("spec") or {}).get("containers") or []:
        st = by_name.get(ctr.get("name"))
        if st is None:
            unknown.append(str(ctr.get("name")))
        elif not st.get("ready"):
            unready.append(str(ctr.get("name")))
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return _condition(CONTAINERS_READY, False, "ContainersNotReady", ", ".join(messages))
    return _condition(CONTAINERS_READY, True)


def any_regular_started(statuses: list[Obj]) -> bool:
    """HasAnyRegularContainerStarted: an app container runs or ran (so the pod was initialized once)."""
    return any("running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {}) for s in statuses)


def initialized_condition(pod: Obj, init_statuses: list[Obj], statuses: list[Obj], phase: str) -> Obj:
    by_name = {s["name"]: s for s in init_statuses}
    spec = pod.get("spec") or {}
    unknown, incomplete = [], []
    for ctr in spec.get("initContainers") or []:
        st = by_name.get(ctr.get("name"))
        if st is None:
            unknown.append(str(ctr.get("name")))
        elif not st.get("ready"):
            incomplete.append(str(ctr.get("name")))
    if phase == SUCCEEDED and not unknown:
        return _condition(INITIALIZED, True, "PodCompleted")
    if any_regular_started(statuses):
        return _condition(INITIALIZED, True)
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if incomplete:
        messages.append(f"containers with incomplete status: {_go_list(incomplete)}")
    if messages:
        return _condition(INITIALIZED, False, "ContainersNotInitialized", ", ".join(messages))
    return _condition(INITIALIZED, True)


def get_phase(pod: Obj, statuses: list[Obj], init_statuses: list[Obj], pod_is_terminal: bool) -> str:
    spec = pod.get("spec") or {}
    policy = restart_policy(pod)
    by_name = {s["name"]: s for s in statuses}
    init_by_name = {s["name"]: s for s in init_statuses}
    pending_init = failed_init = 0
    for ctr in spec.get("initContainers") or []:
        st = init_by_name.get(ctr.get("name"))
        state = (st or {}).get("state") or {}
        last = ((st or {}).get("lastState") or {}).get("terminated")
        if st is None or "running" in state:
            pending_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state and last is not None:
            if last.get("exitCode", 0) != 0:
                failed_init += 1
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for ctr in spec.get("containers") or []:
        st = by_name.get(ctr.get("name"))
        if st is None:
            unknown += 1
            continue
        state = st.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if (st.get("lastState") or {}).get("terminated") is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1
    if failed_init > 0 and policy == "Never":
        return FAILED
    if (pending_init > 0 and not any_regular_started(statuses)) or waiting > 0:
        return PENDING
    if running > 0 and unknown == 0:
        return RUNNING
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return SUCCEEDED if stopped == succeeded else FAILED
        if policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if policy == "Never":
            return FAILED
        return RUNNING
    return PENDING


def _container_statuses(pod: Obj, containers: list[Obj], inputs: StatusInputs, previous: list[Obj], *,
                        has_init: bool, is_init: bool) -> list[Obj]:
    state = inputs.state
    old = {s.get("name"): s for s in previous}
    default_reason = POD_INITIALIZING if has_init else CONTAINER_CREATING
    statuses: dict[str, Obj] = {}
    for ctr in containers:
        name = str(ctr.get("name"))
        st: Obj = {"name": name, "state": {"waiting": {"reason": default_reason}}, "lastState": {},
                   "ready": False, "restartCount": 0, "image": str(ctr.get("image") or ""), "imageID": "",
                   "started": False}
        prev = old.get(name)
        if prev is not None:
            if "terminated" in (prev.get("state") or {}):
                st = copy.deepcopy(prev)
            else:
                st["restartCount"] = prev.get("restartCount", 0)
                st["lastState"] = copy.deepcopy(prev.get("lastState") or {})
        instances = state.instances(name)
        if instances:
            st = _convert(instances[0], ctr)
            if len(instances) > 1:
                st["lastState"] = _convert(instances[1], ctr)["state"]
        statuses[name] = st
    for ctr in containers:
        name = str(ctr.get("name"))
        latest = state.latest(name)
        if is_init and latest is not None and latest.exited and latest.exit_code == 0:
            continue
        if not should_restart(ctr, pod, state):
            continue
        reason = inputs.reasons.get(name)
        if reason is None:
            continue
        st = statuses[name]
        if "terminated" in st["state"]:
            st["lastState"] = st["state"]
        waiting: Obj = {"reason": reason[0]}
        if reason[1]:
            waiting["message"] = reason[1]
        st["state"] = {"waiting": waiting}
    for ctr in containers:
        st = statuses[str(ctr.get("name"))]
        latest = state.latest(str(ctr.get("name")))
        if is_init:
            term = st["state"].get("terminated")
            st["ready"] = term is not None and term.get("exitCode") == 0
            st["started"] = latest is not None and latest.running
            continue
        if latest is None or not latest.running or "running" not in st["state"]:
            st["ready"] = False
            st["started"] = False
            continue
        started = inputs.started.get(latest.id, False) if ctr.get("startupProbe") else True
        ready = inputs.readiness.get(latest.id, False) if ctr.get("readinessProbe") else True
        st["started"] = started
        st["ready"] = started and ready
    return [statuses[str(c.get("name"))] for c in containers]


def _convert(info: ContainerInfo, ctr: Obj) -> Obj:
    st: Obj = {"name": info.name, "lastState": {}, "ready": False, "restartCount": info.restart_count,
               "image": str(ctr.get("image") or info.image), "imageID": info.image_ref,
               "containerID": CONTAINER_ID_SCHEME + info.id, "started": False}
    if info.state is State.RUNNING:
        st["state"] = {"running": {"startedAt": rfc3339(info.started_at or info.created_at)}}
    elif info.state is State.EXITED:
        term: Obj = {"exitCode": info.exit_code,
                     "reason": info.reason or ("Completed" if info.exit_code == 0 else "Error"),
                     "startedAt": rfc3339(info.started_at), "finishedAt": rfc3339(info.finished_at),
                     "containerID": CONTAINER_ID_SCHEME + info.id}
        if info.message:
            term["message"] = info.message
        st["state"] = {"terminated": term}
    else:
        st["state"] = {"waiting": {}}
    return st


def is_terminal(status: Obj) -> bool:
    return status.get("phase") in TERMINAL_PHASES


class StatusWriter:
    """Writes pod statuses through ``pods/status``, skipping writes that would change nothing."""

    def __init__(self, client: Client) -> None:
        self._client = client
        # uid -> (resourceVersion of the pod the status was computed from, the status written).
        self._written: dict[str, tuple[str, Obj]] = {}

    async def write(self, pod: Obj, status: Obj) -> bool:
        """Merge-patch ``status`` onto the pod unless the pod already has it, or unless the same status was
        written from this same version of the pod (the cache has not caught up with our write yet).
        Returns whether a write was made; a pod that is gone is not an error."""
        uid = meta.uid(pod)
        if _same(pod.get("status") or {}, status):
            return False
        if self._written.get(uid) == (meta.resource_version(pod), status):
            return False
        try:
            await self._client.patch(PODS, meta.name(pod), {"status": status}, "merge",
                                     namespace=meta.namespace(pod), subresource="status")
        except (ApiException, TransportError) as e:
            if not is_not_found(e):
                log.warning("updating the status of pod %s failed: %s", meta.key(pod), e)
            return False
        self._written[uid] = (meta.resource_version(pod), status)
        return True

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)


def _same(a: Obj, b: Obj) -> bool:
    """Whether every field the kubelet sets is equal (fields others set are not compared)."""
    return all(a.get(k) == v for k, v in b.items())
