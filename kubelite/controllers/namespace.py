"""The Namespace controller: empties a namespace that is being deleted, then releases its `kubernetes`
finalizer so that the API server can remove it (Kubernetes' pkg/controller/namespace).

One reconcile of namespace N, when N has a ``deletionTimestamp`` and ``spec.finalizers`` holds
``kubernetes`` (the API server refuses new content in N from the moment it is marked):

1. list every namespaced kind in N, live from the API server: the informer caches may lag behind, and a
   cache that has not seen an object yet must not let N go with the object still in it;
2. delete what is not already being deleted (`plan_deletions`): one deletecollection per kind that has
   the verb, else one delete per object, with propagationPolicy Background (the garbage collector must not
   orphan what lives in a dying namespace). If anything was deleted, list again: objects without
   finalizers are gone at once;
3. decide (`plan_outcome`): nothing left → finalize; objects left (finalizers, pods waiting for their
   kubelet) → look again after ``estimate / 2 + 1`` seconds, Kubernetes' rule (sooner in practice: the
   deletion of any object in a terminating namespace re-queues it);
4. finalize: remove ``kubernetes`` from ``spec.finalizers`` through ``PUT namespaces/N/finalize`` when the
   server lists that subresource in discovery, else through a PUT of the namespace itself. The server
   removes N once both ``spec.finalizers`` and ``metadata.finalizers`` are empty.

Status conditions (``NamespaceContentRemaining`` etc., as Kubernetes writes them) are computed on every
pass but written only when the server serves ``namespaces/finalize``: a server without it deletes a
terminating namespace on *any* write once ``metadata.finalizers`` is empty, so a status write would end
the namespace before its content is gone.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import Kind, all_kinds, by_resource
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import ApiException, Client, NotFound
from kubelite.client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NAMESPACES = by_resource("", "v1", "namespaces")
FINALIZER = "kubernetes"
# Kubernetes' guess of how long an object with finalizers takes to go.
FINALIZER_ESTIMATE_SECONDS = 15
FIELD_MANAGER = "namespace-controller"

CONDITION_TYPES = (
    "NamespaceDeletionDiscoveryFailure",
    "NamespaceDeletionGroupVersionParsingFailure",
    "NamespaceDeletionContentFailure",
    "NamespaceContentRemaining",
    "NamespaceFinalizersRemaining",
)
# (reason, message) of each condition type when all is well (status "False").
_OK: dict[str, tuple[str, str]] = {
    "NamespaceDeletionDiscoveryFailure": ("ResourcesDiscovered", "All resources successfully discovered"),
    "NamespaceDeletionGroupVersionParsingFailure": ("ParsedGroupVersions",
                                                    "All legacy kube types successfully parsed"),
    "NamespaceDeletionContentFailure": ("ContentDeleted",
                                        "All content successfully deleted, may be waiting on finalization"),
    "NamespaceContentRemaining": ("ContentRemoved", "All content successfully removed"),
    "NamespaceFinalizersRemaining": ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}


def content_kinds() -> list[Kind]:
    """Every namespaced kind the controller can list and delete."""
    return [k for k in all_kinds() if k.namespaced and "list" in k.verbs
            and ("delete" in k.verbs or "deletecollection" in k.verbs)]


# --- the plan (pure) --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeleteCollection:
    """``DELETE`` on the kind's collection in the namespace."""

    kind: Kind


@dataclass(frozen=True, slots=True)
class DeleteObject:
    """``DELETE`` of one object (kinds without deletecollection), guarded by its uid."""

    kind: Kind
    name: str
    uid: str


Deletion = DeleteCollection | DeleteObject


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do once the deletions are sent: finalize, or look again after ``requeue_after`` seconds;
    ``conditions`` is the new ``status.conditions`` list, None when it would not change."""

    finalize: bool
    requeue_after: float | None
    conditions: list[Obj] | None


def needs_cleanup(ns: Obj) -> bool:
    """The namespace is being deleted and still waits for this controller."""
    spec_finalizers = (ns.get("spec") or {}).get("finalizers") or []
    return meta.is_being_deleted(ns) and FINALIZER in spec_finalizers


def plan_deletions(contents: Mapping[Kind, Sequence[Obj]]) -> list[Deletion]:
    """The deletions that remove every object not already being deleted, in the order of ``contents``."""
    out: list[Deletion] = []
    for kind, objs in contents.items():
        alive = [o for o in objs if not meta.is_being_deleted(o)]
        if not alive:
            continue
        if "deletecollection" in kind.verbs:
            out.append(DeleteCollection(kind))
        else:
            out.extend(DeleteObject(kind, meta.name(o), meta.uid(o)) for o in alive)
    return out


def plan_outcome(ns: Obj, remaining: Mapping[Kind, Sequence[Obj]], failures: Sequence[str], *,
                 now: str) -> Outcome:
    """Given what is still in the namespace after the deletions (and the deletions that failed)."""
    left = {kind: objs for kind, objs in remaining.items() if objs}
    conditions = updated_conditions((ns.get("status") or {}).get("conditions") or [],
                                    _failed_conditions(left, failures, now), now=now)
    if failures:
        return Outcome(False, None, conditions)  # the caller retries with backoff
    if not left:
        return Outcome(True, None, conditions)
    estimate = max(_estimate(o) for objs in left.values() for o in objs)
    return Outcome(False, estimate / 2 + 1, conditions)


def _estimate(obj: Obj) -> int:
    """Seconds until ``obj`` is likely gone: its grace period (pods), or Kubernetes' guess for finalizers."""
    seconds = int(meta.metadata(obj).get("deletionGracePeriodSeconds") or 0)
    if meta.finalizers(obj):
        seconds = max(seconds, FINALIZER_ESTIMATE_SECONDS)
    return seconds


def _failed_conditions(left: Mapping[Kind, Sequence[Obj]], failures: Sequence[str], now: str) -> list[Obj]:
    """The conditions that are True now, with Kubernetes' reasons and messages."""
    out: list[Obj] = []
    if failures:
        msgs = sorted(failures)
        out.append(_condition("NamespaceDeletionContentFailure", "True", "ContentDeletionFailed",
                              f"Failed to delete all resource types, {len(msgs)} remaining: {', '.join(msgs)}",
                              now))
    if left:
        counts = sorted(f"{kind.plural}.{kind.group} has {len(objs)} resource instances"
                        for kind, objs in left.items())
        out.append(_condition("NamespaceContentRemaining", "True", "SomeResourcesRemain",
                              f"Some resources are remaining: {', '.join(counts)}", now))
        by_finalizer: dict[str, int] = {}
        for objs in left.values():
            for o in objs:
                for f in meta.finalizers(o):
                    by_finalizer[f] = by_finalizer.get(f, 0) + 1
        if by_finalizer:
            listed = sorted(f"{f} in {n} resource instances" for f, n in by_finalizer.items())
            out.append(_condition("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain",
                                  f"Some content in the namespace has finalizers remaining: {', '.join(listed)}",
                                  now))
    return out


def _condition(ctype: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {"type": ctype, "status": status, "lastTransitionTime": now, "reason": reason, "message": message}


def updated_conditions(current: Sequence[Obj], failing: Sequence[Obj], *, now: str) -> list[Obj] | None:
    """Kubernetes' updateConditions: every controller-owned type present, the failing ones as given and
    the others in their "all is well" form; ``lastTransitionTime`` moves only when ``status`` changes.
    Conditions of other types are kept. None when nothing changes."""
    out = [dict(c) for c in current]
    changed = False
    for ctype in CONDITION_TYPES:
        want = next((c for c in failing if c["type"] == ctype), None)
        if want is None:
            reason, message = _OK[ctype]
            want = _condition(ctype, "False", reason, message, now)
        old = next((c for c in out if c.get("type") == ctype), None)
        if old is None:
            out.append(dict(want))
            changed = True
        elif (old.get("status"), old.get("reason"), old.get("message")) != \
                (want["status"], want["reason"], want["message"]):
            if old.get("status") != want["status"]:
                old["lastTransitionTime"] = now
            old.update(status=want["status"], reason=want["reason"], message=want["message"])
            changed = True
    return out if changed else None


def finalized(ns: Obj) -> Obj:
    """A copy of ``ns`` without this controller's finalizer in ``spec.finalizers``."""
    out = copy.deepcopy(ns)
    spec = out.setdefault("spec", {})
    spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
    return out


# --- the controller (I/O) ---------------------------------------------------------------------------

class NamespaceController:
    """See the module docstring. Keys are namespace names."""

    name = "namespace"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("namespace")
        self._namespaces: SharedInformer | None = None
        self._finalize_served: bool | None = None  # learnt from discovery on first need

    def setup(self, factory: InformerFactory) -> None:
        self._namespaces = factory.informer(NAMESPACES)
        self._namespaces.add_handler(on_add=self._namespace_changed,
                                     on_update=lambda _old, new: self._namespace_changed(new))
        # Content informers only wake the namespace up when its content goes; what is left is listed live.
        for kind in content_kinds():
            factory.informer(kind).add_handler(on_delete=self._content_deleted)

    async def run(self, workers: int) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _namespace_changed(self, ns: Obj) -> None:
        if needs_cleanup(ns):
            self.queue.add(meta.name(ns))

    def _content_deleted(self, obj: Obj | DeletedFinalStateUnknown) -> None:
        ns_name = meta.namespace(object_of(obj))
        ns = self._cached(ns_name)
        if ns is not None and needs_cleanup(ns):
            self.queue.add(ns_name)

    def _cached(self, name: str) -> Obj | None:
        if self._namespaces is None:
            raise RuntimeError("NamespaceController.setup() was not called")
        return self._namespaces.get(name)

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, name: str) -> float | None:
        """One pass over namespace ``name``; returns when to look again (None: only on events)."""
        ns = self._cached(name)
        if ns is None or not needs_cleanup(ns):
            return None
        contents = await self._list_contents(name)
        deletions = plan_deletions(contents)
        failures = await self._delete(name, deletions)
        if deletions:
            contents = await self._list_contents(name)
        outcome = plan_outcome(ns, contents, failures, now=meta.now_rfc3339())
        if outcome.conditions is not None and await self._finalize_is_served():
            ns = await self._write_conditions(ns, outcome.conditions)
            if ns is None:
                return None
        if failures:
            raise RuntimeError(f"namespace {name}: " + "; ".join(failures))
        if outcome.finalize and await self._finalize(ns):
            log.info("namespace %s: content removed, finalizer %r released", name, FINALIZER)
        return outcome.requeue_after

    async def _list_contents(self, namespace: str) -> dict[Kind, list[Obj]]:
        kinds = content_kinds()
        lists = await asyncio.gather(*(self.client.list(kind, namespace) for kind in kinds))
        return {kind: list(listed.get("items") or []) for kind, listed in zip(kinds, lists, strict=True)}

    async def _delete(self, namespace: str, deletions: Iterable[Deletion]) -> list[str]:
        """Send every deletion; returns one message per deletion that failed (Kubernetes' wording)."""
        failures: list[str] = []
        for d in deletions:
            try:
                if isinstance(d, DeleteCollection):
                    await self.client.delete_collection(d.kind, namespace, propagation_policy="Background")
                else:
                    await self.client.delete(d.kind, d.name, namespace, propagation_policy="Background",
                                             preconditions={"uid": d.uid})
            except NotFound:
                continue  # gone already (or the collection has no items left)
            except ApiException as e:
                gvr = f"{d.kind.group}/{d.kind.version}, Resource={d.kind.plural}"
                failures.append(f"unexpected error deleting {gvr} in {namespace}: {e.message}")
        return failures

    async def _write_conditions(self, ns: Obj, conditions: list[Obj]) -> Obj | None:
        """Write ``status.conditions`` (and the Terminating phase); returns the namespace as written, or None
        when it is gone."""
        new = copy.deepcopy(ns)
        status = new.setdefault("status", {})
        status["phase"] = "Terminating"
        status["conditions"] = conditions
        try:
            return await self.client.update_status(NAMESPACES, new, field_manager=FIELD_MANAGER)
        except NotFound:
            return None

    async def _finalize(self, ns: Obj) -> bool:
        """Remove our finalizer; False when the namespace was already gone."""
        body = finalized(ns)
        try:
            if await self._finalize_is_served():
                path = self.client.item_path(NAMESPACES, meta.name(ns), None, "finalize")
                await self.client.request("PUT", path, body=body)
            else:
                await self.client.update(NAMESPACES, body, field_manager=FIELD_MANAGER)
        except NotFound:
            return False  # finished by an earlier pass whose result the cache had not shown yet
        return True

    async def _finalize_is_served(self) -> bool:
        """Whether the API server serves ``namespaces/finalize`` (asked once, from ``/api/v1`` discovery;
        a server without that document does not serve it)."""
        if self._finalize_served is None:
            try:
                discovery = await self.client.request("GET", "/api/v1")
            except NotFound:
                discovery = {}
            resources = discovery.get("resources") if isinstance(discovery, dict) else None
            names = {r.get("name") for r in resources or [] if isinstance(r, dict)}
            self._finalize_served = "namespaces/finalize" in names
            if self._finalize_served:
                log.info("namespace controller: finalizing through namespaces/finalize")
            else:
                log.info("namespace controller: the API server does not serve namespaces/finalize; "
                         "finalizing with a PUT of the namespace")
        return self._finalize_served
