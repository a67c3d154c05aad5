"""Tables that read at any width: identifying columns (rule, dataset, hold id, dates) are never
cut; when the full table is wider than the terminal, numeric headers are abbreviated and may
wrap, and when even that does not fit, each row is stacked as its ids and then ``name value``
pairs. ``--wide`` prints the full table whatever the width."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from .common import out


@dataclass(frozen=True)
class Col:
    """One column: its header, an abbreviation for narrow terminals, and whether it identifies
    the row (shown whole, never wrapped or cut) or holds a number (right-aligned). A `labelled`
    identifying cell (a date, whose meaning is its column's) keeps its header in a stacked row."""

    header: str
    short: str | None = None
    ident: bool = False
    numeric: bool = False
    labelled: bool = False


Cells = Sequence[str]
TEXT_MIN = 16
"""The narrowest a free-text column (reason, scope, status) may become before rows are stacked."""


def show(
    columns: Sequence[Col],
    rows: Sequence[Cells],
    *,
    title: str | None = None,
    wide: bool = False,
    plain: bool = False,
    console: Console | None = None,
) -> None:
    """Print `rows` (rich markup per cell) under `columns` so that every identifying cell is on
    screen whole at the console's width; `plain` drops the borders (the demo's compact style)."""
    target = console or out
    full = _table(columns, rows, title, plain=plain, compact=False)
    if wide:
        narrow = target.width
        target.width = max(narrow, _natural_width(target, full))
        try:
            target.print(full, crop=False)
        finally:
            target.width = narrow
        return
    if _natural_width(target, full) <= target.width:
        target.print(full)
        return
    compact = _table(columns, rows, title, plain=plain, compact=True)
    if _narrowest_width(target, compact) <= target.width:
        target.print(compact)
        return
    _stacked(target, columns, rows, title)


def _table(
    columns: Sequence[Col], rows: Sequence[Cells], title: str | None, *, plain: bool, compact: bool
) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        box=None if plain else (box.SIMPLE_HEAD if compact else box.HEAVY_HEAD),
        pad_edge=not plain,
        padding=(0, 1),
    )
    for col in columns:
        justify: Literal["left", "right"] = "right" if col.numeric else "left"
        header = (col.short or col.header) if compact else col.header
        if col.ident:
            longest = _longest(rows, len(table.columns))
            table.add_column(
                header,
                justify=justify,
                no_wrap=True,
                min_width=max(longest, len(header)),
                header_style="bold" if plain else "table.header",
            )
        else:
            table.add_column(
                header,
                justify=justify,
                overflow="fold",
                no_wrap=col.numeric and not compact,
                # a text column narrower than this reads as a word per line: stack instead
                min_width=None
                if col.numeric
                else min(_longest(rows, len(table.columns)), TEXT_MIN),
                header_style="bold" if plain else "table.header",
            )
    for row in rows:
        table.add_row(*row)
    return table


def _longest(rows: Sequence[Cells], index: int) -> int:
    return max((Text.from_markup(row[index]).cell_len for row in rows), default=0)


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update_width(100_000), table).maximum


def _narrowest_width(console: Console, table: Table) -> int:
    """The width below which rich would have to cut an identifying cell: the sum of every
    column's narrowest form (ids whole, numbers as wide as their longest word) and the borders."""
    return Measurement.get(console, console.options.update_width(100_000), table).minimum


def _stacked(
    console: Console, columns: Sequence[Col], rows: Sequence[Cells], title: str | None
) -> None:
    if title:
        console.print(title, highlight=False)
    idents = [i for i, c in enumerate(columns) if c.ident]
    others = [i for i, c in enumerate(columns) if not c.ident]
    for row in rows:
        head = [_stacked_ident(columns[i], row[i], first=i == idents[0]) for i in idents]
        for line in _fill(head, console.width, "  "):
            console.print(line, highlight=False, soft_wrap=True)
        pairs = [
            Text.from_markup(f"{escape(columns[i].header)} {row[i]}") for i in others if row[i]
        ]
        for line in _fill(pairs, console.width - 2):
            console.print(Text("  ").append_text(line), highlight=False, soft_wrap=True)


def _stacked_ident(col: Col, cell: str, *, first: bool) -> Text:
    if first:
        return Text.from_markup(f"[bold]{cell}[/]")
    return Text.from_markup(f"{escape(col.header)} {cell}" if col.labelled else cell)


def _fill(pairs: Sequence[Text], width: int, separator: str = " · ") -> list[Text]:
    """`pairs` joined by `separator` into lines of at most `width` cells, never splitting one
    (a pair wider than `width` is a line of its own, whole)."""
    lines: list[Text] = []
    for pair in pairs:
        if lines and lines[-1].cell_len + len(separator) + pair.cell_len <= width:
            lines[-1].append(separator).append_text(pair)
        else:
            lines.append(pair.copy())
    return lines
