"""Pod and pod-template validation: containers, ports, env, resources, volumes, probes, policies,
scheduling fields, and the Pod update rules. Each case names the exact cause Kubernetes reports."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .manifests import Mutation, Obj, deployment, messages, mutated, pod, stored

PORT_NAME_CHARS = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"


def ctr(obj: Obj, i: int = 0) -> Any:
    return obj["spec"]["containers"][i]


def init(obj: Obj) -> Any:
    return obj["spec"]["initContainers"][0]


def spec(obj: Obj) -> Any:
    return obj["spec"]


C0 = "spec.containers[0]"

CASES: list[tuple[str, Mutation, str]] = [
    ("no-containers", lambda o: spec(o).update(containers=[]), "spec.containers: Required value"),
    ("no-image", lambda o: ctr(o).pop("image"), f"{C0}.image: Required value"),
    ("image-whitespace", lambda o: ctr(o).update(image=" nginx"),
     f'{C0}.image: Invalid value: " nginx": must not have leading or trailing whitespace'),
    ("no-name", lambda o: ctr(o).pop("name"), f"{C0}.name: Required value"),
    ("name-with-dot", lambda o: ctr(o).update(name="web.1"),
     f'{C0}.name: Invalid value: "web.1": must not contain dots'),
    ("dup-app-names", lambda o: spec(o)["containers"].append({**ctr(o), "ports": [], "name": "web"}),
     'spec.containers[1].name: Duplicate value: "web"'),
    ("init-name-clashes", lambda o: init(o).update(name="web"), 'spec.initContainers[0].name: Duplicate value: "web"'),
    ("port-zero", lambda o: ctr(o)["ports"][0].update(containerPort=0), f"{C0}.ports[0].containerPort: Required value"),
    ("port-range", lambda o: ctr(o)["ports"][0].update(containerPort=70000),
     f"{C0}.ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("host-port-range", lambda o: ctr(o)["ports"][0].update(hostPort=-1),
     f"{C0}.ports[0].hostPort: Invalid value: -1: must be between 1 and 65535, inclusive"),
    ("protocol", lambda o: ctr(o)["ports"][0].update(protocol="HTTP"),
     f'{C0}.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ("port-name-upper", lambda o: ctr(o)["ports"][0].update(name="HTTP"),
     f'{C0}.ports[0].name: Invalid value: "HTTP": {PORT_NAME_CHARS}'),
    ("port-name-long", lambda o: ctr(o)["ports"][0].update(name="a-very-long-port-name"),
     f'{C0}.ports[0].name: Invalid value: "a-very-long-port-name": must be no more than 15 characters'),
    ("port-name-digits", lambda o: ctr(o)["ports"][0].update(name="8080"),
     f'{C0}.ports[0].name: Invalid value: "8080": must contain at least one letter (a-z)'),
    ("port-name-hyphens", lambda o: ctr(o)["ports"][0].update(name="a--b"),
     f'{C0}.ports[0].name: Invalid value: "a--b": must not contain consecutive hyphens'),
    ("dup-port-name", lambda o: ctr(o)["ports"].append({"name": "http", "containerPort": 81}),
     f'{C0}.ports[1].name: Duplicate value: "http"'),
    ("host-port-conflict", lambda o: ctr(o)["ports"].extend([{"containerPort": 81, "hostPort": 8080},
                                                            {"containerPort": 82, "hostPort": 8080}]),
     f'{C0}.ports[2].hostPort: Duplicate value: "TCP//8080"'),
    ("env-no-name", lambda o: ctr(o)["env"].append({"value": "x"}), f"{C0}.env[2].name: Required value"),
    ("env-equals", lambda o: ctr(o)["env"].append({"name": "A=B"}),
     f'{C0}.env[2].name: Invalid value: "A=B": a valid environment variable name must consist only of printable '
     "ASCII characters other than '='"),
    ("env-value-and-from", lambda o: ctr(o)["env"][1].update(value="x"),
     f'{C0}.env[1].valueFrom: Invalid value: "": may not be specified when `value` is not empty'),
    ("env-from-nothing", lambda o: ctr(o)["env"][1].update(valueFrom={}),
     f'{C0}.env[1].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
     "`configMapKeyRef` or `secretKeyRef`"),
    ("env-field-path", lambda o: ctr(o)["env"][1]["valueFrom"]["fieldRef"].update(fieldPath="spec.restartPolicy"),
     f'{C0}.env[1].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.restartPolicy": supported values: '
     '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
     '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"'),
    ("env-field-path-unknown", lambda o: ctr(o)["env"][1]["valueFrom"]["fieldRef"].update(fieldPath="spec.foo"),
     f'{C0}.env[1].valueFrom.fieldRef.fieldPath: Invalid value: "spec.foo": error converting fieldPath: field '
     "label not supported: spec.foo"),
    ("env-secret-key", lambda o: ctr(o)["env"].append({"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db"}}}),
     f"{C0}.env[2].valueFrom.secretKeyRef.key: Required value"),
    ("env-resource", lambda o: ctr(o)["env"].append(
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}),
     f'{C0}.env[2].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.gpu": supported values: '
     '"limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu", "requests.ephemeral-storage", '
     '"requests.memory"'),
    ("env-from-empty", lambda o: ctr(o).update(envFrom=[{"prefix": "X_"}]),
     f'{C0}.envFrom: Invalid value: "": must specify one of: `configMapRef` or `secretRef`'),
    ("env-from-name", lambda o: ctr(o).update(envFrom=[{"configMapRef": {}}]),
     f"{C0}.envFrom[0].configMapRef.name: Required value"),
    ("requests-over-limits", lambda o: ctr(o)["resources"]["requests"].update(cpu="2"),
     f'{C0}.resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1'),
    ("negative-request", lambda o: ctr(o)["resources"]["requests"].update(memory="-1Mi"),
     f'{C0}.resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0'),
    ("bad-quantity", lambda o: ctr(o)["resources"]["limits"].update(memory="1GB"),
     f"{C0}.resources.limits[memory]: Invalid value: \"1GB\": quantities must match the regular expression "
     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"),
    ("bad-resource-name", lambda o: ctr(o)["resources"]["limits"].update(gpu="1"),
     f'{C0}.resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers'),
    ("extended-fraction", lambda o: ctr(o)["resources"]["limits"].update({"example.com/gpu": "500m"}),
     f"{C0}.resources.limits[example.com/gpu]: Invalid value: 500m: must be an integer"),
    ("extended-overcommit", lambda o: ctr(o)["resources"].update(
        limits={"example.com/gpu": "1"}, requests={"example.com/gpu": "2"}),
     f'{C0}.resources.requests: Invalid value: "2": must be equal to example.com/gpu limit of 1'),
    ("hugepages-alone", lambda o: ctr(o).update(resources={"limits": {"hugepages-2Mi": "4Mi"}}),
     f"{C0}.resources: Forbidden: HugePages require cpu or memory"),
    ("hugepages-multiple", lambda o: ctr(o)["resources"]["limits"].update({"hugepages-2Mi": "3Mi"}),
     f'{C0}.resources.limits[hugepages-2Mi]: Invalid value: "3Mi": 3Mi is not positive integer multiple of '
     "hugepages-2Mi"),
    ("pull-policy", lambda o: ctr(o).update(imagePullPolicy="Sometimes"),
     f'{C0}.imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"'),
    ("termination-policy", lambda o: ctr(o).update(terminationMessagePolicy="Logs"),
     f'{C0}.terminationMessagePolicy: Unsupported value: "Logs": supported values: "File", "FallbackToLogsOnError"'),
    ("mount-unknown-volume", lambda o: ctr(o)["volumeMounts"].append({"name": "data", "mountPath": "/data"}),
     f'{C0}.volumeMounts[1].name: Not found: "data"'),
    ("mount-no-path", lambda o: ctr(o)["volumeMounts"][0].pop("mountPath"),
     f"{C0}.volumeMounts[0].mountPath: Required value"),
    ("mount-dup-path", lambda o: ctr(o)["volumeMounts"].append({"name": "scratch", "mountPath": "/etc/web"}),
     f'{C0}.volumeMounts[1].mountPath: Invalid value: "/etc/web": must be unique'),
    ("mount-subpath", lambda o: ctr(o)["volumeMounts"][0].update(subPath="../x"),
     f"{C0}.volumeMounts.subPath: Invalid value: \"../x\": must not contain '..'"),
    ("mount-bidirectional", lambda o: ctr(o)["volumeMounts"][0].update(mountPropagation="Bidirectional"),
     f"{C0}.volumeMounts.mountPropagation: Forbidden: Bidirectional mount propagation is available only to "
     "privileged containers"),
    ("probe-no-handler", lambda o: ctr(o).update(livenessProbe={"periodSeconds": 5}),
     f"{C0}.livenessProbe: Required value: must specify a handler type"),
    ("probe-two-handlers", lambda o: ctr(o)["livenessProbe"].update(exec={"command": ["true"]}),
     f"{C0}.livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"),
    ("probe-liveness-success", lambda o: ctr(o)["livenessProbe"].update(successThreshold=2),
     f"{C0}.livenessProbe.successThreshold: Invalid value: 2: must be 1"),
    ("probe-negative", lambda o: ctr(o)["livenessProbe"].update(initialDelaySeconds=-1),
     f"{C0}.livenessProbe.initialDelaySeconds: Invalid value: -1: must be greater than or equal to 0"),
    ("probe-port-name", lambda o: ctr(o)["readinessProbe"]["httpGet"].update(port="Http"),
     f'{C0}.readinessProbe.httpGet.port: Invalid value: "Http": {PORT_NAME_CHARS}'),
    ("probe-scheme", lambda o: ctr(o)["readinessProbe"]["httpGet"].update(scheme="FTP"),
     f'{C0}.readinessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS"'),
    ("probe-exec-empty", lambda o: ctr(o).update(startupProbe={"exec": {}}),
     f"{C0}.startupProbe.exec.command: Required value"),
    ("readiness-grace", lambda o: ctr(o)["readinessProbe"].update(terminationGracePeriodSeconds=5),
     f"{C0}.readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes"),
    ("lifecycle-sleep", lambda o: ctr(o).update(lifecycle={"preStop": {"sleep": {"seconds": 60}}}),
     f"{C0}.lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than "
     "terminationGracePeriodSeconds (30)"),
    ("init-probe", lambda o: init(o).update(readinessProbe={"exec": {"command": ["true"]}}),
     "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without "
     "restartPolicy=Always"),
    ("init-restart-policy", lambda o: init(o).update(restartPolicy="OnFailure"),
     'spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'),
    ("app-restart-policy", lambda o: ctr(o).update(restartPolicy="Always"),
     f"{C0}.restartPolicy: Forbidden: may not be set for non-init containers"),
    ("run-as-user", lambda o: ctr(o).update(securityContext={"runAsUser": -1}),
     f"{C0}.securityContext.runAsUser: Invalid value: -1: must be between 0 and 4294967295, inclusive"),
    ("restart-policy", lambda o: spec(o).update(restartPolicy="Sometimes"),
     'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("dns-policy", lambda o: spec(o).update(dnsPolicy="Cluster"),
     'spec.dnsPolicy: Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", "ClusterFirst", '
     '"Default", "None"'),
    ("dns-none-config", lambda o: spec(o).update(dnsPolicy="None"),
     "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ("grace-negative-becomes-one", lambda o: spec(o).update(terminationGracePeriodSeconds=-1), ""),
    ("deadline", lambda o: spec(o).update(activeDeadlineSeconds=0),
     "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"),
    ("node-selector", lambda o: spec(o).update(nodeSelector={"disk": "ssd!"}),
     'spec.nodeSelector: Invalid value: "ssd!": a valid label must be an empty string or consist of alphanumeric '
     "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
     "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("node-name", lambda o: spec(o).update(nodeName="Node_1"),
     'spec.nodeName: Invalid value: "Node_1": a lowercase RFC 1123 subdomain must consist of lower case '
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
     "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ("hostname", lambda o: spec(o).update(hostname="web.0"),
     'spec.hostname: Invalid value: "web.0": must not contain dots'),
    ("toleration-operator", lambda o: spec(o).update(tolerations=[{"key": "k", "operator": "Equals"}]),
     'spec.tolerations[0].operator: Unsupported value: "Equals": supported values: "Equal", "Exists"'),
    ("toleration-no-key", lambda o: spec(o).update(tolerations=[{"operator": "Equal", "value": "v"}]),
     'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which '
     'means "match all values and all keys"'),
    ("toleration-seconds", lambda o: spec(o).update(tolerations=[{"key": "k", "operator": "Exists",
                                                                  "effect": "NoSchedule", "tolerationSeconds": 5}]),
     "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
     "`tolerationSeconds` is set"),
    ("affinity-operator", lambda o: spec(o).update(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "Within", "values": ["a"]}]}]}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
     '.matchExpressions[0].operator: Invalid value: "Within": not a valid selector operator'),
    ("affinity-no-terms", lambda o: spec(o).update(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}),
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required "
     "value: must have at least one node selector term"),
    ("pod-affinity-topology", lambda o: spec(o).update(affinity={"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{"labelSelector": {"matchLabels": {"app": "web"}}}]}}),
     "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required "
     "value: can not be empty"),
    ("spread-skew", lambda o: spec(o).update(topologySpreadConstraints=[
        {"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]),
     "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero"),
    ("host-network-ports", lambda o: spec(o).update(hostNetwork=True) or ctr(o)["ports"][0].update(hostPort=8080),
     f"{C0}.ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true"),
    ("sysctl", lambda o: spec(o).update(securityContext={"sysctls": [{"name": "Net.Foo", "value": "1"}]}),
     'spec.securityContext.sysctls[0].name: Invalid value: "Net.Foo": must have at most 253 characters and match '
     "regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"),
    ("ephemeral-on-create", lambda o: spec(o).update(ephemeralContainers=[{"name": "debug", "image": "busybox"}]),
     "spec.ephemeralContainers: Forbidden: cannot be set on create"),
    ("no-namespace", lambda o: o["metadata"].pop("namespace"), "metadata.namespace: Required value"),
    # Volumes
    ("volume-dup", lambda o: spec(o)["volumes"].append({"name": "config", "emptyDir": {}}),
     'spec.volumes[2].name: Duplicate value: "config"'),
    ("volume-name", lambda o: spec(o)["volumes"][1].update(name="Scratch"),
     'spec.volumes[1].name: Invalid value: "Scratch": a lowercase RFC 1123 label must consist of lower case '
     "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
     "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    ("volume-two-sources", lambda o: spec(o)["volumes"][1].update(hostPath={"path": "/tmp"}),
     "spec.volumes[1].hostPath: Forbidden: may not specify more than 1 volume type"),
    ("volume-two-sources-downward", lambda o: spec(o)["volumes"][1].update(downwardAPI={}),
     "spec.volumes[1].downwarAPI: Forbidden: may not specify more than 1 volume type"),
    ("volume-config-map-name", lambda o: spec(o)["volumes"][0]["configMap"].pop("name"),
     "spec.volumes[0].configMap.name: Required value"),
    ("volume-default-mode", lambda o: spec(o)["volumes"][0]["configMap"].update(defaultMode=0o1000),
     "spec.volumes[0].configMap.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), "
     "both inclusive"),
    ("volume-item-path", lambda o: spec(o)["volumes"][0]["configMap"].update(items=[{"key": "a", "path": "/abs"}]),
     'spec.volumes[0].configMap.items[0].path: Invalid value: "/abs": must be a relative path'),
    ("volume-item-dotdot", lambda o: spec(o)["volumes"][0]["configMap"].update(items=[{"key": "a", "path": "..x"}]),
     "spec.volumes[0].configMap.items[0].path: Invalid value: \"..x\": must not start with '..'"),
    ("volume-secret-name", lambda o: spec(o)["volumes"].append({"name": "tls", "secret": {}}),
     "spec.volumes[2].secret.secretName: Required value"),
    ("volume-host-path-type", lambda o: spec(o)["volumes"].append({"name": "h", "hostPath": {"path": "/x",
     "type": "Dir"}}),
     'spec.volumes[2].hostPath.type: Unsupported value: "Dir": supported values: "", "BlockDevice", "CharDevice", '
     '"Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"'),
    ("volume-pvc", lambda o: spec(o)["volumes"].append({"name": "data", "persistentVolumeClaim": {}}),
     "spec.volumes[2].persistentVolumeClaim.claimName: Required value"),
    ("volume-nfs", lambda o: spec(o)["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "rel"}}),
     'spec.volumes[2].nfs.path: Invalid value: "rel": must be an absolute path'),
    ("volume-gce", lambda o: spec(o)["volumes"].append({"name": "g", "gcePersistentDisk": {}}),
     "spec.volumes[2].persistentDisk.pdName: Required value"),
    ("volume-empty-dir-size", lambda o: spec(o)["volumes"][1]["emptyDir"].update(sizeLimit="-1Gi"),
     "spec.volumes[1].emptyDir.sizeLimit: Forbidden: SizeLimit field must be a valid resource quantity"),
    ("volume-downward-file", lambda o: spec(o)["volumes"].append({"name": "d", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}),
     'spec.volumes[2].downwardAPI.fieldRef.fieldPath: Unsupported value: "spec.nodeName": supported values: '
     '"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"'),
    ("volume-projected-dup-paths", lambda o: spec(o)["volumes"].append({"name": "p", "projected": {"sources": [
        {"configMap": {"name": "a", "items": [{"key": "k", "path": "same"}]}},
        {"secret": {"name": "b", "items": [{"key": "k", "path": "same"}]}}]}}),
     'spec.volumes[2].projected: Invalid value: "b": conflicting duplicate paths'),
    ("volume-token-without-sa", lambda o: spec(o)["volumes"].append({"name": "t", "projected": {"sources": [
        {"serviceAccountToken": {"path": "token"}}]}}),
     "spec.volumes[2].projected.sources[0].serviceAccountToken: Forbidden: must not be specified when "
     "serviceAccountName is not set"),
]


@pytest.mark.parametrize(("mutation", "expected"), [pytest.param(m, e, id=i) for i, m, e in CASES])
def test_invalid_pod(mutation: Mutation, expected: str) -> None:
    got = messages(mutated(pod, mutation))
    if expected:
        assert expected in got, got
    else:
        assert got == []


def test_valid_pod_variants() -> None:
    def variants(o: Obj) -> None:
        spec(o).update(
            hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet", serviceAccountName="builder",
            tolerations=[{"operator": "Exists"}, {"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute",
                                                 "tolerationSeconds": 30}],
            securityContext={"runAsUser": 1000, "fsGroup": 2000, "sysctls": [{"name": "kernel.shm_rmid_forced",
                                                                              "value": "1"}]},
            affinity={"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}},
                                                    "topologyKey": "kubernetes.io/hostname"}}]}},
            topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
                                        "labelSelector": {"matchLabels": {"app": "web"}}}],
        )
        init(o).update(restartPolicy="Always", readinessProbe={"exec": {"command": ["true"]}})
        ctr(o)["resources"] = {"limits": {"cpu": 2, "memory": "1.5Gi", "hugepages-2Mi": "4Mi",
                                          "example.com/gpu": 1}}
        ctr(o)["ports"][0]["hostPort"] = 80
        spec(o)["volumes"].append({"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]}})
    assert messages(mutated(pod, variants)) == []


def test_generate_name_without_name_is_accepted_before_generation() -> None:
    def generated(o: Obj) -> None:
        o["metadata"].pop("name")
        o["metadata"]["generateName"] = "web-"
    assert messages(mutated(pod, generated)) == []


def test_template_rules_differ_from_pod_rules() -> None:
    d = mutated(deployment, lambda o: o["spec"]["template"]["spec"]["containers"][0].update(image=" nginx "))
    assert messages(d) == []  # whitespace is only checked on real Pods


def test_pod_update_may_change_images_deadline_and_add_tolerations() -> None:
    old = stored(pod)
    new = copy.deepcopy(old)
    ctr(new)["image"] = "nginx:1.26"
    init(new)["image"] = "busybox:1.36"
    spec(new)["activeDeadlineSeconds"] = 60
    spec(new)["tolerations"] = [{"key": "k", "operator": "Exists"}]
    assert messages(new, old) == []


def test_pod_update_rejects_other_spec_changes() -> None:
    old = stored(pod)
    new = copy.deepcopy(old)
    spec(new)["nodeName"] = "node-1"
    ctr(new)["ports"][0]["containerPort"] = 81
    got = messages(new, old)
    assert len(got) == 1
    assert got[0].startswith("spec: Forbidden: pod updates may not change fields other than "
                             "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                             "`spec.tolerations` (only additions to existing tolerations),"
                             "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
                             "negative)\n")
    assert "containers" in got[0] and "nodeName" in got[0]


def test_pod_update_container_count_and_deadline_rules() -> None:
    old = stored(pod)
    old["spec"]["activeDeadlineSeconds"] = 30
    more = copy.deepcopy(old)
    spec(more)["containers"].append({**ctr(more), "name": "sidecar", "ports": []})
    assert messages(more, old) == ["spec.containers: Forbidden: pod updates may not add or remove containers"]
    longer = copy.deepcopy(old)
    spec(longer)["activeDeadlineSeconds"] = 60
    assert messages(longer, old) == ["spec.activeDeadlineSeconds: Invalid value: 60: must be less than or equal "
                                     "to previous value"]
    removed = copy.deepcopy(old)
    del spec(removed)["activeDeadlineSeconds"]
    assert messages(removed, old) == ["spec.activeDeadlineSeconds: Invalid value: null: must not update from a "
                                      "positive integer to nil value"]


def test_pod_update_tolerations_only_added() -> None:
    old = stored(pod)
    old["spec"]["tolerations"] = [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]
    changed = copy.deepcopy(old)
    spec(changed)["tolerations"] = [{"key": "other", "operator": "Exists"}]
    assert messages(changed, old) == ["spec.tolerations: Forbidden: existing toleration can not be modified except "
                                      "its tolerationSeconds"]
    seconds = copy.deepcopy(old)
    spec(seconds)["tolerations"][0]["tolerationSeconds"] = 10
    assert messages(seconds, old) == []


def test_pod_update_scheduling_gates_only_removed() -> None:
    old = stored(pod)
    old["spec"]["schedulingGates"] = [{"name": "example.com/wait"}]
    added = copy.deepcopy(old)
    spec(added)["schedulingGates"].append({"name": "example.com/more"})
    assert messages(added, old) == ["spec.schedulingGates[1].name: Forbidden: only deletion is allowed, but found "
                                    "new scheduling gate 'example.com/more'"]
    cleared = copy.deepcopy(old)
    spec(cleared)["schedulingGates"] = []
    assert messages(cleared, old) == []


def test_status_only_update_is_valid() -> None:
    old = stored(pod)
    new = copy.deepcopy(old)
    new["status"] = {"phase": "Running", "podIP": "10.244.1.5"}
    assert messages(new, old) == []


def test_pod_update_compares_like_go_structs() -> None:
    """Zero values and empty collections are the same as absent fields, as after a Go decode."""
    old = stored(pod)
    new = copy.deepcopy(old)
    spec(new)["nodeSelector"] = {}
    spec(new)["hostNetwork"] = False
    ctr(new)["ports"][0]["hostPort"] = 0
    assert messages(new, old) == []


def test_dns_config_searches_allow_underscores() -> None:
    def searches(values: list[str]) -> Mutation:
        return lambda o: spec(o).update(dnsConfig={"searches": values, "nameservers": ["10.96.0.10"]})
    assert messages(mutated(pod, searches(["_srv.example.com", "svc.cluster.local.", "."]))) == []
    assert messages(mutated(pod, searches(["Bad"]))) == [
        'spec.dnsConfig.searches[0]: Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist of lower '
        "case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'example.com', regex used for validation is "
        "'_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*')"]
    assert messages(mutated(pod, searches(["a"] * 33)))[0].startswith(
        "spec.dnsConfig.searches: Invalid value: []string{")


def test_scheduling_terms() -> None:
    def affinity(value: dict[str, Any]) -> Mutation:
        return lambda o: spec(o).update(affinity=value)
    fields = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["a", "b"]}]}]}}}
    at = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0]"
    assert messages(mutated(pod, affinity(fields))) == [
        f"{at}.values: Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field "
        "selector",
        f'{at}.key: Invalid value: "metadata.uid": not a valid field selector key']
    weighted = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "preference": {"matchExpressions": [{"key": "zone", "operator": "Gt", "values": ["1", "2"]}]}}]}}
    assert messages(mutated(pod, affinity(weighted))) == [
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: "
        "must be in the range 1-100",
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0]"
        ".values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"]
    spread = [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
              {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "minDomains": 2}]
    assert messages(mutated(pod, lambda o: spec(o).update(topologySpreadConstraints=spread))) == [
        "spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}: Duplicate value: "
        '"{zone, DoNotSchedule}"']
