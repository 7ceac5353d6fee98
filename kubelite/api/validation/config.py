"""ConfigMaps and Secrets: valid keys, base64 payloads, the 1 MiB size cap, the well-known Secret types'
required keys, and the ``immutable`` flag (once set, data and the flag itself are frozen)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from kubelite.api.errors import forbidden, invalid, required, too_long

from . import formats
from .common import FIELD_IMMUTABLE, Errs, as_dict, as_str, each_invalid
from .meta import name_is_dns_subdomain, object_meta, object_meta_update

MAX_SIZE = 1024 * 1024
REDACTED = "<secret contents redacted>"
_BASE64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"


def decode_base64(text: str) -> bytes:
    """Decode like Go's ``base64.StdEncoding`` (newlines ignored, padding required); raise ``ValueError``
    with Go's ``illegal base64 data at input byte N`` on bad input."""
    clean = text.replace("\r", "").replace("\n", "")
    for pos, ch in enumerate(clean):
        if ch not in _BASE64_ALPHABET and ch != "=":
            raise ValueError(f"illegal base64 data at input byte {pos}")
    try:
        return base64.b64decode(clean, validate=True)
    except binascii.Error:
        raise ValueError(f"illegal base64 data at input byte {len(clean) - len(clean) % 4}") from None


def validate_config_map(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
    total = 0
    for key, value in data.items():
        each_invalid(errs, f"data[{key}]", key, formats.is_config_map_key(key))
        if key in binary:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(as_str(value).encode())
    for key, value in binary.items():
        each_invalid(errs, f"binaryData[{key}]", key, formats.is_config_map_key(key))
        total += _payload_size(errs, f"binaryData[{key}]", value, shown="")
    if total > MAX_SIZE:
        errs.append(too_long("", MAX_SIZE))
    if old is not None:
        object_meta_update(errs, obj, old)
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errs.append(forbidden("immutable", _IMMUTABLE_WHEN_SET))
            for key in ("data", "binaryData"):
                if obj.get(key) != old.get(key):
                    errs.append(forbidden(key, _IMMUTABLE_WHEN_SET))
    return errs


def _payload_size(errs: Errs, path: str, value: Any, *, shown: str) -> int:
    """Bytes a base64 field decodes to (0 after recording why it does not decode)."""
    try:
        return len(decode_base64(as_str(value)))
    except ValueError as err:
        errs.append(invalid(path, shown or as_str(value), str(err)))
        return 0


def validate_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> Errs:
    errs: Errs = []
    object_meta(errs, obj, namespaced=True, name_fn=name_is_dns_subdomain)
    data = as_dict(obj.get("data"))
    decoded: dict[str, bytes] = {}
    total = 0
    for key, value in data.items():
        each_invalid(errs, f"data[{key}]", key, formats.is_config_map_key(key))
        try:
            decoded[key] = decode_base64(as_str(value))
            total += len(decoded[key])
        except ValueError as err:
            errs.append(invalid(f"data[{key}]", REDACTED, str(err)))
    for key in as_dict(obj.get("stringData")):
        each_invalid(errs, f"data[{key}]", key, formats.is_config_map_key(key))
    if total > MAX_SIZE:
        errs.append(too_long("data", MAX_SIZE))
    _secret_type(errs, obj, as_str(obj.get("type")), decoded)
    if old is not None:
        object_meta_update(errs, obj, old)
        if obj.get("type") != old.get("type"):
            errs.append(invalid("type", as_str(obj.get("type")), FIELD_IMMUTABLE))
        if old.get("immutable") is True:
            if obj.get("immutable") is not True:
                errs.append(forbidden("immutable", _IMMUTABLE_WHEN_SET))
            if obj.get("data") != old.get("data"):
                errs.append(forbidden("data", _IMMUTABLE_WHEN_SET))
    return errs


def _secret_type(errs: Errs, obj: dict[str, Any], kind: str, data: dict[str, bytes]) -> None:
    present = as_dict(obj.get("data")).keys() | as_dict(obj.get("stringData")).keys()
    if kind == "kubernetes.io/service-account-token":
        annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
        if not as_str(annotations.get("kubernetes.io/service-account.name")):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        key = ".dockercfg" if kind == "kubernetes.io/dockercfg" else ".dockerconfigjson"
        if key not in present:
            errs.append(required(f"data[{key}]"))
        elif key in data:
            problem = _json_object_error(data[key])
            if problem:
                errs.append(invalid(f"data[{key}]", REDACTED, problem))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in present and "password" not in present:
            errs.append(required("data[username]"))
            errs.append(required("data[password]"))
    elif kind == "kubernetes.io/ssh-auth":
        if not data.get("ssh-privatekey") and not as_str(as_dict(obj.get("stringData")).get("ssh-privatekey")):
            errs.append(required("data[ssh-privatekey]"))
    elif kind == "kubernetes.io/tls":
        for key in ("tls.crt", "tls.key"):
            if key not in present:
                errs.append(required(f"data[{key}]"))


def _json_object_error(raw: bytes) -> str:
    """Why ``raw`` is not a JSON object (``null`` is accepted, as Go decodes it into a nil map)."""
    try:
        value = json.loads(raw)
    except ValueError as err:
        return str(err)
    if value is not None and not isinstance(value, dict):
        return f"json: cannot unmarshal {type(value).__name__} into Go value of type map[string]interface {{}}"
    return ""
