"""The Deployment controller against the real API server (in-process, in-memory store), with the controller
manager running only it. The test plays the ReplicaSet controller (`FakeReplicaSets`): it writes each
ReplicaSet's status to match its spec, all pods available unless their image is "broken"."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestServer

from kubelite.api import meta
from kubelite.api.registry import resolve
from kubelite.apiserver.app import build_app
from kubelite.apiserver.storage.memory import MemoryStore
from kubelite.client.events import EventBroadcaster
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import ApiException, Client
from kubelite.controllers import ControllerManager
from kubelite.controllers.context import ControllerContext, ControllerOptions
from kubelite.controllers.deployment import DeploymentController
from kubelite.controllers.deployment_util import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    compute_hash,
    without_hash_label,
)

DEPLOY = resolve("deployments")
RS = resolve("replicasets")
EVENTS = resolve("events")
WAIT_SECONDS = 10.0
NS = "default"

Obj = dict[str, Any]


_VENV_KUBECTL = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_VENV_KUBECTL) if _VENV_KUBECTL.exists() else shutil.which("kubectl")


@asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Client, str]]:
    """A real API server with the controller manager running only the Deployment controller; yields a
    kubelite Client to it and its URL."""
    server = TestServer(build_app(MemoryStore()), host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        async with Client(config_for_server(url)) as c:
            events = EventBroadcaster(c)
            ctx = ControllerContext(c, events, ControllerOptions())
            async with events, ControllerManager(c, controllers=[DeploymentController(ctx)]):
                yield c, url
    finally:
        await server.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with cluster() as (c, _):
        yield c


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = WAIT_SECONDS) -> None:
    """Poll the API until ``check`` holds (the controller acts asynchronously)."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():  # noqa: ASYNC110 - a client sees the controller's work only by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


def image_of(obj: Obj) -> str:
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


class FakeReplicaSets:
    """Plays the ReplicaSet controller, and records every state of the ReplicaSets' specs (from a watch) so
    that a test can check what was true at every moment of a rollout."""

    def __init__(self, client: Client, *, broken: tuple[str, ...] = ()) -> None:
        self.client = client
        self.broken = set(broken)
        self.specs: dict[str, tuple[str, int]] = {}
        self.history: list[dict[str, tuple[str, int]]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> FakeReplicaSets:
        listing = await self.client.list(RS, NS)
        for rs in listing["items"]:
            self._record(rs)
        since = listing["metadata"]["resourceVersion"]
        self._tasks = [asyncio.create_task(self._statuses()), asyncio.create_task(self._watch(since))]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks)

    def _record(self, rs: Obj, deleted: bool = False) -> None:
        if deleted:
            self.specs.pop(meta.name(rs), None)
        else:
            self.specs[meta.name(rs)] = (image_of(rs), int(rs["spec"]["replicas"]))
        self.history.append(dict(self.specs))

    async def _watch(self, since: str) -> None:
        async with aclosing(self.client.watch_raw(RS, NS, since)) as events:
            async for ev in events:
                if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    self._record(ev["object"], ev["type"] == "DELETED")

    def target(self, rs: Obj) -> Obj:
        want = int(rs["spec"]["replicas"])
        healthy = image_of(rs) not in self.broken
        out: Obj = {"replicas": want, "fullyLabeledReplicas": want,
                    "observedGeneration": meta.generation(rs), "terminatingReplicas": 0}
        if healthy and want:
            out.update(readyReplicas=want, availableReplicas=want)
        return out

    async def _statuses(self) -> None:
        while True:
            for rs in (await self.client.list(RS, NS))["items"]:
                want = self.target(rs)
                if rs.get("status") != want:
                    with contextlib.suppress(ApiException):  # a conflict: the next round writes it
                        await self.client.update_status(RS, {**rs, "status": want}, NS)
            await asyncio.sleep(0.02)

    def max_total(self) -> int:
        return max(sum(n for _, n in state.values()) for state in self.history)


def deployment_body(name: str = "web", replicas: int = 3, image: str = "nginx:1.25", **spec: Any) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "web", "image": image}]}},
                     **spec}}


async def owned_replica_sets(client: Client, d: Obj) -> list[Obj]:
    """What kubectl rollout history/undo read: ReplicaSets the Deployment controls."""
    listed = await client.list(RS, NS, label_selector=f"app={meta.name(d)}")
    return [rs for rs in listed["items"] if meta.is_controlled_by(rs, d)]


async def rolled_out(client: Client, name: str = "web") -> Obj:
    """Wait until ``kubectl rollout status`` would say "successfully rolled out"; returns the Deployment."""
    found: Obj = {}

    async def done() -> bool:
        d = await client.get(DEPLOY, name, NS)
        st = d.get("status") or {}
        want = d["spec"]["replicas"]
        found.update(d)
        return bool(st.get("observedGeneration", 0) >= meta.generation(d) and st.get("updatedReplicas", 0) == want
                    and st.get("replicas", 0) == want and st.get("availableReplicas", 0) >= want)

    await eventually(done, f"deployment {name} is rolled out")
    return found


async def set_image(client: Client, image: str, name: str = "web") -> None:
    """What ``kubectl set image`` sends: a strategic merge patch of the container."""
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}}
    await client.patch(DEPLOY, name, patch, "strategic", NS)


async def event_messages(client: Client, name: str = "web") -> list[str]:
    listed = await client.list(EVENTS, NS, field_selector=f"involvedObject.name={name}")
    return [e["message"] for e in listed["items"] if e["reason"] == "ScalingReplicaSet"]


def condition(d: Obj, type_: str) -> Obj:
    return next((c for c in (d.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


# --- rollouts -------------------------------------------------------------------------------------

async def test_a_new_deployment_rolls_out_through_an_owned_replica_set(client: Client) -> None:
    async with FakeReplicaSets(client):
        created = await client.create(DEPLOY, deployment_body(replicas=3))
        d = await rolled_out(client)
    [rs] = await owned_replica_sets(client, d)
    template_hash = compute_hash(created["spec"]["template"], None)
    assert meta.name(rs) == f"web-{template_hash}"
    assert rs["metadata"]["labels"][HASH_LABEL] == template_hash
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: template_hash}
    assert rs["spec"]["template"]["metadata"]["labels"][HASH_LABEL] == template_hash
    [ref] = rs["metadata"]["ownerReferences"]
    assert ref["controller"] is True and ref["blockOwnerDeletion"] is True and ref["uid"] == meta.uid(d)
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["annotations"][DESIRED_REPLICAS] == "3"
    assert rs["metadata"]["annotations"][MAX_REPLICAS] == "4"
    assert d["metadata"]["annotations"][REVISION] == "1"
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"

    async def progressed() -> bool:
        cond = condition(await client.get(DEPLOY, "web", NS), "Progressing")
        return cond.get("reason") == "NewReplicaSetAvailable"

    await eventually(progressed, "the Progressing condition says NewReplicaSetAvailable")
    assert f"Scaled up replica set web-{template_hash} from 0 to 3" in await event_messages(client)


async def test_set_image_rolls_out_within_max_surge(client: Client) -> None:
    body = deployment_body(replicas=6, strategy={"type": "RollingUpdate",
                                                 "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}})
    async with FakeReplicaSets(client) as fake:
        await client.create(DEPLOY, body)
        await rolled_out(client)
        await set_image(client, "nginx:1.26")
        d = await rolled_out(client)
        assert fake.max_total() <= 6 + 2
        assert any(len([n for _, n in s.values() if n]) == 2 for s in fake.history)  # old and new side by side
    rss = {image_of(rs): rs for rs in await owned_replica_sets(client, d)}
    assert {img: rs["spec"]["replicas"] for img, rs in rss.items()} == {"nginx:1.25": 0, "nginx:1.26": 6}
    assert rss["nginx:1.25"]["metadata"]["annotations"][REVISION] == "1"
    assert rss["nginx:1.26"]["metadata"]["annotations"][REVISION] == "2"
    assert d["metadata"]["annotations"][REVISION] == "2"
    assert d["status"]["observedGeneration"] == 2 == meta.generation(d)


async def test_restart_then_undo_goes_back_to_the_old_replica_set(client: Client) -> None:
    async with FakeReplicaSets(client):
        await client.create(DEPLOY, deployment_body(replicas=2))
        await rolled_out(client)
        # kubectl rollout restart: a template annotation, hence a new ReplicaSet.
        await client.patch(DEPLOY, "web", {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}, "strategic", NS)
        d = await rolled_out(client)
        first = next(rs for rs in await owned_replica_sets(client, d)
                     if rs["metadata"]["annotations"][REVISION] == "1")
        # kubectl rollout undo: the previous revision's template (without the hash label) and annotations.
        annotations = {k: v for k, v in d["metadata"]["annotations"].items() if k == REVISION}
        await client.patch(DEPLOY, "web", [
            {"op": "replace", "path": "/spec/template", "value": without_hash_label(first["spec"]["template"])},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ], "json", NS)
        d = await rolled_out(client)

        async def first_is_back() -> bool:
            rs = await client.get(RS, meta.name(first), NS)
            return bool(rs["spec"]["replicas"] == 2 and rs["metadata"]["annotations"].get(REVISION) == "3")

        await eventually(first_is_back, "the first ReplicaSet is the new one again, at revision 3")
    rss = await owned_replica_sets(client, d)
    assert len(rss) == 2  # no third ReplicaSet: the old one was reused
    back = next(rs for rs in rss if meta.name(rs) == meta.name(first))
    assert back["metadata"]["annotations"][REVISION_HISTORY] == "1"

    async def deployment_at_3() -> bool:
        got = await client.get(DEPLOY, "web", NS)
        return bool(got["metadata"]["annotations"].get(REVISION) == "3")

    await eventually(deployment_at_3, "the Deployment is at revision 3")


async def test_pause_holds_the_rollout_but_not_scaling_and_resume_continues(client: Client) -> None:
    async with FakeReplicaSets(client):
        await client.create(DEPLOY, deployment_body(replicas=2))
        await rolled_out(client)
        await client.patch(DEPLOY, "web", {"spec": {"paused": True}}, "merge", NS)
        await set_image(client, "nginx:1.26")

        async def paused() -> bool:
            d = await client.get(DEPLOY, "web", NS)
            return bool(condition(d, "Progressing").get("reason") == "DeploymentPaused"
                        and d["status"].get("observedGeneration") == meta.generation(d))

        await eventually(paused, "the Deployment reports it is paused")
        await client.patch(DEPLOY, "web", {"spec": {"replicas": 4}}, "merge", NS, subresource="scale")

        async def scaled() -> bool:
            rss = await owned_replica_sets(client, await client.get(DEPLOY, "web", NS))
            return [(image_of(rs), rs["spec"]["replicas"]) for rs in rss] == [("nginx:1.25", 4)]

        await eventually(scaled, "the paused Deployment's ReplicaSet is scaled to 4, and no new one exists")
        await client.patch(DEPLOY, "web", {"spec": {"paused": False}}, "merge", NS)
        d = await rolled_out(client)
    assert {image_of(rs): rs["spec"]["replicas"] for rs in await owned_replica_sets(client, d)} == \
        {"nginx:1.25": 0, "nginx:1.26": 4}


async def test_recreate_never_runs_old_and_new_together(client: Client) -> None:
    async with FakeReplicaSets(client) as fake:
        await client.create(DEPLOY, deployment_body(replicas=3, strategy={"type": "Recreate"}))
        await rolled_out(client)
        await set_image(client, "nginx:1.26")
        d = await rolled_out(client)
        assert all(len([n for _, n in s.values() if n]) <= 1 for s in fake.history)
    assert {image_of(rs): rs["spec"]["replicas"] for rs in await owned_replica_sets(client, d)} == \
        {"nginx:1.25": 0, "nginx:1.26": 3}


async def test_old_replica_sets_beyond_the_history_limit_are_deleted(client: Client) -> None:
    async with FakeReplicaSets(client):
        await client.create(DEPLOY, deployment_body(replicas=1, revisionHistoryLimit=1))
        for image in ("nginx:1.25", "nginx:1.26", "nginx:1.27", "nginx:1.28"):
            await set_image(client, image)
            await rolled_out(client)

        async def two_left() -> bool:
            rss = await owned_replica_sets(client, await client.get(DEPLOY, "web", NS))
            return sorted(image_of(rs) for rs in rss) == ["nginx:1.27", "nginx:1.28"]

        await eventually(two_left, "only the new ReplicaSet and one old one are left")


async def test_a_rollout_that_makes_no_progress_exceeds_its_deadline(client: Client) -> None:
    async with FakeReplicaSets(client, broken=("broken:1",)):
        await client.create(DEPLOY, deployment_body(replicas=1, image="broken:1", progressDeadlineSeconds=1))

        async def timed_out() -> bool:
            d = await client.get(DEPLOY, "web", NS)
            cond = condition(d, "Progressing")
            return cond.get("reason") == "ProgressDeadlineExceeded" and cond.get("status") == "False"

        await eventually(timed_out, "the Progressing condition reports the deadline exceeded")
    d = await client.get(DEPLOY, "web", NS)
    assert condition(d, "Progressing")["message"].endswith("has timed out progressing.")
    assert condition(d, "Available")["status"] == "False"


# --- ownership ------------------------------------------------------------------------------------

async def test_an_orphan_replica_set_is_adopted_and_released_when_it_stops_matching(client: Client) -> None:
    paused = await client.create(DEPLOY, deployment_body(replicas=2, paused=True))
    template = dict(paused["spec"]["template"])
    orphan = await client.create(RS, {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                      "metadata": {"name": "handmade", "namespace": NS, "labels": {"app": "web"}},
                                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                               "template": template}})

    async def adopted() -> bool:
        rs = await client.get(RS, "handmade", NS)
        return meta.is_controlled_by(rs, paused)

    await eventually(adopted, "the Deployment adopts the orphan ReplicaSet")
    async with FakeReplicaSets(client):
        await client.patch(DEPLOY, "web", {"spec": {"paused": False}}, "merge", NS)
        d = await rolled_out(client)
    assert [meta.name(rs) for rs in await owned_replica_sets(client, d)] == ["handmade"]  # it is the new one
    await client.patch(RS, "handmade", {"metadata": {"labels": {"app": "elsewhere"}}}, "merge", NS)

    async def released() -> bool:
        rs = await client.get(RS, "handmade", NS)
        return not meta.owner_references(rs)

    await eventually(released, "the Deployment releases the ReplicaSet that no longer matches")
    assert meta.uid(await client.get(RS, "handmade", NS)) == meta.uid(orphan)


async def test_a_name_taken_by_another_template_raises_the_collision_count(client: Client) -> None:
    paused = await client.create(DEPLOY, deployment_body(replicas=1, paused=True))
    taken = f"web-{compute_hash(paused['spec']['template'], None)}"
    other = {"metadata": {"labels": {"app": "squatter"}},
             "spec": {"containers": [{"name": "other", "image": "busybox"}]}}
    await client.create(RS, {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                             "metadata": {"name": taken, "namespace": NS, "labels": {"app": "squatter"}},
                             "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "squatter"}},
                                      "template": other}})
    async with FakeReplicaSets(client):
        await client.patch(DEPLOY, "web", {"spec": {"paused": False}}, "merge", NS)
        d = await rolled_out(client)
    assert d["status"]["collisionCount"] == 1
    [rs] = await owned_replica_sets(client, d)
    assert meta.name(rs) == f"web-{compute_hash(paused['spec']['template'], 1)}" != taken


async def test_scaling_through_the_scale_subresource_resizes_the_replica_set(client: Client) -> None:
    async with FakeReplicaSets(client):
        await client.create(DEPLOY, deployment_body(replicas=2, minReadySeconds=3))
        await rolled_out(client)
        await client.patch(DEPLOY, "web", {"spec": {"replicas": 5}}, "merge", NS, subresource="scale")
        d = await rolled_out(client)
    [rs] = await owned_replica_sets(client, d)
    assert rs["spec"]["replicas"] == 5 and rs["spec"]["minReadySeconds"] == 3
    assert rs["metadata"]["annotations"][DESIRED_REPLICAS] == "5"
    assert f"Scaled up replica set {meta.name(rs)} from 2 to 5" in await event_messages(client)


# --- the real kubectl -----------------------------------------------------------------------------

class Kubectl:
    def __init__(self, url: str, workdir: Path) -> None:
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": url}}],
            "users": [{"name": "admin", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin", "namespace": NS}}],
        }))
        self.workdir = workdir
        self.base = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(workdir / "cache")]

    async def __call__(self, *args: str) -> str:
        """Run kubectl; its stdout once it succeeded."""
        proc = await asyncio.create_subprocess_exec(*self.base, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode()


@pytest.mark.kubectl
@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
async def test_kubectl_rollout_verbs(tmp_path: Path) -> None:
    async with cluster() as (client, url):
        kubectl = Kubectl(url, tmp_path)
        manifest = tmp_path / "web.yaml"
        manifest.write_text(yaml.safe_dump(deployment_body(replicas=3)))
        async with FakeReplicaSets(client):
            await kubectl("apply", "-f", str(manifest))
            status = await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            assert 'deployment "web" successfully rolled out' in status

            await kubectl("set", "image", "deployment/web", "web=nginx:1.26")
            await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            history = await kubectl("rollout", "history", "deployment/web")
            assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]

            assert "rolled back" in await kubectl("rollout", "undo", "deployment/web")
            await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            d = await client.get(DEPLOY, "web", NS)
            assert image_of(d) == "nginx:1.25"
            history = await kubectl("rollout", "history", "deployment/web")
            assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]

            assert "restarted" in await kubectl("rollout", "restart", "deployment/web")
            await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            assert len(await owned_replica_sets(client, await client.get(DEPLOY, "web", NS))) == 3

            assert "paused" in await kubectl("rollout", "pause", "deployment/web")
            await kubectl("set", "image", "deployment/web", "web=nginx:1.27")
            await asyncio.sleep(0.3)
            rss = await owned_replica_sets(client, await client.get(DEPLOY, "web", NS))
            assert "nginx:1.27" not in {image_of(rs) for rs in rss}
            assert "resumed" in await kubectl("rollout", "resume", "deployment/web")
            await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
            rss = await owned_replica_sets(client, await client.get(DEPLOY, "web", NS))
            assert {image_of(rs): rs["spec"]["replicas"] for rs in rss}["nginx:1.27"] == 3
            described = await kubectl("describe", "deployment", "web")
            assert "ScalingReplicaSet" in described
