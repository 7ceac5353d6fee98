"""The Service environment variables (pkg/kubelet/envvars) and how they meet the container's own."""

from __future__ import annotations

from typing import Any

from kubelite.kubelet.envvars import PodContext, make_environment
from kubelite.kubelet.serviceenv import service_env, service_variables

Obj = dict[str, Any]


def svc(name: str, ns: str, ip: str, *ports: Obj) -> Obj:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": list(ports)}}


def test_variables_of_one_service() -> None:
    s = svc("redis-main", "prod", "10.43.0.7", {"name": "redis", "port": 6379, "protocol": "TCP"},
            {"name": "metrics", "port": 9121, "protocol": "UDP"})
    assert service_variables(s) == {
        "REDIS_MAIN_SERVICE_HOST": "10.43.0.7",
        "REDIS_MAIN_SERVICE_PORT": "6379",
        "REDIS_MAIN_SERVICE_PORT_REDIS": "6379",
        "REDIS_MAIN_SERVICE_PORT_METRICS": "9121",
        "REDIS_MAIN_PORT": "tcp://10.43.0.7:6379",
        "REDIS_MAIN_PORT_6379_TCP": "tcp://10.43.0.7:6379",
        "REDIS_MAIN_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MAIN_PORT_6379_TCP_PORT": "6379",
        "REDIS_MAIN_PORT_6379_TCP_ADDR": "10.43.0.7",
        "REDIS_MAIN_PORT_9121_UDP": "udp://10.43.0.7:9121",
        "REDIS_MAIN_PORT_9121_UDP_PROTO": "udp",
        "REDIS_MAIN_PORT_9121_UDP_PORT": "9121",
        "REDIS_MAIN_PORT_9121_UDP_ADDR": "10.43.0.7",
    }


SERVICES = [svc("kubernetes", "default", "10.43.0.1", {"name": "https", "port": 443}),
            svc("db", "prod", "10.43.0.9", {"port": 5432}),
            svc("other", "dev", "10.43.0.10", {"port": 80}),
            svc("headless", "prod", "None", {"port": 80}),
            svc("db", "default", "10.43.0.11", {"port": 5432})]


def test_which_services_count() -> None:
    env = service_env(SERVICES, "prod", True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1" and env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["DB_SERVICE_HOST"] == "10.43.0.9"
    assert not any(k.startswith(("OTHER_", "HEADLESS_")) for k in env)
    without_links = service_env(SERVICES, "prod", False)
    assert set(without_links) == {k for k in env if k.startswith("KUBERNETES_")}


def test_service_variables_expand_and_yield_to_the_containers_own() -> None:
    pod = {"metadata": {"name": "p", "namespace": "prod"}, "spec": {}}
    ctr = {"env": [{"name": "DSN", "value": "postgres://$(DB_SERVICE_HOST):$(DB_SERVICE_PORT)"},
                   {"name": "DB_SERVICE_PORT", "value": "6543"}]}
    got = make_environment(pod, ctr, configmaps=lambda ns, n: None, secrets=lambda ns, n: None,
                           context=PodContext(), service_env=service_env(SERVICES, "prod", True)).variables
    assert got["DSN"] == "postgres://10.43.0.9:5432"
    assert got["DB_SERVICE_PORT"] == "6543" and got["DB_SERVICE_HOST"] == "10.43.0.9"
    assert list(got)[:2] == ["DSN", "DB_SERVICE_PORT"]  # the container's own come first
