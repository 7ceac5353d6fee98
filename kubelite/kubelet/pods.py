"""The pods of this node: from the pod informer to one worker per pod, and the housekeeping around them.

`PodDispatcher` receives the informer's events for the pods bound to this node (``fieldSelector
spec.nodeName=<node>``) and routes each pod, by uid, to its `PodWorker`, creating the worker on first sight.
A pod that disappears from the informer tells its worker to stop it; a pod whose name now carries another
uid is a new pod. An update that changed only the status (most often the kubelet's own write coming back)
or bookkeeping metadata refreshes the worker's copy without making it sync. Anything else that should make a
pod sync (its containers changed, a probe result changed, a referenced object changed, the network became
ready) calls `wake`.

Admission: a pod the kubelet has not started yet is rejected with phase Failed and reason ``OutOfpods`` when
``max_pods`` pods already run here (the scheduler normally prevents that).

Housekeeping (every ``housekeeping_period``, once the informer has synced and the runtime has been listed)
removes what belongs to no known pod: sandboxes and containers carrying the uid of a pod that no longer
exists (stopped after the preStop hook and with the grace period they were created with, then removed, with
their logs), and volume folders of pods that are gone (unmounted, then removed) — e.g. pods deleted while the
kubelet was down. Since containers
are found by their pod uid label, a restarted kubelet adopts the containers of pods that still exist
(their workers see them running) and cleans up only the rest.

Stopping the dispatcher cancels the workers without touching their containers: they keep running and are
adopted by the next kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from kubelite.api import meta
from kubelite.client.informer import DeletedFinalStateUnknown, SharedInformer, object_of
from kubelite.kubelet import containerspec as cs
from kubelite.kubelet.hooks import run_handler
from kubelite.kubelet.pleg import Pleg
from kubelite.kubelet.podworker import MIN_GRACE_PERIOD, PodWorker, WorkerContext, remove_pod_logs
from kubelite.kubelet.runtime_client import NotFoundError, RuntimeServiceError
from kubelite.kubelet.status import is_terminal
from kubelite.proto import runtime_pb2 as pb

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class PodDispatcher:
    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self._workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._orphans: dict[str, asyncio.Task[None]] = {}
        self._rejections: set[asyncio.Task[bool]] = set()

    # --- informer handlers -------------------------------------------------------------------------

    def attach(self, informer: SharedInformer) -> None:
        informer.add_handler(on_add=self.pod_added, on_update=self.pod_updated, on_delete=self.pod_deleted)

    def pod_added(self, pod: Obj) -> None:
        uid = meta.uid(pod)
        worker = self._workers.get(uid)
        if worker is not None:
            worker.update(pod)
            return
        if self._rejects(pod):
            return
        worker = PodWorker(pod, self.ctx)
        self._workers[uid] = worker
        task = asyncio.create_task(self._run(worker), name=f"pod-{meta.key(pod)}")
        self._tasks[uid] = task

    def _rejects(self, pod: Obj) -> bool:
        """Pod admission: a pod the kubelet never started is rejected (phase Failed, reason OutOfpods) when the
        node already runs ``max_pods`` pods, as the kubelet's admit handlers do."""
        status = pod.get("status") or {}
        if is_terminal(status) or status.get("containerStatuses") or meta.is_being_deleted(pod):
            return False
        used = sum(1 for w in self._workers.values() if w.active)
        capacity = self.ctx.config.max_pods
        if used < capacity:
            return False
        message = f"Node didn't have enough resource: pods, requested: 1, used: {used}, capacity: {capacity}"
        self.ctx.recorder.warning(pod, "OutOfpods", message)
        task = asyncio.create_task(self.ctx.status.write(pod, {"phase": "Failed", "reason": "OutOfpods",
                                                               "message": f"Pod was rejected: {message}"}))
        self._rejections.add(task)
        task.add_done_callback(self._rejections.discard)
        return True

    def pod_updated(self, old: Obj, new: Obj) -> None:
        if meta.uid(old) != meta.uid(new):
            self.pod_deleted(old)
            self.pod_added(new)
            return
        worker = self._workers.get(meta.uid(new))
        if worker is None:
            self.pod_added(new)
        elif spec_changed(old, new):
            worker.update(new)
        else:
            worker.refresh(new)

    def pod_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        pod = object_of(obj)
        worker = self._workers.get(meta.uid(pod))
        if worker is not None:
            worker.removed(pod if not isinstance(obj, DeletedFinalStateUnknown) else None)

    def wake(self, uid: str) -> None:
        worker = self._workers.get(uid)
        if worker is not None:
            worker.wake()

    def wake_all(self) -> None:
        for worker in self._workers.values():
            worker.wake()

    def worker(self, uid: str) -> PodWorker | None:
        return self._workers.get(uid)

    async def _run(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the worker of pod %s crashed", meta.key(worker.pod))
        finally:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]
                self._tasks.pop(worker.uid, None)

    async def stop(self) -> None:
        """Cancel every worker and cleanup; containers are left running (see the module docstring)."""
        tasks = [*self._tasks.values(), *self._orphans.values(), *self._rejections]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._workers.clear()
        self._tasks.clear()
        self._orphans.clear()

    # --- housekeeping ------------------------------------------------------------------------------

    async def housekeeping(self, informer: SharedInformer, pleg: Pleg) -> None:
        await informer.wait_synced()
        await pleg.relisted.wait()
        while True:
            try:
                await self.clean_orphans(informer, pleg)
            except (RuntimeServiceError, OSError) as e:
                log.warning("housekeeping failed: %s", e)
            await asyncio.sleep(self.ctx.config.housekeeping_period)

    def _known(self, informer: SharedInformer) -> set[str]:
        return set(self._workers) | {meta.uid(p) for p in informer.list()}

    async def clean_orphans(self, informer: SharedInformer, pleg: Pleg) -> None:
        runtime_uids = pleg.pod_uids() or set()
        known = self._known(informer)
        for uid in runtime_uids - known:
            if uid not in self._orphans:
                self._orphans[uid] = asyncio.create_task(self._remove_orphan(uid), name=f"orphan-{uid}")
        for uid in self.ctx.volumes.pod_uids_on_disk() - known - runtime_uids:
            if uid not in self._orphans:
                await self.ctx.volumes.teardown(uid)
        for uid in _log_uids(self.ctx.config.paths.logs) - known - runtime_uids:
            if uid not in self._orphans:
                await asyncio.to_thread(remove_pod_logs, self.ctx.config.paths.logs, uid)

    async def _remove_orphan(self, uid: str) -> None:
        """Stop (running the preStop hook the container was created with) and remove the sandboxes and
        containers of a pod the API no longer has, then its volumes and logs."""
        runtime = self.ctx.runtime
        labels = {cs.POD_UID_LABEL: uid}
        try:
            containers = await runtime.list_containers(labels=labels)
            sandboxes = await runtime.list_pod_sandboxes(labels=labels)
            log.info("removing %d containers of pod %s, which no longer exists", len(containers), uid)
            pod_ip = await self._sandbox_ip(sandboxes)
            await asyncio.gather(*(self._stop_orphan(c, pod_ip) for c in containers
                                   if c.state == pb.CONTAINER_RUNNING))
            for c in containers:
                await self._quiet(runtime.remove_container(c.id))
            for sb in sandboxes:
                await self._quiet(runtime.stop_pod_sandbox(sb.id))
                await self._quiet(runtime.remove_pod_sandbox(sb.id))
            await self.ctx.volumes.teardown(uid)
            await asyncio.to_thread(remove_pod_logs, self.ctx.config.paths.logs, uid)
            self.ctx.crash_backoff.forget(uid + "_")
        except (RuntimeServiceError, OSError) as e:
            log.warning("removing the leftovers of pod %s failed: %s", uid, e)
        finally:
            self._orphans.pop(uid, None)

    async def _sandbox_ip(self, sandboxes: list[pb.PodSandbox]) -> str:
        for sb in sandboxes:
            if sb.state == pb.SANDBOX_READY:
                try:
                    return (await self.ctx.runtime.pod_sandbox_status(sb.id)).network.ip
                except NotFoundError:
                    continue
        return ""

    async def _stop_orphan(self, c: pb.Container, pod_ip: str) -> None:
        grace = _int(c.annotations.get(cs.GRACE_PERIOD_ANNOTATION), 30)
        started = time.monotonic()
        pre_stop = c.annotations.get(cs.PRESTOP_ANNOTATION)
        if pre_stop and grace > 0:
            with contextlib.suppress(ValueError):
                await run_handler(json.loads(pre_stop), container={}, container_id=c.id, pod_ip=pod_ip,
                                  host_network=not pod_ip, runtime=self.ctx.runtime, session=self.ctx.http(),
                                  timeout=grace)
        remaining = max(grace - int(time.monotonic() - started), MIN_GRACE_PERIOD)
        await self._quiet(self.ctx.runtime.stop_container(c.id, remaining))

    @staticmethod
    async def _quiet(call: Any) -> None:
        try:
            await call
        except NotFoundError:
            pass


def spec_changed(old: Obj, new: Obj) -> bool:
    """Whether an update is one a worker must act on: not only the status (which is mostly the kubelet's
    own write coming back) or bookkeeping metadata (the kubelet's isPodChanged)."""
    if old.get("spec") != new.get("spec"):
        return True
    keys = ("labels", "annotations", "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers")
    before, after = meta.metadata(old), meta.metadata(new)
    return any(before.get(k) != after.get(k) for k in keys)


def _log_uids(logs_root: Path) -> set[str]:
    """The pod uids of the log folders ``<namespace>_<name>_<uid>`` (names and namespaces have no '_')."""
    try:
        return {entry.name.rsplit("_", 1)[1] for entry in logs_root.iterdir() if entry.name.count("_") == 2}
    except FileNotFoundError:
        return set()


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text else default
    except ValueError:
        return default
