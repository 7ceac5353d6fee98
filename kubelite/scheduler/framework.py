"""The scheduling framework: extension points, plugin Protocols, Status, and the runner over them
(kube-scheduler's framework/interface.go and runtime/framework.go, shaped for vectorised filters).

Extension points, in the order one scheduling cycle runs them:

- **PreFilter** (`PreFilterPlugin.pre_filter`): computes what the plugin needs into the `CycleState`
  once per pod. Returning ``SKIP`` skips the plugin's Filter for this pod; an unschedulable Status ends the
  cycle (the message is then "0/N nodes are available: <reason>.").
- **Filter**, two flavours. `MaskFilterPlugin.filter_mask` judges *every* node at once and returns a
  `MaskVerdict` (a node mask of those that pass, and a lazily computed reason per failing node): all
  built-in filters are of this kind. `FilterPlugin.filter` judges one `NodeInfo` at a time, for plugins
  that cannot be vectorised; they run after the mask filters, on the candidates only.
- **PostFilter** (`PostFilterPlugin.post_filter`): runs when no node passes (preemption's place); its
  message is appended to the FailedScheduling message.
- **PreScore** (`PreScorePlugin.pre_score`) and **Score** (`ScorePlugin.score`, over the feasible slots
  at once, then an optional ``normalize`` to 0..100). A PreScore returning ``SKIP`` skips the plugin's
  Score. Each score is multiplied by the plugin's weight and summed.

When several filters reject a node, the node counts for the *first* one in the configured order (Kubernetes
stops at the first failing filter), with every reason that plugin gave (NodeResourcesFit may give
"Insufficient cpu" and "Insufficient memory" for one node).

Plugins also declare the cluster events that may make a pod they rejected schedulable
(``events``, see `ClusterEvent`): the queue moves an unschedulable pod back only on those.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from kubelite.scheduler import masks
from kubelite.scheduler.nodeinfo import NodeInfo, NodeTable, PodInfo

Obj = dict[str, Any]
MAX_NODE_SCORE = 100
NO_NODE_AVAILABLE_MSG = "0/{} nodes are available"


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    # Preemption cannot help (e.g. a label is missing): the pod waits for the cluster to change.
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def success(self) -> bool:
        return self.code in (Code.SUCCESS, Code.SKIP)

    @property
    def rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        return Status(self.code, self.reasons, plugin)


SUCCESS = Status()
SKIP = Status(Code.SKIP)


def unschedulable(*reasons: str, unresolvable: bool = False) -> Status:
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE if unresolvable else Code.UNSCHEDULABLE, reasons)


def error(message: str) -> Status:
    return Status(Code.ERROR, (message,))


# --- cluster events (what may make a rejected pod schedulable) ---------------------------------------

class ClusterEvent(enum.Enum):
    NODE_ADD = "NodeAdd"
    NODE_DELETE = "NodeDelete"
    NODE_ALLOCATABLE = "NodeAllocatableChange"
    NODE_LABEL = "NodeLabelChange"
    NODE_TAINT = "NodeTaintChange"
    NODE_SPEC_UNSCHEDULABLE = "NodeSpecUnschedulableChange"
    ASSIGNED_POD_ADD = "AssignedPodAdd"
    ASSIGNED_POD_UPDATE = "AssignedPodUpdate"
    ASSIGNED_POD_DELETE = "AssignedPodDelete"
    # Namespace labels matter to pod affinity terms with a namespaceSelector.
    NAMESPACE_CHANGE = "NamespaceChange"
    # The periodic flush and "move everything" requests: every pod moves.
    UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"
    FORCE_ACTIVATE = "ForceActivate"


ALL_EVENTS = frozenset(ClusterEvent)


# --- cycle state -------------------------------------------------------------------------------------

@dataclass(slots=True)
class CycleState:
    """What plugins share during one scheduling cycle of one pod."""

    data: dict[str, Any] = field(default_factory=dict)
    skip_filter: set[str] = field(default_factory=set)
    skip_score: set[str] = field(default_factory=set)

    def write(self, key: str, value: Any) -> None:
        self.data[key] = value

    def read(self, key: str) -> Any:
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(f"{key!r} is not in the cycle state (its PreFilter/PreScore did not run)") from None


# --- plugins -----------------------------------------------------------------------------------------

Explain = Callable[[], Sequence[tuple[str, int]]]


def _nothing() -> Sequence[tuple[str, int]]:
    return ()


@dataclass(frozen=True, slots=True)
class MaskVerdict:
    """What a mask filter says about every node: ``passed`` is the node mask of nodes that pass;
    ``explain()`` returns ``(reason, node mask)`` pairs covering the nodes that fail, a node possibly under
    several reasons. It is only called when a diagnosis is needed."""

    passed: int
    explain: Explain = _nothing


@runtime_checkable
class Plugin(Protocol):
    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    def pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status: ...


@runtime_checkable
class MaskFilterPlugin(Plugin, Protocol):
    def filter_mask(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> MaskVerdict: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status: ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    def post_filter(self, state: CycleState, pod: PodInfo, diagnosis: Diagnosis) -> Status: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    def pre_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> Status: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    def score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        """One raw score per slot, in the order given."""


@runtime_checkable
class NormalizeScorePlugin(Plugin, Protocol):
    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        """Bring ``scores`` (in place) into 0..MAX_NODE_SCORE."""


def plugin_events(plugin: Plugin) -> frozenset[ClusterEvent]:
    """The events a plugin registers (all of them when it does not say)."""
    events = getattr(plugin, "events", None)
    return ALL_EVENTS if events is None else frozenset(events)


def default_normalize(scores: list[int], *, reverse: bool) -> None:
    """``helper.DefaultNormalizeScore``: scale to 0..100 by the maximum (reversed: 100 - that)."""
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    if reverse:
        scores[:] = [MAX_NODE_SCORE - MAX_NODE_SCORE * s // top for s in scores]
    else:
        scores[:] = [MAX_NODE_SCORE * s // top for s in scores]


# --- diagnosis and the FailedScheduling message ------------------------------------------------------

@dataclass(slots=True)
class Diagnosis:
    """Why no node fits: how many nodes each reason rejected, and which plugins rejected the pod."""

    reason_counts: dict[str, int] = field(default_factory=dict)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""

    def add(self, reason: str, n: int) -> None:
        if n:
            self.reason_counts[reason] = self.reason_counts.get(reason, 0) + n


class FitError(Exception):
    """No node fits ``pod``; ``str()`` is Kubernetes' FitError message."""

    def __init__(self, pod: Obj, num_all_nodes: int, diagnosis: Diagnosis) -> None:
        self.pod = pod
        self.num_all_nodes = num_all_nodes
        self.diagnosis = diagnosis
        super().__init__(fit_error_message(num_all_nodes, diagnosis))


def fit_error_message(num_all_nodes: int, diagnosis: Diagnosis) -> str:
    """"0/X nodes are available: <PreFilterMsg>. <N reason, ...>. <PostFilterMsg>" as FitError.Error()
    builds it: "N reason" strings sorted as strings (so "10 ..." sorts before "2 ...")."""
    out = NO_NODE_AVAILABLE_MSG.format(num_all_nodes) + ":"
    if diagnosis.pre_filter_msg:
        out += f" {diagnosis.pre_filter_msg}."
    else:
        histogram = sorted(f"{n} {reason}" for reason, n in diagnosis.reason_counts.items())
        if histogram:
            out += f" {', '.join(histogram)}."
    if diagnosis.post_filter_msg:
        out += f" {diagnosis.post_filter_msg}"
    return out


# --- the profile: configured plugins per extension point ----------------------------------------------

@dataclass(frozen=True, slots=True)
class WeightedScore:
    plugin: ScorePlugin
    weight: int
    normalizes: bool


class Framework:
    """One scheduler profile: the enabled plugins per extension point, in order, and how to run them.

    ``filter_plugins`` run at PreFilter (those that have it) and Filter; ``score_plugins`` (with weights)
    at PreScore and Score. ``post_filter_plugins`` run when nothing fits.
    """

    def __init__(self, *, filter_plugins: Sequence[Plugin], score_plugins: Sequence[tuple[Plugin, int]] = (),
                 post_filter_plugins: Sequence[Plugin] = (), scheduler_name: str = "default-scheduler",
                 percentage_of_nodes_to_score: int = 0) -> None:
        self.scheduler_name = scheduler_name
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.filter_plugins = tuple(filter_plugins)
        self.pre_filters = tuple(p for p in self.filter_plugins if isinstance(p, PreFilterPlugin))
        self.mask_filters = tuple(p for p in self.filter_plugins if isinstance(p, MaskFilterPlugin))
        self.node_filters = tuple(p for p in self.filter_plugins
                                  if isinstance(p, FilterPlugin) and not isinstance(p, MaskFilterPlugin))
        for p in self.filter_plugins:
            if not isinstance(p, MaskFilterPlugin | FilterPlugin):
                raise TypeError(f"plugin {p.name} is enabled for filter but has no filter")
        scores: list[WeightedScore] = []
        for p, weight in score_plugins:
            if not isinstance(p, ScorePlugin):
                raise TypeError(f"plugin {p.name} is enabled for score but has no score")
            if weight <= 0:
                raise ValueError(f"score plugin {p.name} needs a positive weight, got {weight}")
            scores.append(WeightedScore(p, weight, isinstance(p, NormalizeScorePlugin)))
        self.scores = tuple(scores)
        self.pre_scores = tuple(w.plugin for w in self.scores if isinstance(w.plugin, PreScorePlugin))
        self.post_filters = tuple(p for p in post_filter_plugins if isinstance(p, PostFilterPlugin))
        self.plugins_by_name = {p.name: p for p in (*self.filter_plugins, *(w.plugin for w in self.scores),
                                                    *self.post_filters)}

    # --- filter ------------------------------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pod: PodInfo, nodes: NodeTable) -> Status:
        """Every PreFilter in order; the first failure (with its plugin name) ends the run."""
        for p in self.pre_filters:
            status = p.pre_filter(state, pod, nodes)
            if status.code == Code.SKIP:
                state.skip_filter.add(p.name)
            elif not status.success:
                return status.with_plugin(p.name)
        return SUCCESS

    def filter_mask(self, state: CycleState, pod: PodInfo,
                    nodes: NodeTable) -> tuple[int, list[tuple[str, MaskVerdict]]]:
        """The node mask passing every mask filter, and each verdict (for `diagnose`)."""
        passed = nodes.present
        verdicts: list[tuple[str, MaskVerdict]] = []
        for p in self.mask_filters:
            if p.name in state.skip_filter:
                continue
            verdict = p.filter_mask(state, pod, nodes)
            verdicts.append((p.name, verdict))
            passed &= verdict.passed
            if not passed:
                break
        return passed, verdicts

    def run_node_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        for p in self.node_filters:
            if p.name in state.skip_filter:
                continue
            status = p.filter(state, pod, node)
            if not status.success:
                return status.with_plugin(p.name)
        return SUCCESS

    def diagnose(self, state: CycleState, pod: PodInfo, nodes: NodeTable,
                 verdicts: Sequence[tuple[str, MaskVerdict]]) -> Diagnosis:
        """Attribute every present node to the first filter that rejects it (all of them rejected)."""
        diagnosis = Diagnosis()
        remaining = nodes.present
        for name, verdict in verdicts:
            failed = remaining & ~verdict.passed
            if failed:
                diagnosis.unschedulable_plugins.add(name)
                for reason, reason_mask in verdict.explain():
                    diagnosis.add(reason, (reason_mask & failed).bit_count())
            remaining &= verdict.passed
        if remaining and self.node_filters:
            for slot in masks.slots_of(remaining, nodes.capacity):
                status = self.run_node_filters(state, pod, nodes.info(slot))
                if status.rejected:
                    diagnosis.unschedulable_plugins.add(status.plugin)
                    for reason in status.reasons:
                        diagnosis.add(reason, 1)
        return diagnosis

    def run_post_filter(self, state: CycleState, pod: PodInfo, diagnosis: Diagnosis) -> None:
        for p in self.post_filters:
            status = p.post_filter(state, pod, diagnosis)
            if status.reasons:
                diagnosis.post_filter_msg = status.message
            if status.success:
                return

    # --- score -------------------------------------------------------------------------------------

    def run_score(self, state: CycleState, pod: PodInfo, nodes: NodeTable, slots: Sequence[int]) -> list[int]:
        """The weighted total score of every slot, in order."""
        for p in self.pre_scores:
            status = p.pre_score(state, pod, nodes, slots)
            if status.code == Code.SKIP:
                state.skip_score.add(p.name)
            elif not status.success:
                raise RuntimeError(f"PreScore plugin {p.name}: {status.message}")
        totals: list[int] | None = None
        for w in self.scores:
            if w.plugin.name in state.skip_score:
                continue
            scores = w.plugin.score(state, pod, nodes, slots)
            if w.normalizes:
                w.plugin.normalize(state, pod, scores)  # type: ignore[attr-defined]
            weight = w.weight
            if totals is None:
                totals = [s * weight for s in scores] if weight != 1 else scores
            else:
                totals = [t + s * weight for t, s in zip(totals, scores, strict=True)]
        return totals if totals is not None else [0] * len(slots)
