from __future__ import annotations

from dataclasses import replace

from kubelite.scheduler.cache import Cache
from kubelite.scheduler.nodeinfo import PodInfo

from .helpers import node, pod


def _assumed(name: str, node_name: str, cpu: str = "1") -> PodInfo:
    info = PodInfo.of(pod(name, cpu=cpu))
    return replace(info, pod={**info.pod, "spec": {**info.pod["spec"], "nodeName": node_name}}, node_name=node_name)


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_assume_counts_then_forget_gives_back() -> None:
    cache = Cache()
    cache.add_node(node("a", cpu="2"))
    info = _assumed("p", "a")
    cache.assume_pod(info)
    a = cache.nodes.get("a")
    assert a is not None and a.requested.milli_cpu == 1000 and cache.is_assumed(info.pod)
    cache.forget_pod(info.pod)
    assert a.requested.milli_cpu == 0 and not cache.has_pod(info.pod)


def test_informer_confirms_an_assumed_pod_once() -> None:
    cache = Cache()
    cache.add_node(node("a", cpu="2"))
    info = _assumed("p", "a")
    cache.assume_pod(info)
    cache.finish_binding(info.pod)
    cache.add_pod(info.pod)  # the bound pod, seen by the informer
    a = cache.nodes.get("a")
    assert a is not None and a.requested.milli_cpu == 1000 and len(a.pods) == 1
    assert not cache.is_assumed(info.pod)
    cache.forget_pod(info.pod)  # too late to forget: the informer owns it
    assert a.requested.milli_cpu == 1000


def test_confirmation_on_another_node_moves_the_pod() -> None:
    cache = Cache()
    cache.add_node(node("a"))
    cache.add_node(node("b"))
    info = _assumed("p", "a")
    cache.assume_pod(info)
    cache.add_pod({**info.pod, "spec": {**info.pod["spec"], "nodeName": "b"}})
    a, b = cache.nodes.get("a"), cache.nodes.get("b")
    assert a is not None and b is not None and not a.pods and len(b.pods) == 1


def test_assumed_pods_expire_after_the_binding_finished() -> None:
    clock = Clock()
    cache = Cache(ttl=30, clock=clock)
    cache.add_node(node("a"))
    info = _assumed("p", "a")
    cache.assume_pod(info)
    clock.now = 100
    assert cache.cleanup_expired() == []  # the binding has not finished: never expires
    cache.finish_binding(info.pod)
    clock.now = 129
    assert cache.cleanup_expired() == []
    clock.now = 131
    assert [p["metadata"]["name"] for p in cache.cleanup_expired()] == ["p"]
    assert not cache.has_pod(info.pod)


def test_pods_on_an_unknown_node_wait_for_it_and_nodes_keep_their_pods() -> None:
    cache = Cache()
    cache.add_pod(pod("p", cpu="1", node_name="later"))
    assert len(cache.nodes) == 0  # a NodeInfo without a Node is never offered
    cache.add_node(node("later", cpu="4"))
    later = cache.nodes.get("later")
    assert later is not None and later.requested.milli_cpu == 1000
    assert cache.nodes.free_cpu.get(later.slot) == 3000
    cache.remove_node(node("later"))
    assert len(cache.nodes) == 0 and cache.nodes.get("later") is not None
    cache.remove_pod(pod("p", node_name="later"))
    assert cache.nodes.get("later") is None


def test_node_updates_reindex_labels_and_taints() -> None:
    cache = Cache()
    cache.add_node(node("a", labels={"zone": "z1"}))
    cache.update_node(node("a", labels={"zone": "z2"}, taints=[{"key": "k", "effect": "NoSchedule"}]))
    nodes = cache.nodes
    assert nodes.label_mask("zone", "z1") == 0 and nodes.label_mask("zone", "z2") != 0
    assert list(nodes.taint_groups) == [(("k", "", "NoSchedule"),)]
