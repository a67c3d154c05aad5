"""Per-record due times and lateness computed by the database, in the batch's own statement.

Where the dialect can (``Dialect.facts_in_sql``: PostgreSQL), the ``DELETE``/``UPDATE ...
RETURNING`` of a batch returns, beside each key, the record's due time as a UTC ``timestamp``
and how many whole seconds late it was acted on: no clock value is fetched in its zone, read,
shifted and judged in Python for each of thousands of records. Only the due time's text
(:func:`~retention.recordfacts.due_text`) is made in Python, from the naive timestamp: cheaper
than the server's ``to_char``, which cost more than the rest of the ``DELETE`` (measured).

This is exact only where the calendar arithmetic is plain, so only there is it used: the
dataset's calendar and every clock column's zone have a fixed offset (UTC, ``Etc/...``: a day
is 24 hours, a wall time has no gap or fold), the clock is not rounded to a fiscal year, and no
keep rule moves a deadline. Then adding months clamps to the month's last day, then days, then
elapsed time, as :func:`~retention.timemath.add_duration` does, and a month or year end is the
first of the next month or year, as :func:`~retention.periods.period_end` says. Rows whose
clock starts outside years 4 to 6999 (where Python's own calendar limits decide what is
known) get no due time: their clock values come back instead, and :mod:`retention.recordfacts`
judges them, as every row is judged where this module does not apply.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
)
from sqlalchemy.dialects.postgresql import INTERVAL
from sqlalchemy.sql.elements import ColumnElement

from ...durations import Duration
from ...rules import Clock, Rule
from .clock import ClockColumn

# clock starts (UTC) whose facts the database computes; with durations of at most
# 2 × MAX_YEARS the due times stay far inside Python's calendar (years 1-9999)
_LOW = dt.datetime(4, 1, 1)
_HIGH = dt.datetime(7000, 1, 1)
_PERIODS = {"month_end": ("month", "P1M"), "year_end": ("year", "P1Y")}


def fixed_offset(zone: ZoneInfo) -> dt.timedelta | None:
    """The UTC offset of a zone that never changes it (UTC, ``Etc/...``); None for others."""
    if zone.key != "UTC" and not zone.key.startswith("Etc/"):
        return None
    return zone.utcoffset(dt.datetime(2000, 1, 1))


def possible(rule: Rule, calendar: ZoneInfo, keeps: Sequence[Rule]) -> bool:
    """Whether `rule`'s facts can be computed in SQL (see the module docstring); the clock
    columns' zones are checked by :class:`SqlFacts`."""
    clock = rule.after
    if not clock.refs or fixed_offset(calendar) is None:
        return False
    if clock.round_to is not None and clock.round_to not in _PERIODS:
        return False
    return not (rule.within and rule.destructive and keeps)


class SqlFacts:
    """The columns giving one rule's due time (UTC), lateness and fallback clock values."""

    def __init__(
        self, rule: Rule, calendar: ZoneInfo, now: dt.datetime, clocks: Sequence[ClockColumn]
    ) -> None:
        offset = fixed_offset(calendar)
        assert offset is not None
        self.offset = offset
        self.now = now.astimezone(dt.UTC).replace(tzinfo=None)
        starts = [_utc(c) for c in clocks]
        start = _combined(rule.after, starts)
        safe = _in_range(start, clocks[0] if len(clocks) == 1 else None)
        wall = self._wall(start, rule.after)
        due = self._utc(wall, rule.delay)
        self.columns: list[ColumnElement[Any]] = [
            case((safe, due), else_=None).label("retention_due"),
        ]
        if rule.within:
            deadline = self._utc(wall, rule.delay + rule.within)
            now_at = _timestamp(self.now)
            seconds: ColumnElement[float] = cast(func.extract("epoch", now_at - deadline), Double())
            late = cast(func.trunc(seconds), BigInteger)
            self.columns.append(
                case((and_(safe, now_at > deadline), late), else_=None).label("retention_late")
            )
        else:
            self.columns.append(literal(None, BigInteger).label("retention_late"))
        # outside the safe range, the values themselves, for Python to judge
        # (NULL when the clock has not started: nothing to judge)
        for index, clock in enumerate(clocks):
            self.columns.append(
                case((safe, None), else_=clock.expr).label(f"retention_clock{index}")
            )

    def _wall(self, start: ColumnElement[Any], clock: Clock) -> ColumnElement[Any]:
        """The (rounded) clock start as wall time on the calendar."""
        wall = _shifted(start, self.offset)
        if clock.round_to is None:
            return wall
        unit, step = _PERIODS[clock.round_to]
        return func.date_trunc(_constant(unit), wall) + _interval(step)

    def _utc(self, wall: ColumnElement[Any], delay: Duration) -> ColumnElement[Any]:
        """`delay` after `wall` (calendar units on the wall clock, then elapsed time), in UTC."""
        return _shifted(wall + _interval(_iso(delay)), -self.offset)


def _in_range(start: ColumnElement[Any], only: ClockColumn | None) -> ColumnElement[bool]:
    """The clock starts inside the range this module computes (NULL when it has not started);
    a lone ``timestamptz`` clock is compared as it is, without converting it twice per row."""
    if only is not None and only.kind == "aware":
        low = cast(_constant(_LOW.isoformat(sep=" ") + "+00"), DateTime(timezone=True))
        high = cast(_constant(_HIGH.isoformat(sep=" ") + "+00"), DateTime(timezone=True))
        return and_(only.expr >= low, only.expr < high)
    return and_(start >= _timestamp(_LOW), start < _timestamp(_HIGH))


def _utc(clock: ClockColumn) -> ColumnElement[Any]:
    """A clock column's value as a UTC ``timestamp`` (a date is its local midnight)."""
    if clock.kind == "aware":
        return func.timezone(_constant("UTC"), clock.expr)
    offset = fixed_offset(clock.zone)
    assert offset is not None
    value = clock.expr if clock.kind == "naive" else cast(clock.expr, DateTime())
    return _shifted(value, -offset)


def _combined(clock: Clock, starts: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    """The clock's start from its references' (:meth:`Clock.start`)."""
    if clock.combine == "one" or len(starts) == 1:
        return starts[0]
    if clock.combine == "earliest":
        return func.least(*starts)  # NULLs (not yet happened) are ignored
    return case((or_(*(s.is_(None) for s in starts)), None), else_=func.greatest(*starts))


def _shifted(value: ColumnElement[Any], offset: dt.timedelta) -> ColumnElement[Any]:
    if not offset:
        return value
    seconds = int(offset.total_seconds())
    return value + _interval(f"{seconds} seconds")


def _constant(text: str) -> ColumnElement[Any]:
    """A constant rendered into the statement: the planner folds what is built from it once,
    where a bound parameter would be cast again for each row of a prepared statement."""
    return literal(text, String, literal_execute=True)


def _timestamp(at: dt.datetime) -> ColumnElement[Any]:
    return cast(_constant(at.isoformat(sep=" ")), DateTime())


def _interval(iso: str) -> ColumnElement[Any]:
    return cast(_constant(iso), INTERVAL)


def _iso(d: Duration) -> str:
    return f"P{d.years}Y{d.months}M{d.days}DT{d.hours}H{d.minutes}M{d.seconds}S"


__all__ = ["SqlFacts", "fixed_offset", "possible"]
