"""The Deployment controller's helpers (deployment_util): template hash, fenceposts, revisions, annotations,
sizes and proportions; cases mostly from Kubernetes' deployment_util_test.go."""

from __future__ import annotations

import pytest

from kubelite.controllers.deployment_util import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    SAFE_ALPHABET,
    RSView,
    compute_hash,
    deployment_complete,
    deployment_progressing,
    equal_ignore_hash,
    find_active_or_latest,
    find_new_replica_set,
    find_old_replica_sets,
    fnv32a,
    int_annotation,
    is_saturated,
    max_revision,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    proportion,
    replica_set_fraction,
    replica_set_name,
    resolve_fenceposts,
    round_half_away,
    safe_encode_string,
    scaled_value,
    set_new_replica_set_annotations,
    sorted_by_revision,
    sorted_by_size_newer,
    sorted_by_size_older,
    terminating_replica_count,
)
from tests.unit.controllers.deployment_builders import deployment, replica_set, template, views

# --- the hash -------------------------------------------------------------------------------------


def test_safe_encode_string_maps_digits_into_the_vowel_free_alphabet() -> None:
    assert safe_encode_string("0123456789") == "456789bcdf"
    assert safe_encode_string("") == ""


def test_fnv32a_known_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_compute_hash_is_stable_and_changes_with_template_and_collision_count() -> None:
    h = compute_hash(template("nginx:1.25"), None)
    assert h == compute_hash(template("nginx:1.25"), None)
    assert set(h) <= set(SAFE_ALPHABET) and 1 <= len(h) <= 10
    assert compute_hash(template("nginx:1.26"), None) != h
    assert compute_hash(template("nginx:1.25"), 0) != h
    assert compute_hash(template("nginx:1.25"), 1) != compute_hash(template("nginx:1.25"), 0)


def test_compute_hash_ignores_key_order_and_empty_fields() -> None:
    a = {"metadata": {"labels": {"b": "2", "a": "1"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    b = {"spec": {"containers": [{"image": "x", "name": "c", "env": []}], "volumes": None},
         "metadata": {"labels": {"a": "1", "b": "2"}, "annotations": {}}}
    assert compute_hash(a, None) == compute_hash(b, None)


def _tmpl(name: str, node: str, annotations: dict[str, str], labels: dict[str, str]) -> dict[str, object]:
    return {"metadata": {"name": name, "annotations": annotations, "labels": labels}, "spec": {"nodeName": node}}


@pytest.mark.parametrize(("former", "latter", "equal"), [
    (_tmpl("foo", "n", {}, {HASH_LABEL: "v1", "something": "else"}),
     _tmpl("foo", "n", {}, {HASH_LABEL: "v2", "something": "else"}), True),
    (_tmpl("foo", "n", {}, {"something": "else"}), _tmpl("foo", "n", {}, {HASH_LABEL: "v2", "something": "else"}),
     True),
    (_tmpl("foo", "n", {}, {"something": "else"}), _tmpl("foo", "n", {}, {HASH_LABEL: "v2"}), False),
    (_tmpl("foo", "n", {}, {HASH_LABEL: "v1"}), _tmpl("foo", "n", {}, {HASH_LABEL: "v1", "something": "else"}),
     False),
    (_tmpl("foo", "n", {"former": "v"}, {HASH_LABEL: "v1"}), _tmpl("foo", "n", {"latter": "v"}, {HASH_LABEL: "v1"}),
     False),
    (_tmpl("foo-1", "n", {}, {HASH_LABEL: "v1"}), _tmpl("foo-2", "n", {}, {HASH_LABEL: "v2"}), False),
])
def test_equal_ignore_hash(former: dict[str, object], latter: dict[str, object], equal: bool) -> None:
    assert equal_ignore_hash(former, latter) is equal
    assert equal_ignore_hash(latter, former) is equal
    assert HASH_LABEL in str(former) or HASH_LABEL in str(latter)  # inputs are not modified


def test_replica_set_name_keeps_within_a_dns_subdomain() -> None:
    assert replica_set_name("web", "5d4f8") == "web-5d4f8"
    long = replica_set_name("x" * 253, "5d4f8")
    assert len(long) == 253 and long.endswith("-5d4f8")


# --- fenceposts -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("0%", "0%", 0, (0, 1)),
    ("39%", "39%", 10, (4, 3)),
    (None, "39%", 10, (0, 3)),
    ("39%", None, 10, (4, 0)),
    (None, None, 10, (0, 1)),
    (3, 2, 10, (3, 2)),
    ("25%", "25%", 3, (1, 0)),
    ("1%", "1%", 3, (1, 0)),
    ("0%", "1%", 3, (0, 1)),
    ("100%", "100%", 7, (7, 7)),
])
def test_resolve_fenceposts(surge: int | str | None, unavailable: int | str | None, desired: int,
                            expected: tuple[int, int]) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize(("surge", "unavailable"), [("oops", "39%"), ("55%", "urg"), ("1", 0)])
def test_resolve_fenceposts_refuses_strings_that_are_not_percentages(surge: str, unavailable: str | int) -> None:
    with pytest.raises(ValueError):
        resolve_fenceposts(surge, unavailable, 10)


def test_scaled_value_rounds_surge_up_and_unavailable_down() -> None:
    assert scaled_value("25%", 10, round_up=True) == 3
    assert scaled_value("25%", 10, round_up=False) == 2
    assert scaled_value("50%", 10, round_up=True) == scaled_value("50%", 10, round_up=False) == 5
    assert scaled_value(4, 10, round_up=True) == 4


@pytest.mark.parametrize(("replicas", "unavailable", "expected"), [
    (10, 5, 5), (10, 10, 10), (5, 10, 5), (0, 10, 0), (10, "50%", 5), (10, "100%", 10), (5, "100%", 5),
])
def test_max_unavailable(replicas: int, unavailable: int | str, expected: int) -> None:
    assert max_unavailable(deployment(replicas, max_surge=1, max_unavailable=unavailable)) == expected


def test_recreate_has_no_surge_and_no_unavailability_budget() -> None:
    d = deployment(5, strategy="Recreate")
    assert max_surge(d) == 0 and max_unavailable(d) == 0


def test_invalid_fenceposts_resolve_to_zero_as_in_kubernetes() -> None:
    d = deployment(10, max_surge="oops", max_unavailable="10%")
    assert max_surge(d) == 0 and max_unavailable(d) == 0


# --- sizes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("strategy", "dep_replicas", "new_replicas", "surge", "expected"), [
    ("RollingUpdate", 1, 5, 1, 5),   # cannot scale up: stays
    ("RollingUpdate", 6, 2, 10, 6),  # up to the desired count
    ("Recreate", 3, 1, 1, 3),
])
def test_new_rs_new_replicas(strategy: str, dep_replicas: int, new_replicas: int, surge: int, expected: int) -> None:
    d = deployment(dep_replicas, strategy=strategy, max_surge=surge, max_unavailable=1)
    other = RSView.of(replica_set(d, 5, image="other"))
    new = RSView.of(replica_set(d, new_replicas))
    assert new_rs_new_replicas(d, [other], new) == expected


def test_new_rs_grows_only_by_the_room_the_surge_leaves() -> None:
    d = deployment(10, max_surge=3, max_unavailable=2)
    old, new = views(replica_set(d, 8, image="old"), replica_set(d, 2))
    assert new_rs_new_replicas(d, [old, new], new) == 5  # 13 in all, at most


def test_is_saturated_needs_size_annotation_and_available_pods() -> None:
    d = deployment(3)
    rs = RSView.of(replica_set(d, 3, annotations={DESIRED_REPLICAS: "3"}))
    assert is_saturated(d, rs)
    assert not is_saturated(d, RSView.of(replica_set(d, 3)))
    assert not is_saturated(d, RSView.of(replica_set(d, 3, available=2, annotations={DESIRED_REPLICAS: "3"})))
    assert not is_saturated(d, None)


def test_find_active_or_latest() -> None:
    d = deployment(3)
    old1 = RSView.of(replica_set(d, 0, image="a", created=1))
    old2 = RSView.of(replica_set(d, 0, image="b", created=2))
    new = RSView.of(replica_set(d, 0, created=3))
    assert find_active_or_latest(new, [old1, old2]) is new
    assert find_active_or_latest(None, [old1, old2]) is old2
    old1.replicas = 2
    assert find_active_or_latest(new, [old1, old2]) is old1
    new.replicas = 1
    assert find_active_or_latest(new, [old1, old2]) is None
    assert find_active_or_latest(None, []) is None


def test_find_new_replica_set_takes_the_oldest_match() -> None:
    d = deployment(3)
    newer = replica_set(d, 1, created=10, name="web-newer")
    older = replica_set(d, 1, created=5, name="web-older")
    old = replica_set(d, 1, image="old", created=1)
    rss = views(newer, old, older)
    found = find_new_replica_set(d, rss)
    assert found is not None and found.name == "web-older"
    assert [rs.name for rs in find_old_replica_sets(d, rss)] == ["web-newer", old["metadata"]["name"]]
    assert find_new_replica_set(d, views(old)) is None


def test_sort_orders() -> None:
    d = deployment(3)
    a = RSView.of(replica_set(d, 2, image="a", created=1, revision=3))
    b = RSView.of(replica_set(d, 2, image="b", created=2, revision=1))
    c = RSView.of(replica_set(d, 5, image="c", created=3, revision=2))
    assert sorted_by_size_newer([a, b, c]) == [c, b, a]
    assert sorted_by_size_older([a, b, c]) == [c, a, b]
    assert sorted_by_revision([a, b, c]) == [b, c, a]
    assert max_revision([a, b, c]) == 3


def test_terminating_replica_count_is_unknown_when_a_synced_replica_set_does_not_report_it() -> None:
    d = deployment(3)
    rs1, rs2, unsynced, silent = views(replica_set(d, 1, image="a"), replica_set(d, 2, image="b"),
                                       replica_set(d, 3, image="c", observed=False),
                                       replica_set(d, 1, image="d"))
    rs1.obj["status"]["terminatingReplicas"] = 3
    rs2.obj["status"]["terminatingReplicas"] = 1
    assert terminating_replica_count([rs1, rs2]) == 4
    assert terminating_replica_count([rs1, rs2, unsynced]) == 4
    assert terminating_replica_count([unsynced]) == 0
    assert terminating_replica_count([rs1, silent]) is None


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), ("invalid", None), ("-1", None), ("0", 0), ("13", 13), ("2147483647", 2147483647),
    ("2147483648", None),
])
def test_int_annotation_is_a_non_negative_int32(value: str | None, expected: int | None) -> None:
    rs = RSView.of(replica_set(deployment(), 1, annotations={} if value is None else {MAX_REPLICAS: value}))
    assert int_annotation(rs, MAX_REPLICAS) == expected


# --- proportions ----------------------------------------------------------------------------------

def test_round_half_away_from_zero_like_go() -> None:
    assert [round_half_away(x) for x in (0.5, 1.5, 2.5, -0.5, -2.5, 2.49)] == [1, 2, 3, -1, -3, 2]


def test_proportions_of_the_kubernetes_documentation_example() -> None:
    # 10 replicas, maxSurge 3: a stuck rollout holds 8 old and 5 new pods; scaling to 15 adds 3 and 2.
    d = deployment(15, max_surge=3, max_unavailable=2)
    old = RSView.of(replica_set(d, 8, image="old", annotations={MAX_REPLICAS: "13"}))
    new = RSView.of(replica_set(d, 5, annotations={MAX_REPLICAS: "13"}))
    assert replica_set_fraction(old, d) == 3
    assert replica_set_fraction(new, d) == 2
    assert proportion(old, d, 5, 0) == 3
    assert proportion(new, d, 5, 3) == 2
    assert proportion(new, d, 5, 4) == 1  # never more than what is left


def test_fraction_without_annotation_uses_the_deployment_size_and_scales_to_zero_fully() -> None:
    d = deployment(6, max_surge=0, max_unavailable=1, status={"replicas": 3})
    rs = RSView.of(replica_set(d, 3))
    assert replica_set_fraction(rs, d) == 3
    assert replica_set_fraction(rs, deployment(0)) == -3
    assert proportion(rs, deployment(0), -3, 0) == -3


# --- annotations ----------------------------------------------------------------------------------

def test_new_replica_set_annotations_for_a_new_replica_set() -> None:
    d = deployment(4, max_surge=1, max_unavailable=0,
                   annotations={"kubernetes.io/change-cause": "set image", REVISION: "7",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"})
    rs = RSView.of(replica_set(d, 0))
    assert set_new_replica_set_annotations(d, rs, "3", exists=False)
    assert rs.annotations == {"kubernetes.io/change-cause": "set image", REVISION: "3",
                              DESIRED_REPLICAS: "4", MAX_REPLICAS: "5"}


def test_revision_is_never_lowered_and_rollback_keeps_history() -> None:
    d = deployment(3)
    rs = RSView.of(replica_set(d, 3, revision=5))
    assert not set_new_replica_set_annotations(d, rs, "4", exists=True)
    assert rs.annotations[REVISION] == "5"
    assert set_new_replica_set_annotations(d, rs, "6", exists=True)
    assert rs.annotations[REVISION] == "6" and rs.annotations[REVISION_HISTORY] == "5"
    set_new_replica_set_annotations(d, rs, "9", exists=True)
    assert rs.annotations[REVISION_HISTORY] == "5,6"


def test_revision_history_drops_the_oldest_entries_beyond_the_limit() -> None:
    d = deployment(3)
    rs = RSView.of(replica_set(d, 3, revision=12, annotations={REVISION_HISTORY: "1,2,10,11"}))
    assert set_new_replica_set_annotations(d, rs, "13", exists=True, history_limit=10)
    assert rs.annotations[REVISION_HISTORY] == "2,10,11,12"  # 10 characters


def test_an_unparsable_revision_is_left_alone() -> None:
    d = deployment(3)
    rs = RSView.of(replica_set(d, 3, annotations={REVISION: "x"}))
    assert not set_new_replica_set_annotations(d, rs, "2", exists=True)
    assert rs.annotations[REVISION] == "x"


# --- completion and progress ----------------------------------------------------------------------

@pytest.mark.parametrize(("desired", "current", "updated", "available", "complete"), [
    (5, 5, 5, 4, False), (5, 5, 5, 3, False), (5, 5, 5, 5, True), (5, 5, 4, 5, False), (1, 2, 1, 1, False),
    (1, 1, 1, 0, False),
])
def test_deployment_complete(desired: int, current: int, updated: int, available: int, complete: bool) -> None:
    d = deployment(desired)
    st = {"replicas": current, "updatedReplicas": updated, "availableReplicas": available, "observedGeneration": 1}
    assert deployment_complete(d, st) is complete
    assert not deployment_complete({**d, "metadata": {**d["metadata"], "generation": 2}}, st)


@pytest.mark.parametrize(("old", "new", "progressing"), [
    ((10, 4, 4, 4), (10, 6, 4, 4), True),
    ((10, 4, 4, 4), (10, 4, 4, 4), False),
    ((10, 4, 6, 6), (8, 4, 6, 6), True),
    ((10, 7, 3, 3), (10, 6, 3, 3), False),
    ((10, 4, 7, 7), (8, 8, 5, 5), True),
    ((10, 10, 9, 8), (10, 10, 10, 8), True),
    ((10, 10, 10, 9), (10, 10, 10, 10), True),
])
def test_deployment_progressing(old: tuple[int, ...], new: tuple[int, ...], progressing: bool) -> None:
    keys = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    assert deployment_progressing(dict(zip(keys, old, strict=True)), dict(zip(keys, new, strict=True))) is progressing
