"""Kubernetes resource quantities: ``500m``, ``1.5Gi``, ``128974848``, ``1e3``, ``100M``, ``0.1``.

Mirrors ``k8s.io/apimachinery/pkg/api/resource``:

- Parsing accepts ``<sign><number><suffix>`` where the suffix is a binary SI unit (``Ki`` … ``Ei``), a
  decimal SI unit (``n u m "" k M G T P E``) or a decimal exponent (``e3``, ``E-2``). Errors carry
  apimachinery's wording (``quantities must match the regular expression ...``).
- Values are exact (``decimal.Decimal`` built from integer digits, never from a float). Like Kubernetes,
  a non-zero value finer than a nano-unit is rounded *up* (away from zero) to 1n, and binary-SI values
  are capped at 2^63-1.
- A quantity remembers the family of suffix it was written with, and :func:`canonicalize` re-emits it
  the way the API server serialises it: no fractional digits, the largest suffix that loses nothing
  (``1000m`` → ``1``, ``1.5`` → ``1500m``, ``1.5Gi`` → ``1536Mi``, ``2048Ki`` → ``2Mi``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal

SPLIT_RE_STRING = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT_WRONG = f"quantities must match the regular expression '{SPLIT_RE_STRING}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

_NANO = -9
_MAX_INT64 = 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_DIGITS = frozenset("0123456789")
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")


class Format(enum.Enum):
    """The suffix family a quantity is written (and re-emitted) with."""

    DECIMAL_SI = "DecimalSI"  # 12M = 12 * 10^6
    BINARY_SI = "BinarySI"  # 12Mi = 12 * 2^20
    DECIMAL_EXPONENT = "DecimalExponent"  # 12e6


# suffix -> (base, exponent, format)
_SUFFIXES: dict[str, tuple[int, int, Format]] = {
    "n": (10, -9, Format.DECIMAL_SI),
    "u": (10, -6, Format.DECIMAL_SI),
    "m": (10, -3, Format.DECIMAL_SI),
    "": (10, 0, Format.DECIMAL_SI),
    "k": (10, 3, Format.DECIMAL_SI),
    "M": (10, 6, Format.DECIMAL_SI),
    "G": (10, 9, Format.DECIMAL_SI),
    "T": (10, 12, Format.DECIMAL_SI),
    "P": (10, 15, Format.DECIMAL_SI),
    "E": (10, 18, Format.DECIMAL_SI),
    "Ki": (2, 10, Format.BINARY_SI),
    "Mi": (2, 20, Format.BINARY_SI),
    "Gi": (2, 30, Format.BINARY_SI),
    "Ti": (2, 40, Format.BINARY_SI),
    "Pi": (2, 50, Format.BINARY_SI),
    "Ei": (2, 60, Format.BINARY_SI),
}
_DECIMAL_SUFFIX_BY_EXPONENT = {exp: s for s, (base, exp, _) in _SUFFIXES.items() if base == 10}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")

QuantityInput = str | int | float | Decimal


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact amount and the suffix family it was written with; ``str()`` is the canonical form."""

    value: Decimal
    format: Format = Format.DECIMAL_SI

    @classmethod
    def parse(cls, raw: QuantityInput) -> Quantity:
        """Parse a quantity as the API server decodes one from JSON (a string, or a bare number).

        Raises ``ValueError`` with apimachinery's message when ``raw`` is not a quantity."""
        return _parse(_as_text(raw))

    def __str__(self) -> str:
        return _canonical(self.value, self.format)


def parse_quantity(raw: QuantityInput) -> Decimal:
    """The exact value of a quantity (``"1.5Gi"`` → ``Decimal(1610612736)``); ``ValueError`` if invalid."""
    return Quantity.parse(raw).value


def canonicalize(raw: QuantityInput) -> str:
    """The string the API server stores for a quantity (``"1000m"`` → ``"1"``); ``ValueError`` if invalid."""
    return str(Quantity.parse(raw))


def format_quantity(value: Decimal | int, fmt: Format = Format.DECIMAL_SI) -> str:
    """Render a computed amount canonically, e.g. ``format_quantity(16 * 2**30, Format.BINARY_SI)`` →
    ``"16Gi"``. Sub-nano fractions round up as a parsed quantity would."""
    return _canonical(_round_to_nano(Decimal(value)), fmt)


def to_millis(raw: QuantityInput | Decimal) -> int:
    """``ceil(q * 1000)`` away from zero, as ``Quantity.MilliValue()`` (``"0.1"`` → 100, ``"1n"`` → 1)."""
    value = _value(raw)
    return _ceil_away(value if value.adjusted() > 18 else value * 1000)


def to_int(raw: QuantityInput | Decimal) -> int:
    """The value rounded up (away from zero) to a whole number, as ``Quantity.Value()`` (``"100m"`` → 1)."""
    return _ceil_away(_value(raw))


def _value(raw: QuantityInput | Decimal) -> Decimal:
    return raw if isinstance(raw, Decimal) else parse_quantity(raw)


def _ceil_away(value: Decimal) -> int:
    if value.adjusted() > 18:
        # Beyond int64, as Quantity.Value() saturates; also never expands a huge exponent into digits.
        return _MAX_INT64 if value > 0 else -_MAX_INT64
    numerator, denominator = value.as_integer_ratio()
    magnitude = -(-abs(numerator) // denominator)
    return magnitude if numerator >= 0 else -magnitude


def _as_text(raw: QuantityInput) -> str:
    if isinstance(raw, bool):
        raise ValueError(ERR_FORMAT_WRONG)
    if isinstance(raw, str):
        # The JSON decoder trims surrounding whitespace before parsing (Quantity.UnmarshalJSON).
        return raw.strip()
    if isinstance(raw, int | Decimal):
        return str(raw)
    if isinstance(raw, float):
        return repr(raw)
    raise ValueError(ERR_FORMAT_WRONG)


def _scan(text: str) -> tuple[bool, str, str, str]:
    """Split into (positive, integer digits, fraction digits, suffix) like apimachinery's fast scanner."""
    positive, pos, end = True, 0, len(text)
    if pos < end and text[0] in "+-":
        positive = text[0] == "+"
        pos += 1
    while pos < end and text[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    num = text[start:pos] or "0"
    denom = ""
    if pos < end and text[pos] == ".":
        pos += 1
        start = pos
        while pos < end and text[pos] in _DIGITS:
            pos += 1
        denom = text[start:pos]
    suffix_start = pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise ValueError(ERR_FORMAT_WRONG)
    return positive, num, denom, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, Format]:
    known = _SUFFIXES.get(suffix)
    if known is not None:
        return known
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            exponent = int(suffix[1:])
        except ValueError:
            raise ValueError(ERR_SUFFIX) from None
        if _INT32_MIN <= exponent <= _INT32_MAX:
            return 10, exponent, Format.DECIMAL_EXPONENT
    raise ValueError(ERR_SUFFIX)


def _parse(text: str) -> Quantity:
    if not text:
        raise ValueError(ERR_FORMAT_WRONG)
    positive, num, denom, suffix = _scan(text)
    base, exponent, fmt = _interpret(suffix)
    mantissa = int(num + denom)
    exp10 = -len(denom)
    if base == 10:
        exp10 += exponent
    else:
        mantissa <<= exponent
    if mantissa == 0:
        return Quantity(Decimal(0), fmt)
    amount = _round_to_nano(_decimal(mantissa, exp10))
    if fmt is Format.BINARY_SI:
        if amount > _MAX_INT64:
            amount = Decimal(_MAX_INT64)
        if amount < 1:
            # Sub-unit binary amounts would need rounding; Kubernetes switches them to decimal.
            fmt = Format.DECIMAL_SI
    return Quantity(amount if positive else amount.copy_negate(), fmt)


def _decimal(mantissa: int, exp10: int, negative: bool = False) -> Decimal:
    """An exact Decimal (the tuple constructor never rounds, unlike arithmetic in a context)."""
    return Decimal((int(negative), tuple(int(d) for d in str(mantissa)), exp10))


def _round_to_nano(value: Decimal) -> Decimal:
    sign, digits, exp = value.as_tuple()
    if not isinstance(exp, int) or exp >= _NANO or not any(digits):
        return value
    if len(digits) + exp <= _NANO:
        # Smaller than one nano-unit: rounds up to exactly 1n (without computing a huge divisor).
        return _decimal(1, _NANO, bool(sign))
    mantissa = int("".join(map(str, digits)))
    divisor = 10 ** (_NANO - exp)
    return _decimal(-(-mantissa // divisor), _NANO, bool(sign))


def _canonical(value: Decimal, fmt: Format) -> str:
    if value == 0:
        return "0"
    if fmt is Format.BINARY_SI:
        if -1024 < value < 1024 or value != value.to_integral_value():
            fmt = Format.DECIMAL_SI
        else:
            return _binary(int(value))
    sign, digits, exp = value.as_tuple()
    assert isinstance(exp, int)
    mantissa = int("".join(map(str, digits)))
    while mantissa % 10 == 0:
        mantissa //= 10
        exp += 1
    while exp % 3:
        mantissa *= 10
        exp -= 1
    prefix = "-" if sign else ""
    if fmt is Format.DECIMAL_EXPONENT:
        return f"{prefix}{mantissa}" + (f"e{exp}" if exp else "")
    suffix = _DECIMAL_SUFFIX_BY_EXPONENT.get(exp)
    if suffix is None:
        # Beyond exa there is no SI suffix; an exponent keeps the value exact.
        return f"{prefix}{mantissa}e{exp}"
    return f"{prefix}{mantissa}{suffix}"


def _binary(number: int) -> str:
    magnitude, power = abs(number), 0
    while magnitude % 1024 == 0 and power < len(_BINARY_SUFFIXES) - 1:
        magnitude //= 1024
        power += 1
    return f"{'-' if number < 0 else ''}{magnitude}{_BINARY_SUFFIXES[power]}"
