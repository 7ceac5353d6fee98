"""The node agent: everything one node runs, wired together for the life of one `run_agent` call.

Inside, in start order: the image store (drop-in tarballs imported first), the pod network (CNI; the
default configuration is written once the node has a podCIDR), the container runtime serving its gRPC socket,
then — as API clients — the kubelet with its HTTPS endpoint (logs, exec, port-forward; only the API server,
holding a client certificate from the cluster CA, may call it), the service proxy (one nftables table), the
node's cluster DNS server (on the node address, published as endpoints of the ``kube-dns`` Service at
10.96.0.10), and the ingress gateway (ports 80/443).

Containers outlive the agent: stopping it stops the kubelet and the runtime's server, not the pods, and
the next agent adopts them. A part that fails stops the whole agent loudly — except the ingress gateway and
the DNS server, whose ports another program may hold: they report the error and the node runs on without
them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

from kubelite.client.rest import Client
from kubelite.kubelet.config import KubeletConfig
from kubelite.kubelet.images import ImageStore
from kubelite.kubelet.kubelet import run_kubelet
from kubelite.kubelet.network import PodNetwork
from kubelite.kubelet.node import detect_node_ip
from kubelite.kubelet.paths import AgentPaths
from kubelite.kubelet.runtime.manager import RuntimeOptions
from kubelite.kubelet.runtime.server import serve_runtime
from kubelite.kubelet.runtime_client import RuntimeClient
from kubelite.kubelet.server import serve_streaming
from kubelite.proxy.config import ProxyConfig
from kubelite.proxy.dns import DNSConfig, dns_endpoints, ensure_dns_service, run_dns
from kubelite.proxy.ingress import IngressConfig, run_ingress
from kubelite.proxy.run import run_proxy

log = logging.getLogger(__name__)

IMAGE_GC_PERIOD = 300.0
DEFAULT_CLUSTER_DNS = "10.96.0.10"


@dataclass
class AgentConfig:
    node_name: str
    data_dir: Path
    cluster_ca_pem: bytes
    # "runc" (isolated containers) or "process" (plain host processes, for machines that cannot run runc).
    runtime: str = "runc"
    node_ip: str | None = None
    kubelet_port: int = 10250
    cluster_dns: list[str] = field(default_factory=lambda: [DEFAULT_CLUSTER_DNS])
    cluster_domain: str = "cluster.local"
    node_labels: dict[str, str] = field(default_factory=dict)
    cluster_cidr: str = "10.244.0.0/16"
    proxy_mode: str = "nftables"
    # Optional parts; a test or a user with their own DNS or ingress turns them off.
    enable_proxy: bool = True
    enable_dns: bool = True
    enable_ingress: bool = True
    dns_port: int = 53
    ingress_http_port: int = 80
    ingress_https_port: int | None = 443
    crashloop_backoff_initial: float = 10.0
    crashloop_backoff_max: float = 300.0
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5

    @property
    def paths(self) -> AgentPaths:
        return AgentPaths(self.data_dir / "agent")


def choose_runtime(requested: str | None) -> str:
    """The runtime to use: what was asked for, else runc where it can run (root and the binary present),
    else the process runtime — announced loudly, since it isolates nothing."""
    if requested:
        return requested
    if os.geteuid() == 0 and shutil.which("runc"):
        return "runc"
    log.warning("runc cannot be used here (%s): falling back to the PROCESS runtime — containers run as plain "
                "host processes WITHOUT ISOLATION; pass --runtime process to choose it explicitly",
                "not root" if os.geteuid() != 0 else "runc not installed")
    return "process"


async def run_agent(client: Client, config: AgentConfig, stop: asyncio.Event) -> None:
    if config.node_ip is None:
        config.node_ip = detect_node_ip()
    paths = config.paths
    paths.root.mkdir(parents=True, exist_ok=True)
    images = ImageStore(paths.images)
    if paths.images_dropin.is_dir():
        imported = await images.import_dropin(paths.images_dropin)
        if imported:
            log.info("imported %d image(s) from %s", len(imported), paths.images_dropin)
    network = PodNetwork(paths, pod_cidr=None) if config.runtime == "runc" else None
    runtime_stop = asyncio.Event()
    runtime = asyncio.create_task(serve_runtime(
        paths, runtime=config.runtime, images=images, network=network, stop=runtime_stop,
        options=RuntimeOptions(log_max_size=config.container_log_max_size,
                               log_max_files=config.container_log_max_files)), name="runtime")
    try:
        await _wait_for_socket(paths.runtime_socket, runtime)
        kubelet_config = KubeletConfig(
            node_name=config.node_name, paths=paths, node_ip=config.node_ip, kubelet_port=config.kubelet_port,
            cluster_dns=config.cluster_dns, cluster_domain=config.cluster_domain, node_labels=config.node_labels,
            crashloop_backoff_initial=config.crashloop_backoff_initial,
            crashloop_backoff_max=config.crashloop_backoff_max,
            container_log_max_size=config.container_log_max_size,
            container_log_max_files=config.container_log_max_files)
        sans = [config.node_ip or "", socket.gethostname(), "127.0.0.1"]
        async with RuntimeClient(paths.runtime_socket) as rc, serve_streaming(
                rc, paths, node_name=config.node_name, client_ca_pem=config.cluster_ca_pem,
                sans=[s for s in sans if s], port=config.kubelet_port):
            on_pod_cidr = network.ensure_default_config if network is not None else None
            parts = [asyncio.create_task(run_kubelet(client, kubelet_config, stop, on_pod_cidr=on_pod_cidr),
                                         name="kubelet"),
                     asyncio.create_task(_image_gc(images), name="image-gc"),
                     runtime]
            if config.enable_proxy:
                proxy = ProxyConfig(node_name=config.node_name, cluster_cidr=config.cluster_cidr,
                                    node_ips=(config.node_ip,), mode=config.proxy_mode)
                parts.append(asyncio.create_task(run_proxy(client, proxy, stop), name="proxy"))
            if config.enable_dns:
                parts.append(asyncio.create_task(_run_node_dns(client, config, stop), name="dns"))
            if config.enable_ingress:
                parts.append(asyncio.create_task(_run_ingress_gateway(client, config, stop), name="ingress"))
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*parts, stopper], return_when=asyncio.FIRST_COMPLETED)
            failed = [t for t in done if t is not stopper and not t.cancelled() and t.exception() is not None]
            stopper.cancel()
            for t in parts:
                if t is not runtime:
                    t.cancel()
            await asyncio.gather(*[t for t in parts if t is not runtime], return_exceptions=True)
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            if runtime in done and not stop.is_set():
                raise RuntimeError("the container runtime stopped on its own")
    finally:
        runtime_stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime


async def _run_node_dns(client: Client, config: AgentConfig, stop: asyncio.Event) -> None:
    """The cluster DNS server of this node, on the node's address, behind the kube-dns Service."""
    node_ip = config.node_ip or detect_node_ip()
    await ensure_dns_service(client, config.cluster_dns[0])
    published = asyncio.Event()

    def listening(_addresses: object) -> None:
        published.set()

    dns = asyncio.create_task(run_dns(client, DNSConfig(listen=(node_ip,), port=config.dns_port,
                                                         cluster_domain=config.cluster_domain),
                                      stop, on_listening=listening))
    waiter = asyncio.ensure_future(published.wait())
    try:
        await asyncio.wait({dns, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if published.is_set():
            await dns_endpoints(client, [node_ip], config.dns_port, node_name=config.node_name)
        await dns
    except OSError as e:
        # Another resolver may hold the port: the node keeps running, pods just get no cluster DNS here.
        log.error("the cluster DNS server cannot listen on %s:%d (%s); this node runs without one",
                  node_ip, config.dns_port, e)
        await stop.wait()
    finally:
        waiter.cancel()
        dns.cancel()


async def _run_ingress_gateway(client: Client, config: AgentConfig, stop: asyncio.Event) -> None:
    try:
        await run_ingress(client, IngressConfig(node_name=config.node_name, node_ip=config.node_ip,
                                                http_port=config.ingress_http_port,
                                                https_port=config.ingress_https_port), stop)
    except OSError as e:
        log.error("the ingress gateway cannot start (%s); this node runs without one (free ports %s/%s, or "
                  "choose others with --ingress-http-port/--ingress-https-port)", e, config.ingress_http_port,
                  config.ingress_https_port)
        await stop.wait()


async def _wait_for_socket(path: Path, runtime: asyncio.Task[None]) -> None:
    for _ in range(300):
        if path.exists():
            return
        if runtime.done():
            runtime.result()
            raise RuntimeError("the container runtime stopped before it served its socket")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the container runtime did not serve {path} within 15 s")


async def _image_gc(images: ImageStore) -> None:
    """Free disk by removing unused images when the filesystem passes the high threshold."""
    while True:
        await asyncio.sleep(IMAGE_GC_PERIOD)
        try:
            freed = await images.garbage_collect()
            if freed:
                log.info("image garbage collection freed %d bytes", freed)
        except Exception:
            log.exception("image garbage collection failed")
