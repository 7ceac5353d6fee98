"""Leader election's pure parts: the Lease record, the acquire/renew/release decisions, timing checks."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta, timezone

import pytest

from kubelite.client.leaderelection import (
    LeaderElectionRecord,
    check_timing,
    default_identity,
    lease_spec,
    micro_time,
    next_record,
    record_of,
    released_record,
)

T0 = "2025-01-01T00:00:00.000000Z"
T1 = "2025-01-01T00:00:05.123456Z"


def test_record_round_trips_through_a_lease_spec() -> None:
    record = LeaderElectionRecord("a_1", 15, T0, T1, 3)
    spec = lease_spec(record)
    assert spec == {"holderIdentity": "a_1", "leaseDurationSeconds": 15, "acquireTime": T0, "renewTime": T1,
                    "leaseTransitions": 3}
    assert record_of({"spec": spec}) == record


def test_a_lease_without_fields_reads_as_zero_values() -> None:
    assert record_of({}) == LeaderElectionRecord()
    assert record_of({"spec": {"holderIdentity": None}}) == LeaderElectionRecord()


def test_no_lease_yet_gives_a_fresh_record() -> None:
    assert next_record(None, identity="me", lease_valid=False, lease_duration_seconds=15, now=T1) == \
        LeaderElectionRecord("me", 15, T1, T1, 0)


def test_another_holder_with_a_running_term_keeps_the_lease() -> None:
    held = LeaderElectionRecord("other", 15, T0, T0, 2)
    assert next_record(held, identity="me", lease_valid=True, lease_duration_seconds=15, now=T1) is None


@pytest.mark.parametrize("observed", [
    pytest.param(LeaderElectionRecord("other", 15, T0, T0, 2), id="expired"),
    pytest.param(LeaderElectionRecord("", 1, T0, T0, 2), id="released"),
])
def test_taking_over_counts_a_transition(observed: LeaderElectionRecord) -> None:
    valid = observed.holder_identity == ""  # a released lease is free even within its term
    assert next_record(observed, identity="me", lease_valid=valid, lease_duration_seconds=15, now=T1) == \
        LeaderElectionRecord("me", 15, T1, T1, 3)


@pytest.mark.parametrize("valid", [True, False], ids=["within-term", "late"])
def test_renewing_keeps_the_acquire_time_and_the_transitions(valid: bool) -> None:
    mine = LeaderElectionRecord("me", 15, T0, T0, 4)
    assert next_record(mine, identity="me", lease_valid=valid, lease_duration_seconds=15, now=T1) == \
        LeaderElectionRecord("me", 15, T0, T1, 4)


def test_release_empties_the_holder_and_shortens_the_term() -> None:
    mine = LeaderElectionRecord("me", 15, T0, T0, 4)
    assert released_record(mine, now=T1) == LeaderElectionRecord("", 1, T1, T1, 4)


def test_micro_time_is_utc_with_microseconds() -> None:
    when = datetime(2025, 3, 4, 7, 8, 9, 12, tzinfo=timezone(timedelta(hours=2)))
    assert micro_time(when) == "2025-03-04T05:08:09.000012Z"
    assert micro_time(datetime(2025, 1, 1, tzinfo=UTC)) == "2025-01-01T00:00:00.000000Z"


def test_default_identity_is_hostname_and_uuid() -> None:
    host, _, rest = default_identity().rpartition("_")
    assert host == socket.gethostname()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", rest)
    assert default_identity() != default_identity()


@pytest.mark.parametrize(("duration", "deadline", "retry", "message"), [
    pytest.param(10, 10, 2, "lease_duration must be greater than renew_deadline", id="deadline-too-long"),
    pytest.param(15, 2, 2, "renew_deadline must be greater than retry_period", id="retry-too-long"),
    pytest.param(15, 10, 0, "retry_period must be greater than zero", id="no-retry"),
    pytest.param(0.8, 0.5, 0.1, "at least one second", id="sub-second-lease"),
])
def test_impossible_timings_are_refused(duration: float, deadline: float, retry: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_timing(duration, deadline, retry)


def test_client_go_defaults_are_accepted() -> None:
    check_timing(15.0, 10.0, 2.0)
