"""The runtime's errors, one per gRPC status the service answers with (see `service`)."""

from __future__ import annotations


class RuntimeFailure(Exception):
    """A request the runtime could not carry out (gRPC UNKNOWN unless a subclass says otherwise)."""


class NotFound(RuntimeFailure):
    pass


class AlreadyExists(RuntimeFailure):
    pass


class InvalidArgument(RuntimeFailure):
    pass


class FailedPrecondition(RuntimeFailure):
    """The object is not in a state that allows the request (exec in an exited container ...)."""


class DeadlineExceeded(RuntimeFailure):
    """A command timed out (ExecSync): the kubelet reads it as a probe timeout."""
