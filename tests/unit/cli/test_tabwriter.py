"""TabWriter reproduces Go's text/tabwriter as kubectl configures it."""

from __future__ import annotations

from kubelite.cli.tabwriter import TabWriter


def table_writer(remember: bool = False) -> TabWriter:
    return TabWriter(minwidth=6, padding=3, remember_widths=remember)


def test_columns_padded_to_widest_cell_plus_padding_last_cell_unpadded() -> None:
    text = "NAME\tREADY\tAGE\nweb-server\t1/1\t5m\n"
    assert table_writer().format(text) == ("NAME         READY   AGE\n"
                                           "web-server   1/1     5m\n")


def test_minimum_width_applies_to_narrow_columns() -> None:
    assert table_writer().format("A\tB\nc\td\n") == "A     B\nc     d\n"


def test_empty_middle_cells_are_padded() -> None:
    assert table_writer().format("NAME\tIP\tNODE\nx\t\tn1\n") == "NAME   IP    NODE\nx            n1\n"


def test_a_line_without_tabs_ends_the_column_block() -> None:
    w = TabWriter(minwidth=0, padding=2)
    text = "Name:\tweb\nNamespace:\tdefault\nPod Template:\n  Labels:\tapp=web\n"
    assert w.format(text) == ("Name:       web\n"
                              "Namespace:  default\n"
                              "Pod Template:\n"
                              "  Labels:  app=web\n")


def test_remembered_widths_keep_later_rows_aligned() -> None:
    w = table_writer(remember=True)
    first = w.format("NAME\tSTATUS\tAGE\nlong-name-here\tRunning\t1s\n")
    later = w.format("a\tPending\t0s\n")
    assert first.splitlines()[1].index("Running") == later.index("Pending")


def test_widths_are_not_remembered_by_default() -> None:
    w = table_writer()
    w.format("long-name-here\tx\n")
    assert w.format("a\tb\n") == "a     b\n"
