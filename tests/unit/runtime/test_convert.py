"""convert and the small rules of manager/service: messages to the runtime's types and back."""

from __future__ import annotations

import base64
import signal

import grpc
import pytest

from kubelite.kubelet.images.errors import ImageInUse, ImageNotFound, RegistryError
from kubelite.kubelet.runtime import convert
from kubelite.kubelet.runtime.errors import DeadlineExceeded, FailedPrecondition, NotFound
from kubelite.kubelet.runtime.manager import exit_reason, parse_signal
from kubelite.kubelet.runtime.service import registry_auth, status_code
from kubelite.kubelet.runtime.state import ContainerRecord, SandboxRecord
from kubelite.proto import runtime_pb2 as pb


def test_container_spec_from_a_container_config() -> None:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app"),
        command=["sh"], args=["-c", "true"], working_dir="/w",
        envs=[pb.KeyValue(key="A", value="1")],
        mounts=[pb.Mount(container_path="/d", host_path="/h", readonly=True, propagation="HOST_TO_CONTAINER")],
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=1 << 20, oom_score_adj=0),
            security_context=pb.LinuxContainerSecurityContext(
                run_as_user=pb.Int64Value(value=0), capabilities=pb.Capability(add_capabilities=["NET_ADMIN"]))),
    )
    spec = convert.container_spec(config)
    assert (spec.command, spec.args, spec.working_dir, spec.env) == (("sh",), ("-c", "true"), "/w", (("A", "1"),))
    assert spec.mounts[0].propagation == "HOST_TO_CONTAINER" and spec.mounts[0].readonly
    # runAsUser 0 is set (it is not "unset"); runAsGroup is not.
    assert (spec.security.run_as_user, spec.security.run_as_group) == (0, None)
    assert spec.security.add_capabilities == ("NET_ADMIN",)
    assert (spec.resources.memory_limit, spec.resources.oom_score_adj) == (1 << 20, 0)


def test_no_resources_means_no_oom_score_adj() -> None:
    spec = convert.container_spec(pb.ContainerConfig(metadata=pb.ContainerMetadata(name="app")))
    assert spec.resources.oom_score_adj is None and spec.security.run_as_user is None


def test_port_mappings() -> None:
    config = pb.PodSandboxConfig(port_mappings=[pb.PortMapping(container_port=80, host_port=8080)])
    [m] = convert.port_mappings(config)
    assert (m.container_port, m.host_port, m.protocol, m.host_ip) == (80, 8080, "TCP", "")


def test_statuses_back_to_messages() -> None:
    sb = SandboxRecord(id="s", name="web", namespace="ns", uid="u", ip="10.0.0.2", ips=["10.0.0.2", "fd00::2"],
                       state="notready")
    status = convert.sandbox_status_to_pb(sb)
    assert status.state == pb.SANDBOX_NOTREADY and status.network.ip == "10.0.0.2"
    assert [ip.ip for ip in status.network.additional_ips] == ["fd00::2"]
    c = ContainerRecord(id="c", sandbox_id="s", name="app", state="exited", pid=7, exit_code=137, reason="OOMKilled",
                        mounts=[{"container_path": "/d", "host_path": "/h", "readonly": False, "propagation": ""}])
    cs = convert.container_status_to_pb(c)
    assert (cs.state, cs.exit_code, cs.reason, cs.pid) == (pb.CONTAINER_EXITED, 137, "OOMKilled", 0)
    assert cs.mounts[0].host_path == "/h"


@pytest.mark.parametrize(("code", "oom", "reason"), [(0, False, "Completed"), (1, False, "Error"),
                                                     (137, True, "OOMKilled"), (0, True, "OOMKilled")])
def test_exit_reason(code: int, oom: bool, reason: str) -> None:
    assert exit_reason(code, oom) == reason


@pytest.mark.parametrize(("name", "sig"), [("", signal.SIGTERM), ("SIGQUIT", signal.SIGQUIT), ("quit", signal.SIGQUIT),
                                           ("9", signal.SIGKILL), ("SIGNOPE", signal.SIGTERM)])
def test_stop_signals(name: str, sig: int) -> None:
    assert parse_signal(name) == sig


def test_registry_auth() -> None:
    assert registry_auth(pb.AuthConfig()) is None
    basic = registry_auth(pb.AuthConfig(auth=base64.b64encode(b"me:secret").decode()))
    assert basic is not None and (basic.username, basic.password) == ("me", "secret")
    token = registry_auth(pb.AuthConfig(registry_token="tok"))
    assert token is not None and token.token == "tok"


@pytest.mark.parametrize(("error", "code"), [
    (NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (ImageNotFound("x"), grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition("x"), grpc.StatusCode.FAILED_PRECONDITION),
    (ImageInUse("x", ["c"]), grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (RegistryError("manifest unknown"), grpc.StatusCode.UNKNOWN),
])
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert status_code(error) == code
