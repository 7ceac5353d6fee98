"""Controller expectations and the resourceVersion tracker: what a controller waits to see in its caches."""

from __future__ import annotations

from typing import Any

from kubelite.controllers.expectations import ControllerExpectations, ResourceVersionTracker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nothing_expected_is_satisfied() -> None:
    assert ControllerExpectations().satisfied("ns/rs")


def test_creations_are_satisfied_once_every_one_is_observed() -> None:
    exp = ControllerExpectations()
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")  # an extra observation (an adopted pod's event) does no harm
    assert exp.satisfied("ns/rs")


def test_deletions_count_each_object_once() -> None:
    exp = ControllerExpectations()
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")  # deletionTimestamp set
    exp.deletion_observed("ns/rs", "ns/a")  # then the DELETED event: not counted again
    exp.deletion_observed("ns/rs", "ns/other")  # not one we deleted
    assert not exp.satisfied("ns/rs")
    exp.deletion_observed("ns/rs", "ns/b")
    assert exp.satisfied("ns/rs")


def test_expectations_expire_after_the_ttl() -> None:
    clock = Clock()
    exp = ControllerExpectations(ttl=300, clock=clock)
    exp.expect_creations("ns/rs", 1)
    clock.now += 299
    assert not exp.satisfied("ns/rs")
    clock.now += 2
    assert exp.satisfied("ns/rs")


def test_new_expectations_replace_old_ones_and_delete_forgets() -> None:
    exp = ControllerExpectations()
    exp.expect_creations("ns/rs", 3)
    exp.expect_deletions("ns/rs", ["ns/a"])
    expectation = exp.get("ns/rs")
    assert expectation is not None and (expectation.adds, expectation.dels) == (0, 1)
    exp.delete("ns/rs")
    assert exp.get("ns/rs") is None and exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")  # observations for unknown keys are ignored
    assert exp.get("ns/rs") is None


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


def test_a_cache_without_the_written_object_is_stale_until_it_catches_up() -> None:
    t = ResourceVersionTracker()
    t.wrote("ns/svc", obj("s1", "10"))
    assert t.is_own_write("ns/svc", obj("s1", "10")) and not t.is_own_write("ns/svc", obj("s1", "9"))
    assert t.is_stale("ns/svc", {})
    assert t.is_stale("ns/svc", {"s1": obj("s1", "9")})
    assert not t.is_stale("ns/svc", {"s1": obj("s1", "10")})
    assert not t.is_stale("ns/svc", {})  # caught up once: the record is gone


def test_a_cache_current_past_the_write_is_not_stale_even_without_the_object() -> None:
    t = ResourceVersionTracker()
    t.wrote("ns/svc", obj("s1", "10"))
    assert t.is_stale("ns/svc", {}, "9")
    assert not t.is_stale("ns/svc", {}, "12")  # the cache saw rv 10 and whatever removed s1 after it


def test_a_deleted_object_still_cached_is_stale() -> None:
    t = ResourceVersionTracker()
    t.deleted("ns/svc", obj("s1", "10"))
    assert t.is_stale("ns/svc", {"s1": obj("s1", "10")})
    assert not t.is_stale("ns/svc", {})


def test_deletion_events_tell_expected_from_unexpected() -> None:
    t = ResourceVersionTracker()
    t.deleted("ns/svc", obj("s1", "10"))
    assert t.expected_deletion("ns/svc", obj("s1", "11"))
    assert not t.expected_deletion("ns/svc", obj("s1", "12"))  # record consumed
    t.wrote("ns/svc", obj("s2", "20"))
    assert not t.expected_deletion("ns/svc", obj("s2", "15"))  # an older incarnation went: record stands
    assert t.is_stale("ns/svc", {})
    assert not t.expected_deletion("ns/svc", obj("s2", "21"))  # someone else deleted what we wrote
    assert not t.is_stale("ns/svc", {})


def test_unparseable_versions_are_never_stale_and_groups_are_forgotten() -> None:
    t = ResourceVersionTracker()
    t.wrote("ns/svc", obj("s1", "abc"))
    assert not t.is_stale("ns/svc", {})
    t.wrote("ns/svc", obj("s1", "5"))
    t.forget("ns/svc")
    assert not t.is_stale("ns/svc", {})
