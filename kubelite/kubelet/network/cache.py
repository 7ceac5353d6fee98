"""The CNI result cache, in libcni's on-disk format, so that DEL gets what ADD returned.

One file per attachment ``(network name, container id, interface name)`` at
``<cache dir>/results/<network>-<container id>-<ifname>`` holding libcni's ``cachedInfo`` JSON:
``{"kind": "cniCacheV1", "containerId", "config" (the list's JSON, base64 as Go encodes []byte), "ifName",
"networkName", "netns", "cniArgs" ([[key, value], ...]), "capabilityArgs", "result"}``. Being libcni's
format, a cache written by kubelite reads in ``cnitool``/containerd and the other way round (libcni's older
"raw result only" files are not read).

Files are written atomically (temporary file + rename, 0600 in a 0700 folder as libcni does), so a crash never
leaves half an entry that a later DEL would trip over.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CACHE_KIND = "cniCacheV1"


@dataclass(frozen=True)
class CachedAttachment:
    """One cached ADD: enough to run DEL or CHECK later, also from another process."""

    container_id: str
    network: str
    ifname: str
    config: bytes
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": CACHE_KIND,
            "containerId": self.container_id,
            "config": base64.b64encode(self.config).decode(),
            "ifName": self.ifname,
            "networkName": self.network,
        }
        # omitempty as in libcni's struct tags
        if self.netns:
            doc["netns"] = self.netns
        if self.cni_args:
            doc["cniArgs"] = [list(pair) for pair in self.cni_args]
        if self.capability_args:
            doc["capabilityArgs"] = self.capability_args
        if self.result is not None:
            doc["result"] = self.result
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> CachedAttachment:
        """Raises ValueError for anything that is not a cniCacheV1 entry."""
        if not isinstance(doc, dict) or doc.get("kind") != CACHE_KIND:
            raise ValueError("not a cniCacheV1 entry")
        try:
            config = base64.b64decode(doc.get("config") or "", validate=True)
        except binascii.Error as e:
            raise ValueError(f"config is not base64: {e}") from None
        container_id, network, ifname = (str(doc.get(k) or "") for k in ("containerId", "networkName", "ifName"))
        if not (container_id and network and ifname):
            raise ValueError("containerId, networkName and ifName are required")
        pairs = doc.get("cniArgs") or []
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(s, str) for s in p) for p in pairs):
            raise ValueError("cniArgs must be [key, value] pairs")
        result = doc.get("result")
        return cls(
            container_id=container_id,
            network=network,
            ifname=ifname,
            config=config,
            netns=str(doc.get("netns") or ""),
            cni_args=tuple((k, v) for k, v in pairs),
            capability_args=dict(doc.get("capabilityArgs") or {}),
            result=result if isinstance(result, dict) else None,
        )


class ResultCache:
    """The ``results`` folder of a CNI cache dir (``AgentPaths.cni_cache_dir``)."""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = cache_dir / "results"

    def path(self, network: str, container_id: str, ifname: str) -> Path:
        """libcni's ``getCacheFilePath``."""
        if not (network and container_id and ifname):
            raise ValueError("a cache entry needs a network name, a container id and an interface name")
        return self.dir / f"{network}-{container_id}-{ifname}"

    def save(self, entry: CachedAttachment) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path(entry.network, entry.container_id, entry.ifname)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(entry.to_json(), f)
        os.replace(tmp, path)

    def load(self, network: str, container_id: str, ifname: str) -> CachedAttachment | None:
        """The entry, or None when there is none or it is unreadable (then DEL runs without prevResult, as
        libcni does with a broken cache file)."""
        return self._read(self.path(network, container_id, ifname))

    def delete(self, network: str, container_id: str, ifname: str) -> None:
        self.path(network, container_id, ifname).unlink(missing_ok=True)

    def attachments(self, container_id: str | None = None) -> Sequence[CachedAttachment]:
        """Every readable entry (of one container if given), sorted by file name (libcni's
        ``GetCachedAttachments``)."""
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.startswith(".") or (container_id is not None and f"-{container_id}-" not in name):
                continue
            entry = self._read(self.dir / name)
            if entry is not None and (container_id is None or entry.container_id == container_id):
                found.append(entry)
        return found

    def _read(self, path: Path) -> CachedAttachment | None:
        try:
            return CachedAttachment.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable CNI cache entry %s: %s", path, e)
            return None
