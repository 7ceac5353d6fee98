"""The text progress bar of ``kubelite image pull|import`` and its size units."""

from __future__ import annotations

import io

import pytest

from kubelite.cli.image import ProgressBar, agent_paths, human_size
from kubelite.kubelet.images import PullProgress


@pytest.mark.parametrize(("size", "text"), [(0, "0B"), (999, "999B"), (1000, "1kB"), (1_029_381, "1.029MB"),
                                            (2_500_000_000, "2.5GB")])
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_sums_layer_bytes() -> None:
    bar = ProgressBar("busybox", _Terminal())
    bar(PullProgress("Pulling fs layer", "sha256:a", 0, 3000))
    bar(PullProgress("Pulling fs layer", "sha256:b", 0, 1000))
    bar(PullProgress("Downloading", "sha256:a", 1000, 3000))
    assert bar.line(80) == "busybox [##########------------------------------]  25% 1kB/4kB Downloading"
    bar(PullProgress("Already exists", "sha256:a", 3000, 3000))
    bar(PullProgress("Pull complete", "sha256:b", 1000, 1000))
    assert "100% 4kB/4kB Pull complete" in bar.line(80)
    assert len(bar.line(30)) == 30


def test_bar_follows_a_tarball_being_read() -> None:
    bar = ProgressBar("image.tar", _Terminal())
    bar(PullProgress("Reading", "image.tar", 500, 2000))
    assert " 25% 500B/2kB Reading" in bar.line(100)


def test_bar_is_silent_off_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar("busybox", out)
    bar(PullProgress("Downloading", "sha256:a", 1, 2))
    bar.finish()
    assert out.getvalue() == ""


def test_bar_draws_and_ends_its_line_on_a_terminal() -> None:
    out = _Terminal()
    bar = ProgressBar("busybox", out)
    bar(PullProgress("Done", "busybox", 2, 2))
    bar.finish()
    assert out.getvalue().startswith("\rbusybox [") and out.getvalue().endswith("\n")


def test_agent_folders_live_under_the_data_dir() -> None:
    assert str(agent_paths("/var/lib/kubelite").images) == "/var/lib/kubelite/agent/images"
