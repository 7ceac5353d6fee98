"""Releasing host-local IPAM reservations whose container is gone (garbage collection after a crash).

host-local keeps one file per reserved address, ``<dataDir>/<network name>/<ip>``, holding
``<container id>\\r\\n<ifname>`` (older releases: the container id alone), next to ``last_reserved_ip.<range>``
and a ``lock`` file it ``flock``s around every change. Releasing a reservation is removing its file under
that lock, which is what host-local's own DEL (``ReleaseByID``) does; doing it here covers the sandboxes that
never got their DEL because the kubelet died between ADD and caching the result.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reservation:
    network: str
    ip: str
    container_id: str
    ifname: str
    path: Path


def reservations(data_dir: Path) -> list[Reservation]:
    """Every reservation under ``data_dir`` (host-local's ``dataDir``), by network then file name."""
    found = []
    for network in _listdir(data_dir):
        network_dir = data_dir / network
        if not network_dir.is_dir():
            continue
        for name in _listdir(network_dir):
            if not _is_ip(name):
                continue  # lock, last_reserved_ip.N
            try:
                lines = (network_dir / name).read_text().splitlines()
            except OSError:
                continue
            container_id = lines[0].strip() if lines else ""
            ifname = lines[1].strip() if len(lines) > 1 else ""
            found.append(Reservation(network, name, container_id, ifname, network_dir / name))
    return found


def release_stale(data_dir: Path, live_container_ids: Collection[str]) -> list[Reservation]:
    """Remove the reservations of containers not in ``live_container_ids``; returns what was released."""
    released = []
    for reservation in reservations(data_dir):
        if reservation.container_id in live_container_ids:
            continue
        with _locked(reservation.path.parent):
            # re-read under the lock: host-local may have released and re-reserved the address meanwhile
            try:
                current = reservation.path.read_text().splitlines()
            except FileNotFoundError:
                continue
            if current and current[0].strip() == reservation.container_id:
                reservation.path.unlink(missing_ok=True)
                released.append(reservation)
                log.info("released stale host-local reservation %s (network %s, container %s)",
                         reservation.ip, reservation.network, reservation.container_id or "<unknown>")
    return released


@contextmanager
def _locked(network_dir: Path) -> Iterator[None]:
    """host-local's lock: ``flock(LOCK_EX)`` on ``<network dir>/lock``."""
    fd = os.open(network_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
