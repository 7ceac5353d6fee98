"""Authorization: the built-in authorizers, their union, and the 403 Status wording."""

from __future__ import annotations

import pytest

from kubelite.apiserver.auth.authn import UserInfo
from kubelite.apiserver.auth.authz import (
    AlwaysAllowAuthorizer,
    Attributes,
    Decision,
    GroupAuthorizer,
    UnionAuthorizer,
    forbidden,
)

ADMIN = UserInfo("admin", groups=("system:masters", "system:authenticated"))
BOB = UserInfo("bob", groups=("dev", "system:authenticated"))
LIST_PODS = Attributes("list", resource="pods", namespace="default", path="/api/v1/namespaces/default/pods")


def test_always_allow() -> None:
    assert AlwaysAllowAuthorizer().authorize(BOB, LIST_PODS).allowed


def test_group_authorizer_allows_masters_only() -> None:
    authorizer = GroupAuthorizer()
    assert authorizer.authorize(ADMIN, LIST_PODS).allowed
    assert not authorizer.authorize(BOB, LIST_PODS).allowed
    assert GroupAuthorizer(["dev"]).authorize(BOB, LIST_PODS).allowed


def test_union_takes_first_allow_else_joins_reasons() -> None:
    class Says:
        def __init__(self, decision: Decision) -> None:
            self.decision = decision

        def authorize(self, user: UserInfo, attributes: Attributes) -> Decision:
            return self.decision

    union = UnionAuthorizer([GroupAuthorizer(), Says(Decision(False, "no RBAC rule")),
                             Says(Decision(False, "x"))])
    assert union.authorize(ADMIN, LIST_PODS) == Decision(True)
    assert union.authorize(BOB, LIST_PODS) == Decision(False, "no RBAC rule\nx")
    assert UnionAuthorizer([GroupAuthorizer(), AlwaysAllowAuthorizer()]).authorize(BOB, LIST_PODS).allowed


@pytest.mark.parametrize(("attributes", "reason", "message", "details"), [
    pytest.param(LIST_PODS, "",
                 'pods is forbidden: User "bob" cannot list resource "pods" in API group "" '
                 'in the namespace "default"',
                 {"kind": "pods"}, id="namespaced-list"),
    pytest.param(Attributes("get", api_group="apps", resource="deployments", subresource="scale",
                            namespace="ns", name="web"), "",
                 'deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments/scale" '
                 'in API group "apps" in the namespace "ns"',
                 {"kind": "deployments", "group": "apps", "name": "web"}, id="named-subresource"),
    pytest.param(Attributes("create", resource="namespaces"), "RBAC: not allowed",
                 'namespaces is forbidden: User "bob" cannot create resource "namespaces" in API group "" '
                 "at the cluster scope: RBAC: not allowed",
                 {"kind": "namespaces"}, id="cluster-scope-with-reason"),
    pytest.param(Attributes("get", path="/metrics"), "",
                 'forbidden: User "bob" cannot get path "/metrics"', None, id="non-resource"),
])
def test_forbidden_status(attributes: Attributes, reason: str, message: str,
                          details: dict[str, str] | None) -> None:
    status = forbidden(BOB, attributes, reason).to_status()
    assert (status["code"], status["reason"], status["message"]) == (403, "Forbidden", message)
    assert status.get("details") == details
