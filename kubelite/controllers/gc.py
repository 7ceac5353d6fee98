"""The garbage collector: deletes objects whose owners are gone, and carries out Foreground and Orphan
deletion (Kubernetes' pkg/controller/garbagecollector).

The dependency graph is the informer caches themselves: one informer per kind in the registry, each
indexed by uid and by the uids its ``ownerReferences`` name. Work is keyed by uid and every reconcile is
level-triggered: it re-reads the object from the caches and decides from what it sees there.

What one reconcile of object X does (the decisions are pure functions, unit-tested without I/O):

- X is being deleted with the ``orphan`` finalizer (`plan_orphan`): remove X's reference from every
  dependent, then remove the finalizer (the API server then deletes X);
- X is being deleted with the ``foregroundDeletion`` finalizer (`plan_foreground`): re-queue the dependents
  not yet being deleted (their own reconcile deletes them, since their owner waits for them), and once no
  dependent with ``blockOwnerDeletion: true`` is left, remove the finalizer;
- X is otherwise being deleted: nothing (it goes when its own finalizers are done);
- X has owner references (`plan_dependent`), each owner classified as present, absent, or being deleted in
  the foreground (`OwnerState`):
  * some owner is present ("solid"): only drop the references to absent and foreground-deleting owners;
  * no owner is present: X is garbage. Delete it, in the foreground when an owner is waiting for it and
    X has dependents of its own, else with the policy its own finalizers ask for (Background by default).

An owner missing from the caches is looked up live before it is called absent (the caches may simply not
have seen it yet); uids confirmed absent are remembered, since a uid never comes back. An owner whose kind
is unknown, whose reference has no name, or a namespaced owner of a cluster-scoped object cannot be
resolved and counts as present: the collector never deletes what it cannot prove is garbage.

Every write carries the resourceVersion of the state it was decided from (deletes as a precondition), so
a decision made on a stale cache fails with 409 and is made again once the cache has caught up.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubelite.api import meta
from kubelite.api.registry import Kind, UnknownKind, all_kinds, by_kind
from kubelite.client.informer import DeletedFinalStateUnknown, InformerFactory, SharedInformer, object_of
from kubelite.client.rest import Client, NotFound
from kubelite.client.workqueue import RateLimitingQueue, run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
UID_INDEX = "gc-uid"
OWNER_INDEX = "gc-owner-uid"
FIELD_MANAGER = "garbage-collector"
# How many uids confirmed absent are remembered (Kubernetes keeps 500 in an LRU).
ABSENT_OWNER_CACHE_SIZE = 1024


def graph_kinds() -> list[Kind]:
    """Every kind whose objects can be owners or dependents: those the collector can list and watch."""
    return [k for k in all_kinds() if "list" in k.verbs and "watch" in k.verbs]


# --- the plan (pure) --------------------------------------------------------------------------------

class OwnerState(Enum):
    PRESENT = "present"
    ABSENT = "absent"
    # Being deleted with the foregroundDeletion finalizer: waits for its dependents to go.
    DELETING_DEPENDENTS = "deletingDependents"
    # Unknown kind, or a namespaced owner named by a cluster-scoped object: never proven absent.
    UNRESOLVABLE = "unresolvable"


@dataclass(frozen=True, slots=True)
class Node:
    """An object as the graph knows it: its kind and its cached state."""

    kind: Kind
    obj: Obj

    @property
    def uid(self) -> str:
        return meta.uid(self.obj)


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``target`` with ``policy``, only if it is still at the resourceVersion it was decided from."""

    target: Node
    policy: str


@dataclass(frozen=True, slots=True)
class SetOwnerReferences:
    """Replace ``target``'s ownerReferences (an optimistic-concurrency merge patch)."""

    target: Node
    references: tuple[Obj, ...]


@dataclass(frozen=True, slots=True)
class RemoveFinalizer:
    target: Node
    finalizer: str


@dataclass(frozen=True, slots=True)
class Requeue:
    """Reconcile these uids (dependents whose owner now waits for them)."""

    uids: tuple[str, ...]


Action = Delete | SetOwnerReferences | RemoveFinalizer | Requeue


def owner_state(owner: Obj) -> OwnerState:
    """The state of an owner that exists."""
    if meta.is_being_deleted(owner) and FOREGROUND in meta.finalizers(owner):
        return OwnerState.DELETING_DEPENDENTS
    return OwnerState.PRESENT


def references_to(dependent: Obj, owner_uid: str) -> list[Obj]:
    return [r for r in meta.owner_references(dependent) if r.get("uid") == owner_uid]


def plan_dependent(node: Node, owners: Mapping[str, OwnerState], *, has_dependents: bool) -> list[Action]:
    """What to do about an object that is not being deleted, given the state of each owner it names
    (``owners`` maps an ownerReference's uid to its state; a uid missing from it counts as present)."""
    refs = meta.owner_references(node.obj)
    if not refs or meta.is_being_deleted(node.obj):
        return []

    def state(ref: Obj) -> OwnerState:
        return owners.get(str(ref.get("uid") or ""), OwnerState.PRESENT)

    solid = [r for r in refs if state(r) in (OwnerState.PRESENT, OwnerState.UNRESOLVABLE)]
    if solid:
        if len(solid) == len(refs):
            return []
        return [SetOwnerReferences(node, tuple(solid))]
    waiting = any(state(r) is OwnerState.DELETING_DEPENDENTS for r in refs)
    if waiting and has_dependents:
        return [Delete(node, "Foreground")]
    finalizers = meta.finalizers(node.obj)
    policy = "Orphan" if ORPHAN in finalizers else "Foreground" if FOREGROUND in finalizers else "Background"
    return [Delete(node, policy)]


def plan_orphan(owner: Node, dependents: Iterable[Node]) -> list[Action]:
    """An owner being deleted with the orphan finalizer: free every dependent, then let the owner go.
    The finalizer is removed last, so it stays until every dependent is patched."""
    if not (meta.is_being_deleted(owner.obj) and ORPHAN in meta.finalizers(owner.obj)):
        return []
    actions: list[Action] = []
    for dep in dependents:
        if references_to(dep.obj, owner.uid):
            kept = tuple(r for r in meta.owner_references(dep.obj) if r.get("uid") != owner.uid)
            actions.append(SetOwnerReferences(dep, kept))
    actions.append(RemoveFinalizer(owner, ORPHAN))
    return actions


def plan_foreground(owner: Node, dependents: Sequence[Node]) -> list[Action]:
    """An owner being deleted with the foregroundDeletion finalizer: it goes when no dependent that blocks
    it (``blockOwnerDeletion: true``) is left; until then its dependents are driven to deletion."""
    if not (meta.is_being_deleted(owner.obj) and FOREGROUND in meta.finalizers(owner.obj)):
        return []
    blocking = [d for d in dependents
                if any(r.get("blockOwnerDeletion") for r in references_to(d.obj, owner.uid))]
    if not blocking:
        return [RemoveFinalizer(owner, FOREGROUND)]
    pending = tuple(d.uid for d in dependents if not meta.is_being_deleted(d.obj))
    return [Requeue(pending)] if pending else []


# --- the controller (I/O) ---------------------------------------------------------------------------

def _uid_index(obj: Obj) -> list[str]:
    uid = meta.uid(obj)
    return [uid] if uid else []


def _owner_index(obj: Obj) -> list[str]:
    return sorted({str(r["uid"]) for r in meta.owner_references(obj) if r.get("uid")})


def _needs_attention(obj: Obj) -> bool:
    """Whether the collector may have something to do about ``obj`` itself."""
    if meta.is_being_deleted(obj):
        return bool({ORPHAN, FOREGROUND} & set(meta.finalizers(obj)))
    return bool(meta.owner_references(obj))


def _reference_set(obj: Obj) -> set[tuple[str, bool]]:
    return {(str(r.get("uid") or ""), bool(r.get("blockOwnerDeletion"))) for r in meta.owner_references(obj)}


class GarbageCollector:
    """See the module docstring. Keys are object uids."""

    name = "garbagecollector"

    def __init__(self, client: Client, *, absent_cache_size: int = ABSENT_OWNER_CACHE_SIZE) -> None:
        self.client = client
        self.queue: RateLimitingQueue[str] = RateLimitingQueue("garbagecollector")
        self._informers: list[tuple[Kind, SharedInformer]] = []
        self._absent: OrderedDict[str, None] = OrderedDict()
        self._absent_size = absent_cache_size

    def setup(self, factory: InformerFactory) -> None:
        for kind in graph_kinds():
            inf = factory.informer(kind)
            inf.add_indexers({UID_INDEX: _uid_index, OWNER_INDEX: _owner_index})
            inf.add_handler(self._added, self._updated, self._deleted)
            self._informers.append((kind, inf))

    async def run(self, workers: int) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers)
        finally:
            self.queue.shutdown()

    # --- the graph, read from the caches -----------------------------------------------------------

    def find(self, uid: str) -> Node | None:
        for kind, inf in self._informers:
            found = inf.by_index(UID_INDEX, uid)
            if found:
                return Node(kind, found[0])
        return None

    def dependents(self, uid: str) -> list[Node]:
        return [Node(kind, obj) for kind, inf in self._informers for obj in inf.by_index(OWNER_INDEX, uid)]

    # --- handlers: enqueue only --------------------------------------------------------------------

    def _added(self, obj: Obj) -> None:
        if _needs_attention(obj):
            self.queue.add(meta.uid(obj))

    def _updated(self, old: Obj, new: Obj) -> None:
        uid = meta.uid(new)
        if _needs_attention(new):
            self.queue.add(uid)
        # An owner waiting in the foreground may be unblocked by a dependent that dropped (or stopped
        # blocking with) its reference.
        for owner_uid, _ in _reference_set(old) ^ _reference_set(new):
            self.queue.add(owner_uid)
        if meta.is_being_deleted(new) and FOREGROUND in meta.finalizers(new):
            for dep in self.dependents(uid):
                self.queue.add(dep.uid)

    def _deleted(self, gone: Obj | DeletedFinalStateUnknown) -> None:
        obj = object_of(gone)
        uid = meta.uid(obj)
        self._remember_absent(uid)
        for dep in self.dependents(uid):  # they may now be garbage
            self.queue.add(dep.uid)
        for ref in meta.owner_references(obj):  # an owner may have waited for this one
            if ref.get("uid"):
                self.queue.add(str(ref["uid"]))

    # --- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, uid: str) -> None:
        node = self.find(uid)
        if node is None:
            return  # gone: its dependents were queued when it went
        finalizers = meta.finalizers(node.obj)
        if meta.is_being_deleted(node.obj):
            if ORPHAN in finalizers:
                actions = plan_orphan(node, self.dependents(uid))
            elif FOREGROUND in finalizers:
                actions = plan_foreground(node, self.dependents(uid))
            else:
                return
        else:
            refs = meta.owner_references(node.obj)
            if not refs:
                return
            owners = {str(r.get("uid") or ""): await self._owner_state(node, r) for r in refs}
            actions = plan_dependent(node, owners, has_dependents=bool(self.dependents(uid)))
        for action in actions:
            await self._apply(action)

    async def _owner_state(self, dependent: Node, ref: Obj) -> OwnerState:
        """The state of the owner ``ref`` names: from the caches, else confirmed with a live GET."""
        uid = str(ref.get("uid") or "")
        cached = self.find(uid)
        if cached is not None:
            return owner_state(cached.obj)
        if uid in self._absent:
            return OwnerState.ABSENT
        try:
            kind = by_kind(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        except UnknownKind:
            return OwnerState.UNRESOLVABLE
        name = str(ref.get("name") or "")
        if not name or (kind.namespaced and not dependent.kind.namespaced):
            return OwnerState.UNRESOLVABLE
        namespace = meta.namespace(dependent.obj) if kind.namespaced else None
        try:
            live = await self.client.get(kind, name, namespace)
        except NotFound:
            self._remember_absent(uid)
            return OwnerState.ABSENT
        if meta.uid(live) != uid:  # the name now belongs to another object
            self._remember_absent(uid)
            return OwnerState.ABSENT
        return owner_state(live)

    def _remember_absent(self, uid: str) -> None:
        if not uid:
            return
        self._absent[uid] = None
        self._absent.move_to_end(uid)
        while len(self._absent) > self._absent_size:
            self._absent.popitem(last=False)

    async def _apply(self, action: Action) -> None:
        if isinstance(action, Requeue):
            for uid in action.uids:
                self.queue.add(uid)
            return
        target = action.target
        name, namespace = meta.name(target.obj), meta.namespace(target.obj) or None
        rv = meta.resource_version(target.obj)
        try:
            if isinstance(action, Delete):
                log.info("garbage collector: deleting %s %s (%s)", target.kind.kind, meta.key(target.obj),
                         action.policy)
                await self.client.delete(target.kind, name, namespace, propagation_policy=action.policy,
                                         preconditions={"uid": target.uid, "resourceVersion": rv})
            elif isinstance(action, SetOwnerReferences):
                refs = list(action.references) or None  # null removes the field
                await self.client.patch(target.kind, name,
                                        {"metadata": {"resourceVersion": rv, "ownerReferences": refs}},
                                        "merge", namespace, field_manager=FIELD_MANAGER)
            else:
                kept = [f for f in meta.finalizers(target.obj) if f != action.finalizer] or None
                await self.client.patch(target.kind, name,
                                        {"metadata": {"resourceVersion": rv, "finalizers": kept}},
                                        "merge", namespace, field_manager=FIELD_MANAGER)
        except NotFound:
            pass  # already gone: nothing left to do for it
