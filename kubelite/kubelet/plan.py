"""What one sync of a pod must do to its sandbox and containers: the kubelet's ``computePodActions``, pure.

`plan_pod(pod, state, ...)` compares the pod's spec with what the runtime runs and returns `PodActions`:

1. The sandbox. A pod without one gets one (attempt 0). A pod whose newest sandbox is not ready, that has
   more than one ready sandbox, or whose sandbox lost its IP is killed and gets a new sandbox (attempt + 1)
   — unless it is done: under restartPolicy Never a pod that already ran never gets a second sandbox, and
   a pod with nothing left to run gets none. A new sandbox starts from the first init container (or from
   the app containers; under OnFailure those that already succeeded are not run again).
2. Init containers, in order, one at a time, counting only instances in the current sandbox: the next one
   starts when the one before exited 0; a failed one is restarted (back-off applies when starting it),
   or, under restartPolicy Never, fails the pod (the pod is killed). App containers wait until all are done.
3. App containers: one that never ran, or exited and must be restarted by the restart policy, is started
   (Always: always; OnFailure: when it failed; Never: not). A running one is killed when its spec changed
   (then always restarted), or when its liveness or startup probe failed (restarted unless the policy is
   Never); the kill message is Kubernetes' ("Container app failed liveness probe, will be restarted").
4. When nothing runs and nothing will start, the pod is killed (its sandbox is stopped): it is done.
5. Garbage: exited instances beyond the newest two of each app container (the current one and the one
   ``lastState`` shows) and beyond the newest of each init container, and stale sandboxes that hold none
   of the kept containers. (A container left created by a failed start is replaced by whoever starts its
   successor, once its back-off allows.)

The crash-loop back-off is not decided here: the caller checks it when it starts a container, as the
kubelet's ``doBackOff`` does.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from kubelite.api import meta
from kubelite.kubelet.containerspec import container_hash
from kubelite.kubelet.podstate import ContainerInfo, PodRuntimeState, SandboxInfo, State
from kubelite.kubelet.status import restart_policy, should_restart

Obj = dict[str, Any]
KEEP_APP_INSTANCES = 2
KEEP_INIT_INSTANCES = 1


@dataclass(frozen=True)
class Kill:
    """A running container to stop, and why (the message of its ``Killing`` event)."""

    container_id: str
    name: str
    message: str


@dataclass
class PodActions:
    kill_pod: bool = False
    create_sandbox: bool = False
    sandbox_attempt: int = 0
    # The sandbox new containers go into (empty when a new one is created).
    sandbox_id: str = ""
    next_init: Obj | None = None
    start: list[Obj] = field(default_factory=list)
    kill: list[Kill] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    remove_sandboxes: list[str] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return bool(self.kill_pod or self.create_sandbox or self.next_init is not None or self.start
                    or self.kill or self.remove or self.remove_sandboxes)


def sandbox_changed(pod: Obj, state: PodRuntimeState) -> tuple[bool, int, str]:
    """(whether a new sandbox is needed, its attempt, the current sandbox id) — PodSandboxChanged."""
    latest = state.sandbox
    if latest is None:
        return True, 0, ""
    ready = [s for s in state.sandboxes if s.ready]
    if len(ready) > 1 or not latest.ready:
        return True, latest.attempt + 1, latest.id
    if not (pod.get("spec") or {}).get("hostNetwork") and not latest.ips:
        return True, latest.attempt + 1, latest.id
    return False, latest.attempt, latest.id


def _succeeded(name: str, state: PodRuntimeState) -> bool:
    latest = state.latest(name)
    return latest is not None and latest.exited and latest.exit_code == 0


def next_init_container(pod: Obj, state: PodRuntimeState) -> tuple[ContainerInfo | None, Obj | None, bool]:
    """(the failed init container's status, the init container to start next, whether all are done)."""
    spec = pod.get("spec") or {}
    inits = list(spec.get("initContainers") or [])
    if not inits:
        return None, None, True
    if any((c := state.latest(str(ctr.get("name")))) is not None and c.running for ctr in spec.get("containers") or []):
        return None, None, True
    for ctr in reversed(inits):
        latest = state.latest(str(ctr.get("name")))
        if latest is not None and (latest.state is State.UNKNOWN or (latest.exited and latest.exit_code != 0)):
            return latest, ctr, False
    for i in range(len(inits) - 1, -1, -1):
        latest = state.latest(str(inits[i].get("name")))
        if latest is None:
            continue
        if latest.running:
            return None, None, False
        if latest.exited:
            if i == len(inits) - 1:
                return None, None, True
            return None, inits[i + 1], False
        return None, inits[i], False  # created but never started: start it again
    return None, inits[0], False


def plan_pod(pod: Obj, state: PodRuntimeState, *, liveness_failed: Collection[str] = (),
             startup_failed: Collection[str] = ()) -> PodActions:
    spec = pod.get("spec") or {}
    policy = restart_policy(pod)
    containers = list(spec.get("containers") or [])
    create, attempt, sandbox_id = sandbox_changed(pod, state)
    actions = PodActions(kill_pod=create, create_sandbox=create, sandbox_attempt=attempt,
                         sandbox_id="" if create else sandbox_id)
    if create:
        if policy == "Never" and attempt != 0 and state.containers:
            actions.create_sandbox = False
        else:
            to_start = [c for c in containers if not (policy == "OnFailure" and _succeeded(str(c.get("name")), state))]
            inits = list(spec.get("initContainers") or [])
            if inits:
                actions.next_init = inits[0]
            elif to_start:
                actions.start = to_start
            else:
                actions.create_sandbox = False
        actions.kill_pod = actions.kill_pod and _has_live_parts(state)
        _collect_garbage(pod, state, actions)
        return actions

    current = PodRuntimeState(state.sandboxes, tuple(c for c in state.containers if c.sandbox_id == sandbox_id))
    failed, next_init, init_done = next_init_container(pod, current)
    if not init_done:
        if failed is not None and policy == "Never":
            actions.kill_pod = _has_live_parts(state)
        elif next_init is not None:
            actions.next_init = next_init
        _collect_garbage(pod, state, actions)
        return actions

    keep = 0
    for ctr in containers:
        name = str(ctr.get("name"))
        latest = state.latest(name)
        if latest is None or not latest.running:
            if should_restart(ctr, pod, state):
                actions.start.append(ctr)
            continue
        restart = policy != "Never"
        if latest.hash and latest.hash != container_hash(ctr):
            message, restart = f"Container {name} definition changed", True
        elif latest.id in liveness_failed:
            message = f"Container {name} failed liveness probe"
        elif latest.id in startup_failed:
            message = f"Container {name} failed startup probe"
        else:
            keep += 1
            continue
        if restart:
            message += ", will be restarted"
            actions.start.append(ctr)
        actions.kill.append(Kill(latest.id, name, message))
    if keep == 0 and not actions.start and not meta.is_being_deleted(pod):
        actions.kill_pod = _has_live_parts(state)
    _collect_garbage(pod, state, actions)
    return actions


def _has_live_parts(state: PodRuntimeState) -> bool:
    return any(c.running for c in state.containers) or any(s.ready for s in state.sandboxes)


def _collect_garbage(pod: Obj, state: PodRuntimeState, actions: PodActions) -> None:
    spec = pod.get("spec") or {}
    limits = {str(c.get("name")): KEEP_APP_INSTANCES for c in spec.get("containers") or []}
    limits.update({str(c.get("name")): KEEP_INIT_INSTANCES for c in spec.get("initContainers") or []})
    seen: dict[str, int] = {}
    kept: list[ContainerInfo] = []
    doomed = {k.container_id for k in actions.kill} | set(actions.remove)
    for c in state.containers:  # newest first
        seen[c.name] = seen.get(c.name, 0) + 1
        if c.running or c.id in doomed:
            kept.append(c)
            continue
        if seen[c.name] > limits.get(c.name, 0):
            actions.remove.append(c.id)
        else:
            kept.append(c)
    in_use = {c.sandbox_id for c in kept if c.id not in actions.remove}
    newest: SandboxInfo | None = state.sandbox
    for sandbox in state.sandboxes:
        if sandbox is newest or sandbox.ready or sandbox.id in in_use:
            continue
        actions.remove_sandboxes.append(sandbox.id)
