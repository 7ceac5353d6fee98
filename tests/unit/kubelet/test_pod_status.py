"""Pod status from runtime state: phase, conditions, container statuses (generateAPIPodStatus)."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.kubelet.status import StatusInputs, get_phase, pod_status
from tests.unit.kubelet.podstates import created, exited, pod, running, sandbox, state

Obj = dict[str, Any]
NOW = "2024-05-01T10:00:00Z"


def status_of(p: Obj, st: Any, **inputs: Any) -> Obj:
    return pod_status(p, StatusInputs(state=st, host_ips=["192.168.1.2"], now=NOW, **inputs))


def conditions(status: Obj) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_nothing_yet_is_pending_and_container_creating() -> None:
    s = status_of(pod(), state(sandboxes=()))
    assert s["phase"] == "Pending"
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}} and cs["ready"] is False
    assert cs["lastState"] == {} and cs["restartCount"] == 0 and cs["image"] == "busybox"
    assert conditions(s) == {"PodReadyToStartContainers": "False", "Initialized": "True", "Ready": "False",
                             "ContainersReady": "False", "PodScheduled": "True"}
    ready = next(c for c in s["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady" and ready["message"] == "containers with unready status: [app]"
    assert s["hostIP"] == "192.168.1.2" and s["hostIPs"] == [{"ip": "192.168.1.2"}]
    assert "podIP" not in s and s["startTime"] == NOW and s["qosClass"] == "BestEffort"


def test_running_and_ready() -> None:
    s = status_of(pod(), state(running("app", "c1")))
    assert s["phase"] == "Running"
    cs = s["containerStatuses"][0]
    assert cs["ready"] is True and cs["started"] is True
    assert cs["containerID"] == "kubelite://c1" and cs["imageID"] == "sha256:abc"
    assert cs["state"]["running"]["startedAt"] == "2023-11-14T22:13:21Z"
    assert all(v == "True" for v in conditions(s).values())
    assert s["podIP"] == "10.1.0.5" and s["podIPs"] == [{"ip": "10.1.0.5"}]


def test_readiness_and_startup_results_decide_ready_and_started() -> None:
    p = pod({"name": "app", "image": "busybox", "readinessProbe": {"exec": {}}, "startupProbe": {"exec": {}}})
    st = state(running("app", "c1"))
    s = status_of(p, st)
    assert s["containerStatuses"][0]["started"] is False and s["containerStatuses"][0]["ready"] is False
    s = status_of(p, st, started={"c1": True})
    assert s["containerStatuses"][0]["started"] is True and s["containerStatuses"][0]["ready"] is False
    s = status_of(p, st, started={"c1": True}, readiness={"c1": True})
    assert s["containerStatuses"][0]["ready"] is True and conditions(s)["Ready"] == "True"


def test_crash_loop_shows_the_reason_and_the_last_termination() -> None:
    st = state(exited("app", "c2", 1, at=2e9, restarts=3), exited("app", "c1", 1, restarts=2))
    s = status_of(pod(), st, reasons={"app": ("CrashLoopBackOff", "back-off 40s restarting failed container=app")})
    cs = s["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": "back-off 40s restarting failed container=app"}}
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["lastState"]["terminated"]["containerID"] == "kubelite://c2"
    assert cs["restartCount"] == 3
    assert s["phase"] == "Running"


def test_oom_killed_reason_and_termination_message_come_through() -> None:
    st = state(exited("app", "c1", 137, reason="OOMKilled", message="out of memory"))
    s = status_of(pod(policy="Never"), st)
    term = s["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "OOMKilled" and term["message"] == "out of memory" and term["exitCode"] == 137
    assert s["phase"] == "Failed"
    assert next(c for c in s["conditions"] if c["type"] == "Ready")["reason"] == "PodFailed"


@pytest.mark.parametrize(("policy", "codes", "phase"), [
    pytest.param("Never", (0, 0), "Succeeded", id="never-all-ok"),
    pytest.param("Never", (0, 1), "Failed", id="never-one-failed"),
    pytest.param("OnFailure", (0, 0), "Succeeded", id="onfailure-ok"),
    pytest.param("OnFailure", (0, 1), "Running", id="onfailure-restarting"),
    pytest.param("Always", (0, 0), "Running", id="always-restarting"),
])
def test_phase_when_all_containers_stopped(policy: str, codes: tuple[int, int], phase: str) -> None:
    p = pod({"name": "a", "image": "x"}, {"name": "b", "image": "x"}, policy=policy)
    st = state(exited("a", "c1", codes[0]), exited("b", "c2", codes[1]))
    assert status_of(p, st)["phase"] == phase


def test_terminal_pod_is_succeeded_or_failed_whatever_the_policy() -> None:
    p = pod(policy="Always", deleting=True)
    assert status_of(p, state(exited("app", "c1", 0)), pod_is_terminal=True)["phase"] == "Succeeded"
    assert status_of(p, state(exited("app", "c1", 143)), pod_is_terminal=True)["phase"] == "Failed"


def test_a_terminal_phase_is_never_left() -> None:
    p = pod(status={"phase": "Succeeded", "reason": "Done"})
    s = status_of(p, state(running("app", "c1")))
    assert s["phase"] == "Succeeded" and s["reason"] == "Done"


def test_init_containers() -> None:
    init = ({"name": "i1", "image": "x"}, {"name": "i2", "image": "x"})
    p = pod(inits=init)
    s = status_of(p, state(exited("i1", "c1", 0), running("i2", "c2", at=2e9)))
    assert s["phase"] == "Pending"
    assert [i["name"] for i in s["initContainerStatuses"]] == ["i1", "i2"]
    assert s["initContainerStatuses"][0]["ready"] is True and s["initContainerStatuses"][1]["ready"] is False
    assert s["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    init_cond = next(c for c in s["conditions"] if c["type"] == "Initialized")
    assert init_cond["status"] == "False" and init_cond["reason"] == "ContainersNotInitialized"
    assert init_cond["message"] == "containers with incomplete status: [i2]"

    s = status_of(p, state(exited("i1", "c1", 0), exited("i2", "c2", 0, at=2e9), running("app", "c3", at=3e9)))
    assert s["phase"] == "Running" and conditions(s)["Initialized"] == "True"


def test_failed_init_container_under_never_fails_the_pod() -> None:
    p = pod(inits=({"name": "i1", "image": "x"},), policy="Never")
    assert status_of(p, state(exited("i1", "c1", 2)))["phase"] == "Failed"
    p = pod(inits=({"name": "i1", "image": "x"},), policy="Always")
    assert status_of(p, state(exited("i1", "c1", 2)))["phase"] == "Pending"


def test_created_container_waits() -> None:
    s = status_of(pod(), state(created("app", "c1")))
    assert s["containerStatuses"][0]["state"] == {"waiting": {}}
    assert s["phase"] == "Pending"


def test_condition_transition_times_are_kept_while_unchanged() -> None:
    first = status_of(pod(), state(running("app", "c1")))
    again = pod_status(pod(status=first), StatusInputs(state=state(running("app", "c1")), host_ips=["192.168.1.2"],
                                                        now="2024-05-01T11:00:00Z"))
    assert again["conditions"] == first["conditions"]
    assert again["startTime"] == NOW
    changed = pod_status(pod(status=first), StatusInputs(state=state(exited("app", "c1", 1)),
                                                         now="2024-05-01T11:00:00Z"))
    ready = next(c for c in changed["conditions"] if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == "2024-05-01T11:00:00Z"


def test_conditions_of_others_are_kept_and_ips_survive_the_sandbox() -> None:
    old = {"conditions": [{"type": "DisruptionTarget", "status": "True"}], "podIP": "10.1.0.9",
           "podIPs": [{"ip": "10.1.0.9"}]}
    s = status_of(pod(status=old), state(exited("app", "c1", 0), sandboxes=(sandbox(ready=False),)))
    assert s["conditions"][0]["type"] == "DisruptionTarget"
    assert s["podIP"] == "10.1.0.9"


def test_host_network_pods_have_the_host_ip() -> None:
    s = status_of(pod(hostNetwork=True), state(running("app", "c1"), sandboxes=(sandbox(ips=()),)))
    assert s["podIP"] == "192.168.1.2"


def test_container_statuses_are_sorted_by_name() -> None:
    p = pod({"name": "zeta", "image": "x"}, {"name": "alpha", "image": "x"})
    assert [c["name"] for c in status_of(p, state())["containerStatuses"]] == ["alpha", "zeta"]


def test_qos_class() -> None:
    guaranteed = {"name": "app", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"},
                                                             "requests": {"cpu": "1", "memory": "1Gi"}}}
    burstable = {"name": "app", "image": "x", "resources": {"requests": {"cpu": "100m"}}}
    assert status_of(pod(guaranteed), state())["qosClass"] == "Guaranteed"
    assert status_of(pod(burstable), state())["qosClass"] == "Burstable"


def test_get_phase_counts_unknown_containers_as_pending() -> None:
    assert get_phase(pod(), [], [], False) == "Pending"
