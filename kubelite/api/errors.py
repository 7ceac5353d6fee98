"""Kubernetes API errors as exceptions that render to `Status` objects.

Every failure the API server returns is one of these, so a client always gets
``{"kind": "Status", "status": "Failure", "reason": ..., "code": ..., "message": ...}``.
Helpers mirror apimachinery's ``k8s.io/apimachinery/pkg/api/errors`` constructors and messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Cause:
    """One field error: ``reason`` is a CauseType such as FieldValueRequired or FieldValueInvalid."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


# Helpers that build a Cause with the wording of k8s.io/apimachinery/pkg/util/validation/field.
def required(path: str, detail: str = "") -> Cause:
    return Cause(path, f"{path}: Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"{path}: Invalid value: {_show(value)}: {detail}", "FieldValueInvalid")


def not_supported(path: str, value: Any, allowed: list[str]) -> Cause:
    options = ", ".join(f'"{a}"' for a in allowed)
    return Cause(path, f"{path}: Unsupported value: {_show(value)}: supported values: {options}",
                 "FieldValueNotSupported")


def duplicate(path: str, value: Any) -> Cause:
    return Cause(path, f"{path}: Duplicate value: {_show(value)}", "FieldValueDuplicate")


def forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"{path}: Forbidden: {detail}", "FieldValueForbidden")


def too_long(path: str, limit: int) -> Cause:
    return Cause(path, f"{path}: Too long: may not be more than {limit} bytes", "FieldValueTooLong")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


@dataclass
class APIError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def _details(kind_plural: str, name: str, group: str) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": kind_plural}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    return d


def _qualified(plural: str, group: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, name: str, group: str = "") -> APIError:
    return APIError(404, "NotFound", f'{_qualified(plural, group)} "{name}" not found',
                    _details(plural, name, group))


def already_exists(plural: str, name: str, group: str = "") -> APIError:
    return APIError(409, "AlreadyExists", f'{_qualified(plural, group)} "{name}" already exists',
                    _details(plural, name, group))


def conflict(plural: str, name: str, group: str = "", detail: str = "") -> APIError:
    detail = detail or "the object has been modified; please apply your changes to the latest version and try again"
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": {detail}',
                    _details(plural, name, group))


def invalid_object(kind: str, name: str, causes: list[Cause], group: str = "") -> APIError:
    summary = ", ".join(c.message for c in causes)
    details = _details(kind, name, group)
    details["causes"] = [c.to_dict() for c in causes]
    return APIError(422, "Invalid", f'{kind}{"." + group if group else ""} "{name}" is invalid: [{summary}]'
                    if len(causes) > 1 else
                    f'{kind}{"." + group if group else ""} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> APIError:
    return APIError(401, "Unauthorized", message)


def forbidden_error(message: str) -> APIError:
    return APIError(403, "Forbidden", message)


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def not_acceptable(message: str) -> APIError:
    return APIError(406, "NotAcceptable", message)


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def too_large(message: str) -> APIError:
    return APIError(413, "RequestEntityTooLarge", message)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - '
                    f'accepted media types include: application/json, application/yaml, '
                    f'application/vnd.kubernetes.protobuf (got "{content_type}")')


def too_many_requests(message: str, retry_after: int = 1) -> APIError:
    return APIError(429, "TooManyRequests", message, {"retryAfterSeconds": retry_after},
                    {"Retry-After": str(retry_after)})


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> APIError:
    return APIError(503, "ServiceUnavailable", message)


def timeout(message: str) -> APIError:
    return APIError(504, "Timeout", message)
