"""What the Deployment controller computes about Deployments and their ReplicaSets, as pure functions
(Kubernetes' pkg/controller/deployment/util/deployment_util.go and controller.ComputeHash).

Deployments are the plain JSON dicts of the API (read, never mutated). ReplicaSets are `RSView`s: the cached
object plus the changes a sync has planned for it so far (``replicas``, ``annotations``,
``min_ready_seconds``), so that each step of a sync sees the effect of the steps before it, as the Go
controller sees the objects its earlier writes returned.

The pod template hash: Kubernetes hashes the Go struct with FNV-32a (``DeepHashObject``), which no other
language can reproduce; kubelite hashes the template's canonical JSON instead (keys sorted, empty values
dropped), then follows Kubernetes exactly: the collision count as 8 little-endian bytes, the decimal
sum encoded with ``SafeEncodeString``'s vowel-free alphabet.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelite.api import meta

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Deployment annotations that are never copied onto its ReplicaSets (kubectl rollout undo skips the
# same set when it copies them back).
ANNOTATIONS_TO_SKIP = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                                 ROLLBACK_TO})
# The revision-history annotation keeps the newest revisions that fit in this many characters.
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1
# A ReplicaSet name is a DNS subdomain.
MAX_NAME_LENGTH = 253

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


# --- the pod template hash ------------------------------------------------------------------------

def safe_encode_string(text: str) -> str:
    """apimachinery's ``rand.SafeEncodeString``: each character mapped into a vowel-free alphabet."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def fnv32a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def canonical(value: Any) -> Any:
    """``value`` without null, empty-string, empty-object and empty-list fields, recursively: the fields Go's
    ``omitempty`` would not have written, so that two spellings of one template compare (and hash) equal."""
    if isinstance(value, dict):
        out = {k: canonical(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", {}, [])}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The ``pod-template-hash`` of a pod template (``controller.ComputeHash``): stable across processes."""
    data = json.dumps(canonical(template), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + bytes(4)
    return safe_encode_string(str(fnv32a(data)))


def without_hash_label(template: Obj) -> Obj:
    """A deep copy of a pod template without the ``pod-template-hash`` label."""
    out = copy.deepcopy(template)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return out


def equal_ignore_hash(template1: Obj, template2: Obj) -> bool:
    """Whether two pod templates are equal apart from the ``pod-template-hash`` label (``EqualIgnoreHash``)."""
    return bool(canonical(without_hash_label(template1)) == canonical(without_hash_label(template2)))


def replica_set_name(deployment_name: str, template_hash: str) -> str:
    """``<deployment>-<hash>``, the deployment name cut so that the whole stays a valid DNS subdomain."""
    room = MAX_NAME_LENGTH - 1 - len(template_hash)
    return f"{deployment_name[:room]}-{template_hash}"


# --- the Deployment's spec ------------------------------------------------------------------------

def spec(deployment: Obj) -> Obj:
    value = deployment.get("spec")
    return value if isinstance(value, dict) else {}


def status(obj: Obj) -> Obj:
    value = obj.get("status")
    return value if isinstance(value, dict) else {}


def replicas(deployment: Obj) -> int:
    """``spec.replicas`` (defaulted to 1 by the API server; 1 when absent, as the defaulting does)."""
    value = spec(deployment).get("replicas")
    return 1 if value is None else int(value)


def strategy_type(deployment: Obj) -> str:
    return str((spec(deployment).get("strategy") or {}).get("type") or "RollingUpdate")


def is_rolling_update(deployment: Obj) -> bool:
    return strategy_type(deployment) == "RollingUpdate"


def min_ready_seconds(obj: Obj) -> int:
    return int(spec(obj).get("minReadySeconds") or 0)


def has_progress_deadline(deployment: Obj) -> bool:
    value = spec(deployment).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def has_revision_history_limit(deployment: Obj) -> bool:
    value = spec(deployment).get("revisionHistoryLimit")
    return value is not None and int(value) != MAX_INT32


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An IntOrString resolved against ``total`` (``intstr.GetScaledValueFromIntOrPercent``): an integer as is,
    ``"N%"`` as N percent of total rounded up or down. Raises ValueError for a string without ``%``."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise ValueError("invalid type: string is not a percentage")
    try:
        percent = int(value[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: invalid value {value!r}") from None
    product = percent * total
    return -(-product // 100) if round_up else product // 100


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) in pods: surge rounds up, unavailable rounds down, and when both come to zero
    unavailable becomes 1 (rounding may zero it, and surge alone may be blocked by quota). Raises
    ValueError for a value validation should have refused."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _rolling_params(deployment: Obj) -> tuple[Any, Any]:
    rolling = (spec(deployment).get("strategy") or {}).get("rollingUpdate") or {}
    return rolling.get("maxSurge"), rolling.get("maxUnavailable")


def _fenceposts(deployment: Obj) -> tuple[int, int]:
    try:
        return resolve_fenceposts(*_rolling_params(deployment), replicas(deployment))
    except ValueError:
        return 0, 0  # "Error caught by validation": Kubernetes resolves an invalid value to zero too


def max_surge(deployment: Obj) -> int:
    """How many pods above ``spec.replicas`` a rolling update may run (0 for Recreate)."""
    if not is_rolling_update(deployment):
        return 0
    return _fenceposts(deployment)[0]


def max_unavailable(deployment: Obj) -> int:
    """How many of ``spec.replicas`` may be unavailable during a rolling update (0 for Recreate or 0 replicas),
    never more than ``spec.replicas``."""
    desired = replicas(deployment)
    if not is_rolling_update(deployment) or desired == 0:
        return 0
    return min(_fenceposts(deployment)[1], desired)


# --- ReplicaSets as a sync sees them --------------------------------------------------------------

@dataclass(eq=False)
class RSView:
    """One ReplicaSet: ``obj`` is its cached state (never mutated); ``replicas``, ``annotations`` and
    ``min_ready_seconds`` start from it and carry what the sync has planned since. ``planned`` marks a
    ReplicaSet this sync is about to create (``obj`` is then the body to POST). Compared by identity."""

    obj: Obj
    replicas: int
    annotations: dict[str, str]
    min_ready_seconds: int
    created: datetime
    planned: bool = False

    @classmethod
    def of(cls, obj: Obj, *, planned: bool = False, created: datetime | None = None) -> RSView:
        stamp = metadata_time(obj) if created is None else created
        return cls(obj=obj, replicas=replicas(obj), annotations=meta.annotations(obj),
                   min_ready_seconds=min_ready_seconds(obj), created=stamp, planned=planned)

    @property
    def name(self) -> str:
        return meta.name(self.obj)

    @property
    def uid(self) -> str:
        return meta.uid(self.obj)

    @property
    def template(self) -> Obj:
        value = spec(self.obj).get("template")
        return value if isinstance(value, dict) else {}

    @property
    def _status(self) -> Obj:
        return status(self.obj)

    @property
    def status_replicas(self) -> int:
        return int(self._status.get("replicas") or 0)

    @property
    def ready_replicas(self) -> int:
        return int(self._status.get("readyReplicas") or 0)

    @property
    def available_replicas(self) -> int:
        return int(self._status.get("availableReplicas") or 0)

    @property
    def terminating_replicas(self) -> int | None:
        value = self._status.get("terminatingReplicas")
        return None if value is None else int(value)

    @property
    def observed_generation(self) -> int:
        return int(self._status.get("observedGeneration") or 0)

    @property
    def conditions(self) -> list[Obj]:
        return list(self._status.get("conditions") or [])

    @property
    def deleting(self) -> bool:
        return meta.is_being_deleted(self.obj)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def metadata_time(obj: Obj) -> datetime:
    """``metadata.creationTimestamp`` (the epoch when missing, so that such objects sort first)."""
    stamp = meta.metadata(obj).get("creationTimestamp")
    if not stamp:
        return _EPOCH
    try:
        return meta.parse_rfc3339(str(stamp))
    except ValueError:
        return _EPOCH


def replica_count(rss: Iterable[RSView | None]) -> int:
    """The sum of ``spec.replicas`` (``GetReplicaCountForReplicaSets``)."""
    return sum(rs.replicas for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[RSView | None]) -> int:
    """The sum of ``status.replicas``: the pods that exist."""
    return sum(rs.status_replicas for rs in rss if rs is not None)


def ready_replica_count(rss: Iterable[RSView | None]) -> int:
    return sum(rs.ready_replicas for rs in rss if rs is not None)


def available_replica_count(rss: Iterable[RSView | None]) -> int:
    return sum(rs.available_replicas for rs in rss if rs is not None)


def terminating_replica_count(rss: Iterable[RSView | None]) -> int | None:
    """The sum of ``status.terminatingReplicas``; None (unknown) when a ReplicaSet its controller has synced
    does not report it. ReplicaSets never synced count as zero."""
    total = 0
    for rs in rss:
        if rs is None:
            continue
        terminating = rs.terminating_replicas
        if terminating is None:
            if rs.observed_generation == 0:
                continue
            return None
        total += terminating
    return total


def filter_active(rss: Iterable[RSView | None]) -> list[RSView]:
    """ReplicaSets that should have pods (``spec.replicas > 0``)."""
    return [rs for rs in rss if rs is not None and rs.replicas > 0]


def by_creation(rs: RSView) -> tuple[datetime, str]:
    """Sort key: oldest first, then by name (``ReplicaSetsByCreationTimestamp``)."""
    return rs.created, rs.name


def revision_of(annotations: Mapping[str, str]) -> int:
    """The ``deployment.kubernetes.io/revision`` number (0 when absent); ValueError when not a number."""
    value = annotations.get(REVISION)
    return 0 if value is None else int(value)


def max_revision(rss: Iterable[RSView]) -> int:
    """The highest revision among ``rss``; a ReplicaSet whose revision does not parse is skipped."""
    best = 0
    for rs in rss:
        try:
            best = max(best, revision_of(rs.annotations))
        except ValueError:
            continue
    return best


def _compare_by_revision(a: RSView, b: RSView) -> int:
    try:
        ra, rb = revision_of(a.annotations), revision_of(b.annotations)
    except ValueError:
        ra = rb = 0
    if ra == rb:
        ka, kb = by_creation(a), by_creation(b)
        return -1 if ka < kb else (1 if ka > kb else 0)
    return -1 if ra < rb else 1


def sorted_by_revision(rss: Iterable[RSView]) -> list[RSView]:
    """Oldest revision first, ties (or unparsable revisions) by creation (``ReplicaSetsByRevision``)."""
    return sorted(rss, key=functools.cmp_to_key(_compare_by_revision))


def sorted_by_size_newer(rss: Iterable[RSView]) -> list[RSView]:
    """Largest first; equal sizes newest first (the order replicas are added in)."""
    newest_first = sorted(rss, key=by_creation, reverse=True)
    return sorted(newest_first, key=lambda rs: -rs.replicas)  # stable: equal sizes stay newest first


def sorted_by_size_older(rss: Iterable[RSView]) -> list[RSView]:
    """Largest first; equal sizes oldest first (the order replicas are removed in)."""
    return sorted(rss, key=lambda rs: (-rs.replicas, by_creation(rs)))


def find_new_replica_set(deployment: Obj, rss: Sequence[RSView]) -> RSView | None:
    """The ReplicaSet whose template is the Deployment's (the oldest one, should several match)."""
    template = spec(deployment).get("template") or {}
    for rs in sorted(rss, key=by_creation):
        if equal_ignore_hash(rs.template, template):
            return rs
    return None


def find_old_replica_sets(deployment: Obj, rss: Sequence[RSView]) -> list[RSView]:
    """Every ReplicaSet but the new one, in the order given."""
    new = find_new_replica_set(deployment, rss)
    return [rs for rs in rss if rs is not new]


def find_active_or_latest(new: RSView | None, olds: Sequence[RSView]) -> RSView | None:
    """The only ReplicaSet with replicas, or the newest when none has any; None when several have some
    (they are then scaled proportionally)."""
    if new is None and not olds:
        return None
    newest_first = sorted(olds, key=by_creation, reverse=True)
    active = filter_active([*newest_first, new])
    if not active:
        return new if new is not None else newest_first[0]
    if len(active) == 1:
        return active[0]
    return None


# --- annotations ----------------------------------------------------------------------------------

def int_annotation(rs: RSView, key: str) -> int | None:
    """A non-negative int32 annotation; None when absent or not one (``-1`` included, as Kubernetes parses
    these unsigned)."""
    value = rs.annotations.get(key)
    if value is None or not value.isascii() or not value.isdigit():
        return None
    number = int(value)
    return number if number <= MAX_INT32 else None


def set_replicas_annotations(rs: RSView, desired: int, maximum: int) -> bool:
    """Record the Deployment's size (desired, and desired + surge) on ``rs``; True when that changed it."""
    changed = replicas_annotations_need_update(rs, desired, maximum)
    rs.annotations[DESIRED_REPLICAS] = str(desired)
    rs.annotations[MAX_REPLICAS] = str(maximum)
    return changed


def replicas_annotations_need_update(rs: RSView, desired: int, maximum: int) -> bool:
    return rs.annotations.get(DESIRED_REPLICAS) != str(desired) or rs.annotations.get(MAX_REPLICAS) != str(maximum)


def copy_deployment_annotations(deployment: Obj, rs: RSView) -> bool:
    """Copy the Deployment's annotations (but those in `ANNOTATIONS_TO_SKIP`) onto ``rs``; True if it changed.
    Annotations are only added or changed, never removed."""
    changed = False
    for key, value in meta.annotations(deployment).items():
        if key in ANNOTATIONS_TO_SKIP or rs.annotations.get(key) == value:
            continue
        rs.annotations[key] = value
        changed = True
    return changed


def set_new_replica_set_annotations(deployment: Obj, rs: RSView, new_revision: str, *, exists: bool,
                                    history_limit: int = MAX_REV_HISTORY_CHARS) -> bool:
    """Bring the new ReplicaSet's annotations up to date (``SetNewReplicaSetAnnotations``); True if changed.

    The Deployment's annotations are copied; the revision is raised to ``new_revision`` when lower (never
    lowered: old ReplicaSets may have been deleted since); a ReplicaSet that had a revision and gets a new
    one is being rolled back to, and its old revision joins ``revision-history`` (the oldest entries
    dropped to stay within ``history_limit`` characters). A ReplicaSet about to be created also gets the
    desired/max replicas annotations.
    """
    changed = copy_deployment_annotations(deployment, rs)
    old_revision = rs.annotations.get(REVISION)
    had_revision = old_revision is not None
    try:
        old_number = int(old_revision) if old_revision else 0
    except ValueError:
        return False  # Kubernetes gives up on a ReplicaSet whose revision is not a number
    try:
        new_number = int(new_revision)
    except ValueError:
        return False
    if old_number < new_number:
        rs.annotations[REVISION] = new_revision
        changed = True
        if had_revision and old_revision is not None:
            _append_revision_history(rs, old_revision, history_limit)
    if not exists and set_replicas_annotations(rs, replicas(deployment),
                                               replicas(deployment) + max_surge(deployment)):
        changed = True
    return changed


def _append_revision_history(rs: RSView, old_revision: str, limit: int) -> None:
    history = rs.annotations.get(REVISION_HISTORY, "")
    if not history:
        rs.annotations[REVISION_HISTORY] = old_revision
        return
    entries = history.split(",")
    total = len(history) + len(old_revision) + 1
    start = 0
    while total > limit and start < len(entries):
        total -= len(entries[start]) + 1
        start += 1
    if total <= limit:
        rs.annotations[REVISION_HISTORY] = ",".join([*entries[start:], old_revision])


# --- sizes ----------------------------------------------------------------------------------------

def is_saturated(deployment: Obj, rs: RSView | None) -> bool:
    """The new ReplicaSet owns every replica: its size, its desired-replicas annotation and its available
    pods all equal ``spec.replicas``."""
    if rs is None:
        return False
    desired = int_annotation(rs, DESIRED_REPLICAS)
    want = replicas(deployment)
    return desired is not None and rs.replicas == want and desired == want and rs.available_replicas == want


def new_rs_new_replicas(deployment: Obj, all_rss: Sequence[RSView], new: RSView) -> int:
    """How big the new ReplicaSet may be now (``NewRSNewReplicas``): for a rolling update, up to
    ``spec.replicas + maxSurge`` pods in all and never above ``spec.replicas``; for Recreate, all of them."""
    want = replicas(deployment)
    if not is_rolling_update(deployment):
        return want
    surge_value, _ = _rolling_params(deployment)
    try:
        surge = scaled_value(surge_value, want, round_up=True)
    except ValueError:
        surge = 0
    current = replica_count(all_rss)
    most = want + surge
    if current >= most:
        return new.replicas
    return new.replicas + min(most - current, want - new.replicas)


def round_half_away(value: float) -> int:
    """Go's ``math.Round``: halves round away from zero (Python's round() rounds them to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def replica_set_fraction(rs: RSView, deployment: Obj) -> int:
    """How many replicas ``rs`` should gain (or lose, negative) when the Deployment is resized mid-rollout:
    its share of the new maximum size, in proportion to its share of the old one (the max-replicas
    annotation, or the Deployment's current size when the annotation is missing)."""
    want = replicas(deployment)
    if want == 0:
        return -rs.replicas
    new_maximum = want + max_surge(deployment)
    annotated = int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = int(status(deployment).get("replicas") or 0)
    if annotated <= 0:
        return 0  # no base to take a proportion of (Kubernetes divides by zero here)
    return round_half_away(rs.replicas * new_maximum / annotated) - rs.replicas


def proportion(rs: RSView, deployment: Obj, to_add: int, added: int) -> int:
    """The part of ``to_add`` replicas (``added`` of them handed out already) that ``rs`` gets
    (``GetProportion``): never more than what is left, in either direction."""
    if rs.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# --- completion and progress ----------------------------------------------------------------------

def deployment_complete(deployment: Obj, new_status: Mapping[str, Any]) -> bool:
    """Every desired replica is updated and available, no old pod runs, and the spec is observed."""
    want = replicas(deployment)
    return (int(new_status.get("updatedReplicas") or 0) == want
            and int(new_status.get("replicas") or 0) == want
            and int(new_status.get("availableReplicas") or 0) == want
            and int(new_status.get("observedGeneration") or 0) >= meta.generation(deployment))


def deployment_progressing(old_status: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """Whether anything moved between two statuses: more updated, ready or available pods, or fewer old ones."""
    def count(s: Mapping[str, Any], key: str) -> int:
        return int(s.get(key) or 0)

    old_olds = count(old_status, "replicas") - count(old_status, "updatedReplicas")
    new_olds = count(new_status, "replicas") - count(new_status, "updatedReplicas")
    return (count(new_status, "updatedReplicas") > count(old_status, "updatedReplicas")
            or new_olds < old_olds
            or count(new_status, "readyReplicas") > count(old_status, "readyReplicas")
            or count(new_status, "availableReplicas") > count(old_status, "availableReplicas"))
