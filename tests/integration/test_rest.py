"""REST semantics of the API server: CRUD, concurrency, status and scale, deletion, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient

NS = "/api/v1/namespaces"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str = "web", replicas: int = 2, image: str = "nginx:1.25") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}},
    }


async def test_system_namespaces_exist(api: TestClient) -> None:
    r = await api.get(NS)
    assert r.status == 200
    body = await r.json()
    assert body["kind"] == "NamespaceList"
    names = {n["metadata"]["name"] for n in body["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


async def test_create_get_update_conflict(api: TestClient) -> None:
    r = await api.post(DEPLOYS, json=deployment())
    assert r.status == 201, await r.text()
    created = await r.json()
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert created["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    r = await api.post(DEPLOYS, json=deployment())
    assert r.status == 409 and (await r.json())["reason"] == "AlreadyExists"

    r = await api.get(f"{DEPLOYS}/web")
    got = await r.json()
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]

    got["spec"]["replicas"] = 3
    r = await api.put(f"{DEPLOYS}/web", json=got)
    assert r.status == 200, await r.text()
    updated = await r.json()
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    got["spec"]["replicas"] = 4  # stale resourceVersion
    r = await api.put(f"{DEPLOYS}/web", json=got)
    assert r.status == 409 and (await r.json())["reason"] == "Conflict"


async def test_noop_update_keeps_resource_version(api: TestClient) -> None:
    created = await (await api.post(DEPLOYS, json=deployment())).json()
    r = await api.put(f"{DEPLOYS}/web", json=created)
    assert r.status == 200
    assert (await r.json())["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_status_subresource_split(api: TestClient) -> None:
    created = await (await api.post(DEPLOYS, json=deployment())).json()
    created["status"] = {"replicas": 5}
    r = await api.put(f"{DEPLOYS}/web", json=created)
    assert (await r.json()).get("status", {}).get("replicas") is None
    cur = await (await api.get(f"{DEPLOYS}/web")).json()
    cur["status"] = {"replicas": 2, "observedGeneration": 1}
    cur["spec"]["replicas"] = 9
    r = await api.put(f"{DEPLOYS}/web/status", json=cur)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["status"]["replicas"] == 2 and body["spec"]["replicas"] == 2


async def test_validation_names_the_field(api: TestClient) -> None:
    bad = deployment()
    del bad["spec"]["template"]["spec"]["containers"][0]["image"]
    r = await api.post(DEPLOYS, json=bad)
    assert r.status == 422
    status = await r.json()
    assert status["reason"] == "Invalid"
    fields = [c["field"] for c in status["details"]["causes"]]
    assert "spec.template.spec.containers[0].image" in fields


async def test_strict_field_validation(api: TestClient) -> None:
    bad = deployment()
    bad["spec"]["replicass"] = 3
    r = await api.post(DEPLOYS + "?fieldValidation=Strict", json=bad)
    assert r.status == 400
    assert "spec.replicass" in (await r.json())["message"]
    r = await api.post(DEPLOYS + "?fieldValidation=Warn", json=bad)
    assert r.status == 201
    assert "spec.replicass" in r.headers.get("Warning", "")


async def test_bad_requests_get_status(api: TestClient) -> None:
    r = await api.post(DEPLOYS, data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and (await r.json())["kind"] == "Status"
    r = await api.post(DEPLOYS, data=b"x", headers={"Content-Type": "text/csv"})
    assert r.status == 415
    r = await api.get("/apis/apps/v1/namespaces/default/widgets")
    assert r.status == 404 and (await r.json())["kind"] == "Status"
    r = await api.post(DEPLOYS, data=b"{" + b" " * (3 * 1024 * 1024 + 10) + b"}",
                       headers={"Content-Type": "application/json"})
    assert r.status == 413
    r = await api.post("/api/v1/namespaces/missing/configmaps", json={"metadata": {"name": "x"}})
    assert r.status == 404 and "missing" in (await r.json())["message"]


async def test_patch_flavours(api: TestClient) -> None:
    await api.post(DEPLOYS, json=deployment())
    r = await api.patch(f"{DEPLOYS}/web", data=json.dumps({"metadata": {"labels": {"tier": "fe"}}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await r.json())["metadata"]["labels"]["tier"] == "fe"
    r = await api.patch(f"{DEPLOYS}/web", data=json.dumps([{"op": "replace", "path": "/spec/replicas", "value": 5}]),
                        headers={"Content-Type": "application/json-patch+json"})
    assert r.status == 200 and (await r.json())["spec"]["replicas"] == 5
    smp = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}
    r = await api.patch(f"{DEPLOYS}/web", data=json.dumps(smp),
                        headers={"Content-Type": "application/strategic-merge-patch+json"})
    body = await r.json()
    assert r.status == 200 and body["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    assert body["metadata"]["generation"] == 3


async def test_server_side_apply_create_and_conflict(api: TestClient) -> None:
    headers = {"Content-Type": "application/apply-patch+yaml"}
    r = await api.patch(f"{DEPLOYS}/web?fieldManager=kubectl", data=json.dumps(deployment()), headers=headers)
    assert r.status == 201, await r.text()
    r = await api.patch(f"{DEPLOYS}/web?fieldManager=kubectl", data=json.dumps(deployment()), headers=headers)
    assert r.status == 200
    r = await api.patch(f"{DEPLOYS}/web?fieldManager=other", data=json.dumps(deployment(replicas=7)),
                        headers=headers)
    assert r.status == 409, await r.text()
    r = await api.patch(f"{DEPLOYS}/web?fieldManager=other&force=true", data=json.dumps(deployment(replicas=7)),
                        headers=headers)
    assert r.status == 200 and (await r.json())["spec"]["replicas"] == 7


async def test_scale_subresource(api: TestClient) -> None:
    await api.post(DEPLOYS, json=deployment())
    scale = await (await api.get(f"{DEPLOYS}/web/scale")).json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=web"
    r = await api.patch(f"{DEPLOYS}/web/scale", data=json.dumps({"spec": {"replicas": 4}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await r.json())["spec"]["replicas"] == 4
    assert (await (await api.get(f"{DEPLOYS}/web")).json())["spec"]["replicas"] == 4


async def test_finalizers_mark_then_delete(api: TestClient) -> None:
    cm = {"metadata": {"name": "c", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}}
    await api.post("/api/v1/namespaces/default/configmaps", json=cm)
    r = await api.delete("/api/v1/namespaces/default/configmaps/c")
    assert r.status == 202
    marked = await r.json()
    assert marked["metadata"]["deletionTimestamp"]
    r = await api.patch("/api/v1/namespaces/default/configmaps/c", data=json.dumps({"metadata": {"finalizers": None}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200
    assert (await api.get("/api/v1/namespaces/default/configmaps/c")).status == 404


async def test_delete_and_preconditions(api: TestClient) -> None:
    created = await (await api.post(DEPLOYS, json=deployment())).json()
    r = await api.delete(f"{DEPLOYS}/web", json={"preconditions": {"uid": "nope"}})
    assert r.status == 409
    r = await api.delete(f"{DEPLOYS}/web", json={"propagationPolicy": "Background"})
    assert r.status == 200
    assert (await r.json())["metadata"]["uid"] == created["metadata"]["uid"]
    assert (await api.get(f"{DEPLOYS}/web")).status == 404
    assert (await api.delete(f"{DEPLOYS}/web")).status == 404


async def test_list_selectors_pagination_and_table(api: TestClient) -> None:
    for i in range(5):
        cm = {"metadata": {"name": f"c{i}", "labels": {"parity": "even" if i % 2 == 0 else "odd"}}}
        assert (await api.post("/api/v1/namespaces/default/configmaps", json=cm)).status == 201
    base = "/api/v1/namespaces/default/configmaps"
    body = await (await api.get(base + "?labelSelector=parity%3Deven")).json()
    assert [i["metadata"]["name"] for i in body["items"]] == ["c0", "c2", "c4"]
    body = await (await api.get(base + "?fieldSelector=metadata.name%3Dc3")).json()
    assert [i["metadata"]["name"] for i in body["items"]] == ["c3"]
    page = await (await api.get(base + "?limit=2")).json()
    assert len(page["items"]) == 2 and page["metadata"]["continue"]
    names = [i["metadata"]["name"] for i in page["items"]]
    while page["metadata"].get("continue"):
        page = await (await api.get(base + f"?limit=2&continue={page['metadata']['continue']}")).json()
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == ["c0", "c1", "c2", "c3", "c4"]
    r = await api.get(base, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    table = await r.json()
    assert table["kind"] == "Table" and len(table["rows"]) == 5
    assert table["columnDefinitions"][0]["name"] == "Name"
    assert table["rows"][0]["object"]["metadata"]["name"] == "c0"
    r = await api.get(base + "?fieldSelector=spec.bogus%3Dx")
    assert r.status == 400


async def test_binding(api: TestClient) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert (await api.post("/api/v1/namespaces/default/pods", json=pod)).status == 201
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"}, "target": {"name": "node-1"}}
    r = await api.post("/api/v1/namespaces/default/pods/p/binding", json=binding)
    assert r.status == 201, await r.text()
    got = await (await api.get("/api/v1/namespaces/default/pods/p")).json()
    assert got["spec"]["nodeName"] == "node-1"
    r = await api.post("/api/v1/namespaces/default/pods/p/binding", json=binding)
    assert r.status == 409


async def test_namespace_deletion_waits_for_finalize(api: TestClient) -> None:
    assert (await api.post(NS, json={"metadata": {"name": "gone"}})).status == 201
    await api.post("/api/v1/namespaces/gone/configmaps", json={"metadata": {"name": "c"}})
    r = await api.delete(f"{NS}/gone")
    assert r.status == 202
    marked = await r.json()
    assert marked["status"]["phase"] == "Terminating" and marked["spec"]["finalizers"] == ["kubernetes"]
    r = await api.post("/api/v1/namespaces/gone/configmaps", json={"metadata": {"name": "d"}})
    assert r.status == 403 and (await r.json())["reason"] == "Forbidden"
    # Ordinary writes neither change spec.finalizers nor let the namespace go early.
    r = await api.patch(f"{NS}/gone", data=json.dumps({"metadata": {"labels": {"x": "y"}}, "spec": {"finalizers": []}}),
                        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200 and (await r.json())["spec"]["finalizers"] == ["kubernetes"]
    assert (await api.get(f"{NS}/gone")).status == 200
    cur = await (await api.get(f"{NS}/gone")).json()
    cur["spec"]["finalizers"] = []
    r = await api.put(f"{NS}/gone/finalize", json=cur)
    assert r.status == 200, await r.text()
    assert (await api.get(f"{NS}/gone")).status == 404


async def test_pods_tolerate_node_problems_for_300_seconds(api: TestClient) -> None:
    pod = {"metadata": {"name": "t"}, "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                              "tolerations": [{"key": "node.kubernetes.io/unreachable",
                                                               "operator": "Exists", "effect": "NoExecute",
                                                               "tolerationSeconds": 5}]}}
    created = await (await api.post("/api/v1/namespaces/default/pods", json=pod)).json()
    tolerations = {t["key"]: t for t in created["spec"]["tolerations"]}
    assert tolerations["node.kubernetes.io/unreachable"]["tolerationSeconds"] == 5
    assert tolerations["node.kubernetes.io/not-ready"] == {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                                          "effect": "NoExecute", "tolerationSeconds": 300}


SVCS = "/api/v1/namespaces/default/services"


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


async def test_service_cluster_ips_and_node_ports(api: TestClient) -> None:
    a = await (await api.post(SVCS, json=service("a"))).json()
    b = await (await api.post(SVCS, json=service("b"))).json()
    assert a["spec"]["clusterIP"].startswith("10.") and a["spec"]["clusterIPs"] == [a["spec"]["clusterIP"]]
    assert a["spec"]["clusterIP"] != b["spec"]["clusterIP"]
    r = await api.post(SVCS, json=service("c", clusterIP=a["spec"]["clusterIP"]))
    assert r.status == 422 and "already allocated" in (await r.json())["message"]
    r = await api.post(SVCS, json=service("d", clusterIP="192.168.0.1"))
    assert r.status == 422 and "not in the valid range" in (await r.json())["message"]
    headless = await (await api.post(SVCS, json=service("h", clusterIP="None"))).json()
    assert headless["spec"]["clusterIP"] == "None"
    np = await (await api.post(SVCS, json=service("np", type="NodePort"))).json()
    port = np["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    r = await api.post(SVCS, json={**service("np2", type="NodePort"),
                                   "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}})
    assert r.status == 422 and "already allocated" in (await r.json())["message"]
    # A replace without clusterIP keeps it; deleting frees the address for others.
    ip = a["spec"].pop("clusterIP")
    a["spec"].pop("clusterIPs")
    a["metadata"]["labels"] = {"changed": "yes"}
    kept = await (await api.put(f"{SVCS}/a", json=a)).json()
    assert kept["spec"]["clusterIP"] == ip and kept["metadata"]["labels"] == {"changed": "yes"}
    assert (await api.delete(f"{SVCS}/a")).status == 200
    r = await api.post(SVCS, json=service("again", clusterIP=ip))
    assert r.status == 201, await r.text()
    assert (await api.delete(f"{SVCS}/np")).status == 200
    r = await api.post(SVCS, json={**service("np3"),
                                   "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}})
    assert r.status == 201, await r.text()


async def test_new_pods_are_pending_with_their_qos_class(api: TestClient) -> None:
    pods = "/api/v1/namespaces/default/pods"
    best = {"metadata": {"name": "best"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"}}
    got = await (await api.post(pods, json=best)).json()
    assert got["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    limits = {"cpu": "100m", "memory": "64Mi"}
    guaranteed = {"metadata": {"name": "guaranteed"}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "resources": {"limits": limits, "requests": limits}}]}}
    got = await (await api.post(pods, json=guaranteed)).json()
    assert got["status"]["qosClass"] == "Guaranteed"


async def test_a_body_sent_in_pieces_is_read_whole(api: TestClient) -> None:
    async def body() -> Any:
        yield b'{"metadata": {"name": "slow"}, "data": {"a": "'
        await asyncio.sleep(0.2)
        yield b'b"}}'

    r = await api.post("/api/v1/namespaces/default/configmaps", data=body(),
                       headers={"Content-Type": "application/json"})
    assert r.status == 201, await r.text()
    assert (await r.json())["data"] == {"a": "b"}


async def test_forced_deletion_of_a_running_pod_says_grace_zero(api: TestClient) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {"metadata": {"name": "bound"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}
    created = await (await api.post(pods, json=pod)).json()
    rv = created["metadata"]["resourceVersion"]
    watch = await api.get(f"{pods}?watch=true&resourceVersion={rv}")
    r = await api.delete(f"{pods}/bound?gracePeriodSeconds=0")
    assert r.status == 200
    events = []
    async with asyncio.timeout(5):
        while len(events) < 2:
            events.append(json.loads(await watch.content.readline()))
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[1]["object"]["metadata"]["deletionGracePeriodSeconds"] == 0
    watch.close()
