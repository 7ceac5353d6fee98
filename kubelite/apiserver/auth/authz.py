"""Authorization: may this user do this?

An ``Authorizer`` decides on ``Attributes`` (what kube-apiserver's ``authorizer.Attributes`` carry:
verb, API group, resource, subresource, namespace, name, and the path for non-resource requests
such as ``/healthz``). Today's authorizers are ``AlwaysAllowAuthorizer`` and ``GroupAuthorizer``
(``system:masters`` may do everything); RBAC plugs in as one more ``Authorizer``, chained after the
group authorizer with ``UnionAuthorizer`` as kube-apiserver chains its modes.

A decision that does not allow is a "no opinion": the union asks the next authorizer, and only when
none allows is the request forbidden, with ``forbidden(user, attributes, reason)`` rendering the
403 Status exactly as kube-apiserver words it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from kubelite.api.errors import APIError
from kubelite.apiserver.auth.authn import SYSTEM_MASTERS, UserInfo


@dataclass(frozen=True, slots=True)
class Attributes:
    """One request as the authorizer sees it.

    A resource request has ``resource`` set (``pods``, with ``subresource`` ``log``); a
    non-resource request (``/healthz``, ``/version``, discovery) has only ``verb`` and ``path``.
    Verbs are Kubernetes' API verbs: get, list, watch, create, update, patch, delete,
    deletecollection for resources; get, post, put, delete ... (the HTTP method) for paths.
    """

    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        """Allow, or give no opinion with a reason (shown to the user when nobody allows)."""
        ...


class AlwaysAllowAuthorizer:
    """Allows every request (kube-apiserver's ``AlwaysAllow`` mode).

    Only authenticated users and anonymous requests to the public health and version paths get past
    ``authn_middleware``, so behind it this means "every authenticated user may do anything".
    """

    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        return Decision(True)


class GroupAuthorizer:
    """Allows every request by members of the given groups (``system:masters`` by default)."""

    def __init__(self, groups: Iterable[str] = (SYSTEM_MASTERS,)) -> None:
        self._groups = frozenset(groups)

    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        if self._groups.intersection(user.groups):
            return Decision(True)
        return Decision(False)


class UnionAuthorizer:
    """Asks each authorizer in order; the first that allows decides. Otherwise the reasons given
    are joined, as kube-apiserver's union authorizer does."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self._authorizers = list(authorizers)

    def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
        reasons: list[str] = []
        for authorizer in self._authorizers:
            decision = authorizer.authorize(user, attributes)
            if decision.allowed:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(False, "\n".join(reasons))


def forbidden(user: UserInfo, attributes: Attributes, reason: str = "") -> APIError:
    """The 403 Status for a denied request, worded as kube-apiserver's, e.g.
    ``pods "web" is forbidden: User "bob" cannot get resource "pods" in API group "" in the
    namespace "default"`` or ``forbidden: User "bob" cannot get path "/metrics"``."""
    message = _forbidden_message(user, attributes)
    if reason:
        message = f"{message}: {reason}"
    if not attributes.is_resource_request:
        return APIError(403, "Forbidden", f"forbidden: {message}")
    qualified = attributes.resource
    details: dict[str, Any] = {"kind": attributes.resource}
    if attributes.api_group:
        qualified = f"{attributes.resource}.{attributes.api_group}"
        details["group"] = attributes.api_group
    if attributes.name:
        details["name"] = attributes.name
        return APIError(403, "Forbidden", f'{qualified} "{attributes.name}" is forbidden: {message}', details)
    return APIError(403, "Forbidden", f"{qualified} is forbidden: {message}", details)


def _forbidden_message(user: UserInfo, attributes: Attributes) -> str:
    if not attributes.is_resource_request:
        return f'User "{user.name}" cannot {attributes.verb} path "{attributes.path}"'
    resource = attributes.resource
    if attributes.subresource:
        resource = f"{resource}/{attributes.subresource}"
    scope = (f'in the namespace "{attributes.namespace}"' if attributes.namespace else "at the cluster scope")
    return (f'User "{user.name}" cannot {attributes.verb} resource "{resource}" '
            f'in API group "{attributes.api_group}" {scope}')
