"""Running the API server as a process: PKI and credentials, the store, the HTTPS listener, the admin
kubeconfig, periodic compaction, and a clean stop on SIGINT/SIGTERM.

`run(config)` is what ``kubelite server`` and ``kubelite apiserver`` call; it returns when the server has
stopped and released everything it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from kubelite.client.join import format_join_token
from kubelite.client.kubeconfig import config_for_server
from kubelite.client.rest import Client

from .app import build_app
from .auth.authn import Authenticator, StaticTokenAuthenticator, ensure_admin_token, ensure_token, token_file_path
from .auth.authz import AlwaysAllowAuthorizer, GroupAuthorizer, UnionAuthorizer
from .certs import load_or_create_pki, ssl_server_context, write_atomic
from .handlers.proxy import kubelet_client_ssl_context
from .kubeconfig_writer import write_admin_kubeconfig
from .storage import open_store
from .storage.interface import StorageError, Store

log = logging.getLogger("kubelite.apiserver")

# How often, and how much history, the server compacts on etcd (Kubernetes compacts every 5 minutes).
COMPACT_INTERVAL = 300.0
COMPACT_KEEP_REVISIONS = 10_000
# How long in-process components get to stop on their own before they are cancelled.
COMPONENT_STOP_TIMEOUT = 10.0


@dataclass
class ServerConfig:
    data_dir: str
    bind_address: str = "0.0.0.0"
    port: int = 6443
    etcd_endpoints: list[str] = field(default_factory=list)
    kubeconfig_path: str = ""
    tls_sans: list[str] = field(default_factory=list)
    service_cidr: str = "10.96.0.0/12"
    node_port_range: tuple[int, int] = (30000, 32767)
    # Control-plane components run in this process as clients of the server (kubelite server).
    components: list[Component] = field(default_factory=list)


# A control-plane component: runs as an API client until `stop` is set; raising stops the server.
Component = Callable[[Client, asyncio.Event], Coroutine[Any, Any, None]]


def server_url(config: ServerConfig) -> str:
    host = config.bind_address
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{config.port}"


async def _compactor(store: Store) -> None:
    while True:
        await asyncio.sleep(COMPACT_INTERVAL)
        try:
            target = await store.current_revision() - COMPACT_KEEP_REVISIONS
            if target > await store.compacted_revision():
                await store.compact(target)
        except StorageError as e:
            log.warning("compaction failed: %s", e)


async def _serve_components(config: ServerConfig, url: str, ca_pem: bytes, token: str, stop: asyncio.Event) -> None:
    """Run the in-process components until ``stop``; a component that fails stops the whole server loudly
    rather than leaving it half alive."""
    if not config.components:
        await stop.wait()
        return
    async with Client(config_for_server(url, token=token, ca_data=ca_pem.decode())) as client:
        tasks = [asyncio.create_task(c(client, stop), name=getattr(c, "__name__", "component"))
                 for c in config.components]
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if t is not stopper and t.exception() is not None:
                log.critical("component %s failed, stopping the server", t.get_name(), exc_info=t.exception())
        stop.set()
        stopper.cancel()
        # Let the components end on their own first (release their Leases, finish the kubelet's work).
        _, pending = await asyncio.wait(tasks, timeout=COMPONENT_STOP_TIMEOUT)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)


async def run(config: ServerConfig, *, ready: asyncio.Event | None = None) -> None:
    data_dir = Path(config.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    pki = load_or_create_pki(data_dir, extra_sans=config.tls_sans, bind_address=config.bind_address)
    admin_token = ensure_admin_token(data_dir)
    # What `kubelite agent --token` takes to join another node (k3s's server/node-token).
    node_token = ensure_token(data_dir, "kubelite-node", "system:nodes")
    write_atomic(data_dir / "node-token", (format_join_token(pki.ca_cert_pem, node_token) + "\n").encode(),
                 mode=0o600)
    authenticator = Authenticator.standard([StaticTokenAuthenticator.from_csv(token_file_path(data_dir))])
    authorizer = UnionAuthorizer([GroupAuthorizer(), AlwaysAllowAuthorizer()])
    store = open_store(data_dir=str(data_dir), etcd_endpoints=config.etcd_endpoints or None)
    app = build_app(store, authenticator=authenticator, authorizer=authorizer, service_cidr=config.service_cidr,
                    node_port_range=config.node_port_range, kubelet_client_ssl=kubelet_client_ssl_context(pki),
                    ca_pem=pki.ca_cert_pem)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    compactor = asyncio.create_task(_compactor(store)) if config.etcd_endpoints else None
    try:
        site = web.TCPSite(runner, config.bind_address, config.port, ssl_context=ssl_server_context(pki),
                           backlog=1024, reuse_address=True)
        await site.start()
        url = server_url(config)
        if config.kubeconfig_path:
            write_admin_kubeconfig(config.kubeconfig_path, server_url=url, ca_pem=pki.ca_cert_pem,
                                   token=admin_token)
        backend = f"etcd at {','.join(config.etcd_endpoints)}" if config.etcd_endpoints else \
            f"SQLite at {data_dir / 'state.db'}"
        log.info("kubelite API server listening on %s:%d, reached at %s (storage: %s, data: %s)",
                 config.bind_address, config.port, url, backend, data_dir)
        if config.kubeconfig_path:
            log.info("admin kubeconfig written to %s", config.kubeconfig_path)
        if ready is not None:
            ready.set()
        await _serve_components(config, url, pki.ca_cert_pem, admin_token, stop)
        log.info("stopping")
    finally:
        if compactor is not None:
            compactor.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
