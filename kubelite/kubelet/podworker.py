"""One worker per pod: the loop that drives the runtime from the pod's spec, and reports the pod's status.

A worker is an asyncio task that sleeps until it is woken (the pod changed, its containers changed, a probe
result changed, a referenced ConfigMap or Secret changed, the node's network became ready) or until its next
scheduled sync (the sync period, or the end of a back-off), and then syncs. One pod is only ever handled
by its own worker, so its syncs never overlap; different pods sync in parallel.

A sync (the kubelet's ``SyncPod``):
1. observe the pod's sandboxes and containers in the runtime (by the ``io.kubernetes.pod.uid`` label, which
   is also how a restarted kubelet adopts what is already running instead of starting it twice);
2. wait for the node's network unless the pod uses the host's; make sure the ConfigMaps and Secrets it
   references are cached; set up its volumes (``FailedMount`` on error);
3. plan (`kubelite.kubelet.plan`) and apply: kill what must go, (re)create the sandbox, start the next init
   container or the app containers — each start checks the crash-loop back-off (``CrashLoopBackOff``),
   pulls the image (``ErrImagePull``/``ImagePullBackOff``), resolves the environment and mounts
   (``CreateContainerConfigError``), creates and starts the container, and runs ``postStart``;
4. compute the status from a fresh observation and write it if it changed.
A pod whose phase became Succeeded or Failed is finished: its sandbox is stopped, its volumes removed, its
probes stopped; its exited containers stay (for their logs) until the pod object goes.

Termination, once the pod has a ``deletionTimestamp`` or is gone from the API (a sync in progress, such as a
long image pull, is cancelled for it): every running container gets
its ``preStop`` hook and then ``StopContainer`` (SIGTERM, SIGKILL after what is left of the grace period,
at least 2 s), the sandbox is stopped, the final (terminal) status is written, and the pod object is
deleted with ``gracePeriodSeconds=0`` and a uid precondition — the API server keeps a bound pod until its
kubelet does that. The grace period may be shortened meanwhile (`kubelite.kubelet.grace`): a smaller
``deletionGracePeriodSeconds`` (``kubectl delete --grace-period=1`` after a plain delete) cuts a running
``preStop`` hook short at the new deadline, and a ``StopContainer`` that would end later is called again with
the new, smaller timeout (the hook is not run again); the pod vanishing from the API while its containers are
being stopped (a forced deletion) shortens it to 0, a kill at once. A longer period given later is ignored.
Then the containers, sandboxes, volumes and log files are removed and the worker ends once the pod is gone
from the API.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets as _secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.events import EventRecorder
from kubelite.client.rest import ApiException, Client, TransportError, is_conflict, is_not_found
from kubelite.kubelet import containerspec as cs
from kubelite.kubelet.backoff import Backoff
from kubelite.kubelet.config import KubeletConfig
from kubelite.kubelet.envvars import EnvError, PodContext, make_environment
from kubelite.kubelet.grace import GracePeriod
from kubelite.kubelet.hooks import run_handler
from kubelite.kubelet.imagepull import IMAGE_PULL_BACKOFF, ImagePuller, ImagePullError, go_duration
from kubelite.kubelet.objectcache import ObjectCache
from kubelite.kubelet.plan import Kill, PodActions, plan_pod
from kubelite.kubelet.podstate import ContainerInfo, PodRuntimeState, SandboxInfo, State
from kubelite.kubelet.probes import Kind, ProbeManager
from kubelite.kubelet.runtime_client import NotFoundError, RuntimeClient, RuntimeServiceError
from kubelite.kubelet.serviceenv import service_env
from kubelite.kubelet.status import StatusInputs, StatusWriter, is_terminal, pod_status
from kubelite.kubelet.volumes import VolumeError, VolumeManager
from kubelite.proto import runtime_pb2 as pb

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = by_resource("", "v1", "pods")
SECRETS = by_resource("", "v1", "secrets")
MIN_GRACE_PERIOD = 2  # minimumGracePeriodInSeconds
MAX_TERMINATION_MESSAGE = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
RETRY_SECONDS = 2.0


class NodeView(Protocol):
    """What a pod worker needs to know about its node."""

    def host_ips(self) -> list[str]: ...

    def network_ready(self) -> bool: ...

    def allocatable(self) -> dict[str, str]: ...

    def memory_capacity(self) -> int: ...


@dataclass
class WorkerContext:
    """Everything the workers of one kubelet share."""

    config: KubeletConfig
    client: Client
    runtime: RuntimeClient
    recorder: EventRecorder
    volumes: VolumeManager
    objects: ObjectCache
    probes: ProbeManager
    puller: ImagePuller
    status: StatusWriter
    crash_backoff: Backoff
    node: NodeView
    dns: cs.DNSSettings
    http: Callable[[], aiohttp.ClientSession]
    # Every Service of the cluster (for the Service environment variables).
    services: Callable[[], list[Obj]]


def needs_network(pod: Obj) -> bool:
    return not (pod.get("spec") or {}).get("hostNetwork")


class PodWorker:
    def __init__(self, pod: Obj, ctx: WorkerContext) -> None:
        self.uid = meta.uid(pod)
        self.ctx = ctx
        self._pod = pod
        self._removed = False
        self._wake = asyncio.Event()
        self._wake.set()
        self._next_sync = 0.0
        self._reasons: dict[str, tuple[str, str]] = {}
        self._messages: dict[str, str] = {}
        self._finished = False
        self._killed = False
        # The grace period of the termination, once it has started (shortened by later updates).
        self._grace: GracePeriod | None = None
        self._delete_sent = False
        self._cleaned = False
        self._network_warned = False
        self._pod_ips: tuple[str, ...] = ()
        self._sync_task: asyncio.Task[None] | None = None

    # --- inputs ------------------------------------------------------------------------------------

    @property
    def pod(self) -> Obj:
        return self._pod

    def update(self, pod: Obj) -> None:
        self._pod = pod
        self._wake.set()
        if meta.is_being_deleted(pod):
            if self._grace is not None:
                self._grace.shorten(cs.grace_period(pod))
            self._interrupt()

    def refresh(self, pod: Obj) -> None:
        """A newer copy of the pod that needs no sync (its status changed)."""
        self._pod = pod

    def removed(self, pod: Obj | None = None) -> None:
        """The pod is gone from the API (deleted, or no longer bound here)."""
        if pod is not None:
            self._pod = pod
        self._removed = True
        if self._grace is not None:
            # Gone while its containers are being stopped: force-deleted, so nobody waits for them any more.
            self._grace.shorten(0)
        self._wake.set()
        self._interrupt()

    def _interrupt(self) -> None:
        """Stop a sync in progress (a long image pull, say) so that termination starts at once; what it left
        half done is found by label and removed by the termination."""
        if self._sync_task is not None:
            self._sync_task.cancel()

    def wake(self) -> None:
        self._wake.set()

    @property
    def terminating(self) -> bool:
        return self._removed or meta.is_being_deleted(self._pod)

    @property
    def active(self) -> bool:
        """Whether the pod counts against the node's pods: neither finished nor on its way out."""
        return not self._finished and not self.terminating

    # --- the loop ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync until the pod is gone and cleaned up. Cancelling it leaves the containers running."""
        loop = asyncio.get_running_loop()
        while True:
            delay = max(self._next_sync - loop.time(), 0.0)
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            self._next_sync = loop.time() + self.ctx.config.sync_period
            try:
                if self.terminating:
                    if await self._terminate():
                        return
                else:
                    await self._interruptible_sync()
            except (RuntimeServiceError, ApiException, TransportError, OSError) as e:
                log.warning("syncing pod %s failed: %s", meta.key(self._pod), e)
                self._retry_in(RETRY_SECONDS)

    async def _interruptible_sync(self) -> None:
        task = asyncio.create_task(self._sync())
        self._sync_task = task
        try:
            await asyncio.wait([task])  # returns (without raising) when `_interrupt` cancelled it
        finally:
            self._sync_task = None
            if not task.done():  # we are being cancelled ourselves
                task.cancel()
                await asyncio.wait([task])
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error

    def _retry_in(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._next_sync = min(self._next_sync, loop.time() + max(seconds, 0.0))

    # --- observing ---------------------------------------------------------------------------------

    async def _observe(self) -> PodRuntimeState:
        runtime = self.ctx.runtime
        labels = {cs.POD_UID_LABEL: self.uid}
        sandboxes, containers = await asyncio.gather(runtime.list_pod_sandboxes(labels=labels),
                                                     runtime.list_containers(labels=labels))

        async def sandbox_info(sb: pb.PodSandbox) -> SandboxInfo | None:
            try:
                return SandboxInfo.from_status(await runtime.pod_sandbox_status(sb.id))
            except NotFoundError:
                return None

        async def container_info(c: pb.Container) -> ContainerInfo | None:
            try:
                status = await runtime.container_status(c.id)
            except NotFoundError:
                return None
            message = ""
            if status.state == pb.CONTAINER_EXITED:
                message = self._termination_message(status)
            return ContainerInfo.from_status(status, c.pod_sandbox_id, message)

        sb_infos, c_infos = await asyncio.gather(asyncio.gather(*(sandbox_info(s) for s in sandboxes)),
                                                 asyncio.gather(*(container_info(c) for c in containers)))
        state = PodRuntimeState.of([s for s in sb_infos if s is not None], [c for c in c_infos if c is not None])
        self._pod_ips = state.ips or self._pod_ips
        return state

    def _termination_message(self, status: pb.ContainerStatus) -> str:
        """The container's termination message file (or, with FallbackToLogsOnError after a failure, the tail
        of its log), read once per container."""
        cached = self._messages.get(status.id)
        if cached is not None:
            return cached
        path = status.annotations.get(cs.TERMINATION_MESSAGE_PATH_ANNOTATION, "")
        host = next((m.host_path for m in status.mounts if m.container_path == path), "") if path else ""
        message = ""
        if host:
            try:
                with open(host, "rb") as f:
                    message = f.read(MAX_TERMINATION_MESSAGE).decode("utf-8", "replace")
            except OSError:
                message = ""
        policy = status.annotations.get(cs.TERMINATION_MESSAGE_POLICY_ANNOTATION, "")
        if not message and status.exit_code != 0 and policy == "FallbackToLogsOnError":
            message = self._log_tail(status)
        self._messages[status.id] = message
        return message

    def _log_tail(self, status: pb.ContainerStatus) -> str:
        log_path = Path(status.log_path)
        if not log_path.is_absolute():
            log_path = cs.log_directory(self.ctx.config.paths.logs, self._pod) / log_path
        try:
            with open(log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(f.tell() - 64 * 1024, 0))
                raw = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines: list[str] = []
        for line in raw.splitlines():
            parts = line.split(" ", 3)  # <time> <stream> <P|F> <content>
            if len(parts) == 4:
                lines.append(parts[3] + ("\n" if parts[2] == "F" else ""))
        text = "".join(lines)
        tail = "\n".join(text.splitlines()[-FALLBACK_LOG_LINES:])
        return tail[-FALLBACK_LOG_BYTES:]

    # --- one sync ----------------------------------------------------------------------------------

    def _pod_context(self, pod: Obj, state: PodRuntimeState, sandbox_ips: tuple[str, ...] = ()) -> PodContext:
        host_ips = self.ctx.node.host_ips()
        pod_ips = host_ips if not needs_network(pod) else list(sandbox_ips or state.ips)
        return PodContext(pod_ips=pod_ips, host_ips=host_ips, node_allocatable=self.ctx.node.allocatable())

    async def _sync(self) -> None:
        if self._finished:
            return
        ctx, pod = self.ctx, self._pod
        state = await self._observe()
        if is_terminal(pod.get("status") or {}) and not state.running():
            # Finished before (an earlier kubelet, or rejected at admission): never started again.
            await self._finish(state)
            return
        ctx.probes.sync_pod(pod, state, self._probe_ip(pod, state))
        if needs_network(pod) and not ctx.node.network_ready():
            if not self._network_warned:
                self._network_warned = True
                ctx.recorder.warning(pod, "NetworkNotReady",
                                     "network is not ready: container runtime network not ready: "
                                     "NetworkReady=false reason:NetworkPluginNotReady message:the node has no "
                                     "spec.podCIDR yet")
            await self._write_status(pod, state)
            return
        try:
            await ctx.objects.acquire(self.uid, pod)
        except TimeoutError:
            log.warning("the ConfigMaps and Secrets of pod %s are not cached yet", meta.key(pod))
            self._retry_in(RETRY_SECONDS)
            await self._write_status(pod, state)
            return
        try:
            volumes = await ctx.volumes.setup(pod, configmaps=ctx.objects.configmap, secrets=ctx.objects.secret,
                                              context=self._pod_context(pod, state))
        except VolumeError as e:
            ctx.recorder.warning(pod, "FailedMount", str(e))
            self._retry_in(RETRY_SECONDS * 5)
            await self._write_status(pod, state)
            return
        actions = plan_pod(pod, state, liveness_failed=ctx.probes.failed(self.uid, Kind.LIVENESS),
                           startup_failed=ctx.probes.failed(self.uid, Kind.STARTUP))
        if actions.changes_anything:
            await self._apply(pod, state, actions, volumes)
            state = await self._observe()
            ctx.probes.sync_pod(pod, state, self._probe_ip(pod, state))
        status = await self._write_status(pod, state)
        if is_terminal(status):
            await self._finish(state)

    def _probe_ip(self, pod: Obj, state: PodRuntimeState) -> str:
        if not needs_network(pod):
            return "127.0.0.1"
        return state.ips[0] if state.ips else ""

    async def _write_status(self, pod: Obj, state: PodRuntimeState, *, terminal: bool = False) -> Obj:
        ctx = self.ctx
        inputs = StatusInputs(state=state, reasons=dict(self._reasons), readiness=ctx.probes.readiness(self.uid),
                              started=ctx.probes.started(self.uid), host_ips=ctx.node.host_ips(),
                              pod_is_terminal=terminal)
        status = pod_status(pod, inputs)
        await ctx.status.write(pod, status)
        return status

    async def _finish(self, state: PodRuntimeState) -> None:
        """The pod is done: release what it no longer needs (its containers stay for their logs)."""
        self._finished = True
        ctx = self.ctx
        await ctx.probes.remove_pod(self.uid)
        await self._stop_sandboxes(state)
        await ctx.volumes.teardown(self.uid)
        ctx.objects.release(self.uid)

    async def _stop_sandboxes(self, state: PodRuntimeState) -> None:
        for sandbox in state.sandboxes:
            if sandbox.ready:
                try:
                    await self.ctx.runtime.stop_pod_sandbox(sandbox.id)
                except NotFoundError:
                    pass

    # --- applying a plan ---------------------------------------------------------------------------

    async def _apply(self, pod: Obj, state: PodRuntimeState, actions: PodActions, volumes: dict[str, cs.VolumePath]) \
            -> None:
        ctx = self.ctx
        runtime = ctx.runtime
        grace = GracePeriod(cs.grace_period(pod))
        if actions.kill_pod:
            if actions.create_sandbox and state.sandboxes:
                ctx.recorder.normal(pod, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            await asyncio.gather(*(self._kill_container(pod, c, grace) for c in state.running()))
            await self._stop_sandboxes(state)
        if actions.kill:
            by_id = {c.id: c for c in state.containers}
            await asyncio.gather(*(self._kill_container(pod, by_id[k.container_id], grace, k)
                                   for k in actions.kill if k.container_id in by_id))
        for cid in actions.remove:
            await self._ignore_missing(runtime.remove_container(cid))
            self._messages.pop(cid, None)
        for sid in actions.remove_sandboxes:
            await self._ignore_missing(runtime.remove_pod_sandbox(sid))
        if not actions.create_sandbox and not actions.next_init and not actions.start:
            return
        sandbox_config = cs.sandbox_config(pod, attempt=actions.sandbox_attempt, logs_root=ctx.config.paths.logs,
                                           dns=ctx.dns, cgroup_root=ctx.config.cgroup_root)
        sandbox_id = actions.sandbox_id
        sandbox_ips: tuple[str, ...] = ()
        if actions.create_sandbox:
            if cs.missing_cluster_dns(pod, ctx.dns):
                ctx.recorder.warning(pod, "MissingClusterDNS", "pod: \"" + cs.pod_full_name(pod) + "\". kubelet "
                                     "does not have ClusterDNS IP configured and cannot create Pod using "
                                     "\"ClusterFirst\" policy. Falling back to \"Default\" policy.")
            cs.log_directory(ctx.config.paths.logs, pod).mkdir(parents=True, exist_ok=True)
            try:
                sandbox_id = await runtime.run_pod_sandbox(sandbox_config)
            except RuntimeServiceError as e:
                ctx.recorder.warning(pod, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e.message}")
                self._retry_in(RETRY_SECONDS)
                return
            try:
                sandbox_ips = SandboxInfo.from_status(await runtime.pod_sandbox_status(sandbox_id)).ips
            except NotFoundError:
                sandbox_ips = ()
        context = self._pod_context(pod, state, sandbox_ips)
        to_start = [actions.next_init] if actions.next_init is not None else actions.start
        for ctr in to_start:
            await self._start(pod, ctr, sandbox_id, sandbox_config, state, volumes, context)

    @staticmethod
    async def _ignore_missing(call: Any) -> None:
        try:
            await call
        except NotFoundError:
            pass

    async def _kill_container(self, pod: Obj, info: ContainerInfo, grace: GracePeriod,
                              kill: Kill | None = None) -> None:
        """The container's ``preStop`` hook, then ``StopContainer`` with what is left of ``grace`` (both cut
        short when ``grace`` is)."""
        ctx = self.ctx
        ctx.recorder.normal(pod, "Killing", kill.message if kill else f"Stopping container {info.name}")
        spec = _container_spec(pod, info.name)
        pre_stop = ((spec or {}).get("lifecycle") or {}).get("preStop")
        if pre_stop and grace.seconds > 0:
            finished, error = await grace.bound(run_handler(
                pre_stop, container=spec or {}, container_id=info.id, pod_ip=self._pod_ips[0] if self._pod_ips else "",
                host_network=not needs_network(pod), runtime=ctx.runtime, session=ctx.http(), timeout=grace.seconds))
            if not finished:
                error = f"the handler did not finish within {grace.seconds:g}s"
            if error:
                ctx.recorder.warning(pod, "FailedPreStopHook", f"PreStopHook failed: {error}")
        await self._stop_container(info.id, grace)

    async def _stop_container(self, container_id: str, grace: GracePeriod) -> None:
        """``StopContainer`` with what is left of ``grace``, called again with the smaller timeout whenever
        ``grace`` is shortened to end before the call would (the runtime then kills sooner)."""
        while True:
            timeout = grace.stop_timeout(MIN_GRACE_PERIOD)
            ends = grace.clock() + timeout
            stop = asyncio.ensure_future(self._ignore_missing(self.ctx.runtime.stop_container(container_id, timeout)))
            try:
                while not stop.done():
                    changed = asyncio.ensure_future(grace.changed.wait())
                    try:
                        await asyncio.wait([stop, changed], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        changed.cancel()
                    if not stop.done() and grace.deadline < ends:
                        break
            finally:
                if not stop.done():
                    stop.cancel()
                    await asyncio.wait([stop])
            if not stop.cancelled():
                stop.result()
                return

    async def _start(self, pod: Obj, ctr: Obj, sandbox_id: str, sandbox_config: pb.PodSandboxConfig,
                     state: PodRuntimeState, volumes: dict[str, cs.VolumePath], context: PodContext) -> None:
        ctx = self.ctx
        name = str(ctr.get("name"))
        latest = state.latest(name)
        key = f"{self.uid}_{name}"
        if latest is not None and not latest.running:
            # An exited container, or one whose start failed (left created): back off from its end.
            finished = latest.finished_at or latest.created_at or time.time()
            if ctx.crash_backoff.is_in_backoff_since(key, finished):
                delay = ctx.crash_backoff.get(key)
                self._reasons[name] = ("CrashLoopBackOff", f"back-off {go_duration(delay)} restarting failed "
                                                           f"container={name} pod={cs.pod_full_name(pod)}")
                ctx.recorder.warning(pod, "BackOff", f"Back-off restarting failed container {name} in pod "
                                                     f"{cs.pod_full_name(pod)}")
                self._retry_in(finished + delay - ctx.crash_backoff.clock())
                return
            ctx.crash_backoff.next(key, finished)
            if latest.state is not State.EXITED:
                await self._ignore_missing(ctx.runtime.remove_container(latest.id))
        try:
            image = await ctx.puller.ensure(pod, ctr, pull_secrets=await self._pull_secrets(pod),
                                            sandbox_config=sandbox_config)
        except ImagePullError as e:
            self._fail(pod, name, e.reason, e.message, f"Error: {e.reason}")
            remaining = ctx.puller.backoff_remaining(pod, ctr)
            if e.reason == IMAGE_PULL_BACKOFF:
                self._retry_in(remaining)
            elif remaining:
                # Sync again within the back-off, so that the status shows ImagePullBackOff until it ends.
                self._retry_in(min(remaining / 2, RETRY_SECONDS))
            else:
                self._retry_in(RETRY_SECONDS * 5)
            return
        try:
            cs.verify_run_as_non_root(pod, ctr, image.user)
            links = (pod.get("spec") or {}).get("enableServiceLinks")
            env = make_environment(pod, ctr, configmaps=ctx.objects.configmap, secrets=ctx.objects.secret,
                                   context=context, service_env=service_env(ctx.services(), meta.namespace(pod),
                                                                            links is None or bool(links)))
            for kind, source, keys in env.invalid_keys:
                ctx.recorder.warning(pod, "InvalidEnvironmentVariableNames",
                                     f"Keys [{', '.join(keys)}] from the EnvFrom {kind} {source} were skipped since "
                                     "they are considered invalid environment variable names.")
            restart_count = latest.restart_count + 1 if latest is not None else 0
            config = cs.container_config(pod, ctr, cs.ContainerInputs(
                image_ref=image.ref, env=env.as_pairs(), volumes=volumes, restart_count=restart_count,
                node_memory=ctx.node.memory_capacity(), termination_log=self._termination_log(ctr)))
        except (EnvError, cs.ConfigError, OSError) as e:
            self._fail(pod, name, "CreateContainerConfigError", str(e), f"Error: {e}")
            self._retry_in(RETRY_SECONDS * 5)
            return
        try:
            cid = await ctx.runtime.create_container(sandbox_id, config, sandbox_config)
        except RuntimeServiceError as e:
            self._fail(pod, name, "CreateContainerError", e.message, f"Error: {e.message}")
            return
        ctx.recorder.normal(pod, "Created", f"Created container: {name}")
        try:
            await ctx.runtime.start_container(cid)
        except RuntimeServiceError as e:
            self._fail(pod, name, "RunContainerError", e.message, f"Error: {e.message}")
            return
        ctx.recorder.normal(pod, "Started", f"Started container {name}")
        self._reasons.pop(name, None)
        post_start = (ctr.get("lifecycle") or {}).get("postStart")
        if post_start:
            error = await run_handler(post_start, container=ctr, container_id=cid,
                                      pod_ip=context.pod_ips[0] if context.pod_ips else "",
                                      host_network=not needs_network(pod), runtime=ctx.runtime, session=ctx.http(),
                                      timeout=float(cs.grace_period(pod) or 30))
            if error:
                ctx.recorder.warning(pod, "FailedPostStartHook", f"PostStartHook failed: {error}")
                self._reasons[name] = ("PostStartHookError", error)
                await self._ignore_missing(ctx.runtime.stop_container(cid, MIN_GRACE_PERIOD))

    def _fail(self, pod: Obj, name: str, reason: str, message: str, event: str) -> None:
        self._reasons[name] = (reason, message)
        self.ctx.recorder.warning(pod, "Failed", event)

    def _termination_log(self, ctr: Obj) -> Path | None:
        if not ctr.get("terminationMessagePath"):
            return None
        folder = self.ctx.volumes.container_dir(self.uid, str(ctr.get("name")))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / _secrets.token_hex(4)
        path.touch()
        os.chmod(path, 0o666)
        return path

    async def _pull_secrets(self, pod: Obj) -> list[Obj]:
        names = [str(s.get("name")) for s in (pod.get("spec") or {}).get("imagePullSecrets") or [] if s.get("name")]
        found, missing = [], []
        for name in names:
            try:
                found.append(await self.ctx.client.get(SECRETS, name, meta.namespace(pod)))
            except ApiException as e:
                if not is_not_found(e):
                    raise
                missing.append(name)
        if missing:
            self.ctx.recorder.warning(pod, "FailedToRetrieveImagePullSecret",
                                      f"Unable to retrieve some image pull secrets ({', '.join(missing)}); "
                                      "attempting to pull the image may not succeed.")
        return found

    # --- termination -------------------------------------------------------------------------------

    async def _terminate(self) -> bool:
        """Stop the pod for good; returns True once everything is cleaned up and the pod is gone."""
        ctx, pod = self.ctx, self._pod
        if not self._killed:
            await ctx.probes.remove_pod(self.uid)
            state = await self._observe()
            if self._grace is None:
                self._grace = GracePeriod(cs.grace_period(pod))
            grace = self._grace
            await asyncio.gather(*(self._kill_container(pod, c, grace) for c in state.running()))
            await self._stop_sandboxes(state)
            self._killed = True
            if not self._removed:
                await self._write_status(pod, await self._observe(), terminal=True)
        if not self._removed and not self._delete_sent and meta.is_being_deleted(pod):
            try:
                await ctx.client.delete(PODS, meta.name(pod), meta.namespace(pod), grace_period_seconds=0,
                                        preconditions={"uid": self.uid})
            except ApiException as e:
                if not (is_not_found(e) or is_conflict(e)):
                    raise
            self._delete_sent = True
        if not self._cleaned:
            await self._cleanup()
        return self._removed

    async def _cleanup(self) -> None:
        """Remove every container, sandbox and volume of the pod."""
        ctx = self.ctx
        labels = {cs.POD_UID_LABEL: self.uid}
        for c in await ctx.runtime.list_containers(labels=labels):
            await self._ignore_missing(ctx.runtime.remove_container(c.id))
        for sb in await ctx.runtime.list_pod_sandboxes(labels=labels):
            await self._ignore_missing(ctx.runtime.stop_pod_sandbox(sb.id))
            await self._ignore_missing(ctx.runtime.remove_pod_sandbox(sb.id))
        await ctx.volumes.teardown(self.uid)
        await asyncio.to_thread(remove_pod_logs, ctx.config.paths.logs, self.uid)
        ctx.objects.release(self.uid)
        ctx.status.forget(self.uid)
        ctx.crash_backoff.forget(self.uid + "_")
        ctx.puller.forget(self.uid)
        self._messages.clear()
        self._cleaned = True


def remove_pod_logs(logs_root: Path, uid: str) -> None:
    """Remove the log folder of the pod ``uid`` (``<namespace>_<name>_<uid>``), as the kubelet does once the pod
    is gone."""
    for folder in logs_root.glob(f"*_{uid}"):
        shutil.rmtree(folder, ignore_errors=True)


def _container_spec(pod: Obj, name: str) -> Obj | None:
    spec = pod.get("spec") or {}
    for ctr in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if ctr.get("name") == name:
            return dict(ctr)
    return None
