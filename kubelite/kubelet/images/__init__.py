"""Images for the node's runtime: a content-addressed store, registry pulls (OCI distribution API v2),
``docker save``/OCI-layout tarball imports, layers unpacked for overlayfs, and garbage collection.
The runtime uses `ImageStore` (store.py); the rest of the package is its parts."""

from kubelite.kubelet.images.auth import credentials_for
from kubelite.kubelet.images.errors import (
    DigestMismatch,
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidImage,
    InvalidReference,
    RegistryError,
    UnsafeLayer,
)
from kubelite.kubelet.images.model import ImageConfig, ImageRecord, PullProgress, RegistryAuth
from kubelite.kubelet.images.reference import Reference, parse_reference
from kubelite.kubelet.images.store import ImageStore

__all__ = [
    "DigestMismatch",
    "ImageConfig",
    "ImageError",
    "ImageInUse",
    "ImageNotFound",
    "ImageRecord",
    "ImageStore",
    "InvalidImage",
    "InvalidReference",
    "PullProgress",
    "Reference",
    "RegistryAuth",
    "RegistryError",
    "UnsafeLayer",
    "credentials_for",
    "parse_reference",
]
