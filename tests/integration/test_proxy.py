"""The service proxy with real nftables and real traffic (needs root).

Each test builds a small world of network namespaces, all removed at the end (also on failure), so that
nothing touches the machine's own namespace:

- a *node* with a bridge ``kbr0`` (10.244.0.1/24) where the proxy runs, ``nft`` inside it;
- three *pods* p1..p3 on the bridge (10.244.0.2-4), each running a TCP server on 8080 that answers its
  own name, and a *client* pod (10.244.0.5) with no server;
- an *outside* host on a second link (192.168.77.2, the node being 192.168.77.1), for NodePorts; the node's
  default route leads there, as a real node's uplink does.

Services and EndpointSlices are created in the in-process API server (no controllers run: the tests
write the slices themselves), and the proxy runs against it as in a node agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubelite.api.registry import by_resource
from kubelite.cli import proxy as proxy_cli
from kubelite.client.rest import Client, NotFound
from kubelite.proxy.config import USERSPACE, ProxyConfig
from kubelite.proxy.run import run_proxy
from tests.support.network import NSENTER, node_netns, run_in_netns, tcp_server_in_netns

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces, veths and nftables"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft not installed (Debian package nftables)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="ip not installed (Debian package iproute2)"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="nsenter (util-linux) not installed"),
]

SERVICES = by_resource("", "v1", "services")
SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")
NODE = "node-a"
POD_IPS = {"p1": "10.244.0.2", "p2": "10.244.0.3", "p3": "10.244.0.4"}
CLIENT_IP = "10.244.0.5"
NODE_IP = "192.168.77.1"
OUTSIDE_IP = "192.168.77.2"
PORT = 8080

UDP_SERVER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[2])))
print("ready", flush=True)
while True:
    _, peer = s.recvfrom(100)
    s.sendto(sys.argv[1].encode(), peer)
"""

# Datagrams from one fixed source port: one conntrack flow, as a resolver or metrics agent keeps.
UDP_FIXED_PORT_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 41000))
s.settimeout(1)
s.sendto(b"?", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recv(100).decode())
except (TimeoutError, ConnectionRefusedError) as e:
    print("!" + type(e).__name__)
"""

UDP_PROBE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"?")
try:
    print(s.recv(100).decode())
except ConnectionRefusedError:
    print("!refused")
except TimeoutError:
    print("!timeout")
"""

PROBE = r"""
import json, socket, sys
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out = []
for _ in range(count):
    try:
        c = socket.create_connection((host, port), timeout=timeout)
        data = b""
        while chunk := c.recv(4096):
            data += chunk
        c.close()
        out.append(data.decode())
    except ConnectionRefusedError:
        out.append("!refused")
    except ConnectionResetError:
        out.append("!reset")
    except (socket.timeout, TimeoutError):
        out.append("!timeout")
    except OSError as e:
        out.append("!" + (e.strerror or str(e)))
print(json.dumps(out))
"""


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


def sysctl(ns: Path, key: str, value: str) -> None:
    if Path("/proc/sys", *key.split(".")).exists():
        done = run_in_netns(ns, ["sysctl", "-qw", f"{key}={value}"])
        assert done.returncode == 0, done.stderr


async def probe(ns: Path, host: str, port: int, count: int = 1, *, timeout: float = 3.0) -> list[str]:
    """``count`` connections from inside ``ns``: what each one read, or ``!refused``/``!reset``/``!timeout``."""
    proc = await asyncio.create_subprocess_exec(NSENTER, f"--net={ns}", "--", sys.executable, "-c", PROBE, host,
                                                str(port), str(count), str(timeout), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 10 + (timeout + 1) * count)
    assert proc.returncode == 0, err.decode()
    result: list[str] = json.loads(out)
    return result


async def eventually(check: Callable[[], Any], timeout: float = 15.0) -> None:
    """Retry an async assertion until it holds (rules go live a moment after the API write)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


def load_nft(ns: Path, text: str) -> None:
    done = subprocess.run([NSENTER, f"--net={ns}", "--", "nft", "-f", "-"], input=text, text=True,
                          capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr


def nft_tables(ns: Path) -> str:
    done = run_in_netns(ns, ["nft", "list", "tables"])
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Lab:
    node: Path
    outside: Path
    client: Path
    pods: dict[str, Path]
    api: Client
    stack: AsyncExitStack
    proxy: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def start_proxy(self, **config: Any) -> ProxyConfig:
        cfg = ProxyConfig(node_name=NODE, cluster_cidr="10.244.0.0/16", node_ips=(NODE_IP,), netns=str(self.node),
                          min_sync_period=0, **config)
        self.proxy = asyncio.create_task(run_proxy(self.api, cfg, self.stop))
        return cfg

    async def stop_proxy(self) -> None:
        self.stop.set()
        if self.proxy is not None:
            await asyncio.wait_for(self.proxy, 30)
            self.proxy = None

    async def service(self, name: str, *, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
               "spec": {"ports": ports or [{"name": "tcp", "port": 80, "targetPort": PORT}], **spec}}
        return await self.api.create(SERVICES, svc, namespace="default")

    async def endpoints(self, service: str, ready: dict[str, bool], *, node: str = NODE) -> None:
        """Create or replace the one EndpointSlice of ``service``: pod name → ready."""
        metadata: dict[str, Any] = {"name": f"{service}-1", "namespace": "default",
                                    "labels": {"kubernetes.io/service-name": service}}
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata,
                "addressType": "IPv4", "ports": [{"name": "tcp", "port": PORT, "protocol": "TCP"}],
                "endpoints": [{"addresses": [POD_IPS[pod]], "nodeName": node,
                               "conditions": {"ready": r, "serving": r, "terminating": False}}
                              for pod, r in ready.items()]}
        try:
            current = await self.api.get(SLICES, f"{service}-1", namespace="default")
        except NotFound:
            await self.api.create(SLICES, body, namespace="default")
            return
        metadata["resourceVersion"] = current["metadata"]["resourceVersion"]
        await self.api.update(SLICES, body, namespace="default")


async def _veth(node: Path, host_end: str, other: Path, address: str, *, bridge: str | None = None,
                gateway: str | None = None, node_address: str | None = None) -> None:
    ip("-n", node.name, "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", other.name)
    if bridge:
        # hairpin on, as the CNI bridge plugin's hairpinMode sets it: a packet DNATed back to the pod it came
        # from is bridged back out of the port it came in by (br_netfilter bridges DNAT within one bridge)
        ip("-n", node.name, "link", "set", host_end, "master", bridge)
        ip("-n", node.name, "link", "set", host_end, "type", "bridge_slave", "hairpin", "on")
    if node_address:
        ip("-n", node.name, "addr", "add", node_address, "dev", host_end)
    ip("-n", node.name, "link", "set", host_end, "up")
    ip("-n", other.name, "addr", "add", address, "dev", "eth0")
    ip("-n", other.name, "link", "set", "eth0", "up")
    if gateway:
        ip("-n", other.name, "route", "add", "default", "via", gateway)


@pytest.fixture
async def lab(kclient: Client) -> AsyncIterator[Lab]:
    async with AsyncExitStack() as stack:
        node = await stack.enter_async_context(node_netns("klpx-node-"))
        outside = await stack.enter_async_context(node_netns("klpx-out-"))
        client = await stack.enter_async_context(node_netns("klpx-cli-"))
        pods = {name: await stack.enter_async_context(node_netns(f"klpx-{name}-")) for name in POD_IPS}
        ip("-n", node.name, "link", "add", "kbr0", "type", "bridge")
        ip("-n", node.name, "addr", "add", "10.244.0.1/24", "dev", "kbr0")
        ip("-n", node.name, "link", "set", "kbr0", "up")
        sysctl(node, "net.ipv4.ip_forward", "1")
        # Pods on one bridge reach each other's replies through the node's conntrack only with this on.
        sysctl(node, "net.bridge.bridge-nf-call-iptables", "1")
        for i, (name, pod_ip) in enumerate(POD_IPS.items()):
            await _veth(node, f"vp{i}", pods[name], f"{pod_ip}/24", bridge="kbr0", gateway="10.244.0.1")
            await stack.enter_async_context(tcp_server_in_netns(pods[name], PORT, name))
        await _veth(node, "vcl", client, f"{CLIENT_IP}/24", bridge="kbr0", gateway="10.244.0.1")
        await _veth(node, "vout", outside, f"{OUTSIDE_IP}/24", node_address=f"{NODE_IP}/24")
        # The node's default route leads outside, as a real node's uplink does (ClusterIPs have no other route).
        ip("-n", node.name, "route", "add", "default", "via", OUTSIDE_IP)
        lab = Lab(node, outside, client, pods, kclient, stack)
        try:
            yield lab
        finally:
            await lab.stop_proxy()


async def test_cluster_ip_balances_over_every_ready_pod_and_node_port_works_from_outside(lab: Lab) -> None:
    svc = await lab.service("web", type="NodePort")
    await lab.endpoints("web", {"p1": True, "p2": True, "p3": True})
    await lab.start_proxy()
    cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]

    async def every_pod_answers() -> None:
        answers = Counter(await probe(lab.client, cluster_ip, 80, 60))
        assert set(answers) == {"p1", "p2", "p3"}, answers

    await eventually(every_pod_answers)
    # from the node itself, and from outside the cluster through the NodePort
    assert set(await probe(lab.node, cluster_ip, 80, 20)) <= {"p1", "p2", "p3"}
    assert set(await probe(lab.outside, NODE_IP, node_port, 40)) == {"p1", "p2", "p3"}


async def test_session_affinity_sticks_and_not_ready_endpoints_are_skipped(lab: Lab) -> None:
    sticky = await lab.service("sticky", sessionAffinity="ClientIP")
    await lab.endpoints("sticky", {"p1": True, "p2": True, "p3": True})
    partly = await lab.service("partly")
    await lab.endpoints("partly", {"p1": False, "p2": True, "p3": False})
    await lab.start_proxy()

    async def sticks() -> None:
        answers = await probe(lab.client, sticky["spec"]["clusterIP"], 80, 20)
        assert len(set(answers)) == 1 and answers[0] in POD_IPS, answers

    await eventually(sticks)
    assert set(await probe(lab.client, partly["spec"]["clusterIP"], 80, 20)) == {"p2"}


async def test_endpoints_follow_readiness_changes(lab: Lab) -> None:
    svc = await lab.service("web")
    await lab.endpoints("web", {"p1": True, "p2": False})
    await lab.start_proxy()
    cluster_ip = svc["spec"]["clusterIP"]

    async def answers(expected: set[str]) -> None:
        assert set(await probe(lab.client, cluster_ip, 80, 30)) == expected

    await eventually(lambda: answers({"p1"}))
    await lab.endpoints("web", {"p1": True, "p2": True})
    await eventually(lambda: answers({"p1", "p2"}))
    await lab.endpoints("web", {"p1": False, "p2": True})
    await eventually(lambda: answers({"p2"}))


async def test_a_service_without_endpoints_refuses_at_once(lab: Lab) -> None:
    empty = await lab.service("empty", type="NodePort", ports=[{"name": "tcp", "port": 80, "targetPort": PORT},
                                                              {"name": "udp", "port": 80, "protocol": "UDP"}])
    await lab.endpoints("empty", {})
    web = await lab.service("web")
    await lab.endpoints("web", {"p1": True})
    await lab.start_proxy()
    await eventually(lambda: _expect(probe(lab.client, web["spec"]["clusterIP"], 80), ["p1"]))
    # refused (a reset from the node), not a timeout; from a pod, the node and outside
    assert await probe(lab.client, empty["spec"]["clusterIP"], 80, 3) == ["!refused"] * 3
    assert await probe(lab.node, empty["spec"]["clusterIP"], 80) == ["!refused"]
    assert await probe(lab.outside, NODE_IP, empty["spec"]["ports"][0]["nodePort"]) == ["!refused"]
    # UDP gets ICMP port unreachable
    udp = run_in_netns(lab.client, [sys.executable, "-c", UDP_PROBE, empty["spec"]["clusterIP"], "80"])
    assert udp.stdout.strip() == "!refused", udp.stderr
    # a ClusterIP on a port no Service has is refused too
    assert await probe(lab.client, web["spec"]["clusterIP"], 81) == ["!refused"]


async def test_hairpin_a_pod_reaches_itself_through_its_service(lab: Lab) -> None:
    svc = await lab.service("self")
    await lab.endpoints("self", {"p1": True})
    await lab.start_proxy()
    await eventually(lambda: _expect(probe(lab.pods["p1"], svc["spec"]["clusterIP"], 80, 3), ["p1"] * 3))


async def test_local_external_traffic_policy_only_uses_this_nodes_endpoints(lab: Lab) -> None:
    svc = await lab.service("local", type="NodePort", externalTrafficPolicy="Local")
    await lab.endpoints("local", {"p1": True})
    other = await lab.service("elsewhere", type="NodePort", externalTrafficPolicy="Local")
    await lab.endpoints("elsewhere", {"p2": True}, node="node-b")
    await lab.start_proxy()
    node_port = svc["spec"]["ports"][0]["nodePort"]
    await eventually(lambda: _expect(probe(lab.outside, NODE_IP, node_port, 3), ["p1"] * 3))
    # endpoints only on another node: outside traffic is dropped here, pods still reach the Service
    assert await probe(lab.outside, NODE_IP, other["spec"]["ports"][0]["nodePort"], timeout=1) == ["!timeout"]
    assert await probe(lab.client, other["spec"]["clusterIP"], 80) == ["p2"]


async def test_cleanup_removes_the_table_and_leaves_other_tables_working(lab: Lab) -> None:
    bystander = ("table inet bystander {\n chain forward {\n  type filter hook forward priority 0; policy accept;\n"
                 "  tcp dport 8080 counter\n }\n}\n")
    load_nft(lab.node, bystander)
    svc = await lab.service("web")
    await lab.endpoints("web", {"p1": True})
    await lab.start_proxy()
    await eventually(lambda: _expect(probe(lab.client, svc["spec"]["clusterIP"], 80), ["p1"]))
    tables = nft_tables(lab.node)
    assert "table ip kubelite" in tables and "table inet bystander" in tables
    counted = run_in_netns(lab.node, ["nft", "list", "chain", "inet", "bystander", "forward"]).stdout
    assert "packets 0 " not in counted, counted  # the other table still sees the traffic
    await lab.stop_proxy()
    assert "table ip kubelite" in nft_tables(lab.node)  # a plain stop keeps the rules: traffic flows on
    # `kubelite proxy --cleanup`
    parser = argparse.ArgumentParser()
    proxy_cli.register(parser.add_subparsers())
    args = parser.parse_args(["proxy", "--cleanup", "--netns", str(lab.node)])
    assert await asyncio.to_thread(args.func, args) == 0
    tables = nft_tables(lab.node)
    assert "kubelite" not in tables and "table inet bystander" in tables


async def test_cleanup_on_stop(lab: Lab) -> None:
    await lab.service("web")
    await lab.endpoints("web", {"p1": True})
    await lab.start_proxy(cleanup_on_stop=True)

    async def loaded() -> None:
        assert "table ip kubelite" in nft_tables(lab.node)

    await eventually(loaded)
    await lab.stop_proxy()
    assert "kubelite" not in nft_tables(lab.node)


async def test_the_userspace_proxy_serves_cluster_ips_and_node_ports(lab: Lab) -> None:
    svc = await lab.service("web", type="NodePort")
    await lab.endpoints("web", {"p1": True, "p2": True})
    empty = await lab.service("empty")
    await lab.endpoints("empty", {})
    await lab.start_proxy(mode=USERSPACE, cleanup_on_stop=True)

    async def balanced() -> None:
        assert set(await probe(lab.client, svc["spec"]["clusterIP"], 80, 30)) == {"p1", "p2"}

    await eventually(balanced)
    assert set(await probe(lab.outside, NODE_IP, svc["spec"]["ports"][0]["nodePort"], 10)) <= {"p1", "p2"}
    assert (await probe(lab.client, empty["spec"]["clusterIP"], 80))[0] in ("!reset", "", "!refused")
    await lab.stop_proxy()
    links = run_in_netns(lab.node, ["ip", "-o", "link"]).stdout
    assert "kubelite-svc" not in links


@asynccontextmanager
async def udp_server_in_netns(ns: Path, port: int, reply: str) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(NSENTER, f"--net={ns}", "--", sys.executable, "-c", UDP_SERVER,
                                                reply, str(port), stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 10)).strip() == b"ready"
        yield
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_udp_flow_follows_its_service_to_a_new_endpoint(lab: Lab) -> None:
    for pod in ("p1", "p2"):
        await lab.stack.enter_async_context(udp_server_in_netns(lab.pods[pod], 5353, pod))
    svc = await lab.service("dns", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    metadata: dict[str, Any] = {"name": "dns-1", "namespace": "default",
                                "labels": {"kubernetes.io/service-name": "dns"}}
    body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata,
            "addressType": "IPv4", "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"}],
            "endpoints": [{"addresses": [POD_IPS["p1"]], "conditions": {"ready": True}}]}
    created = await lab.api.create(SLICES, body, namespace="default")
    await lab.start_proxy()
    cluster_ip = svc["spec"]["clusterIP"]

    async def answered_by(pod: str) -> None:
        done = await asyncio.to_thread(run_in_netns, lab.client, [sys.executable, "-c", UDP_FIXED_PORT_CLIENT,
                                                                  cluster_ip, "53"])
        assert done.stdout.strip() == pod, done.stdout + done.stderr

    await eventually(lambda: answered_by("p1"))
    metadata["resourceVersion"] = created["metadata"]["resourceVersion"]
    body["endpoints"] = [{"addresses": [POD_IPS["p2"]], "conditions": {"ready": True}}]
    await lab.api.update(SLICES, body, namespace="default")
    # Without clearing the flow's conntrack entry it would stay DNATed to p1 for as long as it is used.
    await eventually(lambda: answered_by("p2"))


async def _expect(answers: Any, expected: list[str]) -> None:
    assert await answers == expected
