"""Services: ports, types, cluster IPs, session affinity, traffic policies and update rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .manifests import Mutation, Obj, messages, mutated, service, stored


def spec(obj: Obj) -> Any:
    return obj["spec"]


def port(obj: Obj, i: int = 0) -> Any:
    return obj["spec"]["ports"][i]


DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
           "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
           "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")

CASES: list[tuple[str, Mutation, str]] = [
    ("name-starts-with-digit", lambda o: o["metadata"].update(name="1web"),
     f'metadata.name: Invalid value: "1web": {DNS1035}'),
    ("no-ports", lambda o: spec(o).update(ports=[]), "spec.ports: Required value"),
    ("unnamed-second-port", lambda o: port(o, 1).pop("name"), "spec.ports[1].name: Required value"),
    ("dup-port-name", lambda o: port(o, 1).update(name="http"), 'spec.ports[1].name: Duplicate value: "http"'),
    ("port-zero", lambda o: port(o).update(port=0),
     "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("protocol", lambda o: port(o).update(protocol="ICMP"),
     'spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
    ("target-port-name", lambda o: port(o).update(targetPort="http_port"),
     'spec.ports[0].targetPort: Invalid value: "http_port": must contain only alpha-numeric characters (a-z, 0-9), '
     "and hyphens (-)"),
    ("target-port-range", lambda o: port(o).update(targetPort=65536),
     "spec.ports[0].targetPort: Invalid value: 65536: must be between 1 and 65535, inclusive"),
    ("dup-port", lambda o: port(o, 1).update(port=80),
     'spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), '
     'Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}'),
    ("type", lambda o: spec(o).update(type="Internal"),
     'spec.type: Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
     '"NodePort"'),
    ("node-port-on-cluster-ip", lambda o: port(o).update(nodePort=30080),
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("node-port-range", lambda o: spec(o).update(type="NodePort") or port(o).update(nodePort=8080),
     "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid "
     "ports is 30000-32767"),
    ("dup-node-port", lambda o: spec(o).update(type="NodePort") or port(o).update(nodePort=30080)
     or port(o, 1).update(nodePort=30080), "spec.ports[1].nodePort: Duplicate value: 30080"),
    ("cluster-ip", lambda o: spec(o).update(clusterIP="10.96.0.300"),
     'spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, (e.g. 10.9.8.7 or '
     "2001:db8::ffff)"),
    ("headless-node-port", lambda o: spec(o).update(type="NodePort", clusterIP="None"),
     "spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"),
    ("cluster-ips-mismatch", lambda o: spec(o).update(clusterIP="10.96.0.10", clusterIPs=["10.96.0.11"]),
     'spec.clusterIPs: Invalid value: []string{"10.96.0.11"}: first value must match `clusterIP`'),
    ("two-v4", lambda o: spec(o).update(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "10.96.0.11"],
                                        ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"]),
     'spec.clusterIPs: Invalid value: []string{"10.96.0.10", "10.96.0.11"}: may specify no more than one IP for '
     "each IP family"),
    ("family-mismatch", lambda o: spec(o).update(clusterIP="fd00::10", ipFamilies=["IPv4"]),
     'spec.clusterIPs[0]: Invalid value: "fd00::10": expected an IPv4 value as indicated by `ipFamilies[0]`'),
    ("ip-family", lambda o: spec(o).update(ipFamilies=["IPv5"]),
     'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"'),
    ("ip-family-policy", lambda o: spec(o).update(ipFamilyPolicy="DualStack"),
     'spec.ipFamilyPolicy: Unsupported value: "DualStack": supported values: "PreferDualStack", '
     '"RequireDualStack", "SingleStack"'),
    ("external-name-missing", lambda o: spec(o).update(type="ExternalName", ports=[]),
     "spec.externalName: Required value"),
    ("external-name-cluster-ip", lambda o: spec(o).update(type="ExternalName", externalName="db.example.com",
                                                          clusterIP="10.96.0.10"),
     "spec.clusterIPs: Forbidden: may not be set for ExternalName services"),
    ("external-name-invalid", lambda o: spec(o).update(type="ExternalName", externalName="db_host"),
     'spec.externalName: Invalid value: "db_host": a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
     "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("session-affinity", lambda o: spec(o).update(sessionAffinity="Cookie"),
     'spec.sessionAffinity: Unsupported value: "Cookie": supported values: "ClientIP", "None"'),
    ("affinity-timeout", lambda o: spec(o).update(sessionAffinity="ClientIP",
                                                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 0}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than "
     "86400"),
    ("selector", lambda o: spec(o).update(selector={"app": "web/x"}),
     'spec.selector: Invalid value: "web/x": a valid label must be an empty string or consist of alphanumeric '
     "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
     "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("external-ip", lambda o: spec(o).update(externalIPs=["0.0.0.0"]),
     'spec.externalIPs[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)'),
    ("external-policy-on-cluster-ip", lambda o: spec(o).update(externalTrafficPolicy="Local"),
     'spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services'),
    ("internal-policy", lambda o: spec(o).update(internalTrafficPolicy="Node"),
     'spec.internalTrafficPolicy: Unsupported value: "Node": supported values: "Cluster", "Local"'),
    ("lb-class-on-cluster-ip", lambda o: spec(o).update(loadBalancerClass="example.com/lb"),
     "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"),
    ("source-ranges", lambda o: spec(o).update(type="LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/40"]),
     'spec.LoadBalancerSourceRanges[0]: Invalid value: "10.0.0.0/40": must be a valid CIDR value, (e.g. '
     "10.9.8.0/24 or 2001:db8::/64)"),
    ("app-protocol", lambda o: port(o).update(appProtocol="http 2"),
     'spec.ports[0].appProtocol: Invalid value: "http 2": name part must consist of alphanumeric characters, '
     "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
     "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
]


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_invalid_service(mutation: Mutation, expected: str) -> None:
    got = messages(mutated(service, mutation))
    assert expected in got, got


def test_valid_service_variants() -> None:
    headless = mutated(service, lambda o: spec(o).update(clusterIP="None", ports=[]))
    assert messages(headless) == []
    external = mutated(service, lambda o: spec(o).update(type="ExternalName", externalName="db.example.com.",
                                                         ports=[], selector=None))
    assert messages(external) == []
    node_port = mutated(service, lambda o: spec(o).update(type="NodePort", externalTrafficPolicy="Local")
                        or port(o).update(nodePort=30080))
    assert messages(node_port) == []
    lb = mutated(service, lambda o: spec(o).update(type="LoadBalancer", loadBalancerSourceRanges=[" 10.0.0.0/8"]))
    assert messages(lb) == []
    dual = mutated(service, lambda o: spec(o).update(clusterIPs=["10.96.0.10", "fd00::10"], clusterIP="10.96.0.10",
                                                     ipFamilies=["IPv4", "IPv6"], ipFamilyPolicy="RequireDualStack"))
    assert messages(dual) == []


def test_cluster_ip_may_be_allocated_but_not_changed() -> None:
    old = stored(service)
    allocated = copy.deepcopy(old)
    allocated["spec"].update(clusterIP="10.96.0.10", clusterIPs=["10.96.0.10"])
    assert messages(allocated, old) == []
    changed = copy.deepcopy(allocated)
    changed["spec"].update(clusterIP="10.96.0.11", clusterIPs=["10.96.0.11"])
    assert messages(changed, allocated) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set']
    cleared = copy.deepcopy(allocated)
    cleared["spec"].pop("clusterIP")
    cleared["spec"].pop("clusterIPs")
    assert 'spec.clusterIPs[0]: Invalid value: []string(nil): primary clusterIP can not be unset' in \
        messages(cleared, allocated)
    to_external = copy.deepcopy(allocated)
    to_external["spec"] = {"type": "ExternalName", "externalName": "db.example.com"}
    assert messages(to_external, allocated) == []


def test_releasing_the_secondary_cluster_ip_needs_single_stack() -> None:
    old = stored(lambda: mutated(service, lambda o: spec(o).update(
        clusterIP="10.96.0.10", clusterIPs=["10.96.0.10", "fd00::10"], ipFamilyPolicy="PreferDualStack",
        ipFamilies=["IPv4", "IPv6"])))
    new = copy.deepcopy(old)
    new["spec"].update(clusterIPs=["10.96.0.10"], ipFamilies=["IPv4"])
    assert messages(new, old) == [
        'spec.ipFamilyPolicy: Invalid value: "PreferDualStack": must be set to \'SingleStack\' when releasing the '
        "secondary clusterIP",
        'spec.ipFamilyPolicy: Invalid value: "PreferDualStack": must be set to \'SingleStack\' when releasing the '
        "secondary ipFamily"]
    flipped = copy.deepcopy(old)
    flipped["spec"]["ipFamilies"] = ["IPv6", "IPv4"]
    assert 'spec.ipFamilies[0]: Invalid value: []string{"IPv6", "IPv4"}: may not change once set' in \
        messages(flipped, old)
    new["spec"]["ipFamilyPolicy"] = "SingleStack"
    assert messages(new, old) == []
