"""Server-side Table printing: the columns and cells ``kubectl get`` shows, computed as Kubernetes does.

Kubernetes answers ``Accept: application/json;as=Table;g=meta.k8s.io;v=v1`` with a ``meta.k8s.io/v1``
Table whose columns and cells come from ``pkg/printers/internalversion/printers.go``. This module is that
file for the kinds kubelite serves:

- ``columns(kind)`` gives the TableColumnDefinitions (name, type, format, description, priority) as
  printers.go declares them; ``priority: 1`` columns are the ones kubectl shows only with ``-o wide``.
- ``cells(kind, obj, now)`` computes one row. Like kube-apiserver (which always generates with
  ``Wide: true``), rows carry the wide cells too; kubectl drops them unless asked.
- ``table(kind, objs, resource_version=...)`` wraps rows into the Table document, with each row's object
  as the full object, a PartialObjectMetadata or nothing (``includeObject``).
- ``format_table(table, wide=..., show_namespace=..., no_headers=...)`` renders a Table as text the way
  kubectl's tabwriter does, for kubelite's own CLI.

Kinds without a printer get NAME and AGE. Cells are computed from the stored JSON objects; where an
omitted field has a documented default (``replicas`` 1, Secret type ``Opaque``, port protocol ``TCP``) the
default is what prints, as it would after Kubernetes' decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubelite.api.registry import Kind
from kubelite.api.selectors import format_labels, label_selector_from_dict

Obj = Mapping[str, Any]
Cell = str | int | bool
Column = dict[str, Any]

# ---------------------------------------------------------------------------------------------------
# Durations and timestamps
# ---------------------------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: ``"45s"``, ``"3m12s"``, ``"5h"``, ``"2d3h"``, ``"400d"``, ``"3y20d"``.

    About two significant figures; up to one second in the future still reads ``"0s"`` (clock skew)."""
    whole = int(seconds)  # Go converts with truncation toward zero
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        return f"{hours // 24 // 365}y" if days == 0 else f"{hours // 24 // 365}y{days}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``Time`` or ``MicroTime``), or None when absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when there is none."""
    when = _parse_time(value)
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


# ---------------------------------------------------------------------------------------------------
# Column definitions (descriptions are the swagger docs printers.go reads)
# ---------------------------------------------------------------------------------------------------

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some resources "
    "may allow a client to request the generation of an appropriate name automatically. Name is primarily "
    "intended for creation idempotence and configuration definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not "
    "guaranteed to be set in happens-before order across separate operations. Clients may not set this "
    "value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null "
    "for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_CONTAINERS_DOC = "Names of each container in the template."
_IMAGES_DOC = "Images referenced by each container in the template."
_NODE_ADDRESSES_DOC = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More info: "
    "https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as "
    "mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is "
    "merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an "
    "example. Consumers should assume that addresses can change during the lifetime of a Node. However, "
    "there are some exceptions where this may not be possible, such as Pods that inherit a Node's address "
    "in its own status or consumers of the downward API (status.hostIP)."
)


def _col(name: str, type_: str, description: str, *, priority: int = 0, format_: str = "") -> Column:
    return {"name": name, "type": type_, "format": format_, "description": description, "priority": priority}


def _name_col(priority: int = 0) -> Column:
    return _col("Name", "string", _NAME_DOC, priority=priority, format_="name")


def _age_col() -> Column:
    return _col("Age", "string", _AGE_DOC)


_POD_COLUMNS = (
    _name_col(),
    _col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", "string", "The aggregate status of the containers in this pod."),
    _col("Restarts", "string",
         "The number of times the containers in this pod have been restarted and when the last container in "
         "this pod has restarted."),
    _age_col(),
    _col("IP", "string",
         "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet "
         "allocated.", priority=1),
    _col("Node", "string",
         "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for "
         "scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for "
         "this node becomes responsible for the lifecycle of this pod. This field should not be used to "
         "express a desire for the pod to be scheduled on a specific node. "
         "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", priority=1),
    _col("Nominated Node", "string",
         "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be "
         "scheduled right away as preemption victims receive their graceful termination periods. This field "
         "does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the "
         "pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the "
         "resources on this node to a higher priority pod that is created after preemption. As a result, "
         "this field may be different than PodSpec.nodeName when the pod is scheduled.", priority=1),
    _col("Readiness Gates", "string",
         "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all "
         "its containers are ready AND all conditions specified in the readiness gates have status equal to "
         "\"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
         priority=1),
)

_REPLICA_SET_COLUMNS = (
    _name_col(),
    _col("Desired", "integer",
         "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit "
         "zero and unspecified. Defaults to 1. More info: "
         "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replica"
         "tioncontroller"),
    _col("Current", "integer",
         "Replicas is the most recently oberved number of replicas. More info: "
         "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replica"
         "tioncontroller"),
    _col("Ready", "integer", "The number of ready replicas for this replica set."),
    _age_col(),
    _col("Containers", "string", _CONTAINERS_DOC, priority=1),
    _col("Images", "string", _IMAGES_DOC, priority=1),
    _col("Selector", "string",
         "Selector is a label query over pods that should match the replica count. If the selector is "
         "empty, it is defaulted to the labels present on the pod template. Label keys and values that must "
         "match in order to be controlled by this replica set. More info: "
         "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
         priority=1),
)

_DEPLOYMENT_COLUMNS = (
    _name_col(),
    _col("Ready", "string", "Number of the pod with ready state"),
    _col("Up-to-date", "string",
         "Total number of non-terminated pods targeted by this deployment that have the desired template "
         "spec."),
    _col("Available", "string",
         "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    _age_col(),
    _col("Containers", "string", _CONTAINERS_DOC, priority=1),
    _col("Images", "string", _IMAGES_DOC, priority=1),
    _col("Selector", "string",
         "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones "
         "affected by this deployment.", priority=1),
)

_SERVICE_COLUMNS = (
    _name_col(),
    _col("Type", "string",
         "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
         "ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal "
         "IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that "
         "is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If "
         "clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of "
         "endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on "
         "every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on "
         "NodePort and creates an external load-balancer (if supported in the current cloud) which routes "
         "to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified "
         "externalName. Several other fields do not apply to ExternalName services. More info: "
         "https://kubernetes.io/docs/concepts/services-networking/service/"
         "#publishing-services-service-types"),
    _col("Cluster-IP", "string",
         "clusterIP is the IP address of the service and is usually assigned randomly. If an address is "
         "specified manually, is in-range (as per system configuration), and is not in use, it will be "
         "allocated to the service; otherwise creation of the service will fail. This field may not be "
         "changed through updates unless the type field is also being changed to ExternalName (which "
         "requires this field to be blank) or the type field is being changed from ExternalName (in which "
         "case this field may optionally be specified, as describe above).  Valid values are \"None\", "
         "empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" "
         "(no virtual IP), which is useful when direct endpoint connections are preferred and proxying is "
         "not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is "
         "specified when creating a Service of type ExternalName, creation will fail. This field will be "
         "wiped when updating a Service to type ExternalName. More info: "
         "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
    _col("External-IP", "string",
         "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for "
         "this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring "
         "that traffic arrives at a node with this IP.  A common example is external load-balancers that "
         "are not part of the Kubernetes system."),
    _col("Port(s)", "string",
         "The list of ports that are exposed by this service. More info: "
         "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies"),
    _age_col(),
    _col("Selector", "string",
         "Route service traffic to pods with label keys and values matching this selector. If empty or not "
         "present, the service is assumed to have an external process managing its endpoints, which "
         "Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored "
         "if type is ExternalName. More info: "
         "https://kubernetes.io/docs/concepts/services-networking/service/", priority=1),
)

_NODE_COLUMNS = (
    _name_col(),
    _col("Status", "string", "The status of the node"),
    _col("Roles", "string", "The roles of the node"),
    _age_col(),
    _col("Version", "string", "Kubelet Version reported by the node."),
    _col("Internal-IP", "string", _NODE_ADDRESSES_DOC, priority=1),
    _col("External-IP", "string", _NODE_ADDRESSES_DOC, priority=1),
    _col("OS-Image", "string",
         "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
         priority=1),
    _col("Kernel-Version", "string",
         "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", priority=1),
    _col("Container-Runtime", "string",
         "ContainerRuntime Version reported by the node through runtime remote API (e.g. "
         "containerd://1.4.2).", priority=1),
)

_EVENT_COLUMNS = (
    _col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    _col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    _col("Reason", "string",
         "This should be a short, machine understandable string that gives the reason for the transition "
         "into the object's current status."),
    _col("Object", "string", "The object that this event is about."),
    _col("Subobject", "string",
         "If referring to a piece of an object instead of an entire object, this string should contain a "
         "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, "
         "if the object reference is to a container within a pod, this would take on a value like: "
         "\"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the "
         "event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in "
         "this pod). This syntax is chosen only to have some well-defined way of referencing a part of an "
         "object.", priority=1),
    _col("Source", "string",
         "The component reporting this event. Should be a short machine understandable string.", priority=1),
    _col("Message", "string", "A human-readable description of the status of this operation."),
    _col("First Seen", "string",
         "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
         priority=1),
    _col("Count", "string", "The number of times this event has occurred.", priority=1),
    _name_col(priority=1),
)

_ENDPOINTS_COLUMNS = (
    _name_col(),
    _col("Endpoints", "string",
         "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according "
         "to the IPs they share. A single address with multiple ports, some of which are ready and some of "
         "which are not (because they come from different containers) will result in the address being "
         "displayed in different subsets for the different ports. No address will appear in both Addresses "
         "and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service."),
    _age_col(),
)

_ENDPOINT_SLICE_COLUMNS = (
    _name_col(),
    _col("AddressType", "string",
         "addressType specifies the type of address carried by this EndpointSlice. All addresses in this "
         "slice must be the same type. This field is immutable after creation. The following address types "
         "are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. "
         "* FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only "
         "generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No "
         "semantics are defined for the \"FQDN\" type."),
    _col("Ports", "string",
         "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must "
         "have a unique name. Each slice may include a maximum of 100 ports. Services always have at least "
         "1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at "
         "least 1 port. EndpointSlices used for other purposes may have an empty ports list."),
    _col("Endpoints", "string",
         "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 "
         "endpoints."),
    _age_col(),
)

_NAMESPACE_COLUMNS = (
    _name_col(),
    _col("Status", "string", "The status of the namespace"),
    _age_col(),
)

_CONFIG_MAP_COLUMNS = (
    _name_col(),
    _col("Data", "string",
         "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' "
         "or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in "
         "Data must not overlap with the keys in the BinaryData field, this is enforced during validation "
         "process."),
    _age_col(),
)

_SECRET_COLUMNS = (
    _name_col(),
    _col("Type", "string",
         "Used to facilitate programmatic handling of secret data. More info: "
         "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
    _col("Data", "string",
         "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. "
         "The serialized form of the secret data is a base64 encoded string, representing the arbitrary "
         "(possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
    _age_col(),
)

_SERVICE_ACCOUNT_COLUMNS = (
    _name_col(),
    _col("Secrets", "string",
         "Secrets is a list of the secrets in the same namespace that pods running using this "
         "ServiceAccount are allowed to use. Pods are only limited to this list if this service account has "
         "a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The "
         "\"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate "
         "namespaces to isolate access to mounted secrets. This field should not be used to find "
         "auto-generated service account token secrets for use outside of pods. Instead, tokens can be "
         "requested directly using the TokenRequest API, or service account token secrets can be manually "
         "created. More info: https://kubernetes.io/docs/concepts/configuration/secret"),
    _age_col(),
)

_INGRESS_COLUMNS = (
    _name_col(),
    _col("Class", "string",
         "The name of the IngressClass resource that should be used for additional configuration"),
    _col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
    _col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
    _col("Ports", "string", "Ports of TLS configurations that open"),
    _age_col(),
)

_INGRESS_CLASS_COLUMNS = (
    _name_col(),
    _col("Controller", "string", "Controller that is responsible for handling this class"),
    _col("Parameters", "string", "A reference to a resource with additional parameters"),
    _age_col(),
)

_LEASE_COLUMNS = (
    _name_col(),
    _col("Holder", "string",
         "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
         "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
         "field."),
    _age_col(),
)

_DEFAULT_COLUMNS = (_name_col(), _age_col())

# ---------------------------------------------------------------------------------------------------
# Small readers over plain objects
# ---------------------------------------------------------------------------------------------------


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def _list(obj: Any, *path: str) -> list[Any]:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _int(obj: Any, *path: str, default: int = 0) -> int:
    value = _get(obj, *path)
    return default if value is None else int(value)


def _str(obj: Any, *path: str) -> str:
    value = _get(obj, *path)
    return "" if value is None else str(value)


def _name(obj: Obj) -> str:
    return _str(obj, "metadata", "name")


def _age(obj: Obj, now: datetime) -> str:
    return _since(_get(obj, "metadata", "creationTimestamp"), now)


def _container_cells(pod_spec: Any) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, comma-separated."""
    containers = _list(pod_spec, "containers")
    return (",".join(_str(c, "name") for c in containers), ",".join(_str(c, "image") for c in containers))


# ---------------------------------------------------------------------------------------------------
# Row printers (one per printX function of printers.go)
# ---------------------------------------------------------------------------------------------------


def _is_restartable_init_container(container: Any) -> bool:
    return bool(_get(container, "restartPolicy") == "Always")


def _condition_true(conditions: list[Any], type_: str) -> bool:
    return any(_get(c, "type") == type_ and _get(c, "status") == "True" for c in conditions)


def _pod_initialized(conditions: list[Any]) -> bool:
    # The first PodInitialized condition decides, as isPodInitializedConditionTrue reads it.
    for c in conditions:
        if _get(c, "type") == "Initialized":
            return bool(_get(c, "status") == "True")
    return False


def _terminated_reason(terminated: Any, prefix: str) -> str:
    """The reason a terminated container shows: its reason, else ``Signal:N``, else ``ExitCode:N``."""
    if _str(terminated, "reason"):
        return prefix + _str(terminated, "reason")
    if _int(terminated, "signal"):
        return f"{prefix}Signal:{_int(terminated, 'signal')}"
    return f"{prefix}ExitCode:{_int(terminated, 'exitCode')}"


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    when = _parse_time(candidate)
    if when is None or (current is not None and when <= current):
        return current
    return when


def _pod_cells(pod: Obj, now: datetime) -> list[Cell]:
    spec, status = _get(pod, "spec") or {}, _get(pod, "status") or {}
    conditions = _list(status, "conditions")
    restarts = restartable_restarts = 0
    total = len(_list(spec, "containers"))
    ready = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None

    phase = _str(status, "phase")
    reason = _str(status, "reason") or phase
    if any(_get(c, "type") == "PodScheduled" and _get(c, "reason") == "SchedulingGated" for c in conditions):
        reason = "SchedulingGated"

    init_specs = _list(spec, "initContainers")
    init_containers = {_str(c, "name"): c for c in init_specs}
    total += sum(1 for c in init_specs if _is_restartable_init_container(c))

    initializing = False
    init_statuses = _list(status, "initContainerStatuses")
    for i, cs in enumerate(init_statuses):
        restarts += _int(cs, "restartCount")
        finished = _get(cs, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        restartable = _is_restartable_init_container(init_containers.get(_str(cs, "name")))
        if restartable:
            restartable_restarts += _int(cs, "restartCount")
            last_restartable_restart = _later(last_restartable_restart, finished)
        terminated, waiting = _get(cs, "state", "terminated"), _get(cs, "state", "waiting")
        if terminated is not None and _int(terminated, "exitCode") == 0:
            continue
        if restartable and _get(cs, "started") is True:
            if _get(cs, "ready"):
                ready += 1
            continue
        if terminated is not None:
            reason = _terminated_reason(terminated, "Init:")
        elif waiting is not None and _str(waiting, "reason") and _str(waiting, "reason") != "PodInitializing":
            reason = "Init:" + _str(waiting, "reason")
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _pod_initialized(conditions):
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        for cs in reversed(_list(status, "containerStatuses")):
            restarts += _int(cs, "restartCount")
            last_restart = _later(last_restart, _get(cs, "lastState", "terminated", "finishedAt"))
            waiting, terminated = _get(cs, "state", "waiting"), _get(cs, "state", "terminated")
            if waiting is not None and _str(waiting, "reason"):
                reason = _str(waiting, "reason")
            elif terminated is not None:
                reason = _terminated_reason(terminated, "")
            elif _get(cs, "ready") and _get(cs, "state", "running") is not None:
                has_running = True
                ready += 1
        # A pod whose last container completed while another still runs is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if _get(pod, "metadata", "deletionTimestamp"):
        if _str(status, "reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"

    pod_ips = _list(status, "podIPs")
    pod_ip = _str(pod_ips[0], "ip") if pod_ips else _str(status, "podIP")
    gates = _list(spec, "readinessGates")
    readiness = "<none>"
    if gates:
        by_type: dict[str, Any] = {}
        for c in conditions:
            by_type.setdefault(_str(c, "type"), c)
        passed = sum(1 for g in gates if _get(by_type.get(_str(g, "conditionType")), "status") == "True")
        readiness = f"{passed}/{len(gates)}"
    return [_name(pod), f"{ready}/{total}", reason, restarts_text, _age(pod, now),
            pod_ip or "<none>", _str(spec, "nodeName") or "<none>",
            _str(status, "nominatedNodeName") or "<none>", readiness]


def _pod_conditions(pod: Obj) -> list[dict[str, str]]:
    """Row conditions marking finished pods (``podSuccessConditions`` / ``podFailedConditions``)."""
    phase = _get(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


def _replica_set_cells(rs: Obj, now: datetime) -> list[Cell]:
    names, images = _container_cells(_get(rs, "spec", "template", "spec"))
    selector = _get(rs, "spec", "selector")
    try:
        # metav1.FormatLabelSelector: "<none>" for an empty selector, "<error>" for an invalid one.
        selector_text = str(label_selector_from_dict(selector)) or "<none>"
    except ValueError:
        selector_text = "<error>"
    return [_name(rs), _int(rs, "spec", "replicas", default=1), _int(rs, "status", "replicas"),
            _int(rs, "status", "readyReplicas"), _age(rs, now), names, images, selector_text]


def _deployment_cells(deploy: Obj, now: datetime) -> list[Cell]:
    names, images = _container_cells(_get(deploy, "spec", "template", "spec"))
    try:
        # LabelSelectorAsSelector(...).String(): a missing selector selects nothing and prints "".
        selector_text = str(label_selector_from_dict(_get(deploy, "spec", "selector")))
    except ValueError:
        selector_text = "<invalid>"
    ready = f"{_int(deploy, 'status', 'readyReplicas')}/{_int(deploy, 'spec', 'replicas', default=1)}"
    return [_name(deploy), ready, _int(deploy, "status", "updatedReplicas"),
            _int(deploy, "status", "availableReplicas"), _age(deploy, now), names, images, selector_text]


def _load_balancer_addresses(status: Any) -> str:
    """``loadBalancerStatusStringer`` with ``wide``: the distinct IPs or hostnames, sorted."""
    found = {_str(i, "ip") or _str(i, "hostname") for i in _list(status, "ingress")}
    return ",".join(sorted(found - {""}))


def _service_external_ip(svc: Obj) -> str:
    spec = _get(svc, "spec") or {}
    svc_type = _str(spec, "type") or "ClusterIP"
    external_ips = [str(ip) for ip in _list(spec, "externalIPs")]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if svc_type == "LoadBalancer":
        lb_ips = _load_balancer_addresses(_get(svc, "status", "loadBalancer"))
        if external_ips:
            return ",".join(([*lb_ips.split(",")] if lb_ips else []) + external_ips)
        return lb_ips or "<pending>"
    if svc_type == "ExternalName":
        return _str(spec, "externalName")
    return "<unknown>"


def _service_cells(svc: Obj, now: datetime) -> list[Cell]:
    spec = _get(svc, "spec") or {}
    cluster_ips = _list(spec, "clusterIPs")
    cluster_ip = str(cluster_ips[0]) if cluster_ips else (_str(spec, "clusterIP") or "<none>")
    ports = []
    for p in _list(spec, "ports"):
        protocol = _str(p, "protocol") or "TCP"
        node_port = _int(p, "nodePort")
        ports.append(f"{_int(p, 'port')}:{node_port}/{protocol}" if node_port > 0
                     else f"{_int(p, 'port')}/{protocol}")
    return [_name(svc), _str(spec, "type") or "ClusterIP", cluster_ip, _service_external_ip(svc),
            ",".join(ports) or "<none>", _age(svc, now), format_labels(_get(spec, "selector"))]


def _join_host_port(host: str, port: int) -> str:
    """``net.JoinHostPort``: IPv6 addresses go in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _format_endpoints(endpoints: Obj) -> str:
    """``formatEndpoints``: up to three ``ip:port`` pairs, then ``+ N more...``."""
    subsets = _list(endpoints, "subsets")
    if not subsets:
        return "<none>"
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for subset in subsets:
        addresses = [_str(a, "ip") for a in _list(subset, "addresses")]
        ports = _list(subset, "ports")
        # A headless service may have no ports: list bare IPs.
        targets = [addresses] if not ports else [
            [_join_host_port(ip, _int(p, "port")) for ip in addresses] for p in ports]
        for group in targets:
            count += len(group)
            for item in group:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(item)
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def _list_with_more(items: list[str], total: int, limit: int = 3) -> str:
    """``listWithMoreString``: the first items, ``+ N more...`` past the limit, ``<unset>`` for none."""
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or "<unset>"


def _endpoint_slice_cells(eps: Obj, now: datetime) -> list[Cell]:
    ports = []
    for p in _list(eps, "ports"):
        port = _get(p, "port")
        if port is None:
            port = _get(p, "name")
        ports.append("*" if port is None else str(port))
    addresses = [str(a) for e in _list(eps, "endpoints") for a in _list(e, "addresses")]
    return [_name(eps), _str(eps, "addressType"), _list_with_more(ports, len(ports)),
            _list_with_more(addresses, len(addresses)), _age(eps, now)]


def _node_roles(node: Obj) -> str:
    roles = set()
    for key, value in (_get(node, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, address_type: str) -> str:
    for address in _list(node, "status", "addresses"):
        if _get(address, "type") == address_type:
            return _str(address, "address")
    return "<none>"


def _node_cells(node: Obj, now: datetime) -> list[Cell]:
    ready = None
    for c in _list(node, "status", "conditions"):
        if _get(c, "type") == "Ready":
            ready = c  # the last Ready condition wins, as the conditionMap does
    status = ["Unknown"] if ready is None else ["Ready" if _get(ready, "status") == "True" else "NotReady"]
    if _get(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    info = _get(node, "status", "nodeInfo") or {}
    return [_name(node), ",".join(status), _node_roles(node), _age(node, now), _str(info, "kubeletVersion"),
            _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            _str(info, "osImage") or "<unknown>", _str(info, "kernelVersion") or "<unknown>",
            _str(info, "containerRuntimeVersion") or "<unknown>"]


def _event_cells(event: Obj, now: datetime) -> list[Cell]:
    first_seen = _since(_get(event, "firstTimestamp") or _get(event, "eventTime"), now)
    last_seen = _since(_get(event, "lastTimestamp"), now) if _get(event, "lastTimestamp") else first_seen
    count = _int(event, "count")
    series = _get(event, "series")
    if series is not None:
        last_seen = _since(_get(series, "lastObservedTime"), now)
        count = _int(series, "count")
    elif count == 0:
        count = 1  # singleton events of the events.k8s.io API carry no count
    kind, name = _str(event, "involvedObject", "kind").lower(), _str(event, "involvedObject", "name")
    target = f"{kind}/{name}" if name else kind
    component = _str(event, "source", "component") or _str(event, "reportingComponent")
    instance = _str(event, "source", "host") or _str(event, "reportingInstance")
    source = f"{component}, {instance}" if instance else component
    return [last_seen, _str(event, "type"), _str(event, "reason"), target,
            _str(event, "involvedObject", "fieldPath"), source, _str(event, "message").strip(), first_seen,
            count, _name(event)]


def _ingress_hosts(rules: list[Any]) -> str:
    """``formatHosts``: up to three hosts, ``*`` when no rule names one."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and _str(rule, "host"):
            hosts.append(_str(rule, "host"))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _ingress_cells(ing: Obj, now: datetime) -> list[Cell]:
    spec = _get(ing, "spec") or {}
    class_name = _get(spec, "ingressClassName")
    ingress_class = "<none>" if class_name is None else str(class_name)
    address = _load_balancer_addresses(_get(ing, "status", "loadBalancer"))
    ports = "80, 443" if _list(spec, "tls") else "80"
    return [_name(ing), ingress_class, _ingress_hosts(_list(spec, "rules")), address, ports, _age(ing, now)]


def _ingress_class_cells(ic: Obj, now: datetime) -> list[Cell]:
    params = _get(ic, "spec", "parameters")
    parameters = "<none>"
    if params is not None:
        api_group = _get(params, "apiGroup")
        parameters = _str(params, "kind") + (f".{api_group}" if api_group is not None else "")
        parameters += "/" + _str(params, "name")
    return [_name(ic), _str(ic, "spec", "controller"), parameters, _age(ic, now)]


def _namespace_cells(ns: Obj, now: datetime) -> list[Cell]:
    return [_name(ns), _str(ns, "status", "phase"), _age(ns, now)]


def _config_map_cells(cm: Obj, now: datetime) -> list[Cell]:
    return [_name(cm), len(_get(cm, "data") or {}) + len(_get(cm, "binaryData") or {}), _age(cm, now)]


def _secret_cells(secret: Obj, now: datetime) -> list[Cell]:
    return [_name(secret), _str(secret, "type") or "Opaque", len(_get(secret, "data") or {}),
            _age(secret, now)]


def _service_account_cells(sa: Obj, now: datetime) -> list[Cell]:
    return [_name(sa), len(_list(sa, "secrets")), _age(sa, now)]


def _endpoints_cells(ep: Obj, now: datetime) -> list[Cell]:
    return [_name(ep), _format_endpoints(ep), _age(ep, now)]


def _lease_cells(lease: Obj, now: datetime) -> list[Cell]:
    return [_name(lease), _str(lease, "spec", "holderIdentity"), _age(lease, now)]


def _default_cells(obj: Obj, now: datetime) -> list[Cell]:
    return [_name(obj), _age(obj, now)]


def _no_conditions(obj: Obj) -> list[dict[str, str]]:
    return []


@dataclass(frozen=True, slots=True)
class _Printer:
    columns: tuple[Column, ...]
    cells: Callable[[Obj, datetime], list[Cell]]
    conditions: Callable[[Obj], list[dict[str, str]]] = _no_conditions


# Keyed by (group, kind) so that a later events.k8s.io Event cannot take core Event's printer.
_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Pod"): _Printer(_POD_COLUMNS, _pod_cells, _pod_conditions),
    ("", "Service"): _Printer(_SERVICE_COLUMNS, _service_cells),
    ("", "Endpoints"): _Printer(_ENDPOINTS_COLUMNS, _endpoints_cells),
    ("", "Node"): _Printer(_NODE_COLUMNS, _node_cells),
    ("", "Event"): _Printer(_EVENT_COLUMNS, _event_cells),
    ("", "Namespace"): _Printer(_NAMESPACE_COLUMNS, _namespace_cells),
    ("", "ConfigMap"): _Printer(_CONFIG_MAP_COLUMNS, _config_map_cells),
    ("", "Secret"): _Printer(_SECRET_COLUMNS, _secret_cells),
    ("", "ServiceAccount"): _Printer(_SERVICE_ACCOUNT_COLUMNS, _service_account_cells),
    ("apps", "Deployment"): _Printer(_DEPLOYMENT_COLUMNS, _deployment_cells),
    ("apps", "ReplicaSet"): _Printer(_REPLICA_SET_COLUMNS, _replica_set_cells),
    ("networking.k8s.io", "Ingress"): _Printer(_INGRESS_COLUMNS, _ingress_cells),
    ("networking.k8s.io", "IngressClass"): _Printer(_INGRESS_CLASS_COLUMNS, _ingress_class_cells),
    ("coordination.k8s.io", "Lease"): _Printer(_LEASE_COLUMNS, _lease_cells),
    ("discovery.k8s.io", "EndpointSlice"): _Printer(_ENDPOINT_SLICE_COLUMNS, _endpoint_slice_cells),
}
_DEFAULT_PRINTER = _Printer(_DEFAULT_COLUMNS, _default_cells)


def _printer(kind: Kind) -> _Printer:
    return _PRINTERS.get((kind.group, kind.kind), _DEFAULT_PRINTER)


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------


def columns(kind: Kind) -> list[Column]:
    """The Table columnDefinitions for ``kind`` (fresh dicts the caller may modify)."""
    return [dict(c) for c in _printer(kind).columns]


def cells(kind: Kind, obj: Obj, now: datetime) -> list[Cell]:
    """One Table row's cells for ``obj``, aligned with ``columns(kind)`` (wide cells included)."""
    return _printer(kind).cells(obj, now)


INCLUDE_OBJECT_VALUES = ("Metadata", "None", "Object")


def _row_object(kind: Kind, obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Metadata":
        return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": dict(obj.get("metadata") or {})}
    if obj.get("kind") and obj.get("apiVersion"):
        return dict(obj)
    return {"kind": kind.kind, "apiVersion": kind.api_version, **obj}


def table(kind: Kind, objs: Sequence[Obj], *, resource_version: str, include_object: str = "Object",
          now: datetime | None = None, continue_token: str = "") -> dict[str, Any]:
    """The ``meta.k8s.io/v1`` Table of ``objs``.

    ``include_object`` is the ``includeObject`` query parameter: ``"Object"`` puts each full object in its
    row, ``"Metadata"`` a PartialObjectMetadata, ``"None"`` nothing; ``""`` means ``"Metadata"``, Kubernetes'
    default. Any other value raises ``ValueError`` with Kubernetes' validation message."""
    include = include_object or "Metadata"
    if include not in INCLUDE_OBJECT_VALUES:
        supported = ", ".join(f'"{v}"' for v in INCLUDE_OBJECT_VALUES)
        raise ValueError(f'includeObject: Unsupported value: "{include_object}": '
                         f"supported values: {supported}")
    when = now or datetime.now(UTC)
    printer = _printer(kind)
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": printer.cells(obj, when)}
        conditions = printer.conditions(obj)
        if conditions:
            row["conditions"] = conditions
        row_object = _row_object(kind, obj, include)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
            "columnDefinitions": [dict(c) for c in printer.columns], "rows": rows}


# ---------------------------------------------------------------------------------------------------
# Text output, as kubectl prints a Table
# ---------------------------------------------------------------------------------------------------

# kubectl's tabwriter: cells padded to the widest plus 3 spaces, never narrower than 6; the last
# column is not padded.
_MIN_WIDTH, _PADDING = 6, 3


def _cell_text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    text = str(cell)
    # kubectl cuts a cell at its first line break and marks the cut.
    cut = min((i for i in (text.find("\n"), text.find("\r"), text.find("\f")) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut] + "..."


def format_table(table: Mapping[str, Any], *, wide: bool = False, show_namespace: bool = False,
                 no_headers: bool = False) -> str:
    """Render a Table as ``kubectl get`` prints it: upper-cased headers, aligned columns, ``priority > 0``
    columns only when ``wide``, a leading NAMESPACE column (read from each row's object metadata) when
    ``show_namespace``. Returns ``""`` for a Table without rows (the caller prints "No resources found")."""
    rows = table.get("rows") or []
    if not rows:
        return ""
    definitions = table.get("columnDefinitions") or []
    shown = [i for i, c in enumerate(definitions) if wide or not c.get("priority")]
    lines: list[list[str]] = []
    if not no_headers:
        lines.append((["NAMESPACE"] if show_namespace else []) + [str(definitions[i]["name"]).upper()
                                                                 for i in shown])
    for row in rows:
        row_cells = row.get("cells") or []
        line = [_cell_text(row_cells[i]) if i < len(row_cells) else "" for i in shown]
        if show_namespace:
            line.insert(0, _str(row.get("object"), "metadata", "namespace"))
        lines.append(line)
    count = max(len(line) for line in lines)
    widths = [max(_MIN_WIDTH, max(len(line[i]) for line in lines if i < len(line)) + _PADDING)
              for i in range(count - 1)]
    out = []
    for line in lines:
        padded = [text.ljust(widths[i]) for i, text in enumerate(line[:-1])]
        out.append("".join(padded) + (line[-1] if line else ""))
    return "\n".join(out) + "\n"

