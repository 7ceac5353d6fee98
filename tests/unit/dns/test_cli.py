"""``kubelite dns`` flags → DNSConfig."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kubelite.cli import dns as dns_cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    dns_cli.register(parser.add_subparsers())
    return parser.parse_args(["dns", *argv])


def test_defaults_are_coredns_like() -> None:
    args = parse()
    config = dns_cli.config_from(args)
    assert (config.listen, config.port, config.cluster_domain, config.ttl, config.pods) == (
        ("0.0.0.0",), 53, "cluster.local", 5, "verified")
    assert config.upstreams is None and config.resolv_conf == Path("/etc/resolv.conf")
    assert args.cluster_dns_ip == "10.96.0.10" and args.advertise_address == []


def test_flags() -> None:
    config = dns_cli.config_from(parse("--listen", "127.0.0.1", "--listen", "::1", "--port", "5353",
                                       "--cluster-domain", "corp.local", "--upstream", "192.0.2.1",
                                       "--upstream", "[fd00::1]:53", "--ttl", "30", "--pods", "insecure",
                                       "--allow-from", "203.0.113.0/24"))
    assert config.listen == ("127.0.0.1", "::1") and config.port == 5353
    assert config.resolve_upstreams() == [("192.0.2.1", 53), ("fd00::1", 53)]
    assert (config.cluster_domain, config.ttl, config.pods) == ("corp.local", 30, "insecure")
    assert config.allowed_clients == ("203.0.113.0/24",)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError):
        dns_cli.config_from(parse("--listen", "localhost"))
    with pytest.raises(SystemExit):
        parse("--pods", "sometimes")
