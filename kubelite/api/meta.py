"""Accessors over the `metadata` of plain JSON-shaped objects.

Objects stay plain dicts everywhere (see docs: no bespoke classes on the hot path); these helpers only
read them, or build small fragments (owner references, timestamps), so that every component spells
``obj["metadata"]["namespace"]`` and its defaults the same way.

Read accessors never raise on a missing ``metadata`` or field: they return ``""``, ``{}``, ``[]`` or
``None``, the zero value Kubernetes itself uses for an omitted field.
"""

from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def metadata(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def name(obj: Obj) -> str:
    return str(metadata(obj).get("name") or "")


def namespace(obj: Obj) -> str:
    """The object's namespace; ``""`` for cluster-scoped objects."""
    return str(metadata(obj).get("namespace") or "")


def uid(obj: Obj) -> str:
    return str(metadata(obj).get("uid") or "")


def resource_version(obj: Obj) -> str:
    return str(metadata(obj).get("resourceVersion") or "")


def generation(obj: Obj) -> int:
    return int(metadata(obj).get("generation") or 0)


def labels(obj: Obj) -> dict[str, str]:
    return dict(metadata(obj).get("labels") or {})


def annotations(obj: Obj) -> dict[str, str]:
    return dict(metadata(obj).get("annotations") or {})


def finalizers(obj: Obj) -> list[str]:
    return list(metadata(obj).get("finalizers") or [])


def deletion_timestamp(obj: Obj) -> str | None:
    ts = metadata(obj).get("deletionTimestamp")
    return str(ts) if ts else None


def is_being_deleted(obj: Obj) -> bool:
    return deletion_timestamp(obj) is not None


def key(obj: Obj) -> str:
    """The cache key client-go's MetaNamespaceKeyFunc gives: ``ns/name``, or ``name`` when cluster-scoped."""
    return make_key(namespace(obj), name(obj))


def make_key(ns: str | None, obj_name: str) -> str:
    return f"{ns}/{obj_name}" if ns else obj_name


def split_key(k: str) -> tuple[str, str]:
    """Inverse of :func:`key`: ``"ns/name"`` → ``("ns", "name")``, ``"name"`` → ``("", "name")``."""
    ns, sep, obj_name = k.partition("/")
    if not sep:
        return "", ns
    if not ns or not obj_name or "/" in obj_name:
        raise ValueError(f"unexpected key format: {k!r}")
    return ns, obj_name


# --- time ------------------------------------------------------------------------------------------

def now_rfc3339() -> str:
    """The current time as Kubernetes writes `metav1.Time`: UTC, whole seconds, ``Z`` suffix."""
    return format_rfc3339(datetime.now(UTC))


def format_rfc3339(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("a naive datetime has no defined instant; pass an aware one")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_micro() -> str:
    """The current time as `metav1.MicroTime` (Lease renewTime, Event eventTime): microseconds, ``Z``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str) -> datetime:
    """Parse `metav1.Time` or `MicroTime` (``Z`` or a numeric offset) into an aware datetime."""
    return datetime.fromisoformat(value)


# --- owner references ------------------------------------------------------------------------------

def owner_references(obj: Obj) -> list[dict[str, Any]]:
    return list(metadata(obj).get("ownerReferences") or [])


def controller_ref(obj: Obj) -> dict[str, Any] | None:
    """The owner reference with ``controller: true``, if any (at most one is allowed)."""
    for ref in owner_references(obj):
        if ref.get("controller"):
            return ref
    return None


def new_controller_ref(owner: Obj, *, block_owner_deletion: bool = True) -> dict[str, Any]:
    """An ownerReference naming ``owner`` as the controller, as controllers stamp on what they create."""
    ref: dict[str, Any] = {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": name(owner),
        "uid": uid(owner),
        "controller": True,
    }
    if block_owner_deletion:
        ref["blockOwnerDeletion"] = True
    return ref


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and bool(uid(owner)) and ref.get("uid") == uid(owner)
