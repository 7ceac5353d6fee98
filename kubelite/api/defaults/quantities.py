"""Quantities as the API server stores them: rounded up to milli-units and in canonical form."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubelite.api.quantity import Quantity


def canonical(raw: Any, *, milli: bool = False) -> Any:
    """The stored form of a quantity, or ``raw`` unchanged when it does not parse (validation reports it).

    ``milli`` rounds up to 1m first, as SetDefaults_ResourceList does for every ResourceList."""
    try:
        q = Quantity.parse(raw)
    except ValueError:
        return raw
    if milli:
        q = Quantity(_round_up_milli(q.value), q.format)
    return str(q)


def canonical_list(resources: Any) -> None:
    """Canonicalise a ResourceList (``{"cpu": "0.5", "memory": 1073741824}``) in place."""
    if isinstance(resources, dict):
        for name, raw in resources.items():
            resources[name] = canonical(raw, milli=True)


def _round_up_milli(value: Decimal) -> Decimal:
    scaled = value * 1000
    if scaled == scaled.to_integral_value():
        return value
    numerator, denominator = scaled.as_integer_ratio()
    magnitude = -(-abs(numerator) // denominator)
    return Decimal(f"{magnitude if numerator >= 0 else -magnitude}E-3")
