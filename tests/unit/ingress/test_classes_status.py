"""Which Ingresses are ours (IngressClasses, the default class), and the status addresses."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.proxy.ingress.classes import CONTROLLER, ClassView, kubelite_ingress_class
from kubelite.proxy.ingress.status import load_balancer_ingress, node_addresses

from .helpers import ingress


def ingress_class(name: str, controller: str, default: bool = False) -> dict[str, Any]:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}, "spec": {"controller": controller}}


def test_the_installed_class_is_ours_and_the_default() -> None:
    view = ClassView.of([kubelite_ingress_class()])
    assert view.ours == {"kubelite"} and view.default_is_ours
    assert view.owns(ingress("no-class"))
    assert view.owns(ingress("named", class_name="kubelite"))
    assert not view.owns(ingress("nginx", class_name="nginx"))


@pytest.mark.parametrize(("classes", "spec_class", "annotation", "ours"), [
    pytest.param([("kubelite", CONTROLLER, False)], None, None, False, id="no-default-no-class"),
    pytest.param([("mine", CONTROLLER, False)], "mine", None, True, id="any-class-of-our-controller"),
    pytest.param([("kubelite", CONTROLLER, True), ("nginx", "k8s.io/ingress-nginx", False)], "nginx", None, False,
                 id="other-class"),
    pytest.param([("nginx", "k8s.io/ingress-nginx", True), ("kubelite", CONTROLLER, False)], None, None, False,
                 id="someone-elses-default"),
    pytest.param([("nginx", "k8s.io/ingress-nginx", True), ("kubelite", CONTROLLER, True)], None, None, False,
                 id="two-defaults"),
    pytest.param([("kubelite", CONTROLLER, False)], None, "kubelite", True, id="legacy-annotation"),
    pytest.param([("kubelite", CONTROLLER, True)], None, "nginx", False, id="legacy-annotation-other"),
    pytest.param([], "kubelite", None, False, id="class-does-not-exist"),
])
def test_ownership(classes: list[tuple[str, str, bool]], spec_class: str | None, annotation: str | None,
                   ours: bool) -> None:
    view = ClassView.of([ingress_class(*c) for c in classes])
    annotations = {"kubernetes.io/ingress.class": annotation} if annotation else None
    assert view.owns(ingress("ing", class_name=spec_class, annotations=annotations)) is ours


def node(name: str, ready: bool, *addresses: tuple[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                       "addresses": [{"type": t, "address": a} for t, a in addresses]}}


def test_node_addresses() -> None:
    nodes = [node("b", True, ("InternalIP", "10.0.0.10"), ("Hostname", "b")),
             node("a", True, ("InternalIP", "10.0.0.9"), ("ExternalIP", "203.0.113.1")),
             node("c", False, ("InternalIP", "10.0.0.11")),
             node("d", True, ("ExternalIP", "203.0.113.2")),
             node("e", True, ("InternalIP", "fd00::1"))]
    assert node_addresses(nodes) == ["10.0.0.9", "10.0.0.10", "203.0.113.2", "fd00::1"]


def test_load_balancer_ingress() -> None:
    assert load_balancer_ingress(["10.0.0.2", "lb.example.com", "10.0.0.1", "10.0.0.2"]) == [
        {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"hostname": "lb.example.com"}]
