"""Credentials for a pull from the pod's ``imagePullSecrets``: the kubelet's docker keyring
(pkg/credentialprovider/keyring.go), for ``kubernetes.io/dockerconfigjson`` (``{"auths": {...}}``) and the
older ``kubernetes.io/dockercfg`` (the same map without ``auths``) secrets.

A key is a registry host, optionally with a scheme (ignored), a path prefix (``quay.io/coreos``) and
``/v1/`` or ``/v2/`` (meaning the host alone); host labels may be globs (``*.example.com`` matches
``a.example.com``, not ``example.com``); ports must be equal. Every matching key's credentials are
returned, the most specific key first, for the kubelet to try in turn; Docker Hub images also match
``index.docker.io`` (``https://index.docker.io/v1/`` in a ``docker login`` config).
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from kubelite.kubelet.images.model import RegistryAuth
from kubelite.kubelet.images.reference import DOCKER_HUB, parse_reference

_DOCKER_HUB_KEY = "index.docker.io"


def credentials_for(image: str, configs: Iterable[Mapping[str, Any]]) -> list[RegistryAuth]:
    """The credentials that apply to ``image`` out of decoded docker config documents, best match first;
    empty when none applies (pull anonymously)."""
    keyring: dict[str, list[RegistryAuth]] = {}
    for config in configs:
        auths = config.get("auths")
        entries = auths if isinstance(auths, Mapping) else config
        for location, identity in entries.items():
            if isinstance(identity, Mapping):
                keyring.setdefault(_key(str(location)), []).append(_auth(identity))
    ref = parse_reference(image)
    found = [auth for key in sorted(keyring, reverse=True) if _matches(key, ref.name) for auth in keyring[key]]
    if not found and ref.domain == DOCKER_HUB:
        found = list(keyring.get(_DOCKER_HUB_KEY, []))
    return found


def _key(location: str) -> str:
    rest = location.split("://", 1)[1] if "://" in location else location
    host, slash, path = rest.partition("/")
    path = slash + path
    if path.startswith(("/v1/", "/v2/")):
        path = path[3:]
    return host if path in ("", "/") else host + path


def _matches(key: str, target: str) -> bool:
    key_host, _, key_path = key.partition("/")
    target_host, _, target_path = target.partition("/")
    key_labels, key_port = _split_host(key_host)
    target_labels, target_port = _split_host(target_host)
    if key_port != target_port or len(key_labels) != len(target_labels):
        return False
    if not ("/" + target_path).startswith("/" + key_path):  # a string prefix, as Kubernetes compares paths
        return False
    return all(fnmatch.fnmatchcase(t, k) for k, t in zip(key_labels, target_labels, strict=True))


def _split_host(host: str) -> tuple[list[str], str]:
    name, colon, port = host.rpartition(":")
    if not colon or not port.isdigit():
        name, port = host, ""
    return name.split("."), port


def _auth(identity: Mapping[str, Any]) -> RegistryAuth:
    username = str(identity.get("username") or "")
    password = str(identity.get("password") or "")
    encoded = identity.get("auth")
    if isinstance(encoded, str) and encoded and not username:
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            pass
    return RegistryAuth(username=username, password=password, token=str(identity.get("registrytoken") or ""))
