from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubelite.kubelet.network.config import (
    default_conflist,
    find_config,
    load_file,
    loopback_conflist,
    parse_conflist,
    parse_single_conf,
    version_at_least,
    write_config,
)
from kubelite.kubelet.network.errors import ConfigError

CONFLIST = {"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}, {"type": "portmap"}]}


def dump(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_parse_conflist_keeps_the_plugins_and_the_raw_bytes() -> None:
    raw = dump({**CONFLIST, "disableCheck": True})
    netlist = parse_conflist(raw)
    assert netlist.name == "net" and netlist.cni_version == "1.0.0" and netlist.disable_check
    assert [p["type"] for p in netlist.plugins] == ["bridge", "portmap"]
    assert netlist.raw == raw


@pytest.mark.parametrize(("doc", "message"), [
    pytest.param(b"{", "not JSON", id="not-json"),
    pytest.param(dump([1]), "not a JSON object", id="not-object"),
    pytest.param(dump({**CONFLIST, "name": ""}), "no 'name'", id="no-name"),
    pytest.param(dump({**CONFLIST, "plugins": []}), "no plugins", id="no-plugins"),
    pytest.param(dump({**CONFLIST, "plugins": [{"type": "bridge"}, {}]}), r"plugins\[1\] has no 'type'",
                 id="plugin-without-type"),
    pytest.param(dump({**CONFLIST, "cniVersion": 1}), "must be a string", id="version-not-string"),
    pytest.param(dump({**CONFLIST, "disableCheck": "yes"}), "must be a boolean", id="disable-check"),
])
def test_parse_conflist_rejects(doc: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_conflist(doc, source="x.conflist")


def test_a_single_plugin_conf_becomes_a_one_plugin_list() -> None:
    netlist = parse_single_conf(dump({"cniVersion": "0.4.0", "name": "old", "type": "bridge", "bridge": "br0"}))
    assert netlist.name == "old" and netlist.cni_version == "0.4.0"
    assert netlist.plugins == ({"cniVersion": "0.4.0", "name": "old", "type": "bridge", "bridge": "br0"},)
    with pytest.raises(ConfigError, match="no 'type'"):
        parse_single_conf(dump({"name": "old"}))


def test_find_config_takes_the_lowest_file_name_that_loads(tmp_path: Path) -> None:
    assert find_config(tmp_path / "missing") is None
    (tmp_path / "05-broken.conflist").write_text("{")
    (tmp_path / "10-b.conflist").write_bytes(dump({**CONFLIST, "name": "b"}))
    (tmp_path / "20-a.conflist").write_bytes(dump({**CONFLIST, "name": "a"}))
    (tmp_path / "01-notes.txt").write_text("ignored")
    netlist = find_config(tmp_path)
    assert netlist is not None and netlist.name == "b"
    (tmp_path / "07-single.conf").write_bytes(dump({"cniVersion": "1.0.0", "name": "single", "type": "ptp"}))
    netlist = find_config(tmp_path)
    assert netlist is not None and netlist.name == "single"


def test_a_conf_file_holding_a_list_is_read_as_a_list(tmp_path: Path) -> None:
    path = tmp_path / "10-list.conf"
    path.write_bytes(dump(CONFLIST))
    assert load_file(path).name == "net"


def test_default_conflist_for_a_pod_cidr(tmp_path: Path) -> None:
    conf = default_conflist("10.42.3.0/24", bridge_name="kl0", ipam_dir=tmp_path / "ipam")
    assert conf["cniVersion"] == "1.0.0" and conf["name"] == "kubelite"
    bridge, portmap = conf["plugins"]
    assert bridge == {
        "type": "bridge", "bridge": "kl0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.42.3.0/24", "gateway": "10.42.3.1"}]],
                 "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp_path / "ipam")},
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    parse_conflist(dump(conf))  # a valid list


def test_default_conflist_dual_stack(tmp_path: Path) -> None:
    ipam = default_conflist("10.42.0.0/24, fd00:42::/64", ipam_dir=tmp_path)["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.42.0.0/24", "gateway": "10.42.0.1"}],
                              [{"subnet": "fd00:42::/64", "gateway": "fd00:42::1"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]


@pytest.mark.parametrize(("cidr", "bridge", "message"), [
    pytest.param("10.42.0.1/24", "kubelite0", "not a network", id="host-bits"),
    pytest.param("nonsense", "kubelite0", "not a network", id="garbage"),
    pytest.param("10.42.0.0/31", "kubelite0", "too small", id="too-small"),
    pytest.param("10.42.0.0/24,10.43.0.0/24", "kubelite0", "at most one IPv4", id="two-v4"),
    pytest.param("10.42.0.0/24", "a-very-long-bridge-name", "invalid bridge name", id="long-bridge"),
    pytest.param("10.42.0.0/24", "", "invalid bridge name", id="empty-bridge"),
])
def test_default_conflist_rejects(cidr: str, bridge: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        default_conflist(cidr, bridge_name=bridge, ipam_dir=tmp_path)


def test_write_config_replaces_atomically(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    path = write_config(conf_dir, "10-kubelite.conflist", CONFLIST)
    assert path == conf_dir / "10-kubelite.conflist"
    assert json.loads(path.read_text()) == CONFLIST
    assert sorted(p.name for p in conf_dir.iterdir()) == ["10-kubelite.conflist"]
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_loopback_conflist() -> None:
    netlist = loopback_conflist()
    assert netlist.name == "cni-loopback" and [p["type"] for p in netlist.plugins] == ["loopback"]


@pytest.mark.parametrize(("version", "minimum", "expected"), [
    ("1.0.0", "0.4.0", True), ("0.4.0", "0.4.0", True), ("0.3.1", "0.4.0", False), ("", "0.4.0", False),
    ("0.10.0", "0.4.0", True),
])
def test_version_at_least(version: str, minimum: str, expected: bool) -> None:
    assert version_at_least(version, minimum) is expected


def test_version_at_least_rejects_garbage() -> None:
    with pytest.raises(ConfigError, match="invalid cniVersion"):
        version_at_least("one", "0.4.0")
