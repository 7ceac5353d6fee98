"""decode_k8s_protobuf on bodies built field by field (numbers from Kubernetes' generated.proto)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from kubelite.api.errors import APIError
from kubelite.apiserver.protobuf import decode_k8s_protobuf

from .pbenc import MAGIC, entry, envelope, key, ld, msg, num, packed, timestamp

NOV_14_2023 = 1700000000  # 2023-11-14T22:13:20Z


def _unix(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())


def decode(api_version: str, kind: str, *fields: bytes) -> dict[str, Any]:
    return decode_k8s_protobuf(envelope(api_version, kind, b"".join(fields)))


def test_lease_micro_times_and_pointer_zeros() -> None:
    obj = decode(
        "coordination.k8s.io/v1", "Lease",
        msg(1, ld(1, "l"), ld(3, "kube-system")),
        msg(2, ld(1, "node-a"), num(2, 40), timestamp(3, NOV_14_2023, 123456789),
            timestamp(4, NOV_14_2023 + 5, 999), num(5, 0)),
    )
    assert obj == {
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": "l", "namespace": "kube-system"},
        "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 40,
                 "acquireTime": "2023-11-14T22:13:20.123456Z", "renewTime": "2023-11-14T22:13:25.000000Z",
                 "leaseTransitions": 0},
    }
    assert list(obj) == ["kind", "apiVersion", "metadata", "spec"]


def test_pod_with_the_special_types() -> None:
    metadata = msg(
        1, ld(1, "p"), ld(2, ""), ld(5, ""), num(7, 0),  # Go writes zero strings and ints too
        timestamp(8, NOV_14_2023, 500_000_000),
        num(10, 0),
        entry(11, "b", "2"), entry(11, "a", "1"),
        msg(17, ld(1, "kubectl"), ld(2, "Update"), ld(3, "v1"), timestamp(4, NOV_14_2023), ld(6, "FieldsV1"),
            msg(7, ld(1, b'{"f:metadata":{"f:labels":{}}}'))),
    )
    container = msg(
        2, ld(1, "app"), ld(2, "nginx"),
        msg(8, entry(1, "memory", ld(1, "128Mi")), entry(1, "cpu", ld(1, "1000m"))),
        msg(10, msg(1, msg(2, ld(1, "/healthz"), msg(2, num(1, 1), ld(3, "http")))), num(2, 0), num(4, 10)),
        msg(11, msg(1, msg(3, msg(1, num(1, 0), num(2, 8080))))),
    )
    spec = msg(
        2,
        msg(1, ld(1, "cache"), msg(2, msg(2, ld(1, "Memory"), msg(2, ld(1, "64Mi"))))),
        container,
        ld(3, "Always"), num(4, 0), num(5, 2**40), num(25, -5),
        msg(14, packed(4, 1000, 2000), num(3, False)),
        msg(999, ld(1, "a field from a newer Kubernetes")), num(998, 7),
    )
    obj = decode("v1", "Pod", metadata, spec, msg(3, ld(1, "Pending")))
    assert obj == {
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {
            "name": "p",
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"a": "1", "b": "2"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "time": "2023-11-14T22:13:20Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {}}}}],
        },
        "spec": {
            "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
            "containers": [{
                "name": "app", "image": "nginx",
                "resources": {"limits": {"cpu": "1", "memory": "128Mi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10},
                "readinessProbe": {"tcpSocket": {"port": 8080}},
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": 2**40,
            "securityContext": {"runAsNonRoot": False, "supplementalGroups": [1000, 2000]},
            "priority": -5,
        },
        "status": {"phase": "Pending"},
    }
    assert list(obj["metadata"]["labels"]) == ["a", "b"], "map keys come out sorted, as Go writes them"


def test_absent_fields_are_go_zero_values() -> None:
    # Non-pointer structs render even when empty; nil slices and pointers without omitempty are null.
    obj = decode("apps/v1", "Deployment", msg(1, ld(1, "d")))
    assert obj == {
        "kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "d"},
        "spec": {"selector": None, "template": {"metadata": {}, "spec": {"containers": None}},
                 "strategy": {}},
        "status": {},
    }


def test_event_zero_times_are_null_and_required_strings_stay() -> None:
    obj = decode("v1", "Event", msg(1, ld(1, "e")), msg(2, ld(1, "Pod"), ld(2, "default"), ld(3, "p")),
                 ld(3, "Started"), num(8, 3))
    assert obj == {
        "kind": "Event", "apiVersion": "v1", "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"},
        "reason": "Started", "source": {}, "firstTimestamp": None, "lastTimestamp": None, "count": 3,
        "eventTime": None, "reportingComponent": "", "reportingInstance": "",
    }


def test_secret_bytes_are_base64() -> None:
    obj = decode("v1", "Secret", msg(1, ld(1, "s")), num(5, False),
                 entry(2, "empty", b""), entry(2, "bin", b"\x00\xff"), ld(3, "Opaque"))
    assert obj == {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "immutable": False,
                   "data": {"bin": "AP8=", "empty": ""}, "type": "Opaque"}


@pytest.mark.parametrize("api_version", ["v1", "apps/v1", "meta.k8s.io/v1"])
def test_delete_options(api_version: str) -> None:
    obj = decode(api_version, "DeleteOptions", num(1, 0), msg(2, ld(1, "uid-1")), ld(4, "Foreground"),
                 ld(5, "All"))
    assert obj == {"kind": "DeleteOptions", "apiVersion": api_version, "gracePeriodSeconds": 0,
                   "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground", "dryRun": ["All"]}


def test_repeated_messages_merge_and_scalars_take_the_last() -> None:
    obj = decode("v1", "ConfigMap", msg(1, ld(1, "first"), ld(3, "ns")), msg(1, ld(1, "second")),
                 entry(2, "k", "v"))
    assert obj["metadata"] == {"name": "second", "namespace": "ns"}
    assert obj["data"] == {"k": "v"}


def test_unpacked_repeated_ints_invalid_utf8_and_groups() -> None:
    spec = msg(2, msg(2, ld(1, "a\xff".encode("latin-1"))), msg(14, num(4, 1), num(4, 2)))
    group = key(50, 3) + num(1, 1) + key(51, 3) + key(51, 4) + key(50, 4)
    obj = decode("v1", "Pod", group, spec)
    assert obj["spec"]["containers"] == [{"name": "a\ufffd", "resources": {}}]
    assert obj["spec"]["securityContext"] == {"supplementalGroups": [1, 2]}


@pytest.mark.parametrize(("seconds", "nanos", "kind", "expected"), [
    pytest.param(0, 0, "Time", "1970-01-01T00:00:00Z", id="epoch-is-not-zero"),
    pytest.param(-62135596800, 0, "Time", None, id="go-zero-time-is-null"),
    pytest.param(_unix(datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC)), 0, "Time", "0999-01-02T03:04:05Z",
                 id="year-zero-padded"),
    pytest.param(_unix(datetime(2024, 2, 29, 12, 0, 0, tzinfo=UTC)), 7_654_321, "MicroTime",
                 "2024-02-29T12:00:00.007654Z", id="micro-truncated"),
    pytest.param(NOV_14_2023, -1, "MicroTime", "2023-11-14T22:13:19.999999Z", id="negative-nanos"),
])
def test_times(seconds: int, nanos: int, kind: str, expected: str | None) -> None:
    # Event.series.lastObservedTime is a MicroTime, Event.firstTimestamp a Time.
    if kind == "Time":
        obj = decode("v1", "Event", timestamp(6, seconds, nanos))
        assert obj["firstTimestamp"] == expected
    else:
        obj = decode("v1", "Event", msg(11, timestamp(2, seconds, nanos)))
        assert obj["series"] == {"lastObservedTime": expected}


def _error(body: bytes) -> APIError:
    with pytest.raises(APIError) as info:
        decode_k8s_protobuf(body)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    return info.value


def _pod_body(*spec_fields: bytes) -> bytes:
    return envelope("v1", "Pod", msg(1, ld(1, "p")) + msg(2, *spec_fields))


@pytest.mark.parametrize(("body", "message"), [
    pytest.param(b'{"kind": "Pod"}', "provided data does not appear to be a protobuf message, "
                 "expected prefix [107 56 115 0]", id="json"),
    pytest.param(MAGIC + b"\x0a\x10\x0a", "unable to decode the protobuf envelope (runtime.Unknown): "
                 "unexpected EOF in field 1", id="truncated-envelope"),
    pytest.param(MAGIC + num(1, 3), "unable to decode the protobuf envelope (runtime.Unknown): "
                 "wrong wire type 0 for field 1", id="envelope-wire-type"),
    pytest.param(envelope("v1", "Widget", b""), 'no kind "Widget" is registered for version "v1"',
                 id="unknown-kind"),
    pytest.param(envelope("v1", "", b""), "Object 'Kind' is missing in the protobuf envelope",
                 id="no-kind"),
    pytest.param(envelope("v1", "Pod", b"", encoding="gzip"),
                 'protobuf content encoding "gzip" is not supported', id="content-encoding"),
    pytest.param(envelope("v1", "Pod", b"\x0a\x05ab"),
                 "unable to decode the protobuf body as Pod (v1): unexpected EOF in field 1", id="truncated"),
    pytest.param(envelope("v1", "Pod", b"\x00\x01"),
                 "unable to decode the protobuf body as Pod (v1): illegal tag 0 (wire type 0)", id="tag-0"),
    pytest.param(envelope("v1", "Pod", b"\x08" + b"\xff" * 11),
                 "unable to decode the protobuf body as Pod (v1): integer overflow", id="varint-overflow"),
    pytest.param(envelope("v1", "Pod", key(50, 4)),
                 "unable to decode the protobuf body as Pod (v1): unexpected end group for field 50",
                 id="stray-end-group"),
    pytest.param(envelope("v1", "Pod", key(50, 3) * 100_000),
                 "unable to decode the protobuf body as Pod (v1): unexpected EOF in group 50",
                 id="deeply-nested-groups"),
    pytest.param(_pod_body(msg(2, ld(1, "a")), msg(2, num(1, 5))),
                 "spec.containers[1]: wrong wire type 0 for field name", id="nested-wire-type"),
    pytest.param(_pod_body(msg(2, ld(1, "a"), msg(8, entry(1, "cpu", ld(1, "lots"))))),
                 "spec.containers[0].resources.limits[cpu]: quantities must match the regular expression",
                 id="bad-quantity"),
    pytest.param(_pod_body(msg(2, ld(1, "a"), msg(11, msg(1, msg(3, msg(1, num(1, 2), num(2, 1))))))),
                 "spec.containers[0].readinessProbe.tcpSocket.port: impossible IntOrString.Type 2",
                 id="bad-int-or-string"),
    pytest.param(envelope("v1", "Pod", msg(1, msg(17, msg(7, ld(1, b"{not json"))))),
                 "metadata.managedFields[0].fieldsV1: embedded raw data is not JSON", id="bad-fields-v1"),
    pytest.param(envelope("v1", "Pod", msg(1, timestamp(8, 2**62))),
                 "metadata.creationTimestamp: timestamp 4611686018427387904 is outside the years 1 to 9999",
                 id="time-out-of-range"),
])
def test_malformed_bodies_are_bad_requests(body: bytes, message: str) -> None:
    assert message in _error(body).message


def test_corrupted_bodies_only_ever_raise_bad_request() -> None:
    # Seeded mutations of a body that touches every kind of field: nothing may escape as a 500.
    body = _pod_body(
        msg(1, ld(1, "v"), msg(2, msg(2, ld(1, "Memory"), msg(2, ld(1, "64Mi"))))),
        msg(2, ld(1, "app"), msg(8, entry(1, "cpu", ld(1, "1"))),
            msg(11, msg(1, msg(3, msg(1, num(1, 0), num(2, 80)))))),
        msg(14, packed(4, 1, 2)),
    )
    rng = random.Random(20240501)
    for _ in range(3000):
        mutated = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(MAGIC), len(mutated))
            match rng.randrange(3):
                case 0:
                    mutated[at] = rng.randrange(256)
                case 1:
                    del mutated[at]
                case _:
                    mutated.insert(at, rng.randrange(256))
        try:
            decode_k8s_protobuf(bytes(mutated))
        except APIError as e:
            assert e.code == 400
