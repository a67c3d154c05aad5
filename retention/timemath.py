"""Exact "is it due yet?" arithmetic between clock starts, durations and local time zones.

A record is due when ``add_duration(clock_start, retain + grace, tz) <= now``. The engine pushes
that test into the store as a comparison on the clock column, so it needs the exact set of clock
values that are due: :func:`due_clock_set`. Everything here works at microsecond resolution, takes
``now`` as an argument (the wall clock is never read) and returns timezone-aware UTC datetimes.

The contract:

``add_duration(c, d, tz)``
    Convert ``c`` to wall time in ``tz``; add years and months like ``dateutil.relativedelta``
    (the day is clamped to the month's last day, the time of day is kept: 2026-11-30 10:00 + P3M
    = 2027-02-28 10:00, 2024-02-29 + P1Y = 2025-02-28); add days on the wall calendar (the same
    wall time N days later, across DST); convert back with :func:`wall_to_utc`; then add hours,
    minutes and seconds as elapsed time (PT12H is 12 real hours, even across DST). A duration with
    no years, months or days is pure elapsed time: ``c`` is never converted to wall time.

``wall_to_utc(w, tz)``
    A naive wall time to its UTC instant. An ambiguous wall time (autumn fold) maps to the later
    instant, so a record looks newer (the conservative side); a nonexistent wall time (spring gap)
    maps to the transition instant, the first instant after the gap. The map is therefore
    monotone non-decreasing in ``w``.

``latest_wall_at_or_before(b, tz)``
    ``max{w : wall_to_utc(w, tz) <= b}``: the bound to use on a column of naive local times.

``due_clock_set(d, now, tz)``
    Exactly ``{c : add_duration(c, d, tz) <= now}`` as an :class:`IntervalSet`. Usually a down set
    ``(-inf, c*]``, but not always: month clamping keeps the time of day (2027-01-30 11:00 + P1M =
    02-28 11:00 is later than 01-31 09:00 + P1M = 02-28 09:00) and DST folds repeat wall times,
    so ``add_duration`` is only monotone between consecutive local midnights and offset changes.
    The set is found by binary search on each such piece of a window around ``now - d``.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

from .durations import Duration

__all__ = [
    "UTC",
    "IntervalSet",
    "add_duration",
    "due_clock_set",
    "latest_wall_at_or_before",
    "parse_stored",
    "wall_to_utc",
]

Interval: TypeAlias = tuple[datetime | None, datetime | None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_HOUR = 3_600_000_000
_DAY = 24 * _HOUR
# Search window around now - d, and the distance beyond which add_duration is monotone:
# c2 - c1 >= 5 days puts c2's wall date >= 4 days after c1's (no zone has set its clock back by
# more than 23 hours), and month clamping merges at most 4 consecutive dates.
_WINDOW = 10 * _DAY
_MONOTONE_BEYOND = 5 * _DAY
# Offset changes are found by sampling at this step; tzdata has none closer than ~4 days apart.
_OFFSET_SCAN_STEP = 6 * _HOUR


@dataclass(frozen=True)
class IntervalSet:
    """A set of instants as sorted, disjoint, closed intervals ``[lo, hi]``; None is unbounded."""

    intervals: tuple[Interval, ...]

    def __post_init__(self) -> None:
        previous_hi: datetime | None = None
        for i, (lo, hi) in enumerate(self.intervals):
            for bound in (lo, hi):
                if bound is not None and bound.utcoffset() is None:
                    raise ValueError("IntervalSet bounds must be timezone-aware")
            if (lo is None and i > 0) or (hi is None and i < len(self.intervals) - 1):
                raise ValueError("only the first interval may start at -inf, the last end at +inf")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"empty interval [{lo}, {hi}]")
            if i > 0 and (previous_hi is None or lo is None or lo <= previous_hi):
                raise ValueError("intervals must be sorted and disjoint")
            previous_hi = hi

    @classmethod
    def empty(cls) -> IntervalSet:
        """The set with no instant."""
        return cls(())

    @classmethod
    def everything(cls) -> IntervalSet:
        """The set of all instants."""
        return cls(((None, None),))

    def __contains__(self, instant: datetime) -> bool:
        t = _require_aware(instant, "instant")
        return any((lo is None or lo <= t) and (hi is None or t <= hi) for lo, hi in self.intervals)

    @property
    def is_down_set(self) -> bool:
        """True when the set is ``(-inf, hi]`` (or everything): one ``clock <= c*`` test."""
        return len(self.intervals) == 1 and self.intervals[0][0] is None

    @property
    def gaps(self) -> tuple[Interval, ...]:
        """The complement, as open intervals ``(lo, hi)``; None is unbounded."""
        bounds: list[datetime | None] = [None]
        for lo, hi in self.intervals:
            bounds += [lo, hi]
        bounds.append(None)
        pairs = zip(bounds[::2], bounds[1::2], strict=True)
        # With any interval present, an unbounded "gap" (None, None) is an empty end, not a gap.
        return tuple(
            (lo, hi) for lo, hi in pairs if not (self.intervals and lo is None and hi is None)
        )


def add_duration(instant: datetime, d: Duration, tz: ZoneInfo) -> datetime:
    """The instant a duration after ``instant``, calendar units counted on ``tz``'s wall clock."""
    return _add(_require_aware(instant, "instant"), d, tz)


def wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a naive wall time in ``tz``: a fold gives the later, a gap the change."""
    if wall.tzinfo is not None:
        raise ValueError(f"wall time must be naive (local time in {tz.key}), got {wall!r}")
    return _wall_to_utc(wall, tz)


def latest_wall_at_or_before(bound: datetime, tz: ZoneInfo) -> datetime:
    """The last naive wall time in ``tz`` whose instant is at or before ``bound``."""
    b = _require_aware(bound, "bound")

    def at_or_before(w: int) -> bool:
        return _wall_to_utc(_NAIVE_EPOCH + w * _MICROSECOND, tz) <= b

    center = (b.astimezone(tz).replace(tzinfo=None) - _NAIVE_EPOCH) // _MICROSECOND
    lo, hi = center - 2 * _DAY, center + 2 * _DAY
    while not at_or_before(lo):
        lo -= 2 * _DAY
    while at_or_before(hi):
        hi += 2 * _DAY
    return _NAIVE_EPOCH + _last_true(lo, hi, at_or_before) * _MICROSECOND


def due_clock_set(d: Duration, now: datetime, tz: ZoneInfo) -> IntervalSet:
    """Exactly the clock starts ``c`` with ``add_duration(c, d, tz) <= now``.

    A plan asks for the same few sets once per rule, dataset and batch; they are computed once
    (the result is immutable, and keyed by `now`'s zone too, which the result carries).
    """
    now = _require_aware(now, "now")
    return _due_clock_set(d, now, now.tzinfo, tz)


@functools.lru_cache(maxsize=4096)
def _due_clock_set(d: Duration, now: datetime, _zone: object, tz: ZoneInfo) -> IntervalSet:
    elapsed = _elapsed(d)
    if not (d.years or d.months or d.days):
        return IntervalSet(((None, now - elapsed),))

    def due(c: int) -> bool:
        return _add(_at(c), d, tz) <= now

    center = _us(_add_months(now, -(12 * d.years + d.months)) - timedelta(days=d.days) - elapsed)
    lo, hi = center - _WINDOW, center + _WINDOW
    for _ in range(20):
        # Everything below lo is due and everything above hi is not, once these hold.
        low_ok, high_ok = due(lo + _MONOTONE_BEYOND), not due(hi - _MONOTONE_BEYOND)
        if low_ok and high_ok:
            break
        if not low_ok:
            lo -= _WINDOW
        if not high_ok:
            hi += _WINDOW
    else:
        raise RuntimeError(f"no due boundary found for {d} at {now} in {tz.key}")  # a bug

    found: list[list[int | None]] = [[None, lo - 1]]
    for start, end in _monotone_pieces(lo, hi, tz):
        if due(end):
            last = end
        elif due(start):
            last = _last_true(start, end, due)
        else:
            continue
        previous_hi = found[-1][1]
        if previous_hi is not None and start <= previous_hi + 1:
            found[-1][1] = last
        else:
            found.append([start, last])
    return IntervalSet(
        tuple((None if a is None else _at(a), None if b is None else _at(b)) for a, b in found)
    )


def _add(c: datetime, d: Duration, tz: ZoneInfo) -> datetime:
    if not (d.years or d.months or d.days):
        return c + _elapsed(d)
    wall = c.astimezone(tz).replace(tzinfo=None)
    wall = _add_months(wall, 12 * d.years + d.months) + timedelta(days=d.days)
    return _wall_to_utc(wall, tz) + _elapsed(d)


def _wall_to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    folded = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if folded.astimezone(tz).replace(tzinfo=None) == wall:
        return folded
    # In a gap, fold=0 and fold=1 apply the offsets from either side of the transition, so the
    # transition instant lies between the two readings.
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    lo, hi = sorted((_us(folded), _us(earlier)))
    return _at(_next_offset_change(lo, hi, tz))


def _add_months(t: datetime, months: int) -> datetime:
    if not months:
        return t
    year, month0 = divmod(t.year * 12 + t.month - 1 + months, 12)
    day = min(t.day, calendar.monthrange(year, month0 + 1)[1])
    return t.replace(year=year, month=month0 + 1, day=day)


def _monotone_pieces(lo: int, hi: int, tz: ZoneInfo) -> list[tuple[int, int]]:
    """Split [lo, hi] at local midnights and offset changes, where add_duration is monotone."""
    starts = [lo]
    changes = _offset_changes(lo, hi, tz)
    for segment_start, segment_end in zip([lo, *changes], [*changes, hi + 1], strict=True):
        if segment_start != lo:
            starts.append(segment_start)
        offset = _offset(segment_start, tz)
        midnight = ((segment_start + offset) // _DAY + 1) * _DAY
        while midnight - offset < segment_end:
            starts.append(midnight - offset)
            midnight += _DAY
    return list(zip(starts, [s - 1 for s in starts[1:]] + [hi], strict=True))


def _offset_changes(lo: int, hi: int, tz: ZoneInfo) -> list[int]:
    """The instants in (lo, hi] at which ``tz``'s UTC offset changes."""
    changes = []
    t = lo
    while t < hi:
        step_end = min(t + _OFFSET_SCAN_STEP, hi)
        if _offset(step_end, tz) != _offset(t, tz):
            changes.append(_next_offset_change(t, step_end, tz))
        t = step_end
    return changes


def _next_offset_change(lo: int, hi: int, tz: ZoneInfo) -> int:
    """The first instant in (lo, hi] whose offset differs from lo's (one change in between)."""
    before = _offset(lo, tz)
    return _last_true(lo, hi, lambda t: _offset(t, tz) == before) + 1


def _last_true(lo: int, hi: int, pred: Callable[[int], bool]) -> int:
    """The largest x in [lo, hi] with pred(x), for pred(lo) true and pred true-then-false."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if pred(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _offset(t: int, tz: ZoneInfo) -> int:
    offset = _at(t).astimezone(tz).utcoffset()
    assert offset is not None
    return offset // _MICROSECOND


def _elapsed(d: Duration) -> timedelta:
    return timedelta(hours=d.hours, minutes=d.minutes, seconds=d.seconds)


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _MICROSECOND


def _at(us: int) -> datetime:
    return _EPOCH + us * _MICROSECOND


def _require_aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got naive {t!r}")
    return t.astimezone(UTC)


def parse_stored(value: object, zone: ZoneInfo) -> datetime | None:
    """A stored timestamp (text, date or datetime) as an aware UTC instant, or None if unreadable.

    Naive values are wall time in `zone`; an ambiguous or skipped wall time is resolved like
    :func:`retention.timemath.wall_to_utc` (the later instant / the transition).
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, (str, bytes)):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            return None
    else:
        return None
    try:
        if parsed.tzinfo is None:
            return wall_to_utc(parsed, zone)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):  # off the calendar once in UTC (year 1, year 9999)
        return None
