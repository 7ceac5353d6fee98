"""Resource quantities parse, round and re-serialise exactly as apimachinery's resource.Quantity."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubelite.api.quantity import (
    ERR_FORMAT_WRONG,
    ERR_SUFFIX,
    Format,
    Quantity,
    canonicalize,
    format_quantity,
    parse_quantity,
    to_int,
    to_millis,
)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("500m", Decimal("0.5")),
        ("1.5Gi", Decimal(1610612736)),
        ("128974848", Decimal(128974848)),
        ("1e3", Decimal(1000)),
        ("100M", Decimal(100_000_000)),
        ("0.1", Decimal("0.1")),
        ("1Ki", Decimal(1024)),
        ("-2k", Decimal(-2000)),
        ("1n", Decimal("1e-9")),
        ("12e-3", Decimal("0.012")),
        ("1E", Decimal(10**18)),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        (" 2 ", Decimal(2)),
        (3, Decimal(3)),
        (1.5, Decimal("1.5")),
        (Decimal("0.25"), Decimal("0.25")),
    ],
)
def test_parse_values(raw: str | int | float | Decimal, value: Decimal) -> None:
    assert parse_quantity(raw) == value


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("500m", "500m"),
        ("1.5Gi", "1536Mi"),
        ("128974848", "128974848"),
        ("1e3", "1e3"),
        ("100M", "100M"),
        ("0.1", "100m"),
        ("1000m", "1"),
        ("1.5", "1500m"),
        ("2000", "2k"),
        ("1024", "1024"),
        ("2048Ki", "2Mi"),
        ("0.5Gi", "512Mi"),
        ("0.5Ki", "512"),
        ("1.1Ki", "1126400m"),
        ("-1.5", "-1500m"),
        ("12e6", "12e6"),
        ("1500e-3", "1500e-3"),
        ("0", "0"),
        ("0Mi", "0"),
        ("+5", "5"),
        (1, "1"),
        (0.25, "250m"),
    ],
)
def test_canonical_form(raw: str | int | float, canonical: str) -> None:
    assert canonicalize(raw) == canonical


def test_sub_nano_values_round_up_not_to_zero() -> None:
    assert canonicalize("0.1n") == "1n"
    assert canonicalize("1e-12") == "1e-9"
    assert parse_quantity("-0.1n") == Decimal("-1e-9")


def test_binary_values_are_capped_at_int64_max() -> None:
    assert parse_quantity("9Ei") == Decimal(2**63 - 1)
    assert canonicalize("9Ei") == str(2**63 - 1)


@pytest.mark.parametrize(
    "raw", ["", "abc", "1Gb", "1 Gi", "1.2.3", "1e3.5", "1KB", "Mi1x", "nan", float("inf")]
)
def test_malformed_quantities(raw: str | float) -> None:
    with pytest.raises(ValueError) as err:
        parse_quantity(raw)
    assert str(err.value) == ERR_FORMAT_WRONG
    assert "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$" in ERR_FORMAT_WRONG


@pytest.mark.parametrize("raw", ["1kk", "1e", "1mi", "1ki", "--1", "1e99999999999"])
def test_unknown_suffixes(raw: str) -> None:
    with pytest.raises(ValueError, match="unable to parse quantity's suffix"):
        parse_quantity(raw)
    assert ERR_SUFFIX == "unable to parse quantity's suffix"


def test_booleans_are_not_quantities() -> None:
    with pytest.raises(ValueError):
        parse_quantity(True)


def test_format_is_remembered() -> None:
    assert Quantity.parse("1Gi").format is Format.BINARY_SI
    assert Quantity.parse("1G").format is Format.DECIMAL_SI
    assert Quantity.parse("1e9").format is Format.DECIMAL_EXPONENT
    # A binary amount below one unit is re-emitted in decimal, as Kubernetes does.
    assert Quantity.parse("0.5").format is Format.DECIMAL_SI
    assert str(Quantity.parse("0.0001Ki")) == "102400u"


@pytest.mark.parametrize(
    ("raw", "millis", "whole"),
    [("0.1", 100, 1), ("1", 1000, 1), ("100m", 100, 1), ("1n", 1, 1), ("1.5Gi", 1610612736000, 1610612736),
     ("-100m", -100, -1), ("0", 0, 0), ("2.0000001", 2001, 3)],
)
def test_millis_and_int_round_up_away_from_zero(raw: str, millis: int, whole: int) -> None:
    assert to_millis(raw) == millis
    assert to_int(raw) == whole


def test_format_computed_amounts() -> None:
    assert format_quantity(16 * 2**30, Format.BINARY_SI) == "16Gi"
    assert format_quantity(1500, Format.BINARY_SI) == "1500"
    assert format_quantity(Decimal("0.25")) == "250m"
    assert format_quantity(4) == "4"
    assert format_quantity(0, Format.BINARY_SI) == "0"


def test_huge_exponents_stay_exact_and_fast() -> None:
    assert canonicalize("1e300000") == "1e300000"
    assert parse_quantity("1e-300000") == Decimal("1e-9")


@pytest.mark.parametrize("raw", ["1e-999999999", "-1e-999999999", "1e999999999", "-1e999999999"])
def test_extreme_exponents_stay_cheap(raw: str) -> None:
    # A hostile manifest must not make the server expand a billion-digit number.
    text = canonicalize(raw)
    assert len(text) < 20
    assert abs(to_millis(raw)) >= 1 and abs(to_int(raw)) >= 1
