"""What ``KIND[,KIND] [NAME...]`` or ``KIND/NAME...`` on a command line selects, as kubectl reads it.

Kind names are what `registry.resolve` knows (plural, singular, short name, kind, optionally
``.group``-qualified); ``all`` stands for the kinds in the ``all`` category, in registry order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kubelite.api.registry import Kind, all_kinds, resolve


class SelectionError(ValueError):
    """The arguments do not name resources; the message is kubectl's."""


@dataclass
class Selection:
    """One kind and the names asked for (none: every object the selectors allow)."""

    kind: Kind
    names: list[str] = field(default_factory=list)


def resolve_kinds(text: str) -> list[Kind]:
    """``deploy,svc`` → their kinds; ``all`` → the ``all`` category. Raises `UnknownKind`."""
    kinds: list[Kind] = []
    for part in text.split(","):
        if not part:
            continue
        found = [k for k in all_kinds() if "all" in k.categories] if part.lower() == "all" else [resolve(part)]
        kinds.extend(k for k in found if k not in kinds)
    return kinds


def parse(args: Sequence[str], *, verb: str = "get") -> list[Selection]:
    """Read ``KIND[,KIND] [NAME...]`` or ``KIND/NAME [KIND/NAME...]`` (see module doc)."""
    if not args:
        raise SelectionError(f"You must specify the type of resource to {verb}. Use \"kubelite api-resources\" "
                             "for a complete list of supported resources.")
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise SelectionError("there is no need to specify a resource type as a separate argument when "
                                 f"passing arguments in resource/name form (e.g. 'kubelite {verb} "
                                 f"resource/<resource_name>' instead of 'kubelite {verb} resource "
                                 "resource/<resource_name>')")
        selections: list[Selection] = []
        for a in args:
            kind_text, _, name = a.partition("/")
            if not kind_text or not name or "/" in name:
                raise SelectionError(f"arguments in resource/name form must have a single resource and name: {a!r}")
            kind = resolve(kind_text)
            sel = next((s for s in selections if s.kind == kind), None)
            if sel is None:
                selections.append(Selection(kind, [name]))
            elif name not in sel.names:
                sel.names.append(name)
        return selections
    kinds = resolve_kinds(args[0])
    if not kinds:
        raise SelectionError(f'the server doesn\'t have a resource type "{args[0]}"')
    names = list(dict.fromkeys(args[1:]))
    return [Selection(k, list(names)) for k in kinds]
