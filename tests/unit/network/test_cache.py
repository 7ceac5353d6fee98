from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kubelite.kubelet.network.cache import CachedAttachment, ResultCache

CONFIG = b'{"cniVersion":"1.0.0","name":"kubelite","plugins":[{"type":"bridge"}]}'


def entry(container_id: str = "abc123", network: str = "kubelite", ifname: str = "eth0") -> CachedAttachment:
    return CachedAttachment(
        container_id=container_id, network=network, ifname=ifname, config=CONFIG, netns="/run/netns/x",
        cni_args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
        capability_args={"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]},
        result={"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]})


def test_the_path_is_libcnis(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    assert cache.path("kubelite", "abc123", "eth0") == tmp_path / "results" / "kubelite-abc123-eth0"
    with pytest.raises(ValueError):
        cache.path("kubelite", "", "eth0")


def test_the_file_is_libcnis_cached_info(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.save(entry())
    path = tmp_path / "results" / "kubelite-abc123-eth0"
    assert json.loads(path.read_text()) == {
        "kind": "cniCacheV1",
        "containerId": "abc123",
        "config": base64.b64encode(CONFIG).decode(),
        "ifName": "eth0",
        "networkName": "kubelite",
        "netns": "/run/netns/x",
        "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "web"]],
        "capabilityArgs": {"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]},
        "result": {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]},
    }
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_save_load_delete(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    assert cache.load("kubelite", "abc123", "eth0") is None
    cache.save(entry())
    assert cache.load("kubelite", "abc123", "eth0") == entry()
    cache.delete("kubelite", "abc123", "eth0")
    cache.delete("kubelite", "abc123", "eth0")
    assert cache.load("kubelite", "abc123", "eth0") is None


def test_reads_what_libcni_writes(tmp_path: Path) -> None:
    # as containerd writes it: omitempty fields missing, no result
    (tmp_path / "results").mkdir()
    doc = {"kind": "cniCacheV1", "containerId": "abc123", "config": base64.b64encode(CONFIG).decode(),
           "ifName": "lo", "networkName": "cni-loopback"}
    (tmp_path / "results" / "cni-loopback-abc123-lo").write_text(json.dumps(doc))
    loaded = ResultCache(tmp_path).load("cni-loopback", "abc123", "lo")
    assert loaded == CachedAttachment(container_id="abc123", network="cni-loopback", ifname="lo", config=CONFIG)


@pytest.mark.parametrize("content", [
    pytest.param("{", id="not-json"),
    pytest.param('{"cniVersion": "1.0.0", "ips": []}', id="legacy-raw-result"),
    pytest.param('{"kind": "cniCacheV1", "containerId": "abc123", "ifName": "eth0"}', id="no-network"),
    pytest.param('{"kind": "cniCacheV1", "containerId": "abc123", "ifName": "eth0", "networkName": "n", '
                 '"config": "%%%"}', id="config-not-base64"),
    pytest.param('{"kind": "cniCacheV1", "containerId": "abc123", "ifName": "eth0", "networkName": "n", '
                 '"cniArgs": [["a"]]}', id="bad-args"),
])
def test_unreadable_entries_are_ignored(tmp_path: Path, content: str) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "n-abc123-eth0").write_text(content)
    cache = ResultCache(tmp_path)
    assert cache.load("n", "abc123", "eth0") is None
    assert cache.attachments() == []


def test_attachments_of_one_container(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    assert cache.attachments() == []
    cache.save(entry("abc123", "kubelite", "eth0"))
    cache.save(entry("abc123", "cni-loopback", "lo"))
    cache.save(entry("abc1234", "kubelite", "eth0"))
    cache.save(entry("other", "kubelite", "eth0"))
    mine = cache.attachments("abc123")
    assert [(a.network, a.ifname) for a in mine] == [("cni-loopback", "lo"), ("kubelite", "eth0")]
    assert {a.container_id for a in cache.attachments()} == {"abc123", "abc1234", "other"}
