"""``kubelite top pods`` and ``kubelite top nodes``: CPU and memory usage from the ``metrics.k8s.io`` API,
read and printed as ``kubectl top`` does (kubectl's ``top_pod.go``, ``top_node.go`` and ``metrics_printer.go``).

- The server must list ``metrics.k8s.io/v1beta1`` in ``/apis``, else ``error: Metrics API not available``.
- ``top pods [NAME] [-n NS | -A] [-l SEL] [--field-selector SEL] [--containers] [--sort-by cpu|memory]
  [--sum] [--no-headers]``: ``NAME CPU(cores) MEMORY(bytes)`` (with ``NAMESPACE`` for ``-A``, ``POD`` for
  ``--containers``), CPU in millicores (``250m``), memory in MiB (``12Mi``), rounded as kubectl rounds.
  When no pod has metrics: pods older than two minutes are an error (``Metrics not available for pod
  ns/x, age: 3m0s``), younger ones ``metrics not available yet``, and no pods at all ``No resources found
  in NS namespace.`` on stderr (exit 0).
- ``top nodes [NAME] [-l SEL] [--sort-by cpu|memory] [--no-headers]``: ``NAME CPU(cores) CPU(%)
  MEMORY(bytes) MEMORY(%)``, the percentages of each Node's allocatable; Nodes without metrics (a kubelet
  that did not answer) show ``<unknown>``; no metrics at all is ``error: metrics not available yet``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from kubelite.api import meta
from kubelite.api.quantity import parse_quantity, to_int, to_millis
from kubelite.api.registry import by_resource
from kubelite.cli.session import CliError, Session, global_flags, run
from kubelite.cli.tabwriter import TabWriter

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
PREFIX = f"/apis/{GROUP}/{VERSION}"
PODS = by_resource("", "v1", "pods")
NODES = by_resource("", "v1", "nodes")
# kubectl's metricsCreationDelay: a pod older than this without metrics is an error, not "not yet".
METRICS_CREATION_DELAY = 120.0
MEASURED = ("cpu", "memory")
Obj = dict[str, Any]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
             parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("top", parents=parents, help="display CPU and memory usage of nodes or pods",
                       description="Display resource (CPU/memory) usage of nodes or pods (kubectl top), from the "
                                   "metrics.k8s.io API.")
    inner = p.add_subparsers(dest="top_what", metavar="{pods,nodes}", required=True)
    # Global flags given before the sub-command must survive the nested parser: no defaults there.
    nested = [global_flags(suppress_defaults=True)]
    pods = inner.add_parser("pods", aliases=["pod", "po"], parents=nested, help="CPU and memory usage of pods")
    pods.add_argument("name", nargs="?", default="", help="one pod")
    pods.add_argument("-A", "--all-namespaces", action="store_true", help="pods of every namespace")
    pods.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    pods.add_argument("--field-selector", default="", help="field selector, e.g. metadata.name=web")
    pods.add_argument("--containers", action="store_true", help="the usage of each container")
    pods.add_argument("--sum", action="store_true", help="a line with the total of all pods shown")
    _common_flags(pods)
    pods.set_defaults(func=lambda args: run(args, partial(top_pods, args)))
    nodes = inner.add_parser("nodes", aliases=["node", "no"], parents=nested, help="CPU and memory usage of nodes")
    nodes.add_argument("name", nargs="?", default="", help="one node")
    nodes.add_argument("-l", "--selector", default="", help="label selector, e.g. kubernetes.io/os=linux")
    _common_flags(nodes)
    nodes.set_defaults(func=lambda args: run(args, partial(top_nodes, args)))


def _common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sort-by", default="", choices=("", "cpu", "memory"), help="sort by cpu or memory")
    p.add_argument("--no-headers", action="store_true", help="do not print the header line")


# --- reading -----------------------------------------------------------------------------------------------

async def require_metrics_api(s: Session) -> None:
    groups = await s.client.request("GET", "/apis")
    for group in groups.get("groups") or []:
        if group.get("name") == GROUP and any(v.get("version") == VERSION for v in group.get("versions") or []):
            return
    raise CliError("Metrics API not available")


def _params(selector: str, field_selector: str) -> dict[str, str]:
    return {k: v for k, v in (("labelSelector", selector), ("fieldSelector", field_selector)) if v}


async def top_pods(args: argparse.Namespace, s: Session) -> int:
    if args.name and (args.selector or args.field_selector):
        raise CliError("only one of NAME or selector can be provided")
    await require_metrics_api(s)
    if args.name:
        items = [await s.client.request("GET", f"{PREFIX}/namespaces/{s.namespace}/pods/{args.name}")]
    else:
        path = f"{PREFIX}/pods" if args.all_namespaces else f"{PREFIX}/namespaces/{s.namespace}/pods"
        items = (await s.client.request("GET", path, params=_params(args.selector, args.field_selector)))["items"]
    if not items:
        await _explain_no_pod_metrics(args, s)
        s.err.write("No resources found\n" if args.all_namespaces else
                    f"No resources found in {s.namespace} namespace.\n")
        return 0
    s.out.write(TabWriter(minwidth=6, padding=3).format(
        pod_lines(items, containers=args.containers, all_namespaces=args.all_namespaces, no_headers=args.no_headers,
                  sort_by=args.sort_by, total=args.sum)))
    return 0


async def _explain_no_pod_metrics(args: argparse.Namespace, s: Session) -> None:
    """kubectl's verifyEmptyMetrics: which pods (of the namespace, even with -A) should have had metrics."""
    if args.name:
        pods = [await s.client.get(PODS, args.name, s.namespace)]
    else:
        pods = (await s.client.list(PODS, s.namespace, label_selector=args.selector or None,
                                    field_selector=args.field_selector or None))["items"]
    if not pods:
        return
    now = datetime.now(UTC)
    for pod in pods:
        created = meta.metadata(pod).get("creationTimestamp")
        age = (now - meta.parse_rfc3339(created)).total_seconds() if created else 0.0
        if age > METRICS_CREATION_DELAY:
            raise CliError(f"Metrics not available for pod {meta.namespace(pod)}/{meta.name(pod)}, "
                           f"age: {go_duration(age)}")
    raise CliError("metrics not available yet")


async def top_nodes(args: argparse.Namespace, s: Session) -> int:
    if args.name and args.selector:
        raise CliError("only one of NAME or --selector can be provided")
    await require_metrics_api(s)
    if args.name:
        items = [await s.client.request("GET", f"{PREFIX}/nodes/{args.name}")]
    else:
        items = (await s.client.request("GET", f"{PREFIX}/nodes", params=_params(args.selector, "")))["items"]
    if not items:
        raise CliError("metrics not available yet")
    if args.name:
        nodes = [await s.client.get(NODES, args.name)]
    else:
        nodes = (await s.client.list(NODES, label_selector=args.selector or None))["items"]
    allocatable = {meta.name(n): (n.get("status") or {}).get("allocatable") or {} for n in nodes}
    s.out.write(TabWriter(minwidth=6, padding=3).format(
        node_lines(items, allocatable, no_headers=args.no_headers, sort_by=args.sort_by)))
    return 0


# --- printing ----------------------------------------------------------------------------------------------

def _total(quantities: Iterable[str]) -> Decimal:
    return sum((parse_quantity(q) for q in quantities), Decimal(0))


def _usage_text(resource: str, amount: Decimal) -> str:
    """kubectl's printSingleResourceUsage: CPU as ``MilliValue()`` millicores, memory as whole MiB."""
    if resource == "cpu":
        return f"{to_millis(amount)}m"
    return f"{to_int(amount) // (1024 * 1024)}Mi"


def _pod_usage(pod: Obj, resource: str) -> Decimal:
    return _total(c["usage"].get(resource, "0") for c in pod.get("containers") or [])


def _cells(amounts: Iterable[tuple[str, Decimal]]) -> str:
    return "".join(f"{_usage_text(r, a)}\t" for r, a in amounts)


def pod_lines(items: list[Obj], *, containers: bool, all_namespaces: bool, no_headers: bool, sort_by: str,
              total: bool) -> str:
    """The tab-separated text of kubectl's PrintPodMetrics (to be aligned by a `TabWriter`)."""
    out: list[str] = []
    width = 3
    if not no_headers:
        head = []
        if all_namespaces:
            head.append("NAMESPACE")
            width += 1
        if containers:
            head.append("POD")
            width += 1
        out.append("".join(f"{c}\t" for c in [*head, "NAME", "CPU(cores)", "MEMORY(bytes)"]) + "\n")
    if sort_by:
        ordered = sorted(items, key=lambda m: -_pod_usage(m, sort_by))
    else:
        ordered = sorted(items, key=lambda m: ((meta.namespace(m) if all_namespaces else ""), meta.name(m)))
    for m in ordered:
        prefix = f"{meta.namespace(m)}\t" if all_namespaces else ""
        if not containers:
            out.append(f"{prefix}{meta.name(m)}\t" + _cells((r, _pod_usage(m, r)) for r in MEASURED) + "\n")
            continue
        cs = m.get("containers") or []
        for c in sorted(cs, key=(lambda c: -_total([c["usage"].get(sort_by, "0")])) if sort_by
                        else (lambda c: c.get("name", ""))):
            out.append(f"{prefix}{meta.name(m)}\t{c.get('name', '')}\t"
                       + _cells((r, _total([c["usage"].get(r, "0")])) for r in MEASURED) + "\n")
    if total:
        # kubectl's printPodResourcesSum, its column counting (3 columns with --no-headers) included.
        out.append("\t" * (width - 2) + "________\t________\t\n")
        sums = ((r, sum((_pod_usage(m, r) for m in items), Decimal(0))) for r in MEASURED)
        out.append("\t" * (width - 3) + "\t" + _cells(sums) + "\n")
    return "".join(out)


def node_lines(items: list[Obj], allocatable: dict[str, dict[str, str]], *, no_headers: bool, sort_by: str) -> str:
    """The tab-separated text of kubectl's PrintNodeMetrics: nodes with metrics, then the other nodes
    (by name) with ``<unknown>``."""
    out: list[str] = []
    if not no_headers:
        out.append("NAME\tCPU(cores)\tCPU(%)\tMEMORY(bytes)\tMEMORY(%)\t\n")

    def used(m: Obj, resource: str) -> Decimal:
        return _total([(m.get("usage") or {}).get(resource, "0")])

    ordered = sorted(items, key=lambda m: -used(m, sort_by)) if sort_by else sorted(items, key=meta.name)
    remaining = dict(allocatable)
    for m in ordered:
        name = meta.name(m)
        available = remaining.pop(name, {})
        line = f"{name}\t"
        for r in MEASURED:
            amount = used(m, r)
            line += f"{_usage_text(r, amount)}\t"
            if r in available:
                # As kubectl: MilliValue over MilliValue, truncated.
                capacity = to_millis(available[r])
                line += f"{int(to_millis(amount) / capacity * 100) if capacity else 0}%\t"
        out.append(line + "\n")
    for name in sorted(remaining):
        out.append(f"{name}\t" + "<unknown>\t" * 2 * len(MEASURED) + "\n")
    return "".join(out)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` for a positive duration: ``3m0.5s``, ``1h2m3s``, ``45.25s``."""
    nanos = round(seconds * 1_000_000_000)
    hours, nanos = divmod(nanos, 3_600_000_000_000)
    minutes, nanos = divmod(nanos, 60_000_000_000)
    whole, frac = divmod(nanos, 1_000_000_000)
    secs = f"{whole}.{frac:09d}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
