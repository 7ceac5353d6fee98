"""``kubelite simulate``'s flags: Go durations, pairing --fail with --fail-after, and the resulting config."""

from __future__ import annotations

import pytest

from kubelite.cli.main import build_parser
from kubelite.cli.session import CliError
from kubelite.cli.simulate import api_failure, config_from, failures, parse_duration
from kubelite.client.rest import ApiException


@pytest.mark.parametrize(("text", "seconds"), [
    ("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("2.5s", 2.5), ("7", 7.0), ("0", 0.0),
    ("1m0.5s", 60.5), ("250us", 0.00025),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "10x", "1m 2s", "-1", "ten seconds"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_failures_pair_by_position_or_share_one_delay() -> None:
    assert failures(["a", "b"], []) == {"a": 0.0, "b": 0.0}
    assert failures(["a", "b"], [5.0]) == {"a": 5.0, "b": 5.0}
    assert failures(["a", "b"], [1.0, 2.0]) == {"a": 1.0, "b": 2.0}
    with pytest.raises(CliError, match="one --fail-after per --fail"):
        failures(["a", "b", "c"], [1.0, 2.0])


def test_flags_make_the_config() -> None:
    args = build_parser().parse_args([
        "simulate", "--nodes", "5", "--cpu", "8", "--memory", "32Gi", "--pods", "50", "--name-prefix", "n-",
        "--fail", "n-2", "--fail-after", "10s", "--fail", "n-3", "--fail-after", "1m",
        "--termination-delay", "2s", "--lease-interval", "1s", "--cleanup"])
    config = config_from(args)
    assert (config.nodes, config.cpu, config.memory, config.pods, config.name_prefix) == (5, "8", "32Gi", 50, "n-")
    assert config.failures == {"n-2": 10.0, "n-3": 60.0}
    assert (config.termination_delay, config.lease_renew_interval) == (2.0, 1.0)
    assert args.cleanup


def test_a_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--nodes", "1", "--fail-after", "soon"])
    assert "invalid duration" in capsys.readouterr().err


def test_api_failures_are_found_inside_exception_groups() -> None:
    refused = ApiException(403, "Forbidden", "no")
    assert api_failure(refused) is refused
    assert api_failure(ExceptionGroup("x", [ValueError("v"), ExceptionGroup("y", [refused])])) is refused
    assert api_failure(ExceptionGroup("x", [ValueError("v")])) is None
