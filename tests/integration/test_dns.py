"""Cluster DNS against the real API server (in-process, in-memory store): `run_dns` on a loopback port,
asked with dnspython's stub resolver over UDP and TCP, names outside the cluster forwarded to a fake upstream
on loopback (never a real resolver). Services, EndpointSlices and pods are written here, as the controllers
and kubelets would."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.asyncquery
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

from kubelite.api.registry import resolve
from kubelite.client.rest import Client
from kubelite.proxy.dns import (
    DNSConfig,
    DNSServiceConflict,
    dns_endpoints,
    ensure_dns_service,
    remove_dns_endpoints,
    run_dns,
)
from tests.support.fakedns import FakeUpstream

SVC = resolve("services")
POD = resolve("pods")
SLICES = resolve("endpointslices.discovery.k8s.io")
WAIT_SECONDS = 5.0

Obj = dict[str, Any]


@dataclass
class Running:
    port: int
    upstream: FakeUpstream

    def resolver(self, *, lifetime: float = 2.0) -> dns.asyncresolver.Resolver:
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = ["127.0.0.1"]
        r.port = self.port
        r.lifetime = lifetime
        r.cache = None
        return r

    async def addresses(self, name: str, qtype: str = "A", *, tcp: bool = False) -> list[str]:
        answer = await self.resolver().resolve(name, qtype, tcp=tcp)
        return sorted(rd.to_text() for rd in answer)

    async def ask(self, name: str, qtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
        query = dns.message.make_query(name, qtype)
        if tcp:
            return await dns.asyncquery.tcp(query, "127.0.0.1", timeout=2.0, port=self.port)
        return await dns.asyncquery.udp(query, "127.0.0.1", timeout=2.0, port=self.port)


@pytest.fixture
async def dns_server(kclient: Client) -> AsyncIterator[Running]:
    async with FakeUpstream({"www.example.com": ["A 192.0.2.10"], "db.example.net": ["A 192.0.2.20"]}) as up:
        stop = asyncio.Event()
        listening: asyncio.Future[Sequence[tuple[str, int]]] = asyncio.get_running_loop().create_future()
        config = DNSConfig(listen=("127.0.0.1",), port=0, upstreams=(up.address,), upstream_timeout=1.0)
        task = asyncio.create_task(run_dns(kclient, config, stop, on_listening=listening.set_result))
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                waiters: list[asyncio.Future[Any]] = [task, listening]
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # raises what stopped it
            yield Running(listening.result()[0][1], up)
        finally:
            stop.set()
            async with asyncio.timeout(WAIT_SECONDS):
                await task


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while not await check():  # noqa: ASYNC110 - the server's answers are only seen by asking
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


async def create_service(client: Client, name: str, *, cluster_ip: str | None = None, namespace: str = "default",
                         ports: list[Obj] | None = None, **spec: Any) -> Obj:
    body: Obj = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}], **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return await client.create(SVC, {"metadata": {"name": name, "namespace": namespace}, "spec": body})


def slice_of(service: str, ips: Sequence[str], *, name: str | None = None, hostnames: Sequence[str] = (),
             ready: bool = True, port_name: str = "http", port: int = 8080) -> Obj:
    endpoints = []
    for i, ip in enumerate(ips):
        ep: Obj = {"addresses": [ip], "conditions": {"ready": ready}}
        if i < len(hostnames):
            ep["hostname"] = hostnames[i]
        endpoints.append(ep)
    return {"metadata": {"name": name or f"{service}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


async def test_a_record_of_a_cluster_ip_service_by_full_name(kclient: Client, dns_server: Running) -> None:
    await create_service(kclient, "web", cluster_ip="10.96.5.5")
    for tcp in (False, True):
        async def answered(tcp: bool = tcp) -> bool:
            with contextlib.suppress(dns.resolver.NXDOMAIN):
                return await dns_server.addresses("web.default.svc.cluster.local", tcp=tcp) == ["10.96.5.5"]
            return False

        await eventually(answered, f"web answers over {'TCP' if tcp else 'UDP'}")
    response = await dns_server.ask("WEB.Default.SVC.cluster.local")
    assert response.flags & dns.flags.AA and [rd.to_text() for rd in response.answer[0]] == ["10.96.5.5"]
    assert response.answer[0].ttl == 5


async def test_headless_service_follows_its_endpoints(kclient: Client, dns_server: Running) -> None:
    await create_service(kclient, "db", cluster_ip="None")
    eps = await kclient.create(SLICES, slice_of("db", ["10.244.0.5", "10.244.0.6"], hostnames=["db-0"]))
    name = "db.default.svc.cluster.local"

    async def shows(expected: list[str]) -> bool:
        try:
            return await dns_server.addresses(name) == expected
        except dns.resolver.NXDOMAIN:
            return expected == []

    await eventually(lambda: shows(["10.244.0.5", "10.244.0.6"]), "both endpoints answer")
    assert await dns_server.addresses("db-0.db.default.svc.cluster.local") == ["10.244.0.5"]

    # An endpoint goes unready and another one appears: the answer follows within a second.
    eps["endpoints"][1]["conditions"]["ready"] = False
    eps["endpoints"].append({"addresses": ["10.244.0.7"], "conditions": {"ready": True}})
    eps = await kclient.update(SLICES, eps)
    async with asyncio.timeout(1.0):
        while not await shows(["10.244.0.5", "10.244.0.7"]):  # noqa: ASYNC110 - seen only by asking
            await asyncio.sleep(0.01)

    # No ready endpoint left: the name does not exist (the DNS spec's rule for headless Services).
    await kclient.delete(SLICES, "db-1", "default")
    await eventually(lambda: shows([]), "db is NXDOMAIN")


async def test_srv_for_a_named_port(kclient: Client, dns_server: Running) -> None:
    await create_service(kclient, "api", cluster_ip="10.96.5.6",
                         ports=[{"name": "grpc", "port": 9090, "protocol": "TCP"},
                                {"name": "stats", "port": 9091, "protocol": "UDP"}])
    name = "_grpc._tcp.api.default.svc.cluster.local"

    async def answered() -> bool:
        return (await dns_server.ask(name, "SRV")).rcode() == dns.rcode.NOERROR

    await eventually(answered, "the SRV record exists")
    answer = await dns_server.resolver().resolve(name, "SRV")
    assert [rd.to_text() for rd in answer] == ["0 100 9090 api.default.svc.cluster.local."]
    response = await dns_server.ask(name, "SRV")
    assert [rd.to_text() for rr in response.additional for rd in rr] == ["10.96.5.6"]


async def test_pod_a_records_for_existing_pods(kclient: Client, dns_server: Running) -> None:
    await kclient.create(POD, {"metadata": {"name": "p", "namespace": "default"},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    await kclient.patch(POD, "p", {"status": {"phase": "Running", "podIP": "10.244.0.9",
                                              "podIPs": [{"ip": "10.244.0.9"}]}},
                        "merge", "default", subresource="status")

    async def answered() -> bool:
        with contextlib.suppress(dns.resolver.NXDOMAIN):
            return await dns_server.addresses("10-244-0-9.default.pod.cluster.local") == ["10.244.0.9"]
        return False

    await eventually(answered, "the pod's name answers")
    with pytest.raises(dns.resolver.NXDOMAIN):
        await dns_server.addresses("10-244-0-99.default.pod.cluster.local")


async def test_external_name_is_a_cname_followed_upstream(kclient: Client, dns_server: Running) -> None:
    await create_service(kclient, "ext", type="ExternalName", externalName="db.example.net", ports=[])

    async def answered() -> bool:
        return (await dns_server.ask("ext.default.svc.cluster.local")).rcode() == dns.rcode.NOERROR

    await eventually(answered, "the ExternalName Service answers")
    response = await dns_server.ask("ext.default.svc.cluster.local")
    assert [rr.to_text() for rr in response.answer] == [
        "ext.default.svc.cluster.local. 5 IN CNAME db.example.net.",
        "db.example.net. 300 IN A 192.0.2.20",
    ]
    answer = await dns_server.resolver().resolve("ext.default.svc.cluster.local", "A")
    assert [rd.to_text() for rd in answer] == ["192.0.2.20"] and answer.canonical_name.to_text() == "db.example.net."


async def test_nxdomain_with_soa_and_nodata_for_aaaa(kclient: Client, dns_server: Running) -> None:
    await create_service(kclient, "web", cluster_ip="10.96.5.7")

    async def answered() -> bool:
        return (await dns_server.ask("web.default.svc.cluster.local")).rcode() == dns.rcode.NOERROR

    await eventually(answered, "web exists")
    missing = await dns_server.ask("nope.default.svc.cluster.local")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.flags & dns.flags.AA
    assert [rr.rdtype for rr in missing.authority] == [dns.rdatatype.SOA]
    with pytest.raises(dns.resolver.NXDOMAIN):
        await dns_server.addresses("nope.default.svc.cluster.local")

    nodata = await dns_server.ask("web.default.svc.cluster.local", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and nodata.answer == []
    assert [rr.rdtype for rr in nodata.authority] == [dns.rdatatype.SOA]
    with pytest.raises(dns.resolver.NoAnswer):
        await dns_server.addresses("web.default.svc.cluster.local", "AAAA")


async def test_other_names_are_forwarded_and_cached(dns_server: Running) -> None:
    for tcp in (False, True, False):
        assert await dns_server.addresses("www.example.com", tcp=tcp) == ["192.0.2.10"]
    assert dns_server.upstream.queries("www.example.com") == 1  # then served from the cache
    response = await dns_server.ask("www.example.com")
    assert response.answer[0].ttl <= 300 and not response.flags & dns.flags.AA
    with pytest.raises(dns.resolver.NXDOMAIN):
        await dns_server.addresses("nowhere.example.com")


async def test_many_endpoints_are_truncated_over_udp_and_complete_over_tcp(kclient: Client,
                                                                          dns_server: Running) -> None:
    await create_service(kclient, "big", cluster_ip="None")
    ips = [f"10.244.{i // 200}.{i % 200 + 1}" for i in range(300)]
    await kclient.create(SLICES, slice_of("big", ips))
    name = "big.default.svc.cluster.local"

    async def truncated() -> bool:
        return bool((await dns_server.ask(name)).flags & dns.flags.TC)

    await eventually(truncated, "the UDP answer is truncated")
    # The stub resolver sees TC and asks again over TCP by itself.
    assert await dns_server.addresses(name) == sorted(ips)
    assert len((await dns_server.ask(name, tcp=True)).answer[0]) == 300


async def test_the_kube_dns_service_and_its_endpoints(kclient: Client, dns_server: Running) -> None:
    svc = await ensure_dns_service(kclient)
    assert svc["spec"]["clusterIP"] == "10.96.0.10" and not svc["spec"].get("selector")
    assert [(p["name"], p["protocol"], p["port"]) for p in svc["spec"]["ports"]] == [
        ("dns", "UDP", 53), ("dns-tcp", "TCP", 53)]
    assert (await ensure_dns_service(kclient))["metadata"]["uid"] == svc["metadata"]["uid"]  # idempotent
    with pytest.raises(DNSServiceConflict, match=r"10\.96\.0\.10"):
        await ensure_dns_service(kclient, "10.96.0.11")

    written = await dns_endpoints(kclient, ["10.0.0.5", "10.0.0.6"], 53, node_name="node-1")
    assert [s["metadata"]["name"] for s in written] == ["kube-dns-node-1"]
    eps = written[0]
    assert eps["metadata"]["labels"] == {"kubernetes.io/service-name": "kube-dns",
                                         "endpointslice.kubernetes.io/managed-by": "kubelite-dns"}
    assert eps["metadata"]["ownerReferences"][0]["uid"] == svc["metadata"]["uid"]
    assert [(e["addresses"], e["nodeName"], e["conditions"]["ready"]) for e in eps["endpoints"]] == [
        (["10.0.0.5"], "node-1", True), (["10.0.0.6"], "node-1", True)]
    assert {(p["name"], p["protocol"], p["port"]) for p in eps["ports"]} == {("dns", "UDP", 53),
                                                                            ("dns-tcp", "TCP", 53)}
    again = await dns_endpoints(kclient, ["10.0.0.7"], 5353, node_name="node-1")
    assert [e["addresses"] for e in again[0]["endpoints"]] == [["10.0.0.7"]]
    assert {p["port"] for p in again[0]["ports"]} == {5353}

    async def answered() -> bool:
        with contextlib.suppress(dns.exception.DNSException):
            return await dns_server.addresses("kube-dns.kube-system.svc.cluster.local") == ["10.96.0.10"]
        return False

    await eventually(answered, "kube-dns answers")
    assert await dns_server.addresses("ns.dns.cluster.local") == ["10.96.0.10"]

    await remove_dns_endpoints(kclient, node_name="node-1")
    listed = await kclient.list(SLICES, "kube-system")
    assert listed["items"] == []


async def test_ensure_dns_service_updates_its_ports_and_leaves_another_dns_alone(kclient: Client) -> None:
    await ensure_dns_service(kclient, port=53)
    updated = await ensure_dns_service(kclient, port=5353)
    assert {p["targetPort"] for p in updated["spec"]["ports"]} == {5353}

    await kclient.delete(SVC, "kube-dns", "kube-system")
    coredns = await create_service(kclient, "kube-dns", namespace="kube-system", cluster_ip="10.96.0.10",
                                   selector={"k8s-app": "kube-dns"},
                                   ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    kept = await ensure_dns_service(kclient)
    assert kept["metadata"]["resourceVersion"] == coredns["metadata"]["resourceVersion"]
