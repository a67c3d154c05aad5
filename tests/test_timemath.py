"""Tests for retention.timemath: calendar arithmetic, wall-time mapping and exact due sets."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import given, settings
from hypothesis import strategies as st

from retention.durations import Duration
from retention.timemath import (
    UTC,
    IntervalSet,
    add_duration,
    due_clock_set,
    latest_wall_at_or_before,
    wall_to_utc,
)

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [
    ZoneInfo(name)
    for name in (
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",  # 30-minute DST
        "Pacific/Apia",  # skipped 2011-12-30 entirely
        "America/Santiago",  # changes at local midnight
    )
]
US = timedelta(microseconds=1)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0, ss: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, us, tzinfo=UTC)


def local(
    tz: ZoneInfo, y: int, m: int, d: int, hh: int = 0, mm: int = 0, fold: int = 0
) -> datetime:
    """A wall time in tz as a UTC instant (fold=1 picks the second of a repeated hour)."""
    return datetime(y, m, d, hh, mm, tzinfo=tz, fold=fold).astimezone(UTC)


def offset(t: datetime, tz: ZoneInfo) -> timedelta | None:
    return t.astimezone(tz).utcoffset()


@cache
def transitions(tz: ZoneInfo) -> tuple[datetime, ...]:
    """Every UTC offset change of tz in 2010-2030, found independently of timemath."""
    found = []
    day = utc(2010, 1, 1)
    while day.year < 2031:
        nxt = day + timedelta(days=1)
        if offset(day, tz) != offset(nxt, tz):
            lo, hi = day, nxt
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid, tz) == offset(day, tz) else (lo, mid)
            found.append(hi.replace(microsecond=0))
        day = nxt
    return tuple(found)


@cache
def special_days(tz: ZoneInfo) -> tuple[date, ...]:
    """Month ends and starts, leap days, and the days tz changes its offset, 2010-2030."""
    days = {t.astimezone(tz).date() for t in transitions(tz)}
    for year in range(2010, 2031):
        for month in range(1, 13):
            first = date(year, month, 1)
            days |= {first, first - timedelta(days=1), first - timedelta(days=2)}
        if year % 4 == 0:
            days.add(date(year, 2, 29))
    return tuple(sorted(days))


@st.composite
def instants_in(draw: st.DrawFn, tz: ZoneInfo) -> datetime:
    """UTC instants 2010-2030, often on a special day of tz, often near an offset change."""
    kind = draw(st.sampled_from(["any", "special", "transition"]))
    if kind == "transition" and transitions(tz):
        base = draw(st.sampled_from(transitions(tz)))
        return (
            base
            + draw(st.integers(-3 * 3600, 3 * 3600)) * timedelta(seconds=1)
            + draw(st.sampled_from([timedelta(0), US, -US]))
        )
    if kind == "special":
        day = draw(st.sampled_from(special_days(tz)))
        wall = (
            datetime.combine(day, datetime.min.time())
            + draw(st.integers(0, 86_400 * 10**6 - 1)) * US
        )
        return wall_to_utc(wall, tz)
    return draw(st.datetimes(datetime(2010, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC)))


small = st.integers(0, 3)
durations = st.one_of(
    st.builds(Duration, months=st.integers(1, 36)),
    st.builds(Duration, years=st.integers(1, 7)),
    st.builds(Duration, days=st.integers(1, 400)),
    st.builds(Duration, hours=st.integers(0, 72), minutes=st.integers(0, 90)),
    st.builds(
        Duration,
        years=small,
        months=st.integers(0, 14),
        days=st.integers(0, 40),
        hours=st.integers(0, 30),
        minutes=st.integers(0, 90),
        seconds=st.integers(0, 90),
    ),
)


@st.composite
def due_cases(draw: st.DrawFn) -> tuple[Duration, datetime, ZoneInfo]:
    tz = draw(st.sampled_from(ZONES))
    return draw(durations), draw(instants_in(tz)), tz


# add_duration


@pytest.mark.parametrize(
    ("start", "text", "end"),
    [
        ((2026, 11, 30, 10), "P3M", (2027, 2, 28, 10)),
        ((2027, 11, 30, 10), "P3M", (2028, 2, 29, 10)),
        ((2024, 2, 29, 8), "P1Y", (2025, 2, 28, 8)),
        ((2024, 2, 29, 8), "P4Y", (2028, 2, 29, 8)),
        ((2026, 1, 31, 23), "P1M", (2026, 2, 28, 23)),
        ((2026, 8, 31, 0), "P1Y6M", (2028, 2, 29, 0)),
        ((2026, 12, 15, 12), "P1M20D", (2027, 2, 4, 12)),
    ],
)
def test_add_duration_clamps_months_and_keeps_time_of_day(
    start: tuple[int, ...], text: str, end: tuple[int, ...]
) -> None:
    """Years and months clamp to the month's last day and keep the local time of day."""
    got = add_duration(local(BERLIN, *start), Duration.parse(text), BERLIN)
    assert got == local(BERLIN, *end)


def test_add_days_across_dst_keeps_wall_time() -> None:
    """P1D over the spring change in Berlin is the same wall time next day: 23 real hours."""
    start = local(BERLIN, 2026, 3, 28, 12)
    got = add_duration(start, Duration(days=1), BERLIN)
    assert got == local(BERLIN, 2026, 3, 29, 12)
    assert got - start == timedelta(hours=23)


def test_add_hours_across_dst_is_elapsed_time() -> None:
    """PT24H over the spring change in Berlin is 24 real hours, so 13:00 the next day."""
    start = local(BERLIN, 2026, 3, 28, 12)
    got = add_duration(start, Duration(hours=24), BERLIN)
    assert got - start == timedelta(hours=24)
    assert got == local(BERLIN, 2026, 3, 29, 13)


def test_add_mixed_duration_adds_elapsed_part_last() -> None:
    """P1DT1H is the next day's same wall time, then one real hour."""
    start = local(BERLIN, 2026, 3, 28, 12)
    assert add_duration(start, Duration(days=1, hours=1), BERLIN) == local(BERLIN, 2026, 3, 29, 13)


def test_add_into_a_gap_lands_on_the_transition() -> None:
    """A calendar step onto a nonexistent wall time lands on the first instant after the gap."""
    start = local(BERLIN, 2026, 3, 28, 2, 30)
    assert add_duration(start, Duration(days=1), BERLIN) == utc(2026, 3, 29, 1)


def test_add_into_a_fold_takes_the_later_instant() -> None:
    """A calendar step onto a repeated wall time takes its second occurrence (looks newer)."""
    start = local(BERLIN, 2026, 10, 24, 2, 30)
    assert add_duration(start, Duration(days=1), BERLIN) == utc(2026, 10, 25, 1, 30)


def test_pure_elapsed_durations_never_touch_wall_time() -> None:
    """Inside a fold, P0D and PT1H are exact: the first 02:30 is not moved to the second one."""
    first_0230 = local(BERLIN, 2026, 10, 25, 2, 30)
    assert add_duration(first_0230, Duration(), BERLIN) == first_0230
    assert add_duration(first_0230, Duration(hours=1), BERLIN) == first_0230 + timedelta(hours=1)


@settings(deadline=None)
@given(
    st.datetimes(datetime(1950, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)),
    st.integers(0, 50),
    st.integers(0, 40),
    st.integers(0, 1000),
)
def test_add_duration_in_utc_matches_relativedelta(
    start: datetime, years: int, months: int, days: int
) -> None:
    """In UTC, calendar addition agrees with dateutil.relativedelta."""
    d = Duration(years=years, months=months, days=days)
    assert add_duration(start, d, ZoneInfo("UTC")) == start + relativedelta(
        years=years, months=months, days=days
    )


def test_add_duration_returns_utc_for_any_aware_input() -> None:
    """An aware instant in another offset is accepted; the result is in UTC."""
    start = datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    got = add_duration(start, Duration(days=1), BERLIN)
    assert got == utc(2026, 6, 2, 10)
    assert got.tzinfo is UTC


def test_naive_instants_are_rejected() -> None:
    """Every argument that is an instant must be timezone-aware."""
    naive = datetime(2026, 1, 1)
    with pytest.raises(ValueError, match="instant must be a timezone-aware UTC datetime"):
        add_duration(naive, Duration(days=1), BERLIN)
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        due_clock_set(Duration(days=1), naive, BERLIN)
    with pytest.raises(ValueError, match="bound must be a timezone-aware"):
        latest_wall_at_or_before(naive, BERLIN)
    with pytest.raises(ValueError, match="instant must be a timezone-aware"):
        _ = naive in IntervalSet.everything()


# wall_to_utc and latest_wall_at_or_before


def test_wall_to_utc_fold_maps_to_later_instant() -> None:
    """02:30 on Berlin's autumn change day happens twice; the second (CET) one is chosen."""
    assert wall_to_utc(datetime(2026, 10, 25, 2, 30), BERLIN) == utc(2026, 10, 25, 1, 30)


def test_wall_to_utc_gap_maps_to_transition() -> None:
    """02:30 on Berlin's spring change day does not exist; it maps to the change, 01:00 UTC."""
    assert wall_to_utc(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1)
    assert wall_to_utc(datetime(2026, 3, 29, 2, 0), BERLIN) == utc(2026, 3, 29, 1)
    assert wall_to_utc(datetime(2026, 3, 29, 3, 0), BERLIN) == utc(2026, 3, 29, 1)


def test_wall_to_utc_skipped_day_in_apia() -> None:
    """Samoa skipped 2011-12-30: every wall time that day maps to the change, 10:00 UTC."""
    apia = ZoneInfo("Pacific/Apia")
    for hour in (0, 12, 23):
        assert wall_to_utc(datetime(2011, 12, 30, hour), apia) == utc(2011, 12, 30, 10)


def test_wall_to_utc_rejects_aware() -> None:
    """A wall time is naive local time; an aware datetime is a mistake."""
    with pytest.raises(ValueError, match="wall time must be naive"):
        wall_to_utc(utc(2026, 1, 1), BERLIN)


@st.composite
def walls(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    tz = draw(st.sampled_from(ZONES))
    return tz, draw(instants_in(tz)).astimezone(tz).replace(tzinfo=None, fold=0)


@settings(deadline=None)
@given(walls(), st.one_of(st.just(US), st.integers(0, 4 * 3600 * 10**6).map(lambda n: n * US)))
def test_wall_to_utc_is_monotone(case: tuple[ZoneInfo, datetime], step: timedelta) -> None:
    """Later wall times never map to earlier instants, across folds and gaps."""
    tz, wall = case
    assert wall_to_utc(wall, tz) <= wall_to_utc(wall + step, tz)


@settings(deadline=None)
@given(walls())
def test_wall_to_utc_round_trips_or_is_a_transition(case: tuple[ZoneInfo, datetime]) -> None:
    """An existing wall time maps to an instant showing that wall time (the later one in a
    fold); a nonexistent one maps to an instant where the offset changes."""
    tz, wall = case
    got = wall_to_utc(wall, tz)
    assert got.tzinfo is UTC
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if later.astimezone(tz).replace(tzinfo=None) == wall:
        assert got == later
        assert got >= wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    else:
        assert got in transitions(tz)


def test_latest_wall_at_or_before_in_a_fold() -> None:
    """Before the second 02:00, repeated wall times map later: the last one is 01:59:59.999999."""
    assert latest_wall_at_or_before(utc(2026, 10, 25, 0, 59), BERLIN) == datetime(
        2026, 10, 25, 1, 59, 59, 999999
    )


def test_latest_wall_at_or_before_at_a_gap() -> None:
    """At the spring change, the whole gap and 03:00 itself map to the bound."""
    assert latest_wall_at_or_before(utc(2026, 3, 29, 1), BERLIN) == datetime(2026, 3, 29, 3)


@settings(deadline=None)
@given(st.sampled_from(ZONES).flatmap(lambda tz: st.tuples(st.just(tz), instants_in(tz))))
def test_latest_wall_at_or_before_is_the_maximum(case: tuple[ZoneInfo, datetime]) -> None:
    """The result maps at or before the bound, and one microsecond later maps after it."""
    tz, bound = case
    wall = latest_wall_at_or_before(bound, tz)
    assert wall.tzinfo is None
    assert wall_to_utc(wall, tz) <= bound < wall_to_utc(wall + US, tz)


# due_clock_set


def test_due_exactly_at_the_cutoff() -> None:
    """A record whose clock plus retention equals now is due; one microsecond later is not."""
    clock = utc(2026, 6, 10, 12, 34, 56, 789)
    d = Duration(days=30)
    now = add_duration(clock, d, BERLIN)
    due = due_clock_set(d, now, BERLIN)
    assert clock in due
    assert clock + US not in due
    assert due.is_down_set
    assert due.intervals == ((None, clock),)


def test_due_set_of_ordinary_month_duration_is_a_down_set() -> None:
    """Mid-month, P3M gives one `clock <= c*` test at the same wall time three months back."""
    due = due_clock_set(Duration(months=3), local(BERLIN, 2026, 6, 15, 10), BERLIN)
    assert due.is_down_set
    assert due.intervals == ((None, local(BERLIN, 2026, 3, 15, 10)),)
    assert due.gaps == ((local(BERLIN, 2026, 3, 15, 10), None),)


def test_due_set_around_month_ends_is_not_a_down_set() -> None:
    """Jan 29-31 + P1M all clamp to Feb 28 keeping their time of day, so on Feb 28 10:00 each of
    those mornings is due while the evening before is not."""
    now = local(BERLIN, 2027, 2, 28, 10)
    due = due_clock_set(Duration(months=1), now, BERLIN)
    assert local(BERLIN, 2027, 1, 31, 9) in due
    assert local(BERLIN, 2027, 1, 30, 11) not in due
    assert not due.is_down_set
    assert due.intervals == (
        (None, utc(2027, 1, 28, 9)),
        (utc(2027, 1, 28, 23), utc(2027, 1, 29, 9)),
        (utc(2027, 1, 29, 23), utc(2027, 1, 30, 9)),
        (utc(2027, 1, 30, 23), utc(2027, 1, 31, 9)),
    )
    assert due.gaps == (
        (utc(2027, 1, 28, 9), utc(2027, 1, 28, 23)),
        (utc(2027, 1, 29, 9), utc(2027, 1, 29, 23)),
        (utc(2027, 1, 30, 9), utc(2027, 1, 30, 23)),
        (utc(2027, 1, 31, 9), None),
    )


def test_due_set_across_a_fold() -> None:
    """P1D from the doubled hour: the first 02:45 (CEST) lands on 02:45 next day, after now;
    the second 02:15 (CET) lands on 02:15, before now. So the set has a hole."""
    now = local(BERLIN, 2026, 10, 26, 2, 30)
    due = due_clock_set(Duration(days=1), now, BERLIN)
    assert local(BERLIN, 2026, 10, 25, 2, 45) not in due
    assert local(BERLIN, 2026, 10, 25, 2, 15, fold=1) in due
    assert due.intervals == (
        (None, utc(2026, 10, 25, 0, 30)),
        (utc(2026, 10, 25, 1), utc(2026, 10, 25, 1, 30)),
    )


def test_due_set_across_spring_change_keeps_wall_time() -> None:
    """On Berlin's spring change day at noon, P1D makes due what is older than noon yesterday."""
    due = due_clock_set(Duration(days=1), local(BERLIN, 2026, 3, 29, 12), BERLIN)
    assert due.intervals == ((None, local(BERLIN, 2026, 3, 28, 12)),)


def test_due_set_of_elapsed_durations() -> None:
    """PT durations and P0D are a plain shift of now."""
    now = utc(2026, 3, 29, 12)
    assert due_clock_set(Duration(hours=24), now, BERLIN).intervals == (
        (None, utc(2026, 3, 28, 12)),
    )
    assert due_clock_set(Duration(), now, BERLIN).intervals == ((None, now),)


@settings(deadline=None, max_examples=300)
@given(due_cases(), st.integers(-5 * 86_400 * 10**6, 5 * 86_400 * 10**6))
def test_due_set_matches_add_duration(
    case: tuple[Duration, datetime, ZoneInfo], shift_us: int
) -> None:
    """c is in due_clock_set(d, now) exactly when add_duration(c, d) <= now, for c near now - d."""
    d, now, tz = case
    naive_cutoff = now - relativedelta(
        years=d.years,
        months=d.months,
        days=d.days,
        hours=d.hours,
        minutes=d.minutes,
        seconds=d.seconds,
    )
    clock = naive_cutoff + shift_us * US
    due = due_clock_set(d, now, tz)
    assert (add_duration(clock, d, tz) <= now) == (clock in due)
    assert (clock in due) != any(
        (lo is None or lo < clock) and (hi is None or clock < hi) for lo, hi in due.gaps
    )


@settings(deadline=None, max_examples=300)
@given(due_cases())
def test_due_set_bounds_are_exact(case: tuple[Duration, datetime, ZoneInfo]) -> None:
    """The set is exact to the microsecond: each interval end is due, the next one out is not."""
    d, now, tz = case
    due = due_clock_set(d, now, tz)
    assert due.intervals and due.intervals[0][0] is None
    for lo, hi in due.intervals:
        if lo is not None:
            assert add_duration(lo, d, tz) <= now < add_duration(lo - US, d, tz)
        if hi is not None:
            assert add_duration(hi, d, tz) <= now < add_duration(hi + US, d, tz)


@pytest.mark.parametrize("day", [28, 29, 30, 31])
def test_due_set_over_apias_skipped_day(day: int) -> None:
    """Around 2011-12-30, which Samoa skipped, due sets still agree with add_duration."""
    apia = ZoneInfo("Pacific/Apia")
    now = local(apia, 2012, 1, day, 9)
    for d in (Duration(days=1), Duration(months=1), Duration(days=1, hours=2)):
        due = due_clock_set(d, now, apia)
        clock = utc(2011, 12, 25)
        while clock < utc(2012, 1, 5):
            assert (add_duration(clock, d, apia) <= now) == (clock in due)
            clock += timedelta(minutes=37)


def test_due_clock_set_is_fast() -> None:
    """A due set, month-end case included, takes well under 10 ms."""
    cases = [
        (Duration(months=1), local(BERLIN, 2027, 2, 28, 10)),
        (Duration(years=5), local(BERLIN, 2026, 10, 25, 2, 30)),
        (Duration(days=30, hours=12), local(BERLIN, 2026, 3, 29, 2)),
    ]
    started = time.perf_counter()
    for _ in range(20):
        for d, now in cases:
            due_clock_set(d, now, BERLIN)
    assert (time.perf_counter() - started) / 60 < 0.01


# IntervalSet


def test_interval_set_empty_and_everything() -> None:
    """The empty set contains nothing and its gap is everything; and the reverse."""
    t = utc(2026, 1, 1)
    assert t not in IntervalSet.empty()
    assert IntervalSet.empty().gaps == ((None, None),)
    assert not IntervalSet.empty().is_down_set
    assert t in IntervalSet.everything()
    assert IntervalSet.everything().gaps == ()
    assert IntervalSet.everything().is_down_set


def test_interval_set_bounds_are_closed_and_gaps_open() -> None:
    """Interval ends belong to the set; gaps between them are open."""
    a, b, c = utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)
    s = IntervalSet(((a, b), (c, None)))
    assert a in s and b in s and c in s
    assert a - US not in s and b + US not in s and c - US not in s
    assert s.gaps == ((None, a), (b, c))
    assert not s.is_down_set


@pytest.mark.parametrize(
    "intervals",
    [
        ((utc(2026, 2, 1), utc(2026, 1, 1)),),
        ((None, utc(2026, 2, 1)), (utc(2026, 1, 1), None)),
        ((None, utc(2026, 2, 1)), (utc(2026, 2, 1), None)),
        ((utc(2026, 1, 1), None), (utc(2026, 2, 1), None)),
        ((None, datetime(2026, 1, 1)),),
    ],
)
def test_interval_set_rejects_malformed_intervals(
    intervals: tuple[tuple[datetime | None, datetime | None], ...],
) -> None:
    """Reversed, overlapping, unsorted, misplaced-infinity or naive intervals are refused."""
    with pytest.raises(ValueError):
        IntervalSet(intervals)
