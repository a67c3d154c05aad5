"""Clocks rounded to the end of a period: "five years from the end of the financial year".

A rule's clock may say ``round_to: year_end`` (or ``month_end``, ``fiscal_year_end``): its start
is then moved to the end of the period it falls in, on the configured zone's wall calendar. The
end of a period is the first instant of the next one — local midnight on 1 January, on the
first of the month, or on the fiscal year's first day — so a clock started at any moment of
2026 is rounded to 2027-01-01 00:00 local, and P5Y after it is 2032-01-01 00:00 local: kept
exactly as long as the law says, not a day longer.

The contract, for boundaries ``B_k`` (those wall times converted with
:func:`~retention.timemath.wall_to_utc`, so a boundary in a DST gap or fold is one instant):

``period_end(c, period, tz, fiscal_start)``
    The first boundary strictly after ``c``. Monotone non-decreasing in ``c``.

``rounded_set(instants, period, tz, fiscal_start)``
    Exactly ``{c : period_end(c) in instants}``, as an :class:`IntervalSet`: the engine pushes
    "the rounded clock is due" into the store as a comparison on the unrounded column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from .timemath import UTC, IntervalSet, wall_to_utc

Period = Literal["year_end", "month_end", "fiscal_year_end"]
PERIODS: tuple[Period, ...] = ("year_end", "month_end", "fiscal_year_end")
# (month, day) of the first day of a year-like period
YearStart: TypeAlias = tuple[int, int]

_ONE_US = dt.timedelta(microseconds=1)


def parse_year_start(text: str) -> YearStart:
    """``"MM-DD"`` (e.g. ``"07-01"``) as (month, day); a day every year has (no 29 February)."""
    parts = text.split("-") if isinstance(text, str) else []
    if len(parts) == 2 and all(p.isdigit() and len(p) == 2 for p in parts):
        month, day = int(parts[0]), int(parts[1])
        try:
            dt.date(2001, month, day)  # 2001 is no leap year: 02-29 is refused
        except ValueError:
            pass
        else:
            return month, day
    raise ValueError(f"{text!r} is not a first day of a year: use MM-DD, e.g. 07-01")


def period_end(
    instant: dt.datetime, period: Period, tz: ZoneInfo, fiscal_start: YearStart = (1, 1)
) -> dt.datetime:
    """The end of the period `instant` falls in: the first period boundary after it."""
    c = instant.astimezone(UTC)
    for boundary in _boundaries_from(c, period, tz, fiscal_start):
        if boundary > c:
            return boundary
    raise AssertionError("unreachable: boundaries are unbounded")  # pragma: no cover


def rounded_set(
    instants: IntervalSet, period: Period, tz: ZoneInfo, fiscal_start: YearStart = (1, 1)
) -> IntervalSet:
    """Exactly the clock starts whose :func:`period_end` lies in `instants`.

    Every start in ``[B_k, B_{k+1})`` rounds to ``B_{k+1}``, so the answer is a union of whole
    periods: those whose end is in `instants`. Ends below every finite bound of `instants` are
    in it when its first interval is unbounded below, ends above them when its last is
    unbounded above; only the few periods between are tested one by one.
    """
    if not instants.intervals:
        return instants
    finite = [b for lo_hi in instants.intervals for b in lo_hi if b is not None]
    if not finite:
        return instants
    lowest, highest = min(finite), max(finite)
    below = instants.intervals[0][0] is None
    above = instants.intervals[-1][1] is None
    boundaries = _boundaries_from(lowest, period, tz, fiscal_start)
    first = next(boundaries)  # at or before `lowest`: every start before it rounds below it
    found: list[list[dt.datetime | None]] = [[None, first - _ONE_US]] if below else []
    start = first
    for end in boundaries:
        if start > highest:
            if above:
                _append(found, start, None)
            break
        if end in instants:
            _append(found, start, end - _ONE_US)
        start = end
    return IntervalSet(tuple((lo, hi) for lo, hi in found))


def _append(found: list[list[dt.datetime | None]], lo: dt.datetime, hi: dt.datetime | None) -> None:
    previous = found[-1][1] if found else None
    if found and previous is not None and previous + _ONE_US == lo:
        found[-1][1] = hi
    else:
        found.append([lo, hi])


def _boundaries_from(
    instant: dt.datetime, period: Period, tz: ZoneInfo, fiscal_start: YearStart
) -> Iterator[dt.datetime]:
    """Period boundaries in order, from one at or before `instant` on."""
    wall = instant.astimezone(tz).replace(tzinfo=None)
    month_step = 1 if period == "month_end" else 12
    month, day = (1, 1) if period == "year_end" else fiscal_start
    if period == "month_end":
        month, day = wall.month, 1
    start = dt.datetime(wall.year, month, day)
    # one period back, twice: the wall time and the instant may disagree near a DST change
    index = start.year * 12 + start.month - 1 - 2 * month_step
    while True:
        year, month0 = divmod(index, 12)
        yield wall_to_utc(dt.datetime(year, month0 + 1, day), tz)
        index += month_step


__all__ = ["PERIODS", "Period", "YearStart", "parse_year_start", "period_end", "rounded_set"]
