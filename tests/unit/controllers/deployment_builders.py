"""Deployments and ReplicaSets as the API server would hand them to the Deployment controller, for the pure
plan tests; and `World`, an in-memory cluster that carries out plans and plays the ReplicaSet controller."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelite.api import meta
from kubelite.controllers.deployment_plan import claim_replica_sets, plan_deployment, selector_of
from kubelite.controllers.deployment_sync import (
    CreateReplicaSet,
    DeleteReplicaSet,
    Plan,
    RecordEvent,
    SetRevision,
    UpdateReplicaSet,
    WriteStatus,
    controller_ref,
)
from kubelite.controllers.deployment_util import HASH_LABEL, REVISION, RSView, compute_hash

Obj = dict[str, Any]
T0 = datetime(2025, 1, 1, tzinfo=UTC)
UID = "uid-web"


def template(image: str = "nginx:1.25") -> Obj:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}], "restartPolicy": "Always"}}


def deployment(replicas: int = 3, *, image: str = "nginx:1.25", strategy: str = "RollingUpdate",
               max_surge: int | str | None = "25%", max_unavailable: int | str | None = "25%", generation: int = 1,
               status: Obj | None = None, annotations: dict[str, str] | None = None, paused: bool = False,
               history: int | None = 10, deadline: int | None = 600, min_ready: int = 0,
               deleting: bool = False) -> Obj:
    strategy_obj: Obj = {"type": strategy}
    if strategy == "RollingUpdate":
        strategy_obj["rollingUpdate"] = {"maxSurge": max_surge, "maxUnavailable": max_unavailable}
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template(image),
                 "strategy": strategy_obj, "minReadySeconds": min_ready}
    if history is not None:
        spec["revisionHistoryLimit"] = history
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    if paused:
        spec["paused"] = True
    metadata: Obj = {"name": "web", "namespace": "default", "uid": UID, "generation": generation,
                     "resourceVersion": "10", "creationTimestamp": meta.format_rfc3339(T0)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if deleting:
        metadata["deletionTimestamp"] = meta.format_rfc3339(T0)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec,
            "status": status or {}}


def replica_set(d: Obj, replicas: int, *, image: str | None = None, revision: int | None = None,
                available: int | None = None, actual: int | None = None, ready: int | None = None,
                created: int = 0, annotations: dict[str, str] | None = None, owned: bool = True,
                name: str | None = None, observed: bool = True) -> Obj:
    """A ReplicaSet of ``d`` (for ``image``, default the Deployment's) whose pods all exist and are available
    unless told otherwise; ``created`` is seconds after T0."""
    tmpl = template(image) if image is not None else copy.deepcopy(d["spec"]["template"])
    template_hash = compute_hash(tmpl, None)
    tmpl["metadata"]["labels"][HASH_LABEL] = template_hash
    notes = dict(annotations or {})
    if revision is not None:
        notes[REVISION] = str(revision)
    metadata: Obj = {"name": name or f"web-{template_hash}", "namespace": "default", "uid": f"uid-{template_hash}",
                     "generation": 1, "resourceVersion": "5", "labels": dict(tmpl["metadata"]["labels"]),
                     "annotations": notes,
                     "creationTimestamp": meta.format_rfc3339(T0 + timedelta(seconds=created))}
    if owned:
        metadata["ownerReferences"] = [controller_ref(d)]
    actual_count = replicas if actual is None else actual
    available_count = actual_count if available is None else available
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web", HASH_LABEL: template_hash}},
                     "template": tmpl},
            "status": {"replicas": actual_count, "readyReplicas": available_count if ready is None else ready,
                       "availableReplicas": available_count, "observedGeneration": 1 if observed else 0}}


def views(*objs: Obj) -> list[RSView]:
    return [RSView.of(o) for o in objs]


class World:
    """A Deployment and its ReplicaSets in memory. `sync` plans one reconcile and carries it out; `settle`
    plays the ReplicaSet controller: pods of a shrunk ReplicaSet go at once, new pods become available
    on the next settle (unless their image is in ``broken``)."""

    def __init__(self, d: Obj, *replica_sets: Obj, now: datetime = T0) -> None:
        self.d = copy.deepcopy(d)
        self.rss: dict[str, Obj] = {meta.name(rs): copy.deepcopy(rs) for rs in replica_sets}
        self.now = now
        self.broken: set[str] = set()
        self.events: list[tuple[str, str, str]] = []
        self.plans: list[Plan] = []
        self._clock = 100

    def sync(self) -> Plan:
        claims = claim_replica_sets(self.d, selector_of(self.d), list(self.rss.values()))
        plan = plan_deployment(self.d, list(claims.owned), {}, now=self.now)
        self.plans.append(plan)
        for action in plan.actions:
            self._apply(action)
        self.remove_gone_pods()
        return plan

    def _apply(self, action: Any) -> None:
        if isinstance(action, CreateReplicaSet):
            body = copy.deepcopy(action.body)
            self._clock += 1
            body["metadata"].update(uid=f"uid-{meta.name(body)}", generation=1, resourceVersion="1",
                                    creationTimestamp=meta.format_rfc3339(T0 + timedelta(seconds=self._clock)))
            body["status"] = {"replicas": 0, "availableReplicas": 0, "readyReplicas": 0, "observedGeneration": 0}
            self.rss[meta.name(body)] = body
            if action.replicas:
                self.events.append(("Normal", "ScalingReplicaSet",
                                    f"Scaled up replica set {meta.name(body)} from 0 to {action.replicas}"))
        elif isinstance(action, UpdateReplicaSet):
            rs = self.rss[action.name]
            rs["spec"]["replicas"] = action.replicas
            rs["spec"]["minReadySeconds"] = action.min_ready_seconds
            rs["metadata"].setdefault("annotations", {}).update(action.annotations)
            if action.replicas != action.scaled_from:
                rs["metadata"]["generation"] += 1
                way = "up" if action.replicas > action.scaled_from else "down"
                self.events.append(("Normal", "ScalingReplicaSet", f"Scaled {way} replica set {action.name} "
                                                                   f"from {action.scaled_from} to {action.replicas}"))
        elif isinstance(action, DeleteReplicaSet):
            del self.rss[action.name]
        elif isinstance(action, SetRevision):
            self.d["metadata"].setdefault("annotations", {})[REVISION] = action.revision
        elif isinstance(action, WriteStatus):
            self.d["status"] = copy.deepcopy(action.status)
        elif isinstance(action, RecordEvent):
            self.events.append((action.type, action.reason, action.message))

    def remove_gone_pods(self) -> None:
        for rs in self.rss.values():
            want = rs["spec"]["replicas"]
            st = rs["status"]
            st["replicas"] = min(st["replicas"], want)
            st["availableReplicas"] = min(st["availableReplicas"], want)
            st["readyReplicas"] = min(st["readyReplicas"], want)

    def settle(self) -> None:
        for rs in self.rss.values():
            want = rs["spec"]["replicas"]
            image = rs["spec"]["template"]["spec"]["containers"][0]["image"]
            healthy = image not in self.broken
            rs["status"] = {"replicas": want, "availableReplicas": want if healthy else 0,
                            "readyReplicas": want if healthy else 0,
                            "observedGeneration": rs["metadata"]["generation"]}

    def change(self, **spec_changes: Any) -> None:
        """Edit the Deployment's spec as a user would (generation goes up)."""
        for key, value in spec_changes.items():
            if key == "image":
                self.d["spec"]["template"]["spec"]["containers"][0]["image"] = value
            else:
                self.d["spec"][key] = value
        self.d["metadata"]["generation"] += 1

    def by_image(self) -> dict[str, int]:
        return {rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
                for rs in self.rss.values()}

    def total(self, field: str = "spec") -> int:
        if field == "spec":
            return sum(rs["spec"]["replicas"] for rs in self.rss.values())
        return sum(rs["status"].get(field, 0) for rs in self.rss.values())
