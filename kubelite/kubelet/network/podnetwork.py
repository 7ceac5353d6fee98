"""`PodNetwork`: a pod sandbox's network namespace and its CNI attachments, as the runtime asks for them.

What a sandbox gets (`PodNetwork.setup`), in containerd's order:
1. a network namespace of its own, ``/run/netns/kubelite-<sandbox id prefix>`` (`netns`), which the
   runtime puts the pod's containers in;
2. the ``cni-loopback`` network (the loopback plugin, interface ``lo``): ``lo`` up with 127.0.0.1;
3. the node's network: the first configuration of ``AgentPaths.cni_conf_dir`` (`config.find_config`), as
   interface ``eth0``, with ``CNI_ARGS`` ``IgnoreUnknown=1;K8S_POD_NAMESPACE;K8S_POD_NAME;
   K8S_POD_INFRA_CONTAINER_ID;K8S_POD_UID`` (as the kubelet always passed them) and the pod's hostPorts as
   the ``portMappings`` capability. When the folder holds no configuration and the node's podCIDR is known,
   kubelite's default (bridge + host-local + portmap, `config.default_conflist`) is written first.
The pod's IPs come from the ADD result (`result.pod_ips`). A failed setup undoes what it did before raising.

`teardown` undoes it: DEL of every network the sandbox was added to, from the cached ADD (the configuration,
arguments and result ADD used, so it works after a kubelet restart and after the configuration changed),
in reverse order, then the namespace goes. A failed DEL raises and keeps the namespace, the cache entry and
the record, so that a later teardown (or `garbage_collect`) retries it.

Pods with ``hostNetwork: true`` never come here: the runtime skips `setup`/`teardown` for them and they
share the node's namespace (their IP is the node's).

Ownership and garbage collection. Several kubelets may share a machine (e2e tests run nodes in network
namespaces side by side) and ``/run/netns`` is shared by all of them, so a kubelet only ever touches what it
recorded itself: before creating a namespace it writes a record (``<cni_cache_dir>/sandboxes/<sandbox id>``,
with the sandbox's CNI arguments) that goes only after the namespace is removed. `garbage_collect` (run at
start, before any pod is set up) tears down every recorded or cached sandbox that is not live (DEL from the
cache, or with the recorded arguments if the kubelet died before caching; then the namespace), and
releases the host-local reservations of ``AgentPaths.cni_ipam_dir`` held by no live sandbox.

The node's own namespace. The plugins act on the namespace they run in: the bridge, the veth host ends,
ip_forward and the iptables NAT rules of ``ipMasq`` and ``portmap`` all land there. Normally that is the
kubelet's namespace (a kubelet started inside a namespace with ``ip netns exec`` has its node there).
``host_netns`` (a name under /run/netns, or a path) runs every plugin under ``nsenter --net=<host_netns>``
instead, so that a test can keep a whole node, NAT rules included, inside a namespace it made and removes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelite.kubelet.network import hostlocal, netns
from kubelite.kubelet.network.cache import CachedAttachment, ResultCache
from kubelite.kubelet.network.cni import (
    DEFAULT_PLUGIN_TIMEOUT,
    CniRuntime,
    PluginExec,
    RuntimeConf,
    validate_container_id,
)
from kubelite.kubelet.network.config import (
    DEFAULT_BRIDGE_NAME,
    DEFAULT_CONFIG_FILE,
    LOOPBACK_NETWORK_NAME,
    NetworkConfigList,
    default_conflist,
    find_config,
    loopback_conflist,
    parse_conflist,
    write_config,
)
from kubelite.kubelet.network.errors import ConfigError, NetworkError, NetworkNotReady
from kubelite.kubelet.network.result import pod_ips
from kubelite.kubelet.paths import DEFAULT_CNI_BIN_DIRS, AgentPaths

log = logging.getLogger(__name__)

POD_INTERFACE = "eth0"
LOOPBACK_INTERFACE = "lo"


@dataclass
class PortMapping:
    """A container port published on the node (``ports[].hostPort``); ``protocol`` as in the pod spec."""

    container_port: int
    host_port: int
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass
class NetworkStatus:
    """What `PodNetwork.setup` made: ``ip`` is the primary pod IP, ``ips`` one per family (``podIPs``)."""

    ip: str
    ips: list[str]
    netns_path: str
    interface: str


def pod_cni_args(*, namespace: str, name: str, uid: str, sandbox_id: str) -> tuple[tuple[str, str], ...]:
    """The kubelet's ``CNI_ARGS``; ``IgnoreUnknown`` lets plugins that know none of the keys (host-local
    parses CNI_ARGS strictly) accept them."""
    return (
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", namespace),
        ("K8S_POD_NAME", name),
        ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
        ("K8S_POD_UID", uid),
    )


def port_mapping_args(mappings: Sequence[PortMapping]) -> list[dict[str, Any]]:
    """The ``portMappings`` capability (CNI CONVENTIONS.md); as containerd, only ports with a hostPort."""
    args = []
    for m in mappings:
        if m.host_port <= 0:
            continue
        entry: dict[str, Any] = {"hostPort": m.host_port, "containerPort": m.container_port,
                                 "protocol": m.protocol.lower()}
        if m.host_ip:
            entry["hostIP"] = m.host_ip
        args.append(entry)
    return args


class PodNetwork:
    """The CNI runtime of one node. Operations on one sandbox are serialized; different sandboxes proceed in
    parallel. ``pod_cidr`` (the node's ``spec.podCIDR``, known later through `ensure_default_config` if not
    yet) is used to write the default configuration when the conf dir has none."""

    def __init__(self, paths: AgentPaths, *, pod_cidr: str | None, cni_bin_dirs: Sequence[str] = DEFAULT_CNI_BIN_DIRS,
                 bridge_name: str = DEFAULT_BRIDGE_NAME, host_netns: str | None = None,
                 plugin_timeout: float = DEFAULT_PLUGIN_TIMEOUT) -> None:
        self.paths = paths
        self.pod_cidr = pod_cidr
        self.bridge_name = bridge_name
        exec_prefix: tuple[str, ...] = ()
        if host_netns is not None:
            exec_prefix = (shutil.which("nsenter") or "nsenter", f"--net={netns.resolve(host_netns)}", "--")
        self.cni = CniRuntime(PluginExec(cni_bin_dirs, exec_prefix=exec_prefix, timeout=plugin_timeout),
                              ResultCache(paths.cni_cache_dir))
        self._records = paths.cni_cache_dir / "sandboxes"
        self._locks: dict[str, asyncio.Lock] = {}
        self._lock_users: Counter[str] = Counter()

    # configuration

    def ensure_default_config(self, pod_cidr: str) -> None:
        """Remember the node's podCIDR and write ``10-kubelite.conflist`` for it unless the conf dir already
        holds a usable configuration (a user's, or ours from before). `ConfigError` for a bad CIDR."""
        conflist = default_conflist(pod_cidr, bridge_name=self.bridge_name, ipam_dir=self.paths.cni_ipam_dir)
        self.pod_cidr = pod_cidr
        if find_config(self.paths.cni_conf_dir) is None:
            path = write_config(self.paths.cni_conf_dir, DEFAULT_CONFIG_FILE, conflist)
            log.info("wrote the default CNI configuration %s for podCIDR %s", path, pod_cidr)

    def not_ready_reason(self) -> str | None:
        """Why pods cannot get a network now (the runtime's NetworkReady=false message), None when they can:
        a configuration is found (or can be written) and every plugin it names is installed."""
        try:
            netlist = self._network_config()
            for plugin in (*netlist.plugins, *loopback_conflist().plugins):
                self.cni.plugins.find(plugin["type"])
        except NetworkError as e:
            return str(e)
        return None

    def netns_path(self, sandbox_id: str) -> str:
        return str(netns.netns_path(sandbox_id))

    # sandbox operations

    async def setup(self, *, sandbox_id: str, namespace: str, name: str, uid: str,
                    port_mappings: list[PortMapping]) -> NetworkStatus:
        """Create the sandbox's namespace and ADD it to the loopback and the node's network. Raises
        `NetworkNotReady` without a configuration, `NetworkError` (`CniPluginError` ...) when setting up
        failed (after undoing it), also when the sandbox is set up already."""
        validate_container_id(sandbox_id)
        netlist = self._network_config()
        path = netns.netns_path(sandbox_id)
        rt = RuntimeConf(container_id=sandbox_id, netns=str(path), ifname=POD_INTERFACE,
                         args=pod_cni_args(namespace=namespace, name=name, uid=uid, sandbox_id=sandbox_id),
                         capability_args={"portMappings": port_mapping_args(port_mappings)})
        async with self._sandbox_lock(sandbox_id):
            if self._record(sandbox_id).exists():
                raise NetworkError(f"the network of sandbox {sandbox_id} is set up already")
            self._write_record(rt)
            try:
                await netns.create(path)
            except BaseException:
                self._record(sandbox_id).unlink(missing_ok=True)
                raise
            try:
                await self.cni.add(loopback_conflist(), self._loopback_rt(rt))
                result = await self.cni.add(netlist, rt)
                ips = pod_ips(result, ifname=POD_INTERFACE)
                if not ips:
                    raise NetworkError(f'network "{netlist.name}" gave sandbox {sandbox_id} no IP address')
            except BaseException as e:
                log.warning("setting up the network of sandbox %s failed, undoing it: %s", sandbox_id, e)
                try:
                    await self._teardown(sandbox_id)
                except (NetworkError, OSError) as cleanup:
                    log.warning("undoing the network of sandbox %s failed (garbage collection retries): %s",
                                sandbox_id, cleanup)
                raise
            return NetworkStatus(ip=ips[0], ips=ips, netns_path=str(path), interface=POD_INTERFACE)

    async def teardown(self, sandbox_id: str) -> None:
        """DEL the sandbox from its networks and remove its namespace. Idempotent: a sandbox torn down
        already, or never set up, is nothing to do."""
        validate_container_id(sandbox_id)
        async with self._sandbox_lock(sandbox_id):
            await self._teardown(sandbox_id)

    async def check(self, sandbox_id: str) -> None:
        """CNI CHECK of every network the sandbox is attached to; raises `NetworkError` when something is
        missing or broken (or the sandbox has no network)."""
        validate_container_id(sandbox_id)
        async with self._sandbox_lock(sandbox_id):
            path = netns.netns_path(sandbox_id)
            attachments = self.cni.cache.attachments(sandbox_id)
            if not path.exists() or not attachments:
                raise NetworkError(f"sandbox {sandbox_id} has no network set up")
            for attachment in attachments:
                await self.cni.check(self._cached_list(attachment), self._cached_rt(attachment, path))

    def status(self, sandbox_id: str) -> NetworkStatus | None:
        """The sandbox's network as set up (from the cached ADD result, so also after a restart); None when
        it has none."""
        validate_container_id(sandbox_id)
        for attachment in self.cni.cache.attachments(sandbox_id):
            if attachment.network == LOOPBACK_NETWORK_NAME or attachment.result is None:
                continue
            ips = pod_ips(attachment.result, ifname=attachment.ifname)
            if ips:
                return NetworkStatus(ip=ips[0], ips=ips, netns_path=self.netns_path(sandbox_id),
                                     interface=attachment.ifname)
        return None

    async def garbage_collect(self, live_sandbox_ids: set[str]) -> None:
        """Tear down what a crash left behind: every sandbox this node recorded or cached that is not in
        ``live_sandbox_ids``, then the host-local reservations no live sandbox holds. Call it before pods are
        set up (a sandbox being set up is not live yet). Failures are logged; the next run retries them."""
        known = {p.name for p in self._list_records()} | {a.container_id for a in self.cni.cache.attachments()}
        # a sandbox whose teardown failed still has its address configured: it keeps its reservation too
        keep = set(live_sandbox_ids)
        for sandbox_id in sorted(known - live_sandbox_ids):
            log.info("garbage-collecting the network of sandbox %s", sandbox_id)
            try:
                await self.teardown(sandbox_id)
            except (NetworkError, OSError) as e:
                log.warning("garbage collection of sandbox %s failed: %s", sandbox_id, e)
                keep.add(sandbox_id)
        await asyncio.to_thread(hostlocal.release_stale, self.paths.cni_ipam_dir, keep)

    # internals

    async def _teardown(self, sandbox_id: str) -> None:
        path = netns.netns_path(sandbox_id)
        record = self._read_record(sandbox_id)
        attachments = sorted(self.cni.cache.attachments(sandbox_id),
                             key=lambda a: a.network == LOOPBACK_NETWORK_NAME)  # the pod network first
        errors: list[str] = []
        if attachments:
            for attachment in attachments:
                netns_now = path if path.exists() else None
                try:
                    await self.cni.delete(self._cached_list(attachment), self._cached_rt(attachment, netns_now))
                except NetworkError as e:
                    errors.append(str(e))
        elif record is not None or path.exists():
            # set up without a cached result (the kubelet died during ADD): DEL with what ADD was given
            rt = RuntimeConf(container_id=sandbox_id, netns=str(path) if path.exists() else "",
                             ifname=POD_INTERFACE, args=record.args if record else (),
                             capability_args=record.capability_args if record else {})
            netlist = find_config(self.paths.cni_conf_dir)
            for nets, conf in ((netlist, rt), (loopback_conflist(), self._loopback_rt(rt))):
                if nets is None:
                    continue
                try:
                    await self.cni.delete(nets, conf)
                except NetworkError as e:
                    errors.append(str(e))
        if errors:
            raise NetworkError(f"failed to tear down the network of sandbox {sandbox_id}: " + "; ".join(errors))
        await netns.remove(path)
        self._record(sandbox_id).unlink(missing_ok=True)

    def _network_config(self) -> NetworkConfigList:
        netlist = find_config(self.paths.cni_conf_dir)
        if netlist is None and self.pod_cidr:
            self.ensure_default_config(self.pod_cidr)
            netlist = find_config(self.paths.cni_conf_dir)
        if netlist is None:
            raise NetworkNotReady(f"cni plugin not initialized: no network config found in {self.paths.cni_conf_dir}")
        return netlist

    def _cached_list(self, attachment: CachedAttachment) -> NetworkConfigList:
        """The configuration the attachment was added with; the current one if the cached copy is unusable."""
        try:
            return parse_conflist(attachment.config, source=f"cached config of network {attachment.network}")
        except ConfigError:
            if attachment.network == LOOPBACK_NETWORK_NAME:
                return loopback_conflist()
            return self._network_config()

    @staticmethod
    def _cached_rt(attachment: CachedAttachment, path: Path | None) -> RuntimeConf:
        # CNI_NETNS only while the namespace exists: without it plugins clean up what they can (spec)
        return RuntimeConf(container_id=attachment.container_id, netns=str(path) if path else "",
                           ifname=attachment.ifname, args=attachment.cni_args,
                           capability_args=attachment.capability_args)

    @staticmethod
    def _loopback_rt(rt: RuntimeConf) -> RuntimeConf:
        return RuntimeConf(container_id=rt.container_id, netns=rt.netns, ifname=LOOPBACK_INTERFACE, args=rt.args)

    def _record(self, sandbox_id: str) -> Path:
        return self._records / sandbox_id

    def _write_record(self, rt: RuntimeConf) -> None:
        self._records.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {"sandboxId": rt.container_id, "netns": rt.netns, "cniArgs": [list(p) for p in rt.args],
               "capabilityArgs": dict(rt.capability_args)}
        tmp = self._records / f".{rt.container_id}.tmp"
        tmp.write_text(json.dumps(doc))
        tmp.replace(self._record(rt.container_id))

    def _read_record(self, sandbox_id: str) -> RuntimeConf | None:
        try:
            doc = json.loads(self._record(sandbox_id).read_text())
            return RuntimeConf(container_id=sandbox_id, netns=str(doc.get("netns", "")), ifname=POD_INTERFACE,
                               args=tuple((str(k), str(v)) for k, v in doc.get("cniArgs", [])),
                               capability_args=dict(doc.get("capabilityArgs") or {}))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, AttributeError) as e:
            log.warning("ignoring the unreadable network record of sandbox %s: %s", sandbox_id, e)
            return RuntimeConf(container_id=sandbox_id, netns="", ifname=POD_INTERFACE)

    def _list_records(self) -> list[Path]:
        try:
            return [p for p in self._records.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []

    @asynccontextmanager
    async def _sandbox_lock(self, sandbox_id: str) -> AsyncIterator[None]:
        """One operation per sandbox at a time (CNI spec section 3); the lock goes with its last user."""
        lock = self._locks.setdefault(sandbox_id, asyncio.Lock())
        self._lock_users[sandbox_id] += 1
        try:
            async with lock:
                yield
        finally:
            self._lock_users[sandbox_id] -= 1
            if not self._lock_users[sandbox_id]:
                del self._lock_users[sandbox_id], self._locks[sandbox_id]
