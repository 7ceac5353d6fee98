"""What a sync does to sandboxes and containers (computePodActions), decided without I/O."""

from __future__ import annotations

from kubelite.kubelet.plan import Kill, plan_pod
from tests.unit.kubelet.podstates import T0, created, exited, pod, running, sandbox, state

APP = {"name": "app", "image": "busybox"}
SIDE = {"name": "side", "image": "busybox"}
I1 = {"name": "i1", "image": "busybox"}
I2 = {"name": "i2", "image": "busybox"}


def names(specs: list[dict[str, str]]) -> list[str]:
    return [s["name"] for s in specs]


def test_a_new_pod_gets_a_sandbox_and_its_containers() -> None:
    a = plan_pod(pod(APP, SIDE), state(sandboxes=()))
    assert a.create_sandbox and a.sandbox_attempt == 0 and not a.kill_pod
    assert names(a.start) == ["app", "side"]


def test_a_new_pod_with_init_containers_starts_the_first_one() -> None:
    a = plan_pod(pod(APP, inits=(I1, I2)), state(sandboxes=()))
    assert a.create_sandbox and a.next_init == I1 and not a.start


def test_a_dead_sandbox_is_replaced() -> None:
    st = state(exited("app", "c1", 137), sandboxes=(sandbox(ready=False, attempt=2),))
    a = plan_pod(pod(APP), st)
    assert a.create_sandbox and a.sandbox_attempt == 3 and names(a.start) == ["app"]


def test_a_sandbox_without_ip_is_replaced_unless_host_network() -> None:
    st = state(running("app", "c1"), sandboxes=(sandbox(ips=()),))
    assert plan_pod(pod(APP), st).create_sandbox
    assert not plan_pod(pod(APP, hostNetwork=True), st).create_sandbox


def test_never_pods_that_ran_get_no_second_sandbox() -> None:
    st = state(exited("app", "c1", 0), sandboxes=(sandbox(ready=False),))
    a = plan_pod(pod(APP, policy="Never"), st)
    assert not a.create_sandbox and not a.start


def test_on_failure_does_not_rerun_succeeded_containers_in_a_new_sandbox() -> None:
    st = state(exited("app", "c1", 0), exited("side", "c2", 1), sandboxes=(sandbox(ready=False),))
    a = plan_pod(pod(APP, SIDE, policy="OnFailure"), st)
    assert a.create_sandbox and names(a.start) == ["side"]


def test_running_containers_are_kept() -> None:
    a = plan_pod(pod(APP), state(running("app", "c1", spec=APP)))
    assert not a.changes_anything


def test_exited_containers_restart_per_policy() -> None:
    st = state(exited("app", "c1", 0), running("side", "c2"))
    assert names(plan_pod(pod(APP, SIDE, policy="Always"), st).start) == ["app"]
    assert names(plan_pod(pod(APP, SIDE, policy="OnFailure"), st).start) == []
    st = state(exited("app", "c1", 1), running("side", "c2"))
    assert names(plan_pod(pod(APP, SIDE, policy="OnFailure"), st).start) == ["app"]
    assert names(plan_pod(pod(APP, SIDE, policy="Never"), st).start) == []


def test_a_created_but_never_started_container_is_replaced() -> None:
    a = plan_pod(pod(APP), state(created("app", "c1")))
    assert names(a.start) == ["app"] and "c1" not in a.remove  # its successor's start removes it


def test_liveness_failure_kills_and_restarts() -> None:
    st = state(running("app", "c1"))
    a = plan_pod(pod(APP), st, liveness_failed={"c1"})
    assert a.kill == [Kill("c1", "app", "Container app failed liveness probe, will be restarted")]
    assert names(a.start) == ["app"]
    a = plan_pod(pod(APP, policy="Never"), st, liveness_failed={"c1"})
    assert a.kill == [Kill("c1", "app", "Container app failed liveness probe")] and not a.start


def test_startup_failure_kills_and_restarts() -> None:
    a = plan_pod(pod(APP), state(running("app", "c1")), startup_failed={"c1"})
    assert a.kill[0].message == "Container app failed startup probe, will be restarted"


def test_a_changed_spec_restarts_the_container() -> None:
    old = {"name": "app", "image": "busybox:1"}
    a = plan_pod(pod({"name": "app", "image": "busybox:2"}), state(running("app", "c1", spec=old)))
    assert a.kill == [Kill("c1", "app", "Container app definition changed, will be restarted")]
    assert names(a.start) == ["app"]


def test_init_containers_run_one_at_a_time() -> None:
    p = pod(APP, inits=(I1, I2))
    a = plan_pod(p, state(running("i1", "c1")))
    assert a.next_init is None and not a.start
    a = plan_pod(p, state(exited("i1", "c1", 0)))
    assert a.next_init == I2 and not a.start
    a = plan_pod(p, state(exited("i1", "c1", 0), exited("i2", "c2", 0, at=T0 + 2)))
    assert a.next_init is None and names(a.start) == ["app"]


def test_a_failed_init_container_is_retried_or_fails_the_pod() -> None:
    st = state(exited("i1", "c1", 1))
    a = plan_pod(pod(APP, inits=(I1, I2)), st)
    assert a.next_init == I1
    a = plan_pod(pod(APP, inits=(I1, I2), policy="Never"), st)
    assert a.next_init is None and not a.start and a.kill_pod


def test_init_containers_of_an_old_sandbox_do_not_count() -> None:
    st = state(exited("i1", "old1", 0, sandbox_id="sb0"), sandboxes=(sandbox("sb1", at=T0 + 10),
                                                                       sandbox("sb0", ready=False)))
    a = plan_pod(pod(APP, inits=(I1,)), st)
    assert a.next_init == I1


def test_a_finished_pod_is_killed_once() -> None:
    st = state(exited("app", "c1", 0))
    a = plan_pod(pod(APP, policy="Never"), st)
    assert a.kill_pod and not a.start
    stopped = state(exited("app", "c1", 0), sandboxes=(sandbox(ready=False),))
    assert not plan_pod(pod(APP, policy="Never"), stopped).kill_pod


def test_garbage_keeps_the_newest_two_instances() -> None:
    st = state(exited("app", "c3", 1, at=T0 + 3, restarts=2), exited("app", "c2", 1, at=T0 + 2, restarts=1),
               exited("app", "c1", 1, at=T0 + 1), exited("i1", "i-old", 0, at=T0),
               exited("i1", "i-new", 0, at=T0 + 0.5))
    a = plan_pod(pod(APP, inits=(I1,)), st)
    assert sorted(a.remove) == ["c1", "i-old"]


def test_stale_sandboxes_without_kept_containers_are_removed() -> None:
    st = state(running("app", "c2", at=T0 + 20, sandbox_id="sb2"), exited("app", "c1", 1, sandbox_id="sb1"),
               sandboxes=(sandbox("sb2", at=T0 + 10), sandbox("sb1", ready=False), sandbox("sb0", ready=False,
                                                                                          at=T0 - 10)))
    a = plan_pod(pod(APP), st)
    assert a.remove_sandboxes == ["sb0"]


def test_a_deleted_pod_starts_nothing() -> None:
    a = plan_pod(pod(APP, deleting=True), state(exited("app", "c1", 1)))
    assert not a.start
