"""Making sure a container's image is on the node: ``imagePullPolicy``, pull secrets, events and back-off,
as the kubelet's image manager (``pkg/kubelet/images/image_manager.go``).

- ``Never``: the image must be present (``ErrImageNeverPull``); ``IfNotPresent``: pulled when missing;
  ``Always``: pulled every time a container is created (layers already present are not fetched again).
- Credentials come from the pod's ``imagePullSecrets`` (``kubernetes.io/dockerconfigjson`` and the older
  ``kubernetes.io/dockercfg``): every entry whose registry (and optional path prefix) matches the image is
  tried in turn; without a match the pull is anonymous.
- Events: ``Pulling`` (``Pulling image "x"``), ``Pulled`` (``Successfully pulled image "x" in 1.2s (1.2s
  including waiting). Image size: 123 bytes.`` or ``Container image "x" already present on machine``),
  ``Failed`` (``Failed to pull image "x": <the registry's reason>``), ``BackOff`` (``Back-off pulling image "x"``).
- A failed pull puts ``(pod uid, image)`` into back-off; while it lasts, the container waits with
  ``ImagePullBackOff``, after a fresh failure with ``ErrImagePull`` — both carrying the registry's message.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelite.api import meta
from kubelite.client.events import EventRecorder
from kubelite.kubelet.backoff import Backoff
from kubelite.kubelet.envvars import secret_values
from kubelite.kubelet.runtime_client import RuntimeClient, RuntimeServiceError
from kubelite.proto import runtime_pb2 as pb

Obj = dict[str, Any]

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
INVALID_IMAGE_NAME = "InvalidImageName"
DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


class ImagePullError(Exception):
    """The container cannot get its image: ``reason`` is its waiting reason, ``message`` says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- image references ------------------------------------------------------------------------------

def with_default_tag(image: str) -> str:
    """``busybox`` → ``busybox:latest``; a tag or digest is kept (applyDefaultImageTag)."""
    if not image or image != image.strip() or any(c.isupper() for c in image.split("/")[-1].split(":")[0]):
        raise ImagePullError(INVALID_IMAGE_NAME, f'Failed to apply default image tag "{image}": couldn\'t parse '
                             f'image name "{image}": invalid reference format')
    if "@" in image:
        return image
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last else image + ":latest"


def registry_of(image: str) -> tuple[str, str]:
    """(registry host, repository path) of an image reference, Docker Hub for short names."""
    name = image.split("@", 1)[0]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, name if sep else f"library/{name}"
    last = path.rsplit("/", 1)
    if ":" in last[-1]:
        path = path[: len(path) - len(last[-1])] + last[-1].split(":", 1)[0]
    return (DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host), path


def _normalize_key(key: str) -> tuple[str, str]:
    """A dockercfg key (``https://index.docker.io/v1/``, ``registry:5000/team``) → (host, path prefix)."""
    text = key
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    host, _, path = text.partition("/")
    host = DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host
    path = path.strip("/")
    if host == DOCKER_HUB and path in ("v1", "v2"):
        path = ""
    return host, path


def docker_config_auths(secret: Obj) -> dict[str, Obj]:
    """The ``auths`` of an image pull secret; {} for any other secret or unreadable data."""
    values = secret_values(secret)
    try:
        if secret.get("type") == "kubernetes.io/dockerconfigjson" or ".dockerconfigjson" in values:
            doc = json.loads(values.get(".dockerconfigjson", b"{}"))
            auths = doc.get("auths") if isinstance(doc, dict) else None
        elif secret.get("type") == "kubernetes.io/dockercfg" or ".dockercfg" in values:
            auths = json.loads(values.get(".dockercfg", b"{}"))
        else:
            return {}
    except ValueError:
        return {}
    return {str(k): v for k, v in auths.items() if isinstance(v, dict)} if isinstance(auths, dict) else {}


def credentials_for(image: str, secrets: list[Obj]) -> list[pb.AuthConfig]:
    """Every credential of ``secrets`` that applies to ``image``, most specific path first."""
    host, path = registry_of(image)
    found: list[tuple[int, pb.AuthConfig]] = []
    for secret in secrets:
        for key, entry in docker_config_auths(secret).items():
            key_host, key_path = _normalize_key(key)
            if key_host != host or (key_path and path != key_path and not path.startswith(key_path + "/")):
                continue
            username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
            if entry.get("auth") and not username:
                try:
                    username, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
                except (binascii.Error, UnicodeDecodeError):
                    continue
            found.append((len(key_path), pb.AuthConfig(
                username=username, password=password, auth=str(entry.get("auth") or ""), server_address=key_host,
                identity_token=str(entry.get("identitytoken") or ""),
                registry_token=str(entry.get("registrytoken") or ""))))
    return [auth for _, auth in sorted(found, key=lambda f: -f[0])]


def go_duration(seconds: float) -> str:
    """A duration as Go prints a time.Duration truncated to milliseconds: ``512ms``, ``1.234s``, ``1m5.5s``."""
    ms = int(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# --- the puller ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PulledImage:
    ref: str  # the image id the runtime knows it by
    user: str  # the image config's user (for runAsNonRoot)


class ImagePuller:
    def __init__(self, runtime: RuntimeClient, recorder: EventRecorder, backoff: Backoff, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._runtime = runtime
        self._recorder = recorder
        self._backoff = backoff
        self._clock = clock

    def backoff_remaining(self, pod: Obj, container: Obj) -> float:
        """Seconds until a pull of the container's image may be tried again."""
        key = f"{meta.uid(pod)}_{container.get('image') or ''}"
        return self._backoff.remaining_since_update(key, self._backoff.clock())

    def forget(self, uid: str) -> None:
        self._backoff.forget(uid + "_")

    async def ensure(self, pod: Obj, container: Obj, *, pull_secrets: list[Obj],
                     sandbox_config: pb.PodSandboxConfig | None = None) -> PulledImage:
        """The container's image, pulled if its policy asks; raises `ImagePullError`."""
        spec_image = str(container.get("image") or "")
        image = with_default_tag(spec_image)
        policy = str(container.get("imagePullPolicy") or "IfNotPresent")
        try:
            present = await self._runtime.image_status(image)
        except RuntimeServiceError as e:
            raise ImagePullError("ImageInspectError", f'Failed to inspect image "{spec_image}": {e.message}') from None
        if present is not None and policy != "Always":
            self._recorder.normal(pod, "Pulled", f'Container image "{spec_image}" already present on machine')
            return PulledImage(present.id, present.user)
        if policy == "Never":
            message = f'Container image "{spec_image}" is not present with pull policy of Never'
            self._recorder.warning(pod, ERR_IMAGE_NEVER_PULL, message)
            raise ImagePullError(ERR_IMAGE_NEVER_PULL, message)
        key = f"{meta.uid(pod)}_{spec_image}"
        if self._backoff.is_in_backoff_since_update(key, self._backoff.clock()):
            message = f'Back-off pulling image "{spec_image}"'
            self._recorder.normal(pod, "BackOff", message)
            raise ImagePullError(IMAGE_PULL_BACKOFF, message)
        self._recorder.normal(pod, "Pulling", f'Pulling image "{spec_image}"')
        started = self._clock()
        error: RuntimeServiceError | None = None
        auths: list[pb.AuthConfig | None] = [*credentials_for(image, pull_secrets)] or [None]
        for auth in auths:
            try:
                ref = await self._runtime.pull_image(image, auth=auth, sandbox_config=sandbox_config)
                break
            except RuntimeServiceError as e:
                error = e
        else:
            assert error is not None
            self._recorder.warning(pod, "Failed", f'Failed to pull image "{spec_image}": {error.message}')
            self._backoff.next(key, self._backoff.clock())
            raise ImagePullError(ERR_IMAGE_PULL, error.message)
        took = go_duration(self._clock() - started)
        pulled = await self._runtime.image_status(image) or await self._runtime.image_status(ref)
        size = pulled.size if pulled is not None else 0
        self._recorder.normal(pod, "Pulled", f'Successfully pulled image "{spec_image}" in {took} ({took} including '
                                             f"waiting). Image size: {size} bytes.")
        self._backoff.gc()
        return PulledImage(pulled.id if pulled is not None else ref, pulled.user if pulled is not None else "")
