"""The node lifecycle controller's pure decisions: heartbeats seen on our clock, Unknown conditions for a silent
node, taints from conditions, tolerations and when a pod must be evicted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubelite.controllers.nodelifecycle import (
    DISRUPTION_TARGET,
    NodeHealth,
    desired_taints,
    no_execute_taints,
    not_ready_status,
    observe_health,
    plan_eviction,
    plan_health,
    reconciled_taints,
    silent_conditions,
    tolerates,
    with_condition,
)

Obj = dict[str, Any]
NOW = "2025-01-01T00:10:00Z"
HB1 = "2025-01-01T00:00:00Z"
HB2 = "2025-01-01T00:00:10Z"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def cond(ctype: str, status: str, heartbeat: str = HB1) -> Obj:
    return {"type": ctype, "status": status, "reason": "KubeletReady", "message": "ok",
            "lastHeartbeatTime": heartbeat, "lastTransitionTime": HB1}


def node(*conditions: Obj, taints: list[Obj] | None = None, unschedulable: bool = False) -> Obj:
    spec: Obj = {}
    if taints is not None:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": "n1", "creationTimestamp": "2024-12-31T00:00:00Z", "resourceVersion": "5"},
            "spec": spec, "status": {"conditions": list(conditions)}}


def healthy(heartbeat: str = HB1) -> Obj:
    return node(cond("Ready", "True", heartbeat), cond("MemoryPressure", "False", heartbeat),
                cond("DiskPressure", "False", heartbeat), cond("PIDPressure", "False", heartbeat))


def lease(renew: str | None) -> Obj:
    return {"spec": {"holderIdentity": "n1", "renewTime": renew}}


# --- observing heartbeats ---------------------------------------------------------------------------

def test_first_sight_starts_the_clock() -> None:
    h = observe_health(None, healthy(), lease("2025-01-01T00:00:01.000000Z"), now=100.0)
    assert h.probe_time == 100.0 and h.heartbeat == HB1
    assert h.lease_renew == datetime(2025, 1, 1, 0, 0, 1, tzinfo=UTC)


def test_nothing_new_keeps_the_probe_time() -> None:
    first = observe_health(None, healthy(), lease("2025-01-01T00:00:01.000000Z"), now=100.0)
    assert observe_health(first, healthy(), lease("2025-01-01T00:00:01.000000Z"), now=150.0).probe_time == 100.0


@pytest.mark.parametrize(("node_obj", "renew"), [
    pytest.param(healthy(), "2025-01-01T00:00:11.000000Z", id="lease-renewed"),
    pytest.param(healthy(HB2), "2025-01-01T00:00:01.000000Z", id="status-heartbeat"),
])
def test_a_new_heartbeat_moves_the_probe_time(node_obj: Obj, renew: str) -> None:
    first = observe_health(None, healthy(), lease("2025-01-01T00:00:01.000000Z"), now=100.0)
    assert observe_health(first, node_obj, lease(renew), now=150.0).probe_time == 150.0


def test_a_lease_going_back_in_time_is_not_a_heartbeat() -> None:
    first = observe_health(None, healthy(), lease("2025-01-01T00:00:05.000000Z"), now=100.0)
    later = observe_health(first, healthy(), lease("2025-01-01T00:00:01.000000Z"), now=150.0)
    assert later.probe_time == 100.0 and later.lease_renew == first.lease_renew


def test_no_lease_and_no_conditions() -> None:
    h = observe_health(None, node(), None, now=1.0)
    assert h == NodeHealth(1.0, None, None)


# --- a silent node ----------------------------------------------------------------------------------

def test_within_grace_nothing_happens() -> None:
    assert plan_health(healthy(), NodeHealth(100.0), now=139.0, grace=40.0, now_text=NOW).conditions is None


def test_a_silent_ready_node_becomes_unknown() -> None:
    plan = plan_health(healthy(), NodeHealth(100.0), now=141.0, grace=40.0, now_text=NOW)
    assert plan.became_not_ready
    assert plan.conditions is not None
    by_type = {c["type"]: c for c in plan.conditions}
    for ctype in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        c = by_type[ctype]
        assert (c["status"], c["reason"], c["message"]) == \
            ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert c["lastTransitionTime"] == NOW and c["lastHeartbeatTime"] == HB1  # the kubelet's, untouched


def test_network_unavailable_is_left_alone() -> None:
    n = node(cond("Ready", "True"), cond("NetworkUnavailable", "False"))
    conditions = silent_conditions(n, now=NOW)
    assert conditions is not None
    assert next(c for c in conditions if c["type"] == "NetworkUnavailable")["status"] == "False"


def test_conditions_never_posted_are_added() -> None:
    conditions = silent_conditions(node(), now=NOW)
    assert conditions is not None and len(conditions) == 4
    ready = conditions[0]
    assert ready == {"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                     "message": "Kubelet never posted node status.",
                     "lastHeartbeatTime": "2024-12-31T00:00:00Z", "lastTransitionTime": NOW}


def test_already_unknown_is_not_written_again() -> None:
    unknown = node(*(cond(t, "Unknown") for t in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")))
    plan = plan_health(unknown, NodeHealth(0.0), now=1000.0, grace=40.0, now_text=NOW)
    assert plan.conditions is None and not plan.became_not_ready


def test_a_not_ready_node_going_silent_is_no_new_transition() -> None:
    plan = plan_health(node(cond("Ready", "False")), NodeHealth(0.0), now=1000.0, grace=40.0, now_text=NOW)
    assert plan.conditions is not None and not plan.became_not_ready


# --- taints -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("conditions", "unschedulable", "want"), [
    pytest.param([cond("Ready", "True")], False, set(), id="ready"),
    pytest.param([cond("Ready", "Unknown")], False,
                 {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")},
                 id="unknown"),
    pytest.param([cond("Ready", "False")], False,
                 {("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")},
                 id="not-ready"),
    pytest.param([cond("Ready", "True"), cond("MemoryPressure", "True"), cond("DiskPressure", "True"),
                  cond("PIDPressure", "True"), cond("NetworkUnavailable", "True")], False,
                 {("node.kubernetes.io/memory-pressure", "NoSchedule"),
                  ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                  ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                  ("node.kubernetes.io/network-unavailable", "NoSchedule")},
                 id="pressure"),
    pytest.param([cond("Ready", "True")], True, {("node.kubernetes.io/unschedulable", "NoSchedule")},
                 id="cordoned"),
    pytest.param([], False, set(), id="no-conditions"),
])
def test_desired_taints(conditions: list[Obj], unschedulable: bool, want: set[tuple[str, str]]) -> None:
    assert desired_taints(node(*conditions, unschedulable=unschedulable)) == want


def test_taints_are_added_with_time_for_no_execute() -> None:
    taints = reconciled_taints(node(cond("Ready", "Unknown")), now=NOW)
    assert taints == [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": NOW},
                      {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]


def test_other_taints_are_kept_and_stale_managed_ones_removed() -> None:
    user = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    user_exec = {"key": "node.kubernetes.io/unreachable", "effect": "PreferNoSchedule"}  # not a managed pair
    old = [user, {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": HB1},
           {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}, user_exec]
    assert reconciled_taints(node(cond("Ready", "True"), taints=old), now=NOW) == [user, user_exec]


def test_unreachable_turns_into_not_ready() -> None:
    old = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": HB1},
           {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    taints = reconciled_taints(node(cond("Ready", "False"), taints=old), now=NOW)
    assert taints == [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": NOW},
                      {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]


def test_taints_in_place_are_not_rewritten() -> None:
    old = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": HB1},
           {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    assert reconciled_taints(node(cond("Ready", "Unknown"), taints=old), now=NOW) is None
    assert reconciled_taints(node(cond("Ready", "True")), now=NOW) is None


def test_no_execute_taints() -> None:
    n = node(taints=[{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}])
    assert no_execute_taints(n) == [{"key": "b", "effect": "NoExecute"}]
    assert no_execute_taints(None) == []


# --- tolerations and eviction -----------------------------------------------------------------------

UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2025-01-01T00:00:00Z"}


@pytest.mark.parametrize(("toleration", "taint", "want"), [
    pytest.param({"key": "k", "operator": "Exists"}, {"key": "k", "effect": "NoExecute"}, True, id="exists"),
    pytest.param({"operator": "Exists"}, {"key": "any", "effect": "NoSchedule"}, True, id="exists-everything"),
    pytest.param({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True,
                 id="equal-by-default"),
    pytest.param({"key": "k", "operator": "Equal", "value": "v"}, {"key": "k", "value": "w", "effect": "NoExecute"},
                 False, id="other-value"),
    pytest.param({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"},
                 False, id="other-effect"),
    pytest.param({"key": "j", "operator": "Exists"}, {"key": "k", "effect": "NoExecute"}, False, id="other-key"),
    pytest.param({"key": "k", "operator": "Gt"}, {"key": "k", "effect": "NoExecute"}, False, id="unknown-operator"),
])
def test_tolerates(toleration: Obj, taint: Obj, want: bool) -> None:
    assert tolerates(toleration, taint) is want


def pod(*tolerations: Obj) -> Obj:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"tolerations": list(tolerations)}}


def test_no_taints_no_eviction() -> None:
    assert plan_eviction(pod(), [], now=T0, noticed=T0) is None


def test_an_untolerated_taint_evicts_at_once() -> None:
    later = T0 + timedelta(hours=1)
    assert plan_eviction(pod(), [UNREACHABLE], now=later, noticed=later) == later


def test_toleration_seconds_count_from_the_taint() -> None:
    p = pod({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 300})
    assert plan_eviction(p, [UNREACHABLE], now=T0 + timedelta(seconds=10), noticed=T0) == T0 + timedelta(seconds=300)


def test_a_taint_without_time_counts_from_when_it_was_noticed() -> None:
    p = pod({"operator": "Exists", "tolerationSeconds": 5})
    noticed = T0 + timedelta(seconds=7)
    assert plan_eviction(p, [{"key": "x", "effect": "NoExecute"}], now=T0, noticed=noticed) == \
        noticed + timedelta(seconds=5)


def test_forever_tolerated() -> None:
    assert plan_eviction(pod({"operator": "Exists"}), [UNREACHABLE], now=T0, noticed=T0) is None


def test_zero_or_negative_seconds_evict_at_once() -> None:
    p = pod({"operator": "Exists", "tolerationSeconds": 0})
    assert plan_eviction(p, [UNREACHABLE], now=T0, noticed=T0) == T0


def test_the_earliest_toleration_wins_and_forever_ones_do_not_count() -> None:
    other = {"key": "maintenance", "effect": "NoExecute", "timeAdded": "2025-01-01T00:01:00Z"}
    p = pod({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300},
            {"key": "maintenance", "operator": "Exists", "tolerationSeconds": 30},
            {"operator": "Exists"})
    assert plan_eviction(p, [UNREACHABLE, other], now=T0, noticed=T0) == T0 + timedelta(seconds=90)


def test_one_untolerated_taint_among_tolerated_ones_evicts() -> None:
    p = pod({"key": "node.kubernetes.io/unreachable", "operator": "Exists"})
    assert plan_eviction(p, [UNREACHABLE, {"key": "x", "effect": "NoExecute"}], now=T0, noticed=T0) == T0


# --- pod status -------------------------------------------------------------------------------------

def running_pod(ready: str = "True") -> Obj:
    return {"metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": ready, "lastTransitionTime": HB1},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": HB1}]}}


def test_not_ready_status_turns_ready_false_only() -> None:
    p = running_pod()
    status = not_ready_status(p, now=NOW)
    assert status is not None
    assert status["conditions"][0] == {"type": "Ready", "status": "False", "lastTransitionTime": NOW}
    assert status["conditions"][1]["status"] == "True"
    assert p["status"]["conditions"][0]["status"] == "True"  # the cached object is not touched


def test_not_ready_status_when_nothing_to_do() -> None:
    assert not_ready_status(running_pod("False"), now=NOW) is None
    assert not_ready_status({"status": {"phase": "Pending"}}, now=NOW) is None


def test_disruption_target_is_added_once() -> None:
    status = with_condition({"phase": "Running"}, DISRUPTION_TARGET, now=NOW)
    assert status is not None
    assert status["conditions"] == [{**DISRUPTION_TARGET, "lastProbeTime": None, "lastTransitionTime": NOW}]
    assert with_condition(status, DISRUPTION_TARGET, now="later") is None
