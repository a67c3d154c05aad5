"""Exact timestamp comparisons in SQL, on every dialect.

The planner decides in Python *which* clock values are due (an :class:`IntervalSet` of UTC
instants, see :mod:`retention.timemath`) and asks the database to compare its indexed columns
against those bounds. What a stored value means depends on the column:

- ``aware``: a ``timestamptz`` column; compared with UTC instants directly.
- ``naive``: a timestamp without zone, read as wall time in the dataset's zone; the bound is
  translated to the latest wall time at or before it.
- ``date``: a date column, read as local midnight.
- ``sqlite_text``: SQLite keeps timestamps as text in whatever format the writer chose
  (``T`` or space, with or without fraction or offset). Text order is not time order, so the
  bulk of rows is decided by an index range on the date prefix, and only rows within two days of
  the bound go through :func:`sqlite_utc_text`, a registered function that parses and normalises.

Every comparison is two-valued where it can be: a NULL or unreadable clock is never "before" a
bound, so a record whose clock has not started is never due. An unreadable one (SQLite text that
is no timestamp, such as ``'yesterday'`` or ``'2026-13-45'``) is also *reported*:
:meth:`ClockColumn.unreadable` selects it, for the plan's ``unreadable`` count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    String,
    Table,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    true,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.elements import ColumnClause, ColumnElement

from ...rules import Clock, ClockRef
from ...timemath import UTC, IntervalSet, latest_wall_at_or_before, parse_stored

ColumnKind = Literal["aware", "naive", "date", "sqlite_text"]
SQLITE_FUNCTION = "retention_utc"
_ISO_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
_ONE_US = dt.timedelta(microseconds=1)
_MARGIN = dt.timedelta(days=2)


@dataclass(frozen=True)
class ClockColumn:
    """A SQL expression holding one clock's value, and how to read it."""

    expr: ColumnElement[Any]
    kind: ColumnKind
    zone: ZoneInfo

    def le(self, bound: dt.datetime) -> ColumnElement[bool]:
        """The value is known and at or before the UTC instant `bound`."""
        expr = self.expr
        if self.kind == "aware":
            return and_(expr.is_not(None), expr <= bound)
        if self.kind == "naive":
            return and_(expr.is_not(None), expr <= latest_wall_at_or_before(bound, self.zone))
        if self.kind == "date":
            return and_(
                expr.is_not(None), expr <= latest_wall_at_or_before(bound, self.zone).date()
            )
        low = literal((bound - _MARGIN).date().isoformat(), String)
        high = literal((bound + _MARGIN).date().isoformat(), String)
        exact = func.coalesce(
            getattr(func, SQLITE_FUNCTION)(expr, self.zone.key) <= literal(utc_text(bound), String),
            false(),
        )
        # One index range (`< high`), decided row by row: older rows by their ISO date prefix,
        # if readable at all ('2020-13-45' is not), the few near the bound by parsing. (An OR
        # of two ranges would make SQLite collect every matching rowid in memory: a MULTI-INDEX
        # OR.)
        parsed = getattr(func, SQLITE_FUNCTION)(expr, self.zone.key).is_not(None)
        old = case(
            (_plainly_readable(expr), true()),
            (expr.op("GLOB")(_ISO_GLOB), parsed),
            else_=false(),
        )
        near = case((expr < low, old), else_=exact)
        return and_(expr.is_not(None), expr < high, near)

    def gt(self, bound: dt.datetime) -> ColumnElement[bool]:
        """The value is known and after `bound`."""
        return and_(self.known(), not_(self.le(bound)))

    def known(self) -> ColumnElement[bool]:
        """The clock has started (the value is not NULL and, on SQLite, readable)."""
        if self.kind == "sqlite_text":
            return and_(self.expr.is_not(None), self._readable())
        return self.expr.is_not(None)

    def unknown(self) -> ColumnElement[bool]:
        return not_(self.known())

    def unreadable(self) -> ColumnElement[bool]:
        """A value is there but is not a timestamp (SQLite text such as ``'2026-13-45'``): the
        clock counts as not started, and the record is reported. Typed columns cannot be."""
        if self.kind != "sqlite_text":
            return false()
        return and_(self.expr.is_not(None), not_(self._readable()))

    def _readable(self) -> ColumnElement[bool]:
        """SQLite: a non-NULL value :func:`parse_stored` reads. The usual shapes are checked
        in C (:func:`_plainly_readable`); only the others are parsed, by ``retention_utc``."""
        parsed: ColumnElement[Any] = getattr(func, SQLITE_FUNCTION)(self.expr, self.zone.key)
        return case((_plainly_readable(self.expr), true()), else_=parsed.is_not(None))


# The shapes read without calling Python, by length (each length is one shape): a date, or a date
# and time with an optional fraction of 3 or 6 digits, then nothing, ``Z`` or an offset.
_D = "[0-9]"
_DATE = f"{_D * 4}-{_D * 2}-{_D * 2}"
_TIME = f"{_DATE}[ T]{_D * 2}:{_D * 2}:{_D * 2}"
_PLAIN_SHAPES = {10: _DATE} | {
    19 + len(fraction) + len(offset): _TIME + pattern + zone
    for fraction, pattern in (("", ""), (".123", "." + _D * 3), (".123456", "." + _D * 6))
    for offset, zone in (("", ""), ("Z", "Z"), ("+01:00", f"[+-]{_D * 2}:{_D * 2}"))
}


def _plainly_readable(expr: ColumnElement[Any]) -> ColumnElement[bool]:
    """SQLite text that certainly is a timestamp :func:`parse_stored` reads, checked in C (no
    Python call per row): one of the usual shapes (:data:`_PLAIN_SHAPES`, one GLOB by length),
    fields SQLite's `julianday` accepts (months 1-12, minutes and seconds below 60, offsets up
    to 14 hours), a day the month has and an hour below 24 (SQLite would take 31 February and
    24:00), in years 0002-9998 (outside them a zone can move the instant off the calendar).
    False does not mean unreadable: such values are parsed.

    The check is some forty constant terms, repeated in every clock of every statement; on a
    column of a table it is rendered to SQL once per column (:func:`_rendered_shape_check`), as
    compiling it anew in each statement was most of a plan's time on SQLite. Other expressions
    (a subject's clock in a correlated subquery, a column of an alias) are built as they are.
    """
    if isinstance(expr, ColumnClause) and isinstance(expr.table, Table):
        column = str(expr.compile(dialect=_SQLITE))
        return literal_column(_rendered_shape_check(column), Boolean)
    return _shape_check(expr)


_SQLITE = sqlite.dialect()


@lru_cache(maxsize=1024)
def _rendered_shape_check(column: str) -> str:
    """:func:`_shape_check` of the column SQLite knows as `column`, as SQL text (its literals
    are this module's constants)."""
    check = _shape_check(literal_column(column, String))
    return f"({check.compile(dialect=_SQLITE, compile_kwargs={'literal_binds': True})})"


def _shape_check(expr: ColumnElement[Any]) -> ColumnElement[bool]:
    """The terms of :func:`_plainly_readable` on `expr`."""

    def text(value: str) -> ColumnElement[str]:
        return literal(value, String)

    def part(start: int, length: int) -> ColumnElement[str]:
        return func.substr(expr, start, length, type_=String)

    shape = case(
        {length: expr.op("GLOB")(text(pattern)) for length, pattern in _PLAIN_SHAPES.items()},
        value=func.length(expr),
        else_=false(),
    )
    day, month = part(9, 2), part(6, 2)
    long_months = [text(m) for m in ("01", "03", "05", "07", "08", "10", "12")]
    real_day = or_(
        day < text("29"),
        and_(month != text("02"), or_(day < text("31"), month.in_(long_months))),
    )  # 29 February is left to Python (leap years)
    return and_(
        expr >= text("0002"),
        expr < text("9999"),
        shape,
        real_day,
        part(12, 2) < text("24"),
        func.julianday(expr).is_not(None),
    )


def clock_in(
    clock: Clock, instants: IntervalSet, column: Callable[[ClockRef], ClockColumn]
) -> ColumnElement[bool]:
    """SQL for "the clock's start lies in `instants`" (combining earliest/latest exactly)."""
    columns = [column(ref) for ref in clock.refs]
    if not instants.intervals:
        return false()
    if clock.combine == "one":
        return _one_in(columns[0], instants)
    if instants.is_down_set:
        bound = instants.intervals[0][1]
        if bound is None:  # every started clock is due
            return (or_ if clock.combine == "earliest" else and_)(*(c.known() for c in columns))
        if clock.combine == "earliest":
            return or_(*(c.le(bound) for c in columns))
        return and_(*(c.le(bound) for c in columns))
    return _combined_in(clock.combine, columns, instants)


def _one_in(column: ClockColumn, instants: IntervalSet) -> ColumnElement[bool]:
    parts = []
    for low, high in instants.intervals:
        conditions = [column.known()] if low is None and high is None else []
        if low is not None:
            conditions.append(column.gt(low - _ONE_US))
        if high is not None:
            conditions.append(column.le(high))
        parts.append(and_(*conditions))
    return or_(*parts)


def _combined_in(
    combine: str, columns: Sequence[ClockColumn], instants: IntervalSet
) -> ColumnElement[bool]:
    """min/max of several clocks in a set that is not a simple cutoff.

    The start lies outside `instants` exactly when it lies in one of the gaps (l, u). For the
    earliest clock that means: every known clock is after l and some clock is before u; for the
    latest: every clock is before u and some clock is after l. Only column-versus-constant
    comparisons are needed, so each clock keeps its own column type and zone.
    """
    in_gap = []
    for low, high in instants.gaps:
        after_low = [true() if low is None else c.gt(low) for c in columns]
        before_high = [c.known() if high is None else c.le(high - _ONE_US) for c in columns]
        if combine == "earliest":
            all_after = and_(
                *(or_(c.unknown(), a) for c, a in zip(columns, after_low, strict=True))
            )
            in_gap.append(and_(all_after, or_(*before_high)))
        else:
            in_gap.append(and_(and_(*before_high), or_(*after_low)))
    started = (
        or_(*(c.known() for c in columns))
        if combine == "earliest"
        else and_(*(c.known() for c in columns))
    )
    return and_(started, not_(or_(*in_gap)))


def utc_text(instant: dt.datetime) -> str:
    """The canonical text form :func:`sqlite_utc_text` produces, for one UTC instant."""
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def sqlite_utc_text(value: object, zone_name: str) -> str | None:
    """SQLite function: the stored value as canonical UTC text, NULL when unreadable."""
    try:
        instant = parse_stored(value, _zone(zone_name))
    except (ValueError, OverflowError):
        return None
    return None if instant is None else utc_text(instant)
