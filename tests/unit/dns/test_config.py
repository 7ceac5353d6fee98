"""DNSConfig: upstream spellings, the node's resolv.conf, and no forwarding to ourselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelite.proxy.dns.config import DNSConfig, parse_resolv_conf, parse_upstream


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param("10.0.0.2", ("10.0.0.2", 53), id="ipv4"),
    pytest.param("10.0.0.2:5353", ("10.0.0.2", 5353), id="ipv4-port"),
    pytest.param("fd00::1", ("fd00::1", 53), id="ipv6"),
    pytest.param("[fd00::1]:5353", ("fd00::1", 5353), id="ipv6-port"),
    pytest.param("[fd00::1]", ("fd00::1", 53), id="ipv6-brackets"),
    pytest.param(" 10.0.0.2 ", ("10.0.0.2", 53), id="spaces"),
])
def test_parse_upstream(spec: str, expected: tuple[str, int]) -> None:
    assert parse_upstream(spec) == expected


@pytest.mark.parametrize("spec", ["dns.example.com", "10.0.0.2:x", "10.0.0.2:70000", "[fd00::1", "[fd00::1]x"])
def test_parse_upstream_rejects(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_upstream(spec)


def test_resolv_conf_nameservers_in_order() -> None:
    text = """# generated
search example.com
nameserver 192.0.2.1
nameserver   fe80::1%eth0   # link-local with a zone
nameserver not-an-ip
options ndots:2
;nameserver 192.0.2.9
nameserver 192.0.2.2
"""
    assert parse_resolv_conf(text.splitlines()) == ["192.0.2.1", "fe80::1%eth0", "192.0.2.2"]


def test_upstreams_come_from_resolv_conf_unless_given(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.1\nnameserver 192.0.2.2\n")
    assert DNSConfig(resolv_conf=conf).resolve_upstreams() == [("192.0.2.1", 53), ("192.0.2.2", 53)]
    assert DNSConfig(resolv_conf=conf, upstreams=("192.0.2.7:5300",)).resolve_upstreams() == [("192.0.2.7", 5300)]
    assert DNSConfig(resolv_conf=tmp_path / "missing").resolve_upstreams() == []


def test_an_upstream_that_is_this_server_is_dropped(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.0.0.5\nnameserver 127.0.0.53\n")
    config = DNSConfig(listen=("10.0.0.5",), resolv_conf=conf)
    assert config.resolve_upstreams() == [("127.0.0.53", 53)]


@pytest.mark.parametrize("kwargs", [
    pytest.param({"pods": "maybe"}, id="pods"),
    pytest.param({"port": 70000}, id="port"),
    pytest.param({"ttl": -1}, id="ttl"),
    pytest.param({"listen": ()}, id="no-listen"),
    pytest.param({"listen": ("localhost",)}, id="listen-not-ip"),
    pytest.param({"upstreams": ("x",)}, id="upstream"),
    pytest.param({"allowed_clients": ("10.0.0.0/33",)}, id="allowed-clients"),
])
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DNSConfig(**kwargs)  # type: ignore[arg-type]
