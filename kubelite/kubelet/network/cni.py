"""A CNI runtime (spec 1.0): executing plugin binaries and network configuration lists.

`PluginExec` is the execution protocol (spec section 2): a plugin is the executable named by its ``type``,
looked up in ``CNI_PATH`` (the bin dirs, in order); it gets its parameters in the environment
(``CNI_COMMAND``, ``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME``, ``CNI_ARGS``, ``CNI_PATH``) and its
configuration as JSON on stdin, and answers on stdout: a result for ADD, nothing for DEL and CHECK, and on
failure a non-zero exit with ``{"cniVersion", "code", "msg", "details"}``, raised as `CniPluginError`.
Plugins run as asyncio subprocesses with a timeout (`CniTimeout`; the plugin is killed), optionally behind an
``exec_prefix`` such as ``nsenter --net=/run/netns/node --`` so that the plugins' "host" is another network
namespace (what tests use to keep NAT rules out of the machine's namespace).

`CniRuntime` executes configuration lists (spec section 3) as libcni does:
- every plugin's stdin is its configuration with the list's ``name`` and ``cniVersion`` injected, the
  ``prevResult`` (ADD: the previous plugin's result; DEL and CHECK: the cached result of the ADD), and a
  ``runtimeConfig`` holding the capability arguments the plugin declares in ``capabilities``
  (``portMappings`` for portmap);
- ADD runs the plugins in order and caches the final result (`ResultCache`), DEL runs them in reverse and
  then drops the cache entry, CHECK (lists of version 0.4.0 and later without ``disableCheck``) runs them in
  order against the cached result;
- the caller must not run two operations for the same container at once (spec section 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelite.kubelet.network.cache import CachedAttachment, ResultCache
from kubelite.kubelet.network.config import NetworkConfigList, version_at_least
from kubelite.kubelet.network.errors import CniError, CniPluginError, CniTimeout

DEFAULT_PLUGIN_TIMEOUT = 60.0

# Spec section 2: "must start with an alphanumeric character, optionally followed by any combination of one or
# more alphanumeric characters, underscore, dot or hyphen".
_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


@dataclass(frozen=True)
class RuntimeConf:
    """The per-container parameters of one invocation (libcni's ``RuntimeConf``)."""

    container_id: str
    netns: str
    ifname: str
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def validate_container_id(container_id: str) -> None:
    if not _CONTAINER_ID.match(container_id):
        raise CniError(f"invalid container id {container_id!r}: it must start with a letter or digit and "
                       "contain only letters, digits, '_', '.' and '-'")


def format_cni_args(args: Sequence[tuple[str, str]]) -> str:
    """``CNI_ARGS``: ``KEY=VALUE`` pairs separated by semicolons."""
    for key, value in args:
        if any(c in key + value for c in ";=") or not key:
            raise CniError(f"CNI_ARGS cannot carry {key}={value}: keys and values may not contain ';' or '='")
    return ";".join(f"{key}={value}" for key, value in args)


def plugin_env(command: str, rt: RuntimeConf, cni_path: Sequence[str],
               base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The plugin's environment: ``base`` (the runtime's own environment, for PATH to iptables & co., as
    libcni passes its own) plus the CNI parameters."""
    env = dict(os.environ if base is None else base)
    env.update({
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": rt.container_id,
        "CNI_NETNS": rt.netns,
        "CNI_IFNAME": rt.ifname,
        "CNI_ARGS": format_cni_args(rt.args),
        "CNI_PATH": os.pathsep.join(cni_path),
    })
    return env


def plugin_config(netlist: NetworkConfigList, plugin: Mapping[str, Any], *,
                  prev_result: Mapping[str, Any] | None, capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """One plugin's stdin (libcni's ``buildOneConfig`` + ``injectRuntimeConfig``)."""
    conf = dict(plugin)
    conf["name"] = netlist.name
    conf["cniVersion"] = netlist.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    capabilities = plugin.get("capabilities") or {}
    runtime_config = {key: value for key, value in capability_args.items() if capabilities.get(key) is True}
    if runtime_config:
        conf["runtimeConfig"] = runtime_config
    return conf


def plugin_error(*, plugin: str, network: str, command: str, returncode: int, stdout: bytes,
                 stderr: bytes) -> CniPluginError:
    """The exception for a plugin that exited non-zero: its JSON error if it printed one, else its stderr."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and ("msg" in doc or "code" in doc):
        code = doc.get("code")
        return CniPluginError(plugin=plugin, network=network, command=command,
                              code=code if isinstance(code, int) else 0,
                              msg=str(doc.get("msg") or ""), details=str(doc.get("details") or ""))
    text = (stderr or stdout).decode(errors="replace").strip() or "no error message"
    return CniPluginError(plugin=plugin, network=network, command=command, code=0,
                          msg=f"exit status {returncode}", details=text)


class PluginExec:
    """Finds and runs plugin binaries."""

    def __init__(self, bin_dirs: Sequence[str], *, exec_prefix: Sequence[str] = (),
                 timeout: float = DEFAULT_PLUGIN_TIMEOUT) -> None:
        self.bin_dirs = tuple(bin_dirs)
        self.exec_prefix = tuple(exec_prefix)
        self.timeout = timeout

    def find(self, plugin_type: str) -> str:
        """The plugin's executable: the first ``bin_dir/type`` that is an executable file."""
        if not plugin_type or "/" in plugin_type:
            raise CniError(f"invalid plugin type {plugin_type!r}")
        for directory in self.bin_dirs:
            candidate = os.path.join(directory, plugin_type)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        raise CniError(f'failed to find plugin "{plugin_type}" in path {list(self.bin_dirs)}')

    async def run(self, command: str, conf: Mapping[str, Any], rt: RuntimeConf, *,
                  network: str) -> dict[str, Any] | None:
        """Run the plugin named by ``conf["type"]``: its JSON answer (None when it printed nothing)."""
        plugin_type = str(conf.get("type", ""))
        argv = [*self.exec_prefix, self.find(plugin_type)]
        env = plugin_env(command, rt, self.bin_dirs)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()), self.timeout)
        except TimeoutError:
            raise CniTimeout(f'plugin type="{plugin_type}" name="{network}" ({command.lower()}) did not answer '
                             f"within {self.timeout:g}s") from None
        finally:
            # killed on timeout and on cancellation alike: no plugin outlives the operation that ran it
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise plugin_error(plugin=plugin_type, network=network, command=command,
                               returncode=proc.returncode or 0, stdout=stdout, stderr=stderr)
        if not stdout.strip():
            return None
        try:
            answer = json.loads(stdout)
        except ValueError:
            raise CniError(f'plugin type="{plugin_type}" name="{network}" ({command.lower()}) printed something '
                           f"that is not JSON: {stdout[:200]!r}") from None
        if not isinstance(answer, dict):
            raise CniError(f'plugin type="{plugin_type}" name="{network}" ({command.lower()}) printed a JSON '
                           "value that is not an object")
        return answer


class CniRuntime:
    """ADD, DEL and CHECK of network configuration lists, with libcni's result cache."""

    def __init__(self, plugins: PluginExec, cache: ResultCache) -> None:
        self.plugins = plugins
        self.cache = cache

    async def add(self, netlist: NetworkConfigList, rt: RuntimeConf) -> dict[str, Any]:
        """ADD the container to the network: the final result, also cached. On failure nothing is cached
        and the caller should DEL (spec section 3: a failed ADD is followed by DEL)."""
        validate_container_id(rt.container_id)
        result: dict[str, Any] | None = None
        for plugin in netlist.plugins:
            conf = plugin_config(netlist, plugin, prev_result=result, capability_args=rt.capability_args)
            answer = await self.plugins.run("ADD", conf, rt, network=netlist.name)
            if answer is None:
                raise CniError(f'plugin type="{plugin["type"]}" name="{netlist.name}" (add) returned no result')
            result = answer
        assert result is not None  # a parsed list has at least one plugin
        self.cache.save(CachedAttachment(
            container_id=rt.container_id, network=netlist.name, ifname=rt.ifname, config=netlist.raw,
            netns=rt.netns, cni_args=rt.args, capability_args=dict(rt.capability_args), result=result))
        return result

    async def delete(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        """DEL the container from the network, plugins in reverse order, ``prevResult`` from the cache (when
        there is one); the cache entry is dropped once every plugin succeeded."""
        validate_container_id(rt.container_id)
        prev_result = None
        if version_at_least(netlist.cni_version, "0.4.0"):
            cached = self.cache.load(netlist.name, rt.container_id, rt.ifname)
            prev_result = cached.result if cached else None
        for plugin in reversed(netlist.plugins):
            conf = plugin_config(netlist, plugin, prev_result=prev_result, capability_args=rt.capability_args)
            await self.plugins.run("DEL", conf, rt, network=netlist.name)
        self.cache.delete(netlist.name, rt.container_id, rt.ifname)

    async def check(self, netlist: NetworkConfigList, rt: RuntimeConf) -> None:
        """CHECK the container's attachment against the cached ADD result; raises on the first failure."""
        if not version_at_least(netlist.cni_version, "0.4.0") or netlist.disable_check:
            return
        cached = self.cache.load(netlist.name, rt.container_id, rt.ifname)
        if cached is None or cached.result is None:
            raise CniError(f'network "{netlist.name}" has no cached result for container {rt.container_id} '
                           f"interface {rt.ifname}: it was never added")
        for plugin in netlist.plugins:
            conf = plugin_config(netlist, plugin, prev_result=cached.result, capability_args=rt.capability_args)
            await self.plugins.run("CHECK", conf, rt, network=netlist.name)
