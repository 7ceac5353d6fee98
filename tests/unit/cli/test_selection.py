"""Command-line resource selection: KIND[,KIND] NAME..., KIND/NAME..., all."""

from __future__ import annotations

import pytest

from kubelite.api.registry import UnknownKind
from kubelite.cli import selection
from kubelite.cli.selection import SelectionError


def _flat(args: list[str]) -> list[tuple[str, list[str]]]:
    return [(s.kind.plural, s.names) for s in selection.parse(args)]


def test_kinds_and_names() -> None:
    assert _flat(["deploy,svc", "web", "web"]) == [("deployments", ["web"]), ("services", ["web"])]
    assert _flat(["pods"]) == [("pods", [])]


def test_kind_slash_name_groups_by_kind() -> None:
    assert _flat(["deploy/a", "svc/web", "deployment.apps/b"]) == [("deployments", ["a", "b"]),
                                                                   ("services", ["web"])]


def test_all_is_the_all_category() -> None:
    assert [p for p, _ in _flat(["all"])] == ["pods", "services", "deployments", "replicasets"]


def test_errors() -> None:
    with pytest.raises(SelectionError, match="You must specify the type of resource to get"):
        selection.parse([])
    with pytest.raises(SelectionError, match="no need to specify a resource type as a separate argument"):
        selection.parse(["deploy", "svc/web"])
    with pytest.raises(UnknownKind, match='doesn\'t have a resource type "widgets"'):
        selection.parse(["widgets"])
