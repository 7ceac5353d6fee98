"""The scheduler's configuration: a subset of ``KubeSchedulerConfiguration``
(``kubescheduler.config.k8s.io/v1``), read from a YAML file.

Understood fields (anything else is ignored, as kube-scheduler's defaulting would leave it):

    apiVersion: kubescheduler.config.k8s.io/v1
    kind: KubeSchedulerConfiguration
    percentageOfNodesToScore: 0          # 0 = adaptive (50% - nodes/125, at least 5%)
    profiles:
    - schedulerName: default-scheduler
      percentageOfNodesToScore: 30       # overrides the global one for this profile
      plugins:
        filter: {enabled: [{name: NodePorts}], disabled: [{name: "*"}]}
        score:  {enabled: [{name: NodeResourcesFit, weight: 5}], disabled: [{name: ImageLocality}]}

Only ``profiles[0]`` is used. Each extension point merges with the defaults as kube-scheduler's
``mergePluginSet`` does: defaults minus the disabled ones (``"*"`` disables all), a default that is also
enabled is re-configured in place (its weight), other enabled plugins are appended. A plugin enabled for
filter also runs its PreFilter, one enabled for score its PreScore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubelite.scheduler.framework import Framework, Plugin
from kubelite.scheduler.plugins import DEFAULT_FILTER, DEFAULT_SCORE, REGISTRY, Handle

DEFAULT_SCHEDULER_NAME = "default-scheduler"
API_VERSION = "kubescheduler.config.k8s.io/v1"


class ConfigError(ValueError):
    """The configuration file cannot be used (unknown plugin, bad weight, wrong kind)."""


@dataclass(frozen=True, slots=True)
class PluginSpec:
    name: str
    weight: int = 0


@dataclass(frozen=True, slots=True)
class Profile:
    scheduler_name: str
    percentage_of_nodes_to_score: int
    filter: tuple[PluginSpec, ...]
    score: tuple[PluginSpec, ...]


def merge_plugin_set(defaults: Sequence[PluginSpec], custom: Mapping[str, Any] | None) -> tuple[PluginSpec, ...]:
    custom = custom or {}
    disabled = {str(p.get("name") or "") for p in custom.get("disabled") or []}
    enabled = [PluginSpec(str(p.get("name") or ""), int(p.get("weight") or 0)) for p in custom.get("enabled") or []]
    by_name = {p.name: p for p in enabled}
    out: list[PluginSpec] = []
    replaced: set[str] = set()
    if "*" not in disabled:
        for d in defaults:
            if d.name in disabled:
                continue
            if d.name in by_name:
                replaced.add(d.name)
                mine = by_name[d.name]
                d = PluginSpec(d.name, mine.weight or d.weight)
            out.append(d)
    out.extend(p for p in enabled if p.name not in replaced)
    return tuple(out)


def load_profile(raw: Mapping[str, Any] | None) -> Profile:
    """The first profile of a parsed configuration (None: kube-scheduler's defaults)."""
    raw = raw or {}
    kind = raw.get("kind")
    if kind not in (None, "KubeSchedulerConfiguration"):
        raise ConfigError(f"expected kind KubeSchedulerConfiguration, got {kind!r}")
    percentage = int(raw.get("percentageOfNodesToScore") or 0)
    profiles = raw.get("profiles") or [{}]
    first: Mapping[str, Any] = profiles[0] or {}
    if first.get("percentageOfNodesToScore") is not None:
        percentage = int(first["percentageOfNodesToScore"])
    if not 0 <= percentage <= 100:
        raise ConfigError(f"percentageOfNodesToScore must be in [0, 100], got {percentage}")
    plugins = first.get("plugins") or {}
    filters = merge_plugin_set([PluginSpec(n) for n in DEFAULT_FILTER], plugins.get("filter"))
    scores = merge_plugin_set([PluginSpec(n, w) for n, w in DEFAULT_SCORE], plugins.get("score"))
    scores = tuple(PluginSpec(p.name, p.weight or 1) for p in scores)
    for p in (*filters, *scores):
        if p.name not in REGISTRY:
            raise ConfigError(f"unknown plugin {p.name!r}; known: {', '.join(sorted(REGISTRY))}")
        if p.weight < 0:
            raise ConfigError(f"plugin {p.name}: weight must be positive")
    return Profile(str(first.get("schedulerName") or DEFAULT_SCHEDULER_NAME), percentage, filters, scores)


def load_file(path: str | Path | None) -> Profile:
    if path is None:
        return load_profile(None)
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"reading scheduler configuration {path}: {e}") from e
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a KubeSchedulerConfiguration mapping")
    return load_profile(raw)


def build_framework(profile: Profile, handle: Handle) -> Framework:
    """Instantiate each named plugin once (a plugin enabled for filter and score is one object)."""
    instances: dict[str, Plugin] = {}

    def plugin(name: str) -> Plugin:
        if name not in instances:
            instances[name] = REGISTRY[name](handle)
        return instances[name]

    return Framework(filter_plugins=[plugin(p.name) for p in profile.filter],
                     score_plugins=[(plugin(p.name), p.weight) for p in profile.score],
                     scheduler_name=profile.scheduler_name,
                     percentage_of_nodes_to_score=profile.percentage_of_nodes_to_score)
