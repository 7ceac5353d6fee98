"""How objects become stored bytes and back, and how request bodies are read.

Stored values are the object's JSON without ``metadata.resourceVersion``: the revision a value was written at
is only known after the write, so, as Kubernetes' etcd3 store does, it is set from ``mod_revision`` on read.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from kubelite.api import errors

from .storage.interface import KeyValue

try:  # The C loader is many times faster; fall back where libyaml is missing.
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader

MAX_BODY_BYTES = 3 * 1024 * 1024

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(obj: Any) -> str:
    """Compact JSON, the form of every stored value and response body."""
    return _dumps(obj)


def encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        meta = {k: v for k, v in meta.items() if k != "resourceVersion"}
        obj = {**obj, "metadata": meta}
    return _dumps(obj).encode()


def decode(kv: KeyValue) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def read_body(raw: bytes, content_type: str) -> Any:
    """Parse a request body by its media type: JSON (also when no type is given, as the Python client
    sends), YAML, or Kubernetes protobuf. Anything else is 415; unparsable input is 400."""
    if len(raw) > MAX_BODY_BYTES:
        raise errors.too_large(f"the request body is {len(raw)} bytes, over the limit of {MAX_BODY_BYTES}")
    media = content_type.split(";", 1)[0].strip().lower()
    if media in ("", "application/json", "application/merge-patch+json", "application/json-patch+json",
                 "application/strategic-merge-patch+json", "*/*", "text/plain"):
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise errors.bad_request(f"the request body is not valid JSON: {e}") from None
    if media in ("application/yaml", "application/apply-patch+yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.load(raw, Loader=_YamlLoader)
        except yaml.YAMLError as e:
            raise errors.bad_request(f"the request body is not valid YAML: {e}") from None
    if media == "application/vnd.kubernetes.protobuf":
        from .protobuf import decode_k8s_protobuf

        return decode_k8s_protobuf(raw)
    raise errors.unsupported_media_type(media)
