"""What this process believes is loaded in one family's table, and the ``nft -f`` text that brings it to
what the Services now want, touching only what changed (kube-proxy's partial syncs).

`FamilyTable.plan(changes, ...)` takes the new `ServiceObjects` of the Services that may have changed and
returns a `Plan`: the commands, and the state to remember once ``nft`` has loaded them (`Plan.commit`).
Nothing is remembered before that, so a transaction that fails leaves this state as it was, matching
the kernel, whose ruleset a failed transaction leaves untouched too.

Per Service, against what was loaded for it:
- a chain that is new or whose rules changed is added, flushed and refilled; a chain no longer wanted is
  flushed and becomes *stale*: a later transaction deletes it once it has been unreferenced for a second
  (`STALE_CHAIN_DELAY`), because kernels before 6.2 release a chain referenced from a map element a
  moment after the element goes (kube-proxy waits the same way);
- a load-balancing map gets only its changed elements; affinity sets are added or deleted;
- the elements a Service puts into the shared maps (``service-ips``, ...) go through `Claims`: when two
  Services claim one key (bad input: two Services with one external IP and port), the one with the
  smallest ``namespace/name`` gets it and the other takes over when the first lets go.

Commands are ordered so that every reference is valid where it appears: stale chains due are deleted,
chains are created and flushed (which also drops their references to sets about to be deleted), sets are
deleted and added, rules are added, then elements are deleted and added.

``full`` re-emits everything for the Services given (all of them, then), refilling the shared maps from
scratch; ``replace`` additionally deletes the table first, for a fresh start when this state cannot be
trusted (at start-up, after a failed transaction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kubelite.proxy.nftables import (
    EMPTY,
    SHARED_CONTAINERS,
    SHARED_SETS,
    RenderConfig,
    ServiceObjects,
    affinity_set_declaration,
    element_commands,
    lb_map_declaration,
    skeleton,
)

# How long a stale chain waits before it is deleted (see the module docstring).
STALE_CHAIN_DELAY = 1.0

Key = tuple[str, str]  # (container, element key)


@dataclass(frozen=True, slots=True)
class Conflict:
    """Two or more Services claim one element of a shared map; ``winner`` has it."""

    container: str
    key: str
    winner: str
    losers: tuple[str, ...]


@dataclass
class Plan:
    """A transaction for one family and what to remember once it is loaded."""

    table: FamilyTable
    now: float
    full: bool
    lines: list[str] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # Services whose objects change (EMPTY: gone), and the state derived from it.
    services: dict[str, ServiceObjects] = field(default_factory=dict)
    claims: dict[Key, dict[str, str]] = field(default_factory=dict)
    loaded: dict[Key, str | None] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)
    revived: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)

    def commit(self) -> None:
        """Remember this plan as loaded (call only once nft accepted the transaction)."""
        t = self.table
        for svc, objects in self.services.items():
            if objects is EMPTY:
                t.services.pop(svc, None)
            else:
                t.services[svc] = objects
        for (container, key), claimants in self.claims.items():
            if claimants:
                t.claims[container][key] = claimants
            else:
                t.claims[container].pop(key, None)
        if self.full:
            for loaded in t.loaded.values():
                loaded.clear()
        for (container, key), value in self.loaded.items():
            if value is None:
                t.loaded[container].pop(key, None)
            else:
                t.loaded[container][key] = value
        for chain in (*self.revived, *self.deleted):
            t.stale.pop(chain, None)
        for chain in self.stale - self.revived:
            t.stale.setdefault(chain, self.now)
        t.initialized = True


class FamilyTable:
    """The loaded state of one family's table, as far as this process knows it (see the module docstring)."""

    def __init__(self, cfg: RenderConfig) -> None:
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next plan must be a ``replace``."""
        self.services: dict[str, ServiceObjects] = {}
        self.claims: dict[str, dict[str, dict[str, str]]] = {c: {} for c in SHARED_CONTAINERS}
        self.loaded: dict[str, dict[str, str]] = {c: {} for c in SHARED_CONTAINERS}
        self.stale: dict[str, float] = {}
        self.initialized = False

    def service_keys(self) -> set[str]:
        return set(self.services)

    def elements(self, container: str) -> dict[str, str]:
        """The elements loaded into a shared map or set (for tests and debugging)."""
        return dict(self.loaded[container])

    def plan(self, changes: Mapping[str, ServiceObjects], *, now: float, full: bool = False,
             replace: bool = False) -> Plan:
        """The transaction taking the Services in ``changes`` (EMPTY: no objects) to their new objects. With
        ``full`` or ``replace``, ``changes`` must hold every Service; ``replace`` forgets the current state
        at once (the table is deleted by the transaction, and after a failure only a replace is safe)."""
        cfg, t = self.cfg, self.cfg.prefix
        if replace:
            # The table is deleted first: whatever was known about it no longer holds, failure or not.
            self.reset()
        full = full or replace
        head: list[str] = []
        if replace:
            head += [f"add table {t}", f"delete table {t}"]
        if full or not self.initialized:
            head += skeleton(cfg)
        if full and not replace:
            head += [f"flush {'set' if c in SHARED_SETS else 'map'} {t} {c}" for c in SHARED_CONTAINERS]
        chain_heads: list[str] = []
        set_deletes: list[str] = []
        set_adds: list[str] = []
        rules: list[str] = []
        elem_deletes: list[str] = []
        elem_adds: list[str] = []
        plan = Plan(self, now=now, full=full)
        touched: set[Key] = set()

        for svc, new in changes.items():
            old = self.services.get(svc, EMPTY)
            if new == old and not full:
                continue
            plan.services[svc] = new
            for name, chain_rules in new.chains.items():
                if full or old.chains.get(name) != chain_rules:
                    chain_heads += [f"add chain {t} {name}", f"flush chain {t} {name}"]
                    rules += [f"add rule {t} {name} {rule}" for rule in chain_rules]
                    plan.revived.add(name)
            for name in old.chains.keys() - new.chains.keys():
                chain_heads += [f"add chain {t} {name}", f"flush chain {t} {name}"]
                plan.stale.add(name)
            for name, elements in new.maps.items():
                old_elements = old.maps.get(name)
                if old_elements is None or full:
                    set_adds.append(lb_map_declaration(cfg, name))
                    if old_elements is not None:
                        set_adds.append(f"flush map {t} {name}")
                    elem_adds += element_commands(cfg, "add", name, sorted(elements.items()))
                    continue
                gone = sorted((k, v) for k, v in old_elements.items() if elements.get(k) != v)
                added = sorted((k, v) for k, v in elements.items() if old_elements.get(k) != v)
                elem_deletes += element_commands(cfg, "delete", name, gone)
                elem_adds += element_commands(cfg, "add", name, added)
            set_deletes += [f"delete map {t} {name}" for name in sorted(old.maps.keys() - new.maps.keys())]
            for name, seconds in new.sets.items():
                if full or name not in old.sets:
                    set_adds.append(affinity_set_declaration(cfg, name, seconds))
            set_deletes += [f"delete set {t} {name}" for name in sorted(old.sets.keys() - new.sets.keys())]
            for container in SHARED_CONTAINERS:
                before, after = old.elements.get(container, {}), new.elements.get(container, {})
                for key in before.keys() | after.keys():
                    if key in after and before.get(key) == after[key]:
                        continue
                    claimants = plan.claims.get((container, key))
                    if claimants is None:
                        claimants = dict(self.claims[container].get(key, {}))
                        plan.claims[(container, key)] = claimants
                    if key in after:
                        claimants[svc] = after[key]
                    else:
                        claimants.pop(svc, None)
                    touched.add((container, key))

        # Chains stale long enough go now ("add" first makes the delete safe for one somehow gone already).
        plan.deleted = sorted(name for name, since in self.stale.items()
                              if now - since >= STALE_CHAIN_DELAY and name not in plan.revived)
        deleted = [line for name in plan.deleted for line in (f"add chain {t} {name}", f"delete chain {t} {name}")]
        if full:
            # The shared containers were flushed: every claimed key is loaded again.
            touched |= {(c, k) for c in SHARED_CONTAINERS for k in self.claims[c]}
        deletes: dict[str, list[tuple[str, str]]] = {}
        adds: dict[str, list[tuple[str, str]]] = {}
        for container, key in sorted(touched):
            claimants = plan.claims.get((container, key))
            if claimants is None:
                claimants = self.claims[container].get(key, {})
            value = None
            if claimants:
                winner = min(claimants)
                value = claimants[winner]
                if len(claimants) > 1:
                    plan.conflicts.append(Conflict(container, key, winner,
                                                   tuple(sorted(set(claimants) - {winner}))))
            current = None if full else self.loaded[container].get(key)
            if value == current:
                continue
            if current is not None:
                deletes.setdefault(container, []).append((key, current))
            if value is not None:
                adds.setdefault(container, []).append((key, value))
            plan.loaded[(container, key)] = value
        for container, items in deletes.items():
            elem_deletes += element_commands(cfg, "delete", container, items)
        for container, items in adds.items():
            elem_adds += element_commands(cfg, "add", container, items)
        plan.lines = head + deleted + chain_heads + set_deletes + set_adds + rules + elem_deletes + elem_adds
        return plan
