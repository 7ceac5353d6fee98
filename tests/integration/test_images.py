"""Pulls from a real registry (Debian's docker-registry on loopback) and imports through the CLI.

Covered: anonymous pulls, pulls by digest, basic auth (htpasswd), the bearer-token flow (an aiohttp token
server and proxy in front of the registry, which also redirects blob downloads to another origin), manifest
lists, a corrupt blob, ``manifest unknown``, concurrent pulls sharing one download, a resumed partial blob,
the layers mounted as a real overlay, and ``kubelite image pull|import|ls|rm``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from kubelite.cli.main import main
from kubelite.kubelet.images import (
    DigestMismatch,
    ImageStore,
    PullProgress,
    RegistryAuth,
    RegistryError,
)
from kubelite.kubelet.images.content import ContentStore, Ingest
from kubelite.kubelet.images.manifest import Platform
from tests.support.images import (
    BUSYBOX,
    DELETED_BY_LAYER2,
    OPAQUE_NEW_FILE,
    OPAQUE_OLD_FILE,
    HtpasswdUnavailable,
    LayoutImage,
    RegistryMissing,
    RegistryServer,
    build_busybox_image,
    docker_save_tarball,
    image_index_layout,
    layout_image,
    oci_tarball,
    push_image,
)

USER, PASSWORD = "puller", "s3cret-pw"
FOREIGN = "arm64" if Platform.host().architecture != "arm64" else "amd64"


@dataclass(frozen=True)
class Images:
    busybox: LayoutImage
    multi: LayoutImage
    foreign: LayoutImage
    corrupt: LayoutImage


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    if not BUSYBOX.is_file():
        pytest.skip(f"{BUSYBOX} is missing (Debian package busybox-static)")
    root = tmp_path_factory.mktemp("layouts")
    busybox = build_busybox_image(root)
    foreign = build_busybox_image(root / "foreign", architecture=FOREIGN, extra_files={"etc/arch": b"foreign\n"})
    multi = image_index_layout(root / "multi", [busybox, foreign], name="kubelite.test/multi:v1")
    # Its own blobs: corrupting them in the registry must not touch the other images.
    corrupt = build_busybox_image(root / "corrupt", extra_files={"etc/corrupt": os.urandom(64)})
    return Images(busybox=layout_image(busybox), multi=layout_image(multi), foreign=layout_image(foreign),
                  corrupt=layout_image(corrupt))


def _start(registry: RegistryServer) -> RegistryServer:
    try:
        registry.start()
    except RegistryMissing as e:
        pytest.skip(str(e))
    except HtpasswdUnavailable as e:
        pytest.skip(f"no htpasswd basic-auth test: {e}")
    return registry


@pytest.fixture(scope="module")
def registry(images: Images) -> Iterator[RegistryServer]:
    server = _start(RegistryServer())
    try:
        push_image(server.url, images.busybox.layout, "test/busybox:v1")
        push_image(server.url, images.busybox.layout, "test/copy:v1")
        push_image(server.url, images.multi.layout, "test/multi:v1")
        push_image(server.url, images.corrupt.layout, "test/corrupt:v1")
        top_layer = images.corrupt.layer_digests[-1]
        blob = server.blob_path("test/corrupt", top_layer)
        data = bytearray(blob.read_bytes())
        data[-20] ^= 0xFF  # same size, other content
        blob.write_bytes(bytes(data))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def auth_registry(images: Images) -> Iterator[RegistryServer]:
    server = _start(RegistryServer(username=USER, password=PASSWORD))
    try:
        push_image(server.url, images.busybox.layout, "private/busybox:v1", username=USER, password=PASSWORD)
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "images")


async def _blob_gets(registry: RegistryServer, digest: str) -> list[int]:
    """Statuses of the GETs of one blob so far (the access log line lands just after the response)."""
    deadline = time.monotonic() + 2
    while True:
        found = [status for method, path, status in registry.requests()
                 if method == "GET" and path.endswith(f"/blobs/{digest}")]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


# -- pulls -----------------------------------------------------------------------------------------------------


async def test_anonymous_pull(registry: RegistryServer, images: Images, store: ImageStore) -> None:
    steps: list[PullProgress] = []
    ref = f"{registry.host}/test/busybox:v1"
    record = await store.pull(ref, progress=steps.append)
    assert record.id == images.busybox.config_digest
    assert record.repo_tags == [ref]
    assert record.repo_digests == [f"{registry.host}/test/busybox@{images.busybox.manifest_digest}"]
    assert record.diff_ids == images.busybox.diff_ids
    assert record.config.cmd == ["sh"]
    assert [p.is_dir() for p in store.layer_dirs(record)] == [True, True]
    statuses = [s.status for s in steps]
    assert statuses[0] == "Resolving" and statuses[-1] == "Done"
    assert {"Pulling fs layer", "Downloading", "Download complete", "Extracting", "Pull complete"} <= set(statuses)
    assert store.resolve(ref) == record

    # Again: the layers are there, only the manifest and configuration are read.
    steps.clear()
    again = await store.pull(ref, progress=steps.append)
    assert again == record
    assert [s.status for s in steps if s.layer in images.busybox.layer_digests] == ["Already exists"] * 2


async def test_pull_by_digest(registry: RegistryServer, images: Images, store: ImageStore) -> None:
    ref = f"{registry.host}/test/busybox@{images.busybox.manifest_digest}"
    record = await store.pull(ref)
    assert record.id == images.busybox.config_digest
    assert record.repo_tags == []
    assert store.resolve(ref) == record


async def test_zstd_layers(registry: RegistryServer, store: ImageStore, tmp_path: Path) -> None:
    pytest.importorskip("zstandard", reason="the zstandard package is not installed")
    layout = build_busybox_image(tmp_path, compression="zstd")
    push_image(registry.url, layout, "test/zstd:v1")
    record = await store.pull(f"{registry.host}/test/zstd:v1")
    assert record.id == layout_image(layout).config_digest
    assert (store.layer_dirs(record)[0] / "bin/busybox").is_file()


async def test_manifest_unknown(registry: RegistryServer, store: ImageStore) -> None:
    with pytest.raises(RegistryError) as caught:
        await store.pull(f"{registry.host}/test/busybox:nosuch")
    assert caught.value.reason == "manifest unknown"
    assert caught.value.status == 404
    with pytest.raises(RegistryError) as unknown_repo:
        await store.pull(f"{registry.host}/test/nosuch:v1")
    assert unknown_repo.value.status == 404
    assert unknown_repo.value.reason in ("manifest unknown", "name unknown: repository name not known to registry")
    assert store.list() == []


async def test_unreachable_registry(store: ImageStore) -> None:
    with pytest.raises(RegistryError, match=r"cannot reach registry 127\.0\.0\.1:1"):
        await store.pull("127.0.0.1:1/test/busybox:v1")


async def test_manifest_list_picks_the_platform(registry: RegistryServer, images: Images, tmp_path: Path) -> None:
    ref = f"{registry.host}/test/multi:v1"
    record = await ImageStore(tmp_path / "host").pull(ref)
    assert record.id == images.busybox.config_digest
    assert record.repo_digests == [f"{registry.host}/test/multi@{images.multi.digest}"]
    foreign = await ImageStore(tmp_path / "foreign", platform=f"linux/{FOREIGN}").pull(ref)
    assert foreign.id == images.foreign.config_digest
    assert foreign.architecture == FOREIGN
    with pytest.raises(RegistryError, match="no matching manifest for linux/s390x in the manifest list entries"):
        await ImageStore(tmp_path / "s390x", platform="linux/s390x").pull(ref)


async def test_a_corrupt_blob_is_rejected(registry: RegistryServer, images: Images, store: ImageStore) -> None:
    with pytest.raises(DigestMismatch, match="digest mismatch") as caught:
        await store.pull(f"{registry.host}/test/corrupt:v1")
    assert isinstance(caught.value, RegistryError)  # reported as a pull error
    assert images.corrupt.layer_digests[-1] in str(caught.value)
    assert store.list() == []
    assert not store.layers.exists(images.corrupt.diff_ids[-1])
    assert not store.content.exists(images.corrupt.layer_digests[-1])


async def test_concurrent_pulls_share_one_download(registry: RegistryServer, images: Images,
                                                   store: ImageStore) -> None:
    base, top = images.busybox.layer_digests
    before = {d: len(await _blob_gets(registry, d)) for d in (base, top)}
    seen: list[list[PullProgress]] = [[] for _ in range(4)]
    refs = [f"{registry.host}/test/busybox:v1"] * 3 + [f"{registry.host}/test/copy:v1"]
    records = await asyncio.gather(*(store.pull(ref, progress=seen[i].append) for i, ref in enumerate(refs)))
    assert {r.id for r in records} == {images.busybox.config_digest}
    # Every caller of the shared pull saw its progress.
    assert all(steps and steps[-1].status == "Done" for steps in seen)
    await asyncio.sleep(0.2)  # let the access log catch up before counting
    assert {d: len(await _blob_gets(registry, d)) - before[d] for d in (base, top)} == {base: 1, top: 1}
    stored = store.resolve(images.busybox.config_digest)
    assert stored is not None and sorted(stored.repo_tags) == sorted(set(refs))


async def test_a_cancelled_caller_does_not_stop_the_shared_pull(registry: RegistryServer, images: Images,
                                                                 store: ImageStore) -> None:
    ref = f"{registry.host}/test/busybox:v1"
    first = asyncio.ensure_future(store.pull(ref))
    second = asyncio.ensure_future(store.pull(ref))
    await asyncio.sleep(0)
    first.cancel()
    record = await second
    assert first.cancelled()
    assert record.id == images.busybox.config_digest


async def test_a_partial_blob_is_resumed(registry: RegistryServer, images: Images, store: ImageStore) -> None:
    base = images.busybox.layer_digests[0]
    data = (images.busybox.layout / "blobs/sha256" / base.split(":")[1]).read_bytes()
    half = len(data) // 2
    # What an interrupted pull leaves behind.
    with Ingest(ContentStore(store.root), base) as ingest:
        ingest.write(data[:half])
    steps: list[PullProgress] = []
    record = await store.pull(f"{registry.host}/test/busybox:v1", progress=steps.append)
    assert [s.current for s in steps if s.status == "Resuming" and s.layer == base] == [half]
    assert 206 in await _blob_gets(registry, base)
    assert [p.is_dir() for p in store.layer_dirs(record)] == [True, True]


async def test_a_bad_partial_blob_is_downloaded_again(registry: RegistryServer, images: Images,
                                                      store: ImageStore) -> None:
    base = images.busybox.layer_digests[0]
    with Ingest(ContentStore(store.root), base) as ingest:
        ingest.write(b"\0" * 1000)  # not a prefix of the blob: the resumed download fails its digest
    record = await store.pull(f"{registry.host}/test/busybox:v1")
    assert record.id == images.busybox.config_digest


# -- authentication --------------------------------------------------------------------------------------------


async def test_basic_auth(auth_registry: RegistryServer, images: Images, store: ImageStore) -> None:
    ref = f"{auth_registry.host}/private/busybox:v1"
    with pytest.raises(RegistryError) as anonymous:
        await store.pull(ref)
    assert anonymous.value.reason == "unauthorized: authentication required"
    assert anonymous.value.status == 401
    with pytest.raises(RegistryError, match="unauthorized: authentication required"):
        await store.pull(ref, auth=RegistryAuth(USER, "wrong"))
    record = await store.pull(ref, auth=RegistryAuth(USER, PASSWORD))
    assert record.id == images.busybox.config_digest


@dataclass
class TokenProxy:
    url: str
    host: str
    scopes: list[str]
    # Whether the redirected blob downloads carried an Authorization header (they must not).
    leaked_auth: list[bool]


@pytest.fixture
async def token_proxy(registry: RegistryServer) -> AsyncIterator[TokenProxy]:
    """Docker Hub's scheme in front of the registry: /v2/ wants a bearer token, /token hands one out for
    basic credentials, blobs redirect to another origin (as to a CDN)."""
    scopes: list[str] = []
    leaked: list[bool] = []
    good_basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    session = aiohttp.ClientSession()
    state: dict[str, str] = {}

    async def token(request: web.Request) -> web.Response:
        scope = request.query.get("scope", "")
        scopes.append(scope)
        # test/copy is public (anonymous tokens, as Docker Hub gives for public images); the rest is not.
        public = scope == "repository:test/copy:pull" and "Authorization" not in request.headers
        if request.query.get("service") != "kubelite-test" or (
                request.headers.get("Authorization") != good_basic and not public):
            return web.json_response({"details": "incorrect username or password"}, status=401)
        return web.json_response({"access_token": f"tok:{scope}"})

    async def forward(request: web.Request, path: str) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k in ("Accept", "Range")}
        async with session.get(f"{registry.url}{path}", headers=headers, allow_redirects=False) as upstream:
            body = await upstream.read()
            keep = ("Content-Type", "Docker-Content-Digest", "Content-Range")
            return web.Response(status=upstream.status, body=body,
                                headers={k: v for k, v in upstream.headers.items() if k in keep})

    async def v2(request: web.Request) -> web.StreamResponse:
        repository = request.match_info["rest"].rsplit("/", 2)[0]
        scope = f"repository:{repository}:pull"
        if request.headers.get("Authorization") != f"Bearer tok:{scope}":
            challenge = f'Bearer realm="{state["url"]}/token",service="kubelite-test",scope="{scope}"'
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                                     status=401, headers={"WWW-Authenticate": challenge})
        if "/blobs/" in request.path:
            port = state["url"].rsplit(":", 1)[1]
            raise web.HTTPTemporaryRedirect(f"http://localhost:{port}/cdn{request.path}")
        return await forward(request, request.path)

    async def cdn(request: web.Request) -> web.StreamResponse:
        leaked.append("Authorization" in request.headers)
        return await forward(request, request.path.removeprefix("/cdn"))

    app = web.Application()
    app.router.add_get("/token", token)
    app.router.add_get("/v2/{rest:.+}", v2)
    app.router.add_get("/cdn/{rest:.+}", cdn)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        state["url"] = f"http://127.0.0.1:{port}"
        yield TokenProxy(url=state["url"], host=f"127.0.0.1:{port}", scopes=scopes, leaked_auth=leaked)
    finally:
        await runner.cleanup()
        await session.close()


async def test_bearer_token_flow(token_proxy: TokenProxy, images: Images, store: ImageStore) -> None:
    ref = f"{token_proxy.host}/test/busybox:v1"
    with pytest.raises(RegistryError) as refused:
        await store.pull(ref)
    assert refused.value.reason == "unauthorized: incorrect username or password"
    record = await store.pull(ref, auth=RegistryAuth(USER, PASSWORD))
    assert record.id == images.busybox.config_digest
    assert set(token_proxy.scopes) == {"repository:test/busybox:pull"}
    public = await ImageStore(store.root.parent / "public").pull(f"{token_proxy.host}/test/copy:v1")
    assert public.id == record.id
    assert token_proxy.leaked_auth and not any(token_proxy.leaked_auth)
    # A registry token is sent as the bearer token itself.
    again = await ImageStore(store.root.parent / "other").pull(ref, auth=RegistryAuth(
        token="tok:repository:test/busybox:pull"))
    assert again.id == record.id


# -- unpacked layers as the runtime mounts them ------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs needs root")
def test_layers_mount_as_an_overlay(registry: RegistryServer, store: ImageStore, tmp_path: Path) -> None:
    record = asyncio.run(store.pull(f"{registry.host}/test/busybox:v1"))
    merged = tmp_path / "merged"
    merged.mkdir()
    lower = ":".join(str(p) for p in reversed(store.layer_dirs(record)))
    mounted = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower}", str(merged)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount overlayfs here: {mounted.stderr.strip()}")
    try:
        assert not (merged / DELETED_BY_LAYER2).exists()
        assert not (merged / OPAQUE_OLD_FILE).exists()
        assert (merged / OPAQUE_NEW_FILE).is_file()
        out = subprocess.run(["chroot", str(merged), "/bin/sh", "-c", "echo hello from $(cat /etc/layer2)"],
                             capture_output=True, text=True, check=True)
        assert out.stdout == "hello from second layer\n"
    finally:
        subprocess.run(["umount", str(merged)], check=True)


# -- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_pull_import_ls_rm(registry: RegistryServer, images: Images, capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="kubelite-cli-images-") as work:
        data_dir = Path(work) / "data"
        data = ["--data-dir", str(data_dir)]
        ref = f"{registry.host}/test/busybox:v1"
        assert main(["image", "pull", ref, *data]) == 0
        assert capsys.readouterr().out == f"Image is up to date for {images.busybox.config_digest}\n"
        assert (data_dir / "agent/images/index.json").is_file()

        oci = oci_tarball(images.busybox.layout, Path(work) / "busybox-oci.tar")
        docker = docker_save_tarball(images.busybox.layout, Path(work) / "busybox.tar", repo_tags=["busybox:1.0"])
        shutil.copy(docker, Path(work) / "copy.tar")
        assert main(["image", "import", str(oci), str(docker), *data]) == 0
        out = capsys.readouterr().out
        assert "Loaded image: kubelite.test/busybox:latest\n" in out
        assert "Loaded image: docker.io/library/busybox:1.0\n" in out

        assert main(["image", "ls", *data]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]
        short_id = images.busybox.config_digest.split(":")[1][:13]
        rows = {tuple(line.split()[:3]) for line in lines[1:]}
        assert rows == {(f"{registry.host}/test/busybox", "v1", short_id),
                        ("docker.io/library/busybox", "1.0", short_id), ("kubelite.test/busybox", "latest", short_id)}

        assert main(["image", "rm", "busybox:1.0", *data]) == 0
        assert capsys.readouterr().out == "Untagged: busybox:1.0\n"
        assert main(["image", "rm", "nosuch:1", *data]) == 1
        assert "no such image: nosuch:1" in capsys.readouterr().err
        assert main(["image", "rm", short_id, *data]) == 0
        assert capsys.readouterr().out == f"Deleted: {images.busybox.config_digest}\n"
        assert main(["image", "ls", "-q", *data]) == 0
        assert capsys.readouterr().out == ""

        assert main(["image", "import", str(Path(work) / "missing.tar"), *data]) == 1
        assert "cannot import" in capsys.readouterr().err
        assert main(["image", "pull", f"{registry.host}/test/busybox:nosuch", *data]) == 1
        assert capsys.readouterr().err.endswith("manifest unknown\n")
