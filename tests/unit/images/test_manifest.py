"""Manifests, indexes, configurations and the choice of a platform."""

from __future__ import annotations

import json

import pytest

from kubelite.kubelet.images.errors import InvalidImage, RegistryError
from kubelite.kubelet.images.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    media_type_of,
    parse_config,
    parse_index,
    parse_manifest,
    select_platform,
)


def _d(n: int) -> str:
    return f"sha256:{n:064x}"


def _entry(n: int, os: str, arch: str, variant: str = "") -> Descriptor:
    platform = {"os": os, "architecture": arch, **({"variant": variant} if variant else {})}
    return Descriptor(media_type=OCI_MANIFEST, digest=_d(n), size=1, platform=platform)


def test_platform_selection_by_os_and_architecture() -> None:
    entries = [_entry(1, "linux", "arm64", "v8"), _entry(2, "linux", "amd64"), _entry(3, "windows", "amd64"),
               _entry(4, "unknown", "unknown")]
    assert select_platform(entries, Platform("linux", "amd64")).digest == _d(2)
    assert select_platform(entries, Platform("linux", "arm64", "v8")).digest == _d(1)


def test_arm_variants_fall_back_to_older_ones() -> None:
    entries = [_entry(1, "linux", "arm", "v5"), _entry(2, "linux", "arm", "v6")]
    assert select_platform(entries, Platform("linux", "arm", "v7")).digest == _d(2)
    assert select_platform([*entries, _entry(3, "linux", "arm", "v7")], Platform("linux", "arm", "v7")).digest == _d(3)
    with pytest.raises(RegistryError):
        select_platform([_entry(1, "linux", "arm", "v7")], Platform("linux", "arm", "v6"))


def test_no_matching_platform_reads_as_docker_says_it() -> None:
    with pytest.raises(RegistryError, match="no matching manifest for linux/s390x in the manifest list entries"):
        select_platform([_entry(1, "linux", "amd64")], Platform("linux", "s390x"))


def test_host_platform_is_linux_with_a_go_architecture() -> None:
    host = Platform.host()
    assert host.os == "linux"
    assert host.architecture in {"amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"}
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse("linux")


def test_media_type_from_header_document_or_shape() -> None:
    assert media_type_of(b"{}", f"{DOCKER_MANIFEST}; charset=utf-8") == DOCKER_MANIFEST
    assert media_type_of(json.dumps({"mediaType": DOCKER_MANIFEST_LIST}).encode(), "text/plain") == \
        DOCKER_MANIFEST_LIST
    assert media_type_of(json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "") == OCI_INDEX
    assert media_type_of(json.dumps({"schemaVersion": 2, "layers": []}).encode(), "") == OCI_MANIFEST


def test_manifest_and_index_parsing() -> None:
    manifest = parse_manifest(json.dumps({
        "schemaVersion": 2, "config": {"mediaType": "x", "digest": _d(1), "size": 10},
        "layers": [{"mediaType": "y", "digest": _d(2), "size": 100}],
    }).encode(), OCI_MANIFEST)
    assert manifest.config.digest == _d(1)
    assert [layer.digest for layer in manifest.layers] == [_d(2)]
    assert manifest.size == 110
    entries = parse_index(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": _d(3), "size": 5, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode())
    assert entries[0].platform["architecture"] == "amd64"


@pytest.mark.parametrize("body", [
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"[]", id="not-object"),
    pytest.param(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), id="schema1"),
    pytest.param(json.dumps({"config": {"digest": "md5:abc"}, "layers": []}).encode(), id="bad-digest"),
    pytest.param(json.dumps({"config": {"digest": _d(1), "size": 1}}).encode(), id="no-layers"),
])
def test_bad_manifests(body: bytes) -> None:
    with pytest.raises(InvalidImage):
        parse_manifest(body, OCI_MANIFEST)


def test_configuration() -> None:
    config = parse_config(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/app"], "Cmd": None, "Env": ["A=1"], "WorkingDir": "/srv", "User": "1000",
                   "ExposedPorts": {"8080/tcp": {}, "53/udp": {}}, "Labels": {"k": "v"}, "StopSignal": "SIGINT"},
        "rootfs": {"type": "layers", "diff_ids": [_d(7)]},
    }).encode())
    assert config.diff_ids == [_d(7)]
    assert config.config.entrypoint == ["/bin/app"]
    assert config.config.cmd == []
    assert config.config.exposed_ports == ["53/udp", "8080/tcp"]
    assert (config.config.working_dir, config.config.user, config.config.stop_signal) == ("/srv", "1000", "SIGINT")
    with pytest.raises(InvalidImage, match="diff_ids"):
        parse_config(b'{"rootfs": {}}')
