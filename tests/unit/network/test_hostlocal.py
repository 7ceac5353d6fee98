from __future__ import annotations

from pathlib import Path

from kubelite.kubelet.network.hostlocal import release_stale, reservations


def reserve(data_dir: Path, network: str, ip: str, content: str) -> Path:
    folder = data_dir / network
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ip).write_text(content)
    return folder / ip


def test_reservations_are_the_ip_files(tmp_path: Path) -> None:
    reserve(tmp_path, "kubelite", "10.0.0.2", "aaa\r\neth0")
    reserve(tmp_path, "kubelite", "fd00::2", "bbb")  # older host-local: the container id alone
    (tmp_path / "kubelite" / "last_reserved_ip.0").write_text("10.0.0.2")
    (tmp_path / "kubelite" / "lock").write_text("")
    (tmp_path / "stray-file").write_text("")
    found = [(r.network, r.ip, r.container_id, r.ifname) for r in reservations(tmp_path)]
    assert found == [("kubelite", "10.0.0.2", "aaa", "eth0"), ("kubelite", "fd00::2", "bbb", "")]
    assert reservations(tmp_path / "missing") == []


def test_release_stale_keeps_live_containers(tmp_path: Path) -> None:
    live = reserve(tmp_path, "kubelite", "10.0.0.2", "live\r\neth0")
    dead = reserve(tmp_path, "kubelite", "10.0.0.3", "dead\r\neth0")
    other_net = reserve(tmp_path, "other", "192.168.0.9", "dead2\r\neth0")
    last = tmp_path / "kubelite" / "last_reserved_ip.0"
    last.write_text("10.0.0.3")

    released = release_stale(tmp_path, {"live"})

    assert sorted(r.ip for r in released) == ["10.0.0.3", "192.168.0.9"]
    assert live.exists() and not dead.exists() and not other_net.exists()
    assert last.exists()  # host-local's own bookkeeping stays
    assert (tmp_path / "kubelite" / "lock").exists()  # taken as host-local takes it
    assert release_stale(tmp_path, {"live"}) == []
