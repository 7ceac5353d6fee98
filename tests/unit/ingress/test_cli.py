"""``kubelite ingress``: its flags become an `IngressConfig`."""

from __future__ import annotations

import argparse

import pytest

from kubelite.cli import ingress


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kubelite")
    ingress.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["ingress", *argv])


def test_defaults() -> None:
    config = ingress.config_from_args(parse())
    assert (config.http_port, config.https_port, config.bind_address) == (80, 443, None)
    assert config.class_name == "kubelite" and config.install_class and config.write_status
    assert config.publish_addresses == () and config.trusted_proxies == ()


def test_flags() -> None:
    config = ingress.config_from_args(parse(
        "--node-name", "n1", "--bind-address", "127.0.0.1", "--http-port", "8080", "--disable-https",
        "--ingress-class", "edge", "--no-install-class", "--disable-status", "--publish-status-address", "10.0.0.1",
        "--publish-status-address", "lb.example.com", "--node-ip", "10.0.0.9", "--trusted-proxy", "10.0.0.0/8"))
    assert config.node_name == "n1" and config.bind_address == "127.0.0.1"
    assert (config.http_port, config.https_port) == (8080, None)
    assert config.class_name == "edge" and not config.install_class and not config.write_status
    assert config.publish_addresses == ("10.0.0.1", "lb.example.com") and config.node_ip == "10.0.0.9"
    assert config.trusted_proxies == ("10.0.0.0/8",)


def test_bad_values_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--http-port", "70000")
    with pytest.raises(ValueError, match="not an IP address or CIDR"):
        ingress.config_from_args(parse("--trusted-proxy", "nonsense"))
