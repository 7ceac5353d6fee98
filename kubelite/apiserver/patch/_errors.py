"""The failures a PATCH can end in, shaped like kube-apiserver's answers.

- A patch document of the wrong JSON shape: 400 BadRequest carrying the Go decoder's message.
- A JSON patch operation that does not apply (failed ``test``, missing path, bad index):
  ``errors.NewGenericServerResponse(422, ...)``, i.e. 422 Invalid with the fixed message
  ``the server rejected our request due to an error in our request``; the operation's own error is
  not sent to the client (it is kept here as the exception's ``__cause__`` for logs).
- A strategic merge patch or apply that fails inside the merge code with a plain Go error: the
  server turns a non-Status error into code 500 with an empty reason and the error text as message.
"""

from __future__ import annotations

from kubelite.api.errors import APIError, Cause, bad_request, invalid, invalid_object

GENERIC_INVALID_MESSAGE = "the server rejected our request due to an error in our request"


class PatchFailure(Exception):
    """The detailed reason a patch did not apply; chained under the APIError sent to the client."""


def generic_invalid(detail: str) -> APIError:
    """422 Invalid as ``NewGenericServerResponse(422, ...)`` builds it (``detail`` goes to ``__cause__``)."""
    error = APIError(422, "Invalid", GENERIC_INVALID_MESSAGE)
    error.__cause__ = PatchFailure(detail)
    return error


def plain_error(message: str) -> APIError:
    """A non-Status Go error as the server renders it: 500, no reason, the error text as message."""
    return APIError(500, "", message)


def cannot_unmarshal(value_type: str, go_type: str) -> APIError:
    """400 for a patch body of the wrong JSON type, with the Go decoder's wording."""
    return bad_request(f"json: cannot unmarshal {value_type} into Go value of type {go_type}")


def invalid_patch_result(patched: str, detail: str) -> APIError:
    """422 for a patched document that no longer decodes as an object (``patch: Invalid value``)."""
    cause: Cause = invalid("patch", patched, detail)
    return invalid_object("", "", [cause])
