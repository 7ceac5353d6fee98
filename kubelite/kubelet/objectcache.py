"""The ConfigMaps and Secrets the pods on this node reference, kept current by watches.

The kubelet needs them for environment variables and for configMap/secret/projected volumes, and must notice
when they change (to update the projected files). Kubernetes' kubelet watches each referenced object; with
one HTTP/1.1 connection per watch that would not scale here, so this cache watches per namespace instead:
one ConfigMap and one Secret informer for each namespace that has a pod referencing such an object,
started when the first such pod arrives and stopped when the last one goes.

`acquire(uid, pod)` records what a pod references and waits until the namespace's caches are synced;
`release(uid)` forgets it. When a referenced object is added, changed or deleted, ``on_change`` is called
with the uid of every pod that references it, so that their workers sync again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import by_resource
from kubelite.client.informer import DeletedFinalStateUnknown, SharedInformer, object_of
from kubelite.client.rest import Client

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONFIGMAPS = by_resource("", "v1", "configmaps")
SECRETS = by_resource("", "v1", "secrets")
CONFIGMAP = "ConfigMap"
SECRET = "Secret"
Ref = tuple[str, str]  # (kind, name)


def references(pod: Obj) -> set[Ref]:
    """Every ConfigMap and Secret the pod's env, envFrom and volumes name (imagePullSecrets are read once,
    when pulling, and need no watch)."""
    spec = pod.get("spec") or {}
    refs: set[Ref] = set()
    for ctr in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        for source in ctr.get("envFrom") or []:
            if source.get("configMapRef"):
                refs.add((CONFIGMAP, str(source["configMapRef"].get("name") or "")))
            if source.get("secretRef"):
                refs.add((SECRET, str(source["secretRef"].get("name") or "")))
        for var in ctr.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                refs.add((CONFIGMAP, str(value_from["configMapKeyRef"].get("name") or "")))
            if value_from.get("secretKeyRef"):
                refs.add((SECRET, str(value_from["secretKeyRef"].get("name") or "")))
    for vol in spec.get("volumes") or []:
        if vol.get("configMap"):
            refs.add((CONFIGMAP, str(vol["configMap"].get("name") or "")))
        if vol.get("secret"):
            refs.add((SECRET, str(vol["secret"].get("secretName") or "")))
        for src in (vol.get("projected") or {}).get("sources") or []:
            if src.get("configMap"):
                refs.add((CONFIGMAP, str(src["configMap"].get("name") or "")))
            if src.get("secret"):
                refs.add((SECRET, str(src["secret"].get("name") or "")))
    return refs


class ObjectCache:
    def __init__(self, client: Client, on_change: Callable[[str], None], *, sync_timeout: float = 30.0) -> None:
        self._client = client
        self._on_change = on_change
        self._sync_timeout = sync_timeout
        self._informers: dict[str, tuple[SharedInformer, SharedInformer]] = {}
        self._pods: dict[str, tuple[str, set[Ref]]] = {}  # uid -> (namespace, refs)
        self._stopping: set[asyncio.Task[None]] = set()

    async def acquire(self, uid: str, pod: Obj) -> None:
        """Track ``pod``'s references; returns once its namespace's objects are cached (or at once when it
        references none). Raises TimeoutError when the caches do not sync in time."""
        refs = references(pod)
        namespace = meta.namespace(pod)
        if not refs:
            self.release(uid)
            return
        self._pods[uid] = (namespace, refs)
        pair = self._informers.get(namespace)
        if pair is None:
            pair = self._start(namespace)
        async with asyncio.timeout(self._sync_timeout):
            await asyncio.gather(pair[0].wait_synced(), pair[1].wait_synced())

    def release(self, uid: str) -> None:
        entry = self._pods.pop(uid, None)
        if entry is None:
            return
        namespace = entry[0]
        if any(ns == namespace for ns, _ in self._pods.values()):
            return
        pair = self._informers.pop(namespace, None)
        if pair is not None:
            for inf in pair:
                task = asyncio.create_task(self._stop_quietly(inf))
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)

    def configmap(self, namespace: str, name: str) -> Obj | None:
        pair = self._informers.get(namespace)
        return pair[0].get_by_name(name, namespace) if pair else None

    def secret(self, namespace: str, name: str) -> Obj | None:
        pair = self._informers.get(namespace)
        return pair[1].get_by_name(name, namespace) if pair else None

    async def stop(self) -> None:
        pairs = list(self._informers.values())
        self._informers.clear()
        self._pods.clear()
        await asyncio.gather(*(self._stop_quietly(inf) for pair in pairs for inf in pair), *self._stopping)

    def _start(self, namespace: str) -> tuple[SharedInformer, SharedInformer]:
        pair = (SharedInformer(self._client, CONFIGMAPS, namespace), SharedInformer(self._client, SECRETS, namespace))
        for kind, inf in ((CONFIGMAP, pair[0]), (SECRET, pair[1])):
            changed = functools.partial(self._changed, kind)
            inf.add_handler(on_add=changed, on_update=functools.partial(self._updated, kind), on_delete=changed)
            inf.start()
        self._informers[namespace] = pair
        return pair

    def _updated(self, kind: str, old: Obj, new: Obj) -> None:
        if old is not new:  # not a resync
            self._changed(kind, new)

    def _changed(self, kind: str, obj: Obj | DeletedFinalStateUnknown) -> None:
        target = object_of(obj)
        namespace, ref = meta.namespace(target), (kind, meta.name(target))
        for uid, (ns, refs) in list(self._pods.items()):
            if ns == namespace and ref in refs:
                self._on_change(uid)

    @staticmethod
    async def _stop_quietly(inf: SharedInformer) -> None:
        try:
            await inf.stop()
        except Exception as e:  # a watch that died is being stopped anyway
            log.debug("stopping the %s informer: %s", inf.kind.plural, e)
