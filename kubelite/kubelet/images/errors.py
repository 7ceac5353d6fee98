"""The errors of the image store. Every one is an `ImageError`, so a caller can catch them all at once.

`RegistryError.reason` is the registry's own wording (``manifest unknown``, ``unauthorized: authentication
required``), formatted as Docker formats a distribution error (``<code in lower case>: <message>``, the code
left out when it says the same as the message), so that an ``ErrImagePull`` event reads as users expect.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base of every error the image store raises."""


class ImageNotFound(ImageError):
    """No local image matches the reference."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"no such image: {ref}")
        self.ref = ref


class ImageInUse(ImageError):
    """The image is held by a container (see ``ImageStore.acquire``) and cannot be removed."""

    def __init__(self, ref: str, holders: list[str]) -> None:
        super().__init__(f"image {ref} is in use by {', '.join(sorted(holders))}")
        self.ref = ref
        self.holders = holders


class InvalidReference(ImageError):
    """A string that is not an image reference (``docker.io/library/busybox:latest``, ``name@sha256:...``)."""


class RegistryError(ImageError):
    """A registry refused or failed a pull. ``str(error) == error.reason``.

    ``status`` is the HTTP status (0 when the registry could not be reached) and ``codes`` the
    distribution error codes (``MANIFEST_UNKNOWN``, ``UNAUTHORIZED``, ...) the registry sent, if any.
    """

    def __init__(self, reason: str, *, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.codes = codes


class InvalidImage(ImageError):
    """A manifest, configuration, tarball or layer that cannot be used (malformed, unsupported, unsafe)."""


class DigestMismatch(RegistryError, InvalidImage):
    """Content whose digest is not the one it was named by (a corrupt or tampered blob or manifest), from a
    registry or from a tarball."""


class UnsafeLayer(InvalidImage):
    """A layer tarball entry that would write outside the layer directory (``../``, a hard link out)."""
