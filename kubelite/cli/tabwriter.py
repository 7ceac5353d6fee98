"""Column alignment exactly as Go's ``text/tabwriter``, which kubectl prints every table through.

Text is cut into lines at ``\\n`` and into cells at ``\\t``; a cell is tab-*terminated*, so the text after
a line's last tab is not part of any column and is never padded. A column block is a run of consecutive
lines that all have a cell in that column; its width is the widest cell plus ``padding``, at least
``minwidth``. Cells are left-aligned and padded with spaces (kubectl's settings).

kubectl's two writers:
- tables (``kubectl get``): ``TabWriter(minwidth=6, padding=3)``, with ``remember_widths`` for watches, so
  that rows printed later line up with the first table (liggitt/tabwriter's RememberWidths);
- ``kubectl describe``: ``TabWriter(minwidth=0, padding=2)``.
"""

from __future__ import annotations

from collections.abc import Sequence

_Line = list[str]


class TabWriter:
    """Format tab-separated text; `format` may be called repeatedly (once per watch event)."""

    def __init__(self, *, minwidth: int, padding: int, remember_widths: bool = False) -> None:
        self.minwidth = minwidth
        self.padding = padding
        self.remember_widths = remember_widths
        # Widths kept across calls when remember_widths is set: column index -> width.
        self._remembered: list[int] = []

    def format(self, text: str) -> str:
        """Align ``text`` (lines of tab-separated cells); a trailing newline is kept as is."""
        lines: list[_Line] = [line.split("\t") for line in text.split("\n")]
        out: list[str] = []
        self._block(lines, 0, len(lines), [], out)
        return "\n".join(out)

    def _block(self, lines: Sequence[_Line], line0: int, line1: int, widths: list[int],
               out: list[str]) -> None:
        # Go's tabwriter.format: find each block of lines having a cell in column len(widths), size it,
        # then recurse into that block for the next column.
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(lines[this]) - 1:
                this += 1
                continue
            self._write(lines, line0, this, widths, out)
            line0 = this
            width = self.minwidth
            while this < line1 and column < len(lines[this]) - 1:
                width = max(width, len(lines[this][column]) + self.padding)
                this += 1
            if self.remember_widths:
                if column < len(self._remembered):
                    width = max(width, self._remembered[column])
                    self._remembered[column] = width
                else:
                    self._remembered.append(width)
            self._block(lines, line0, this, [*widths, width], out)
            line0 = this
        self._write(lines, line0, line1, widths, out)

    @staticmethod
    def _write(lines: Sequence[_Line], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
        for line in lines[line0:line1]:
            parts = []
            for j, cell in enumerate(line):
                parts.append(cell.ljust(widths[j]) if j < len(widths) else cell)
            out.append("".join(parts))
