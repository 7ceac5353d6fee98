"""Object lifecycle on top of the store: what create, update, patch and delete mean for an API object.

This is kubelite's counterpart of Kubernetes' generic registry store. It owns the metadata rules:
``uid``/``creationTimestamp`` set once, ``generation`` bumped when ``spec`` changes, the ``status``
subresource split, optimistic concurrency on ``resourceVersion``, finalizers and ``deletionTimestamp``,
graceful pod deletion, and no-op updates that write nothing. Handlers translate HTTP into these calls; reads
of lists and watches are served by the watch cache.

Every write goes through `_guaranteed_update` (read, compute, compare-and-swap, retry), so two writers never
lose each other's changes, and a caller-supplied resourceVersion that is stale is a 409 Conflict.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelite.api import errors, qos
from kubelite.api.registry import Kind, by_resource

from . import codec
from .admission import admit, check_fields
from .allocators import ServiceAllocator
from .patch import (
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    server_side_apply,
    update_managed_fields,
)
from .storage.interface import KeyExists, KeyNotFound, RevisionMismatch, Store
from .watchcache import WatchCache

Obj = dict[str, Any]

NAMESPACES = by_resource("", "v1", "namespaces")
SERVICES = by_resource("", "v1", "services")
PODS = by_resource("", "v1", "pods")
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet: no vowels, no 0/1/3.
_MAX_RETRIES = 20


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class WriteOptions:
    """What every mutating request carries besides its body."""

    field_manager: str = ""
    # Apply needs a fieldManager named by the client; other writes default it from the User-Agent.
    manager_given: bool = True
    field_validation: str = "Warn"
    dry_run: bool = False
    force: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class WriteResult:
    obj: Obj
    created: bool = False


class Resources:
    """Create, read, update, patch and delete objects of any served kind."""

    def __init__(self, store: Store, cache: WatchCache, allocator: ServiceAllocator | None = None) -> None:
        self.store = store
        self.cache = cache
        self.allocator = allocator or ServiceAllocator(store)

    # ---- reads -------------------------------------------------------------------------------------
    async def get(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        kv = await self.store.get(kind.key(namespace, name))
        if kv is None:
            raise errors.not_found(kind.plural, name, kind.group)
        return codec.decode(kv)

    # ---- create ------------------------------------------------------------------------------------
    async def create(self, kind: Kind, namespace: str | None, body: Any, opts: WriteOptions) -> Obj:
        obj = self._check_body(kind, namespace, body, None)
        opts.warnings += check_fields(kind, obj, opts.field_validation)
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if not meta.get("name") and not meta.get("generateName"):
            raise errors.invalid_object(kind.kind, "", [errors.required(
                "metadata.name", "name or generateName is required")], kind.group)
        if namespace is not None and kind.namespaced:
            await self._check_namespace_open(namespace)
        generated = not meta.get("name")
        if generated:
            meta["name"] = _generate_name(meta["generateName"])
        self._stamp_new(kind, obj)
        admit(kind, obj, None, "CREATE")
        update_managed_fields(None, obj, manager=opts.field_manager, api_version=kind.api_version,
                              now=rfc3339(now()), operation="Update")
        return await self._insert(kind, obj, opts, generated=generated)

    async def _insert(self, kind: Kind, obj: Obj, opts: WriteOptions, *, generated: bool = False) -> Obj:
        """Store a new object (its name already chosen; a generated one is drawn again on a collision),
        allocating what it needs first (a Service's cluster IP and node ports) and releasing that if the
        object cannot be stored."""
        meta = obj["metadata"]
        taken: list[str] = []
        if kind is SERVICES:
            # An existing Service holds its addresses: say AlreadyExists, not "IP already allocated".
            if not generated and await self.store.get(kind.key(meta.get("namespace"), meta["name"])) is not None:
                raise errors.already_exists(kind.plural, meta["name"], kind.group)
            taken = await self.allocator.on_create(obj, dry_run=opts.dry_run)
        try:
            for _ in range(_MAX_RETRIES):
                if opts.dry_run:
                    if await self.store.get(kind.key(meta.get("namespace"), meta["name"])) is not None:
                        raise errors.already_exists(kind.plural, meta["name"], kind.group)
                    return obj
                try:
                    kv = await self.store.create(kind.key(meta.get("namespace"), meta["name"]), codec.encode(obj))
                except KeyExists:
                    if generated:
                        meta["name"] = _generate_name(meta["generateName"])
                        continue
                    raise errors.already_exists(kind.plural, meta["name"], kind.group) from None
                meta["resourceVersion"] = str(kv.mod_revision)
                taken = []
                return obj
            raise errors.APIError(409, "AlreadyExists", "could not generate a unique name; try again")
        finally:
            if taken:
                await self.allocator.release(taken)

    def _stamp_new(self, kind: Kind, obj: Obj) -> None:
        meta = obj["metadata"]
        for drop in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(drop, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(now())
        if kind.has_spec:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if kind.has_status and kind.group == "apps":
            obj["status"] = {}
        if kind is PODS:
            # As Kubernetes' pod strategy: a new pod is Pending, with its QoS class, whatever the client sent.
            obj["status"] = {"phase": "Pending", "qosClass": qos.pod_qos(obj)}

    async def _check_namespace_open(self, namespace: str) -> None:
        entry = self.cache.cache(NAMESPACES).entries.get(NAMESPACES.key(None, namespace))
        ns = entry.obj if entry is not None else None
        if ns is None:
            kv = await self.store.get(NAMESPACES.key(None, namespace))
            if kv is None:
                raise errors.not_found("namespaces", namespace)
            ns = codec.decode(kv)
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise errors.APIError(403, "Forbidden", f"unable to create new content in namespace {namespace} "
                                  "because it is being terminated",
                                  {"name": namespace, "kind": "namespaces",
                                   "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                               "message": f"namespace {namespace} is being terminated"}]})

    # ---- update and patch --------------------------------------------------------------------------
    async def update(self, kind: Kind, namespace: str | None, name: str, body: Any, opts: WriteOptions,
                     subresource: str = "") -> Obj:
        obj = self._check_body(kind, namespace, body, name)
        opts.warnings += check_fields(kind, obj, opts.field_validation)
        want_rv = (obj.get("metadata") or {}).get("resourceVersion") or ""

        def compute(cur: Obj) -> Obj:
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.plural, name, kind.group)
            return self._merge_update(kind, cur, copy.deepcopy(obj), subresource)

        return await self._guaranteed_update(kind, namespace, name, compute, opts, subresource,
                                             precondition=bool(want_rv))

    async def patch(self, kind: Kind, namespace: str | None, name: str, patch_body: Any, patch_type: str,
                    opts: WriteOptions, subresource: str = "") -> WriteResult:
        if patch_type == "apply":
            return await self._apply(kind, namespace, name, patch_body, opts, subresource)
        want_rv = ((patch_body.get("metadata") or {}).get("resourceVersion") or "") \
            if isinstance(patch_body, dict) else ""

        def compute(cur: Obj) -> Obj:
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.plural, name, kind.group)
            patched = self._apply_patch(kind, cur, patch_body, patch_type)
            if not isinstance(patched, dict):
                raise errors.bad_request("the patch did not produce an object")
            opts.warnings += check_fields(kind, patched, opts.field_validation)
            self._check_identity(kind, patched, cur)
            return self._merge_update(kind, cur, patched, subresource)

        obj = await self._guaranteed_update(kind, namespace, name, compute, opts, subresource,
                                            precondition=bool(want_rv))
        return WriteResult(obj)

    @staticmethod
    def _apply_patch(kind: Kind, cur: Obj, patch_body: Any, patch_type: str) -> Any:
        if patch_type == "json":
            return apply_json_patch(cur, patch_body)
        if patch_type == "merge":
            return apply_merge_patch(cur, patch_body)
        return apply_strategic_merge_patch(cur, patch_body, api_version=kind.api_version, kind=kind.kind)

    async def _apply(self, kind: Kind, namespace: str | None, name: str, body: Any, opts: WriteOptions,
                     subresource: str) -> WriteResult:
        if not isinstance(body, dict):
            raise errors.bad_request("an apply patch must be a YAML or JSON object")
        if not opts.manager_given:
            raise errors.invalid_object("PatchOptions", "", [errors.required(
                "fieldManager", "is required for apply patch")], "meta.k8s.io")
        applied = self._check_body(kind, namespace, body, name)
        opts.warnings += check_fields(kind, applied, opts.field_validation)
        stamp = rfc3339(now())
        for _ in range(_MAX_RETRIES):
            kv = await self.store.get(kind.key(namespace, name))
            if kv is None:
                if subresource:
                    raise errors.not_found(kind.plural, name, kind.group)
                obj = server_side_apply(None, applied, manager=opts.field_manager, force=opts.force,
                                        api_version=kind.api_version, kind=kind.kind, now=stamp)
                obj.setdefault("metadata", {})["name"] = name
                if kind.namespaced:
                    obj["metadata"]["namespace"] = namespace
                    await self._check_namespace_open(namespace or "")
                self._stamp_new(kind, obj)
                admit(kind, obj, None, "CREATE")
                try:
                    return WriteResult(await self._insert(kind, obj, opts), created=True)
                except errors.APIError as e:
                    if e.reason == "AlreadyExists":
                        continue
                    raise
            cur = codec.decode(kv)
            want_rv = (applied.get("metadata") or {}).get("resourceVersion")
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.plural, name, kind.group)
            merged = server_side_apply(cur, applied, manager=opts.field_manager, force=opts.force,
                                       api_version=kind.api_version, kind=kind.kind, now=stamp)
            new = self._merge_update(kind, cur, merged, subresource)
            result = await self._commit_update(kind, kv.mod_revision, cur, new, opts, managed=False)
            if result is not None:
                return WriteResult(result)
        raise errors.conflict(kind.plural, name, kind.group, "too many concurrent writers; try again")

    async def _guaranteed_update(self, kind: Kind, namespace: str | None, name: str,
                                 compute: Callable[[Obj], Obj], opts: WriteOptions, subresource: str,
                                 *, precondition: bool) -> Obj:
        for _ in range(_MAX_RETRIES):
            kv = await self.store.get(kind.key(namespace, name))
            if kv is None:
                raise errors.not_found(kind.plural, name, kind.group)
            cur = codec.decode(kv)
            new = compute(cur)
            result = await self._commit_update(kind, kv.mod_revision, cur, new, opts, subresource=subresource)
            if result is not None:
                return result
            if precondition:
                raise errors.conflict(kind.plural, name, kind.group)
        raise errors.conflict(kind.plural, name, kind.group, "too many concurrent writers; try again")

    async def _commit_update(self, kind: Kind, mod_revision: int, cur: Obj, new: Obj, opts: WriteOptions,
                             *, managed: bool = True, subresource: str = "") -> Obj | None:
        """Admit and write ``new`` over ``cur``; None when another writer got there first.

        A binding sets ``spec.nodeName``, which pod updates may not change: it is checked by `bind` itself,
        not by update validation, as in Kubernetes. A Service's allocations follow the update: new ones are
        taken first (and given back if the write fails), dropped ones released once it is stored."""
        taken: list[str] = []
        freed: list[str] = []
        if kind is SERVICES and not subresource:
            taken, freed = await self.allocator.on_update(cur, new, dry_run=opts.dry_run)
        try:
            written = await self._write_update(kind, mod_revision, cur, new, opts, managed=managed,
                                               subresource=subresource)
        except BaseException:
            await self.allocator.release(taken)
            raise
        if written is None or written[0] is cur:
            await self.allocator.release(taken)
            return None if written is None else cur
        obj, deleted = written
        if kind is SERVICES and not opts.dry_run:
            await self.allocator.release(self.allocator.held_by(obj) if deleted else freed)
        return obj

    async def _write_update(self, kind: Kind, mod_revision: int, cur: Obj, new: Obj, opts: WriteOptions,
                            *, managed: bool, subresource: str) -> tuple[Obj, bool] | None:
        """Admit and store ``new``: (the stored object, whether it was deleted) — ``cur`` itself when nothing
        changed — or None on a lost compare-and-swap."""
        if subresource != "binding":
            admit(kind, new, cur, "UPDATE")
        if managed:
            update_managed_fields(cur, new, manager=opts.field_manager, api_version=kind.api_version,
                                  now=rfc3339(now()), operation="Update", subresource=subresource)
        self._bump_generation(kind, cur, new)
        if _same(cur, new):
            return cur, False
        meta = new["metadata"]
        key = kind.key(meta.get("namespace"), meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._awaits_kubelet(kind, new) \
                and not (kind is NAMESPACES and (new.get("spec") or {}).get("finalizers")):
            # The last finalizer is gone from an object being deleted: now it really goes.
            if opts.dry_run:
                return new, True
            try:
                kv = await self.store.delete(key, mod_revision)
            except RevisionMismatch:
                return None
            except KeyNotFound:
                raise errors.not_found(kind.plural, meta["name"], kind.group) from None
            new["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return new, True
        if opts.dry_run:
            return new, False
        try:
            kv = await self.store.update(key, codec.encode(new), mod_revision)
        except RevisionMismatch:
            return None
        except KeyNotFound:
            raise errors.not_found(kind.plural, meta["name"], kind.group) from None
        meta["resourceVersion"] = str(kv.mod_revision)
        return new, False

    def _merge_update(self, kind: Kind, cur: Obj, new: Obj, subresource: str) -> Obj:
        """The object an update stores: identity and system fields kept from ``cur``; with a status
        subresource, the main resource cannot change status and ``/status`` changes only status."""
        if subresource == "status":
            merged = copy.deepcopy(cur)
            merged["status"] = new.get("status", {})
            return merged
        if subresource == "finalize":
            # namespaces/{name}/finalize changes spec.finalizers and nothing else.
            merged = copy.deepcopy(cur)
            merged.setdefault("spec", {})["finalizers"] = (new.get("spec") or {}).get("finalizers") or []
            return merged
        if subresource:
            raise errors.method_not_allowed(f"the subresource {subresource} cannot be updated this way")
        meta_new = new.setdefault("metadata", {})
        meta_cur = cur["metadata"]
        for fixed in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation", "name"):
            if fixed in meta_cur:
                meta_new[fixed] = meta_cur[fixed]
            else:
                meta_new.pop(fixed, None)
        if kind.namespaced:
            meta_new["namespace"] = meta_cur.get("namespace")
        meta_new["resourceVersion"] = meta_cur["resourceVersion"]
        if kind.has_status:
            if "status" in cur:
                new["status"] = cur["status"]
            else:
                new.pop("status", None)
        if kind is NAMESPACES:
            # Only the finalize subresource changes a namespace's spec.finalizers.
            kept = (cur.get("spec") or {}).get("finalizers")
            if kept is not None:
                new.setdefault("spec", {})["finalizers"] = kept
            elif isinstance(new.get("spec"), dict):
                new["spec"].pop("finalizers", None)
        new.setdefault("apiVersion", kind.api_version)
        new.setdefault("kind", kind.kind)
        return new

    @staticmethod
    def _bump_generation(kind: Kind, cur: Obj, new: Obj) -> None:
        if not kind.has_spec:
            return
        gen = int(cur["metadata"].get("generation") or 1)
        if new.get("spec") != cur.get("spec") or (
                new["metadata"].get("deletionTimestamp") and not cur["metadata"].get("deletionTimestamp")):
            gen += 1
        new["metadata"]["generation"] = gen

    @staticmethod
    def _check_identity(kind: Kind, patched: Obj, cur: Obj) -> None:
        meta = patched.get("metadata") or {}
        for f in ("name", "namespace", "uid"):
            if f in meta and meta[f] != cur["metadata"].get(f) and meta[f] not in (None, ""):
                raise errors.invalid_object(kind.kind, cur["metadata"]["name"], [errors.invalid(
                    f"metadata.{f}", meta[f], "field is immutable")], kind.group)

    def _check_body(self, kind: Kind, namespace: str | None, body: Any, url_name: str | None) -> Obj:
        """The body must be an object of this kind; its namespace and name must agree with the URL."""
        if not isinstance(body, dict):
            raise errors.bad_request(f"the body of a {kind.kind} request must be a JSON or YAML object")
        api_version, kind_name = body.get("apiVersion"), body.get("kind")
        if (api_version and api_version != kind.api_version) or (kind_name and kind_name != kind.kind):
            raise errors.bad_request(f"the API version in the data ({api_version}) and kind ({kind_name}) do not "
                                     f"match the expected {kind.api_version} {kind.kind}")
        meta = body.get("metadata")
        if meta is None:
            meta = {}
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        out: Obj = {**body, "apiVersion": kind.api_version, "kind": kind.kind, "metadata": dict(meta)}
        meta = out["metadata"]
        if kind.namespaced:
            ns = meta.get("namespace")
            if ns and namespace and ns != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            meta["namespace"] = namespace or ns
        else:
            meta.pop("namespace", None)
        if url_name is not None:
            if meta.get("name") and meta["name"] != url_name:
                raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on "
                                         f"the URL ({url_name})")
            meta["name"] = url_name
        return out

    # ---- delete ------------------------------------------------------------------------------------
    async def delete(self, kind: Kind, namespace: str | None, name: str, options: Obj,
                     opts: WriteOptions) -> tuple[Obj, bool]:
        """Delete now, or mark for deletion when finalizers (or a running pod) must act first.
        Returns the deleted or the marked object, and whether it is gone (False: only marked)."""
        pre = options.get("preconditions") or {}
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise errors.invalid_object("DeleteOptions", "", [errors.not_supported(
                "propagationPolicy", policy, ["Foreground", "Background", "Orphan"])])
        grace = options.get("gracePeriodSeconds")
        for _ in range(_MAX_RETRIES):
            kv = await self.store.get(kind.key(namespace, name))
            if kv is None:
                raise errors.not_found(kind.plural, name, kind.group)
            cur = codec.decode(kv)
            meta = cur["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(kind.plural, name, kind.group,
                                      f"Precondition failed: UID in precondition: {pre['uid']}, "
                                      f"UID in object meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(kind.plural, name, kind.group,
                                      f"Precondition failed: ResourceVersion in precondition: "
                                      f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                      f"{meta['resourceVersion']}")
            marked = self._mark_for_deletion(kind, cur, policy, grace)
            if marked is not None:
                if marked is cur:
                    return cur, False
                if opts.dry_run:
                    return marked, False
                try:
                    new_kv = await self.store.update(kv.key, codec.encode(marked), kv.mod_revision)
                except RevisionMismatch:
                    continue
                marked["metadata"]["resourceVersion"] = str(new_kv.mod_revision)
                return marked, False
            if opts.dry_run:
                return cur, True
            revision = kv.mod_revision
            if self._runs_on_a_node(kind, cur) and meta.get("deletionGracePeriodSeconds") != 0:
                # A forced deletion of a pod a kubelet runs: as Kubernetes, first record grace period 0, so
                # that the kubelet (seeing the object vanish) knows to kill its containers at once.
                forced = copy.deepcopy(cur)
                forced["metadata"].setdefault("deletionTimestamp", rfc3339(now()))
                forced["metadata"]["deletionGracePeriodSeconds"] = 0
                try:
                    revision = (await self.store.update(kv.key, codec.encode(forced), revision)).mod_revision
                except RevisionMismatch:
                    continue
                cur = forced
            try:
                gone = await self.store.delete(kv.key, revision)
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise errors.not_found(kind.plural, name, kind.group) from None
            cur["metadata"]["resourceVersion"] = str(gone.mod_revision)
            if kind is SERVICES:
                await self.allocator.release(self.allocator.held_by(cur))
            return cur, True
        raise errors.conflict(kind.plural, name, kind.group, "too many concurrent writers; try again")

    def _mark_for_deletion(self, kind: Kind, cur: Obj, policy: str | None, grace: int | None) -> Obj | None:
        """The object with ``deletionTimestamp`` set, when it cannot go at once; ``cur`` itself when it is
        already marked and nothing changes; None when it can be removed now."""
        meta = cur["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if kind is NAMESPACES:
            spec_finalizers = (cur.get("spec") or {}).get("finalizers") or []
            if spec_finalizers or finalizers:
                marked = copy.deepcopy(cur)
                marked["metadata"]["finalizers"] = finalizers or marked["metadata"].get("finalizers")
                if not marked["metadata"]["finalizers"]:
                    marked["metadata"].pop("finalizers", None)
                marked["metadata"].setdefault("deletionTimestamp", rfc3339(now()))
                marked["metadata"].setdefault("deletionGracePeriodSeconds", 0)
                marked.setdefault("status", {})["phase"] = "Terminating"
                return marked if not _same(marked, cur) else cur
            return None
        graceful = self._grace_period(kind, cur, grace)
        if not finalizers and graceful == 0:
            return None
        if meta.get("deletionTimestamp"):
            current = meta.get("deletionGracePeriodSeconds")
            if graceful and current is not None and graceful < current:
                marked = copy.deepcopy(cur)
                marked["metadata"]["deletionGracePeriodSeconds"] = graceful
                marked["metadata"]["deletionTimestamp"] = rfc3339(now() + timedelta(seconds=graceful))
                return marked
            if finalizers != list(meta.get("finalizers") or []):
                marked = copy.deepcopy(cur)
                marked["metadata"]["finalizers"] = finalizers
                return marked
            return cur
        marked = copy.deepcopy(cur)
        marked["metadata"]["deletionTimestamp"] = rfc3339(now() + timedelta(seconds=graceful))
        marked["metadata"]["deletionGracePeriodSeconds"] = graceful
        if finalizers:
            marked["metadata"]["finalizers"] = finalizers
        if kind.has_spec:
            marked["metadata"]["generation"] = int(meta.get("generation") or 1) + 1
        return marked

    @staticmethod
    def _grace_period(kind: Kind, cur: Obj, grace: int | None) -> int:
        """Only pods that a node is running get a grace period; everything else is deleted at once."""
        if kind.kind != "Pod" or kind.group:
            return 0
        spec = cur.get("spec") or {}
        phase = (cur.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(int(grace), 0)

    @staticmethod
    def _runs_on_a_node(kind: Kind, obj: Obj) -> bool:
        return (kind is PODS and bool((obj.get("spec") or {}).get("nodeName"))
                and (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))

    @staticmethod
    def _awaits_kubelet(kind: Kind, obj: Obj) -> bool:
        """A bound, running pod marked for deletion stays until its kubelet confirms the containers are gone
        (it then deletes with grace period 0)."""
        return (kind.kind == "Pod" and not kind.group and bool((obj.get("spec") or {}).get("nodeName"))
                and (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                and obj["metadata"].get("deletionGracePeriodSeconds", 0) != 0)

    # ---- subresources ------------------------------------------------------------------------------
    async def bind(self, kind: Kind, namespace: str, name: str, binding: Any, opts: WriteOptions) -> None:
        if not isinstance(binding, dict) or not (binding.get("target") or {}).get("name"):
            raise errors.invalid_object("Binding", name, [errors.required("target.name")])
        node = binding["target"]["name"]

        def compute(cur: Obj) -> Obj:
            spec = cur.get("spec") or {}
            if spec.get("nodeName"):
                raise errors.conflict("pods/binding", name, "",
                                      f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
            if cur["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods/binding", name, "", f"pod {name} is being deleted, cannot be assigned "
                                      "to a host")
            new = copy.deepcopy(cur)
            new["spec"]["nodeName"] = node
            status = new.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                          "lastTransitionTime": rfc3339(now())})
            status["conditions"] = conds
            return new

        await self._guaranteed_update(kind, namespace, name, compute, opts, "binding", precondition=False)

    async def get_scale(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        return scale_of(await self.get(kind, namespace, name))

    async def update_scale(self, kind: Kind, namespace: str | None, name: str,
                           transform: Callable[[Obj], Awaitable[Obj] | Obj], opts: WriteOptions,
                           precondition: str = "") -> Obj:
        """Apply a change to the Scale view of a Deployment or ReplicaSet: ``transform`` gets the current
        Scale and returns the desired one; only ``spec.replicas`` is taken from it. ``precondition`` is a
        resourceVersion the client named (a PUT's body, a patch that sets one): a mismatch is a 409;
        without one, a concurrent write is retried on the fresh object."""
        for _ in range(_MAX_RETRIES):
            kv = await self.store.get(kind.key(namespace, name))
            if kv is None:
                raise errors.not_found(kind.plural, name, kind.group)
            cur = codec.decode(kv)
            result = transform(scale_of(cur))
            scale = await result if isinstance(result, Awaitable) else result
            want_rv = precondition
            if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                raise errors.conflict(kind.plural, name, kind.group)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.invalid_object("Scale", name, [errors.invalid(
                    "spec.replicas", replicas, "must be greater than or equal to 0")], "autoscaling")
            new = copy.deepcopy(cur)
            new.setdefault("spec", {})["replicas"] = replicas
            done = await self._commit_update(kind, kv.mod_revision, cur, new, opts, subresource="scale")
            if done is not None:
                return scale_of(done)
            if want_rv:
                raise errors.conflict(kind.plural, name, kind.group)
        raise errors.conflict(kind.plural, name, kind.group, "too many concurrent writers; try again")


def _generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def scale_of(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale view of an object with replicas."""
    meta = obj["metadata"]
    selector = ((obj.get("spec") or {}).get("selector")) or {}
    from kubelite.api.selectors import label_selector_from_dict

    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": str(label_selector_from_dict(selector))},
    }


def _same(a: Obj, b: Obj) -> bool:
    """Equal apart from resourceVersion and managedFields timestamps (a no-op update writes nothing)."""
    return _comparable(a) == _comparable(b)


def _comparable(o: Obj) -> Obj:
    meta = dict(o.get("metadata") or {})
    meta.pop("resourceVersion", None)
    managed = meta.get("managedFields")
    if managed:
        meta["managedFields"] = [{k: v for k, v in m.items() if k != "time"} for m in managed]
    return {**o, "metadata": meta}
