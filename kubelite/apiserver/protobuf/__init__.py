"""Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) → Kubernetes JSON.

kubectl's generators (``kubectl create namespace|deployment|configmap|secret|service|...``) send
their objects as protobuf and have no fallback on a 415, so the API server reads them here and
carries on with the same dict a JSON body would have given.

The envelope (apimachinery ``runtime/serializer/protobuf``): the magic ``k8s\\x00``, then a
``runtime.Unknown`` message: 1 ``typeMeta`` {1 apiVersion, 2 kind}, 2 ``raw`` (the object's own
protobuf bytes), 3 ``contentEncoding``, 4 ``contentType``. The object is decoded by :mod:`.convert`
from the table in :mod:`.schema`, which ``scripts/gen_protobuf_schema.py`` regenerates from the
Go type metadata of the kubectl binary (see its docstring for why and how).

Contract: :func:`decode_k8s_protobuf` returns ``{"kind": ..., "apiVersion": ..., **object}``, the
object's exact Kubernetes JSON, or raises ``APIError`` 400 BadRequest naming what is wrong: no
magic, a malformed envelope or object (with the JSON path of the bad field), a content encoding,
or a kind that has no schema. Whether the kind suits the URL is the caller's business.
"""

from __future__ import annotations

from typing import Any

from kubelite.api import errors

from . import wire
from .convert import DecodeError, decode_message
from .schema import KINDS

__all__ = ["MAGIC", "decode_k8s_protobuf"]

MAGIC = b"k8s\x00"


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode one protobuf-encoded Kubernetes object into its JSON dict (see the module contract)."""
    if not body.startswith(MAGIC):
        # kube-apiserver's wording (protobuf.Serializer.Decode).
        prefix = " ".join(str(b) for b in MAGIC)
        raise errors.bad_request(
            f"provided data does not appear to be a protobuf message, expected prefix [{prefix}]")
    try:
        api_version, kind, raw, encoding = _envelope(body[len(MAGIC):])
    except (wire.WireError, DecodeError) as e:
        raise errors.bad_request(f"unable to decode the protobuf envelope (runtime.Unknown): {e}") from None
    if encoding:
        raise errors.bad_request(f'protobuf content encoding "{encoding}" is not supported')
    if not kind:
        raise errors.bad_request("Object 'Kind' is missing in the protobuf envelope")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise errors.bad_request(f'no kind "{kind}" is registered for version "{api_version}"')
    try:
        obj = decode_message(message, raw)
    except DecodeError as e:
        raise errors.bad_request(f"unable to decode the protobuf body as {kind} ({api_version}): {e}") from None
    return {"kind": kind, "apiVersion": api_version, **obj}


def _envelope(data: bytes) -> tuple[str, str, bytes, str]:
    """(apiVersion, kind, raw, contentEncoding) of a runtime.Unknown; the content type is ignored,
    as the Go serializer does."""
    api_version = kind = encoding = ""
    raw = b""
    for number, wire_type, value in wire.fields(data):
        if number in (1, 2, 3) and not isinstance(value, bytes):
            raise DecodeError(f"wrong wire type {wire_type} for field {number}")
        if number == 1 and isinstance(value, bytes):
            api_version, kind = _type_meta(value, api_version, kind)
        elif number == 2 and isinstance(value, bytes):
            raw = value
        elif number == 3 and isinstance(value, bytes):
            encoding = value.decode("utf-8", "replace")
    return api_version, kind, raw, encoding


def _type_meta(data: bytes, api_version: str, kind: str) -> tuple[str, str]:
    for number, wire_type, value in wire.fields(data):
        if number in (1, 2) and not isinstance(value, bytes):
            raise DecodeError(f"wrong wire type {wire_type} for typeMeta field {number}")
        if number == 1 and isinstance(value, bytes):
            api_version = value.decode("utf-8", "replace")
        elif number == 2 and isinstance(value, bytes):
            kind = value.decode("utf-8", "replace")
    return api_version, kind
