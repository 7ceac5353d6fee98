"""The CNI runtime against fake plugins: small Python scripts that log what they were given and answer as
the configuration tells them (``"behave": {"ADD": "fail"}``)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from kubelite.kubelet.network.cache import ResultCache
from kubelite.kubelet.network.cni import (
    CniRuntime,
    PluginExec,
    RuntimeConf,
    format_cni_args,
    plugin_config,
    plugin_env,
    plugin_error,
    validate_container_id,
)
from kubelite.kubelet.network.config import NetworkConfigList, parse_conflist
from kubelite.kubelet.network.errors import CniError, CniPluginError, CniTimeout

FAKE_PLUGIN = f"""#!{sys.executable}
import json, os, sys, time
conf = json.load(sys.stdin)
command = os.environ["CNI_COMMAND"]
with open(conf["log"], "a") as log:
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    call = {{"type": conf["type"], "command": command, "env": env, "conf": conf, "pid": os.getpid()}}
    log.write(json.dumps(call) + "\\n")
behave = conf.get("behave", {{}}).get(command, "ok")
if behave == "fail":
    print(json.dumps({{"cniVersion": "1.0.0", "code": 11, "msg": "no luck", "details": "try again"}}))
    sys.exit(1)
if behave == "crash":
    sys.stderr.write("panic: runtime error\\n")
    sys.exit(2)
if behave == "hang":
    time.sleep(30)
if behave == "garbage":
    print("this is not json")
    sys.exit(0)
if command == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "ips": [{{"address": "10.0.0.2/24"}}]}}
    print(json.dumps({{**prev, "chain": prev.get("chain", []) + [conf["type"]]}}))
"""

RT = RuntimeConf(container_id="abc123", netns="/run/netns/kubelite-abc123", ifname="eth0",
                 args=(("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
                 capability_args={"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]})


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("first", "second", "third"):
        (folder / name).write_text(FAKE_PLUGIN)
        (folder / name).chmod(0o755)
    return folder


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "calls.jsonl"


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def network(log: Path, *plugins: dict[str, Any], version: str = "1.0.0") -> NetworkConfigList:
    doc = {"cniVersion": version, "name": "testnet", "plugins": [{**p, "log": str(log)} for p in plugins]}
    return parse_conflist(json.dumps(doc).encode())


def runtime(bin_dir: Path, tmp_path: Path, *, timeout: float = 10) -> CniRuntime:
    return CniRuntime(PluginExec([str(tmp_path / "nowhere"), str(bin_dir)], timeout=timeout),
                      ResultCache(tmp_path / "cache"))


# pure parts

def test_cni_args() -> None:
    assert format_cni_args([("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")]) == "IgnoreUnknown=1;K8S_POD_NAME=web"
    assert format_cni_args([]) == ""
    with pytest.raises(CniError):
        format_cni_args([("A", "b;c")])


def test_plugin_env() -> None:
    env = plugin_env("ADD", RT, ["/usr/lib/cni", "/opt/cni/bin"], base={"PATH": "/usr/sbin:/usr/bin"})
    assert env == {
        "PATH": "/usr/sbin:/usr/bin",
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": "/run/netns/kubelite-abc123",
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
        "CNI_PATH": "/usr/lib/cni:/opt/cni/bin",
    }


def test_plugin_config_injects_name_version_prev_result_and_declared_capabilities(log: Path) -> None:
    netlist = network(log, {"type": "bridge", "name": "ignored", "cniVersion": "0.3.1"},
                      {"type": "portmap", "capabilities": {"portMappings": True, "bandwidth": False}})
    bridge, portmap = netlist.plugins
    caps = {"portMappings": [{"hostPort": 80}], "bandwidth": {"rate": 1}}
    conf = plugin_config(netlist, bridge, prev_result=None, capability_args=caps)
    assert conf["name"] == "testnet" and conf["cniVersion"] == "1.0.0"
    assert "prevResult" not in conf and "runtimeConfig" not in conf
    conf = plugin_config(netlist, portmap, prev_result={"ips": []}, capability_args=caps)
    assert conf["prevResult"] == {"ips": []}
    assert conf["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert "runtimeConfig" not in portmap  # the parsed list is not changed


def test_plugin_error_from_the_json_error() -> None:
    error = plugin_error(plugin="bridge", network="kubelite", command="ADD", returncode=1,
                         stdout=b'{"cniVersion":"1.0.0","code":7,"msg":"failed to set bridge addr",'
                                b'"details":"could not add IP address"}', stderr=b"")
    assert (error.code, error.msg, error.details) == (7, "failed to set bridge addr", "could not add IP address")
    assert str(error) == ('plugin type="bridge" name="kubelite" failed (add): failed to set bridge addr: '
                          "could not add IP address (CNI error code 7)")


def test_plugin_error_without_json_uses_stderr() -> None:
    error = plugin_error(plugin="bridge", network="kubelite", command="DEL", returncode=2, stdout=b"",
                         stderr=b"panic: runtime error\n")
    assert str(error) == 'plugin type="bridge" name="kubelite" failed (del): exit status 2: panic: runtime error'


def test_container_ids_are_validated() -> None:
    validate_container_id("abc-1.2_3")
    for bad in ("", "-abc", "a/b", "a b"):
        with pytest.raises(CniError, match="invalid container id"):
            validate_container_id(bad)


# execution

async def test_add_runs_the_chain_in_order_and_caches_the_result(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    netlist = network(log, {"type": "first"}, {"type": "second", "capabilities": {"portMappings": True}})
    result = await cni.add(netlist, RT)
    assert result["chain"] == ["first", "second"]

    first, second = calls(log)
    assert [c["type"] for c in (first, second)] == ["first", "second"]
    assert first["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc123", "CNI_NETNS": RT.netns,
                            "CNI_IFNAME": "eth0", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
                            "CNI_PATH": f"{tmp_path / 'nowhere'}:{bin_dir}"}
    assert "prevResult" not in first["conf"] and "runtimeConfig" not in first["conf"]
    assert second["conf"]["prevResult"]["chain"] == ["first"]
    assert second["conf"]["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}

    cached = cni.cache.load("testnet", "abc123", "eth0")
    assert cached is not None and cached.result == result and cached.config == netlist.raw
    assert cached.cni_args == RT.args and cached.capability_args == RT.capability_args


async def test_del_runs_the_chain_in_reverse_with_the_cached_result(bin_dir: Path, tmp_path: Path,
                                                                     log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    netlist = network(log, {"type": "first"}, {"type": "second"}, {"type": "third"})
    result = await cni.add(netlist, RT)
    log.unlink()
    await cni.delete(netlist, RT)
    dels = calls(log)
    assert [c["type"] for c in dels] == ["third", "second", "first"]
    assert all(c["command"] == "DEL" and c["conf"]["prevResult"] == result for c in dels)
    assert cni.cache.load("testnet", "abc123", "eth0") is None
    # a second DEL still runs, without a prevResult
    log.unlink()
    await cni.delete(netlist, RT)
    assert [("prevResult" in c["conf"]) for c in calls(log)] == [False, False, False]


async def test_del_of_an_old_version_gets_no_prev_result(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    netlist = network(log, {"type": "first"}, version="0.3.1")
    await cni.add(netlist, RT)
    log.unlink()
    await cni.delete(netlist, RT)
    assert "prevResult" not in calls(log)[0]["conf"]


async def test_a_failing_del_keeps_the_cache_for_the_retry(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    await cni.add(network(log, {"type": "first"}, {"type": "second"}), RT)
    with pytest.raises(CniPluginError, match="no luck"):
        await cni.delete(network(log, {"type": "first"}, {"type": "second", "behave": {"DEL": "fail"}}), RT)
    assert cni.cache.load("testnet", "abc123", "eth0") is not None


async def test_check_runs_in_order_with_the_cached_result(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    netlist = network(log, {"type": "first"}, {"type": "second"})
    with pytest.raises(CniError, match="never added"):
        await cni.check(netlist, RT)
    result = await cni.add(netlist, RT)
    log.unlink()
    await cni.check(netlist, RT)
    checks = calls(log)
    assert [(c["type"], c["command"]) for c in checks] == [("first", "CHECK"), ("second", "CHECK")]
    assert all(c["conf"]["prevResult"] == result for c in checks)


async def test_check_is_skipped_when_disabled_or_too_old(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    disabled = json.loads(network(log, {"type": "first"}).raw)
    disabled["disableCheck"] = True
    await cni.check(parse_conflist(json.dumps(disabled).encode()), RT)
    await cni.check(network(log, {"type": "first"}, version="0.3.1"), RT)
    assert calls(log) == []


async def test_a_plugin_error_stops_add_and_caches_nothing(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path)
    netlist = network(log, {"type": "first", "behave": {"ADD": "fail"}}, {"type": "second"})
    with pytest.raises(CniPluginError) as raised:
        await cni.add(netlist, RT)
    assert (raised.value.plugin, raised.value.command, raised.value.code) == ("first", "ADD", 11)
    assert str(raised.value) == ('plugin type="first" name="testnet" failed (add): no luck: try again '
                                 "(CNI error code 11)")
    assert [c["type"] for c in calls(log)] == ["first"]
    assert cni.cache.load("testnet", "abc123", "eth0") is None


async def test_a_crash_without_json_reports_stderr(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    with pytest.raises(CniPluginError, match="exit status 2: panic: runtime error"):
        await runtime(bin_dir, tmp_path).add(network(log, {"type": "first", "behave": {"ADD": "crash"}}), RT)


async def test_an_answer_that_is_not_json(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    with pytest.raises(CniError, match="not JSON"):
        await runtime(bin_dir, tmp_path).add(network(log, {"type": "first", "behave": {"ADD": "garbage"}}), RT)


async def test_add_needs_a_result(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    # the fake plugin prints nothing for commands other than ADD; make ADD print nothing too
    (bin_dir / "silent").write_text(f"#!{sys.executable}\nimport sys; sys.stdin.read()\n")
    (bin_dir / "silent").chmod(0o755)
    with pytest.raises(CniError, match="returned no result"):
        await runtime(bin_dir, tmp_path).add(network(log, {"type": "silent"}), RT)


async def test_a_hanging_plugin_is_killed_at_the_timeout(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    cni = runtime(bin_dir, tmp_path, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(CniTimeout, match=r"did not answer within 0.5s"):
        await cni.add(network(log, {"type": "first", "behave": {"ADD": "hang"}}), RT)
    assert time.monotonic() - started < 5
    pid = calls(log)[0]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_missing_plugin(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    with pytest.raises(CniError, match=r'failed to find plugin "nosuch" in path'):
        await runtime(bin_dir, tmp_path).add(network(log, {"type": "nosuch"}), RT)
    with pytest.raises(CniError, match="invalid plugin type"):
        PluginExec([str(bin_dir)]).find("../first")


async def test_the_exec_prefix_wraps_every_plugin(bin_dir: Path, tmp_path: Path, log: Path) -> None:
    wrapper = tmp_path / "wrapper"
    marker = tmp_path / "wrapped"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {marker}\nexec "$@"\n')
    wrapper.chmod(0o755)
    cni = CniRuntime(PluginExec([str(bin_dir)], exec_prefix=[str(wrapper)]), ResultCache(tmp_path / "cache"))
    await cni.add(network(log, {"type": "first"}), RT)
    assert marker.read_text().split() == [str(bin_dir / "first")]
