"""Image references as Docker spells them, normalised as Docker and containerd normalise them.

``busybox`` is ``docker.io/library/busybox:latest``, ``me/app`` is ``docker.io/me/app:latest``,
``localhost:5000/app@sha256:...`` names a local registry. The first path component is a registry host when
it contains a ``.`` or a ``:`` or is ``localhost`` (distribution/reference's rule). Docker Hub's API lives at
``registry-1.docker.io``; registries on loopback are spoken to over plain http, all others over https.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kubelite.kubelet.images.digest import is_digest
from kubelite.kubelet.images.errors import InvalidReference

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"
_MAX_NAME = 255

# distribution/reference's grammar, written out once.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(
    r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*"
    r"[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``; at least one of tag and digest is set."""

    domain: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: the repository, without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def api_host(self) -> str:
        """The host (and port) the distribution API is reached at."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def object(self) -> str:
        """What to ask the registry's manifests endpoint for: the digest if any, else the tag."""
        return self.digest or self.tag

    @property
    def tagged(self) -> str:
        """``name:tag``, or "" for a reference by digest only."""
        return f"{self.name}:{self.tag}" if self.tag else ""

    def with_digest(self, digest: str) -> str:
        return f"{self.name}@{digest}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(text: str, *, default_tag: str = DEFAULT_TAG) -> Reference:
    """Parse and normalise ``text``; a reference with neither tag nor digest gets ``default_tag``.

    Raises InvalidReference with distribution's wording for malformed input.
    """
    remainder, at, digest = text.partition("@")
    if at and not is_digest(digest):
        raise InvalidReference(f"invalid reference format: {text!r} has an invalid digest")
    name, tag = remainder, ""
    # A ':' after the last '/' starts the tag (a ':' before it belongs to a registry port).
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid reference format: {text!r} has an invalid tag")
    domain, path = split_domain(name)
    if not _PATH.fullmatch(path):
        if path.lower() != path and _PATH.fullmatch(path.lower()):
            raise InvalidReference(f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidReference(f"invalid reference format: {text!r}")
    if len(domain) + 1 + len(path) > _MAX_NAME:
        raise InvalidReference(f"invalid reference format: repository name must not be more than {_MAX_NAME} "
                               "characters")
    if not tag and not digest:
        tag = default_tag
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def split_domain(name: str) -> tuple[str, str]:
    """Split a repository name into (registry domain, path), applying Docker Hub's defaults."""
    first, slash, rest = name.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        domain, path = DOCKER_HUB, name
    else:
        if not _DOMAIN.fullmatch(first):
            raise InvalidReference(f"invalid reference format: invalid registry host {first!r}")
        domain, path = first, rest
    if domain in _DOCKER_HUB_ALIASES:
        domain = DOCKER_HUB
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return domain, path


def is_loopback_host(host: str) -> bool:
    """Whether a ``host[:port]`` is this machine (localhost, 127.0.0.0/8, ::1), spoken to over http."""
    if host.startswith("["):
        hostname = host[1:host.find("]")]
    else:
        hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
