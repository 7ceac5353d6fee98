"""The real kubectl's protobuf bodies decode to exactly the JSON kubectl itself prints for them.

Each case runs one `kubectl create ...` generator twice: against a throwaway server that records
the protobuf POST body, and with `-o json --dry-run=client`, which prints the same object as JSON.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelite.apiserver.protobuf import decode_k8s_protobuf

from .fake_apiserver import FakeServer, fake_apiserver

_VENV_KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_VENV_KUBECTL) if _VENV_KUBECTL.exists() else shutil.which("kubectl")

pytestmark = [pytest.mark.kubectl, pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")]

BINARY = b"\xff\xfe\x00binary"


class Kubectl:
    def __init__(self, server: FakeServer, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.base = [str(KUBECTL), "--kubeconfig", str(server.kubeconfig(workdir)),
                     "--cache-dir", str(workdir / "cache")]

    async def __call__(self, *args: str, exit_code: int = 0) -> tuple[str, str]:
        """Run kubectl with ``args``; (stdout, stderr) once it exited with ``exit_code``."""
        proc = await asyncio.create_subprocess_exec(
            *self.base, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == exit_code, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode(), err.decode()


@pytest.fixture
async def kubectl(tmp_path: Path) -> AsyncIterator[Kubectl]:
    (tmp_path / "binary.dat").write_bytes(BINARY)
    async with fake_apiserver() as server:
        yield Kubectl(server, tmp_path)


# (generator arguments, arguments that must come last, the path kubectl posts to)
CASES = [
    pytest.param(["namespace", "x"], [], "/api/v1/namespaces", id="namespace"),
    pytest.param(["deployment", "d", "--image=nginx", "--replicas=2", "--port=80"], [],
                 "/apis/apps/v1/namespaces/default/deployments", id="deployment"),
    pytest.param(["deployment", "z", "--image=nginx", "--replicas=0"], [],
                 "/apis/apps/v1/namespaces/default/deployments", id="deployment-zero-replicas"),
    pytest.param(["deployment", "w", "--image=nginx", "--image=redis"], [],
                 "/apis/apps/v1/namespaces/default/deployments", id="deployment-two-images"),
    pytest.param(["configmap", "c", "--from-literal=a=b", "--from-file=bin={dir}/binary.dat"], [],
                 "/api/v1/namespaces/default/configmaps", id="configmap-binary-data"),
    pytest.param(["secret", "generic", "s", "--from-literal=k=v", "--type=Opaque"], [],
                 "/api/v1/namespaces/default/secrets", id="secret-generic"),
    pytest.param(["secret", "docker-registry", "reg", "--docker-server=r.io", "--docker-username=u",
                  "--docker-password=p"], [], "/api/v1/namespaces/default/secrets", id="secret-registry"),
    pytest.param(["service", "clusterip", "s", "--tcp=80:8080"], [],
                 "/api/v1/namespaces/default/services", id="service-clusterip"),
    pytest.param(["service", "nodeport", "np", "--tcp=80:http", "--node-port=30080"], [],
                 "/api/v1/namespaces/default/services", id="service-nodeport-named-port"),
    pytest.param(["service", "clusterip", "headless", "--clusterip=None"], [],
                 "/api/v1/namespaces/default/services", id="service-headless"),
    pytest.param(["serviceaccount", "sa"], [], "/api/v1/namespaces/default/serviceaccounts",
                 id="serviceaccount"),
    pytest.param(["ingress", "ing", "--class=nginx", "--rule=foo.com/bar*=svc1:8080,tls=my-cert",
                  "--default-backend=def:http", "--annotation=a=b"], [],
                 "/apis/networking.k8s.io/v1/namespaces/default/ingresses", id="ingress"),
    pytest.param(["job", "j", "--image=busybox"], ["--", "echo", "hi"],
                 "/apis/batch/v1/namespaces/default/jobs", id="job"),
    pytest.param(["cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *"], [],
                 "/apis/batch/v1/namespaces/default/cronjobs", id="cronjob"),
    pytest.param(["role", "r", "--verb=get,list", "--resource=pods,deployments.apps"], [],
                 "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", id="role"),
    pytest.param(["rolebinding", "rb", "--clusterrole=view", "--user=bob", "--serviceaccount=default:sa"],
                 [], "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", id="rolebinding"),
]


@pytest.mark.parametrize(("args", "last", "path"), CASES)
async def test_create_body_decodes_to_kubectls_own_json(
        kubectl: Kubectl, args: list[str], last: list[str], path: str) -> None:
    args = [a.replace("{dir}", str(kubectl.workdir)) for a in args]
    await kubectl("create", *args, *last)
    [posted] = kubectl.server.captured
    assert posted.method == "POST"
    assert posted.path == path
    assert posted.content_type == "application/vnd.kubernetes.protobuf"

    printed, _ = await kubectl("create", *args, "-o", "json", "--dry-run=client", *last)
    expected = json.loads(printed)
    assert decode_k8s_protobuf(posted.body) == expected


async def test_unknown_kind_reaches_kubectl_as_a_clear_error(kubectl: Kubectl) -> None:
    # kubelite's schema has no PriorityClass: kubectl must print the server's message, not hang.
    _, err = await kubectl("create", "priorityclass", "pc", "--value=5", exit_code=1)
    assert 'no kind "PriorityClass" is registered for version "scheduling.k8s.io/v1"' in err
