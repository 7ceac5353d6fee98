"""state: records of sandboxes and containers on disk."""

from __future__ import annotations

import json
from pathlib import Path

from kubelite.kubelet.runtime.state import ContainerRecord, SandboxRecord, StateStore


def test_records_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    sb = SandboxRecord(id="s1", name="web", namespace="default", uid="u1", labels={"a": "b"}, ips=["10.0.0.2"])
    c = ContainerRecord(id="c1", sandbox_id="s1", name="app", state="running", pid=42,
                        mounts=[{"container_path": "/d", "host_path": "/h", "readonly": True, "propagation": ""}],
                        cgroup_dirs={"memory": "/sys/fs/cgroup/memory/x"})
    store.save(sb)
    store.save(c)
    assert store.load_sandboxes() == [sb]
    assert store.load_containers() == [c]
    assert (tmp_path / "s1" / "sandbox.json").exists() and (tmp_path / "c1" / "container.json").exists()
    assert not list(tmp_path.glob("*/*.tmp"))


def test_updates_replace_the_whole_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    c = ContainerRecord(id="c1", sandbox_id="s1", name="app")
    store.save(c)
    c.state, c.exit_code, c.reason = "exited", 137, "OOMKilled"
    store.save(c)
    assert store.load_containers()[0].reason == "OOMKilled"


def test_unknown_keys_are_ignored_and_missing_ones_defaulted(tmp_path: Path) -> None:
    (tmp_path / "c9").mkdir()
    (tmp_path / "c9" / "container.json").write_text(
        json.dumps({"id": "c9", "sandbox_id": "s", "name": "n", "from_the_future": 1})
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sandbox.json").write_text("{not json")
    store = StateStore(tmp_path)
    [c] = store.load_containers()
    assert c.id == "c9" and c.state == "creating" and c.labels == {}
    assert store.load_sandboxes() == []


def test_delete_forgets_a_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    sb = SandboxRecord(id="s1", name="web", namespace="default", uid="u1")
    store.save(sb)
    store.delete(sb)
    assert store.load_sandboxes() == []
