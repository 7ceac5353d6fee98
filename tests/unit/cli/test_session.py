"""Kubeconfig choice and kubectl-style boolean flags."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kubelite.cli.session import CliError, add_bool_flag, kubeconfig_path


def test_explicit_then_env_then_home_then_kubelite_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fallback = tmp_path / "kubelite.yaml"
    monkeypatch.setenv("KUBELITE_KUBECONFIG", str(fallback))
    home = {"HOME": str(tmp_path)}
    assert kubeconfig_path("/x/config", {**home, "KUBECONFIG": "/y"}) == "/x/config"
    assert kubeconfig_path(None, {**home, "KUBECONFIG": "/y"}) is None
    with pytest.raises(CliError, match="no kubeconfig found"):
        kubeconfig_path(None, home)
    fallback.write_text("")
    assert kubeconfig_path(None, home) == str(fallback)
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("")
    assert kubeconfig_path(None, home) is None


def test_bool_flags_take_equals_values_but_not_the_next_word() -> None:
    p = argparse.ArgumentParser()
    add_bool_flag(p, "--wait", default=True, help="wait")
    p.add_argument("rest", nargs="*")
    assert p.parse_args([]).wait is True
    assert p.parse_args(["--wait=false"]).wait is False
    assert p.parse_args(["--wait=1"]).wait is True
    args = p.parse_args(["--wait", "deploy"])
    assert args.wait is True and args.rest == ["deploy"]
