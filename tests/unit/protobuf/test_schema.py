"""The generated schema: complete for every served kind, self-consistent and up to date."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kubelite.api import registry
from kubelite.apiserver.protobuf import convert, schema

from .test_kubectl_bodies import KUBECTL

REPO = Path(__file__).resolve().parents[3]
GENERATOR = REPO / "scripts" / "gen_protobuf_schema.py"
SCALARS = {"bool", "int32", "int64", "string", "bytes"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protobuf_schema", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_served_kind_has_a_message() -> None:
    missing = [(k.api_version, k.kind) for k in registry.all_kinds()
               if (k.api_version, k.kind) not in schema.KINDS]
    assert not missing, f"regenerate with a ROOTS entry for {missing}"


def test_every_reference_resolves() -> None:
    assert set(schema.KINDS.values()) <= set(schema.MESSAGES)
    for name in schema.MESSAGES:
        fields, by_number = convert.fields_of(name)
        assert len(by_number) == len(fields), f"{name} repeats a field number"
        for f in fields:
            assert f.leaf in SCALARS or f.leaf in schema.MESSAGES or f.leaf in convert.SPECIAL, (name, f)
            if not f.json_name:
                assert f.leaf in schema.MESSAGES and not (f.pointer or f.container), (name, f)


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_schema_is_what_the_generator_makes_from_this_kubectl() -> None:
    version = subprocess.run([str(KUBECTL), "version", "--client", "-o", "json"], check=True,
                             capture_output=True, text=True).stdout
    generated_from = re.search(r"from kubectl (\S+)", Path(schema.__file__).read_text())
    installed = re.search(r'"gitVersion":\s*"([^"]+)"', version)
    assert generated_from and installed
    if generated_from.group(1) != installed.group(1):
        pytest.skip(f"schema comes from kubectl {generated_from.group(1)}, {installed.group(1)} is installed")
    assert _generator().generate(Path(str(KUBECTL))) == Path(schema.__file__).read_text(), (
        f"run {sys.executable} scripts/gen_protobuf_schema.py")


def test_generator_refuses_what_is_not_a_go_binary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "kubectl"
    fake.write_text("#!/bin/sh\necho '{\"clientVersion\": {\"gitVersion\": \"v0\"}}'\n")
    fake.chmod(0o755)
    out = tmp_path / "schema.py"
    assert _generator().main(["--kubectl", str(fake), "--out", str(out)]) == 1
    assert "not a 64-bit ELF executable" in capsys.readouterr().err
    assert not out.exists()


def test_messages_do_not_nest_recursively() -> None:
    # The decoder recurses once per nesting level; a cycle would let a body nest without bound.
    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        for f in convert.fields_of(name)[0]:
            if f.leaf in schema.MESSAGES:
                visit(f.leaf, (*path, name))

    for root in set(schema.KINDS.values()):
        visit(root, ())
