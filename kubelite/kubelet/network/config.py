"""CNI network configurations: parsing, finding the one to use, and kubelite's default.

A *network configuration list* (CNI spec 1.0, section 1) is a JSON object
``{"cniVersion", "name", "disableCheck"?, "plugins": [{"type": ..., ...}, ...]}``; the runtime executes its
plugins in order for ADD and in reverse for DEL.

Which configuration is used (as the kubelet's dockershim and containerd did): the files of the conf dir
ending in ``.conflist``, ``.conf`` or ``.json``, sorted by file name; the first one that parses wins. A
``.conf``/``.json`` file holding a single plugin configuration (spec 0.x) is made a one-plugin list, as
libcni's ``ConfListFromConf`` does. Unusable files are skipped with a warning.

The default configuration kubelite writes when there is none (`default_conflist`) is the classic single-node
chain of Debian's containernetworking-plugins: ``bridge`` (the node's bridge, gateway = the first address of
the podCIDR, masquerade of traffic leaving the podCIDR, hairpin so that a pod reaches itself through a
Service) with ``host-local`` IPAM on the podCIDR, then ``portmap`` for hostPorts. The ``loopback`` plugin
is not part of the list: it runs as its own network (`loopback_conflist`), as containerd and CRI-O do.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelite.kubelet.network.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_EXTENSIONS = (".conflist", ".conf", ".json")
DEFAULT_CONFIG_FILE = "10-kubelite.conflist"
DEFAULT_NETWORK_NAME = "kubelite"
DEFAULT_BRIDGE_NAME = "kubelite0"
CNI_VERSION = "1.0.0"
LOOPBACK_NETWORK_NAME = "cni-loopback"


@dataclass(frozen=True)
class NetworkConfigList:
    """One parsed network configuration list. ``raw`` is the JSON it was read from: it goes into the result
    cache with the ADD result (as libcni's ``config``) so that DEL runs the configuration ADD ran."""

    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    raw: bytes
    disable_check: bool = False


def parse_conflist(data: bytes, *, source: str = "<config>") -> NetworkConfigList:
    """Parse a network configuration list; `ConfigError` names ``source`` and what is wrong."""
    doc = _json_object(data, source)
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: no 'name' field")
    version = doc.get("cniVersion", "0.1.0")
    if not isinstance(version, str):
        raise ConfigError(f"{source}: 'cniVersion' must be a string")
    plugins = doc.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise ConfigError(f"{source}: no plugins in list")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise ConfigError(f"{source}: plugins[{i}] has no 'type'")
    disable_check = doc.get("disableCheck", False)
    if not isinstance(disable_check, bool):
        raise ConfigError(f"{source}: 'disableCheck' must be a boolean")
    return NetworkConfigList(name=name, cni_version=version, plugins=tuple(plugins), raw=bytes(data),
                             disable_check=disable_check)


def parse_single_conf(data: bytes, *, source: str = "<config>") -> NetworkConfigList:
    """A single plugin configuration (``.conf``) made a one-plugin list, as libcni's ``ConfListFromConf``."""
    doc = _json_object(data, source)
    if not isinstance(doc.get("type"), str) or not doc["type"]:
        raise ConfigError(f"{source}: no 'type' field")
    as_list = {"cniVersion": doc.get("cniVersion", "0.1.0"), "name": doc.get("name"), "plugins": [doc]}
    return parse_conflist(json.dumps(as_list).encode(), source=source)


def load_file(path: Path) -> NetworkConfigList:
    """Read one configuration file: a list if it has ``plugins`` (whatever its extension), else a single
    plugin configuration."""
    data = path.read_bytes()
    if path.suffix == ".conflist" or "plugins" in _json_object(data, str(path)):
        return parse_conflist(data, source=str(path))
    return parse_single_conf(data, source=str(path))


def config_files(conf_dir: Path) -> list[Path]:
    """The candidate files of ``conf_dir``, lowest file name first (empty when the folder is missing)."""
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        return []
    return [conf_dir / n for n in names if n.endswith(CONFIG_EXTENSIONS) and (conf_dir / n).is_file()]


def find_config(conf_dir: Path) -> NetworkConfigList | None:
    """The configuration to use: the first file of `config_files` that loads; None if there is none."""
    for path in config_files(conf_dir):
        try:
            return load_file(path)
        except (OSError, ConfigError) as e:
            log.warning("skipping CNI configuration %s: %s", path, e)
    return None


def default_conflist(pod_cidr: str, *, bridge_name: str = DEFAULT_BRIDGE_NAME, ipam_dir: Path) -> dict[str, Any]:
    """kubelite's default network for a node whose podCIDR is ``pod_cidr`` (``"10.42.0.0/24"``; a
    comma-separated pair for dual stack, as ``spec.podCIDRs``). `ConfigError` for a CIDR that cannot hold a
    gateway and at least one pod."""
    if not bridge_name or len(bridge_name) > 15 or "/" in bridge_name or any(c.isspace() for c in bridge_name):
        raise ConfigError(f"invalid bridge name {bridge_name!r}: 1 to 15 characters, no '/' or spaces")
    ranges: list[list[dict[str, str]]] = []
    routes: list[dict[str, str]] = []
    for cidr in _pod_cidrs(pod_cidr):
        ranges.append([{"subnet": str(cidr), "gateway": str(cidr.network_address + 1)}])
        routes.append({"dst": "0.0.0.0/0" if cidr.version == 4 else "::/0"})
    return {
        "cniVersion": CNI_VERSION,
        "name": DEFAULT_NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge_name,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": ranges, "routes": routes, "dataDir": str(ipam_dir)},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def write_config(conf_dir: Path, file_name: str, conflist: dict[str, Any]) -> Path:
    """Write a configuration atomically (a reader never sees half a file); returns its path."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / file_name
    tmp = conf_dir / f".{file_name}.tmp"
    tmp.write_text(json.dumps(conflist, indent=2) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return path


def loopback_conflist() -> NetworkConfigList:
    """The loopback network every pod gets besides its configured network (interface ``lo``)."""
    doc = {"cniVersion": CNI_VERSION, "name": LOOPBACK_NETWORK_NAME, "plugins": [{"type": "loopback"}]}
    return parse_conflist(json.dumps(doc).encode(), source=LOOPBACK_NETWORK_NAME)


def version_at_least(version: str, minimum: str) -> bool:
    """Compare CNI versions (semver ``x.y.z``; an empty version is ``0.1.0`` as plugins read it)."""
    return _version_tuple(version or "0.1.0") >= _version_tuple(minimum)


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise ConfigError(f"invalid cniVersion {version!r}") from None


def _pod_cidrs(pod_cidr: str) -> Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    cidrs = []
    for text in (part.strip() for part in pod_cidr.split(",")):
        try:
            cidr = ipaddress.ip_network(text)
        except ValueError:
            raise ConfigError(f"invalid podCIDR {text!r}: not a network in CIDR notation") from None
        if cidr.num_addresses < 4:
            raise ConfigError(f"podCIDR {text} is too small: it needs room for a gateway and a pod")
        cidrs.append(cidr)
    if len({c.version for c in cidrs}) != len(cidrs):
        raise ConfigError(f"invalid podCIDR {pod_cidr!r}: at most one IPv4 and one IPv6 network")
    return cidrs


def _json_object(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as e:
        raise ConfigError(f"{source}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: not a JSON object")
    return doc
