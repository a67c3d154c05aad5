"""Tests for retention.periods: clocks rounded to the end of a year, month or fiscal year."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retention.durations import Duration
from retention.periods import PERIODS, Period, parse_year_start, period_end, rounded_set
from retention.testing import examples
from retention.timemath import UTC, IntervalSet, add_duration, due_clock_set, wall_to_utc

OSLO = ZoneInfo("Europe/Oslo")
ZONES = [ZoneInfo(n) for n in ("UTC", "Europe/Oslo", "America/Santiago", "Australia/Lord_Howe")]
US = timedelta(microseconds=1)


def local(tz: ZoneInfo, *parts: int) -> datetime:
    return wall_to_utc(datetime(*parts), tz)  # type: ignore[arg-type]


def model_end(c: datetime, period: Period, tz: ZoneInfo, fiscal: tuple[int, int]) -> datetime:
    """The first boundary after c, by listing every boundary of the years around it."""
    wall_year = c.astimezone(tz).year
    if period == "month_end":
        walls = [
            datetime(y, m, 1) for y in range(wall_year - 1, wall_year + 2) for m in range(1, 13)
        ]
    else:
        month, day = (1, 1) if period == "year_end" else fiscal
        walls = [datetime(y, month, day) for y in range(wall_year - 2, wall_year + 3)]
    return min(b for b in (wall_to_utc(w, tz) for w in walls) if b > c)


def test_year_end_across_a_leap_day() -> None:
    """A record of 29 February 2024 kept five years from the end of its year is due at
    2030-01-01 00:00 Oslo time, to the microsecond — not a year later, not a day earlier."""
    created = local(OSLO, 2024, 2, 29, 12)
    end = period_end(created, "year_end", OSLO)
    assert end == local(OSLO, 2025, 1, 1) == datetime(2024, 12, 31, 23, tzinfo=UTC)
    due = add_duration(end, Duration(years=5), OSLO)
    assert due == local(OSLO, 2030, 1, 1)
    instants = rounded_set(due_clock_set(Duration(years=5), due, OSLO), "year_end", OSLO)
    assert created in instants and local(OSLO, 2024, 12, 31, 23, 59, 59, 999999) in instants
    assert local(OSLO, 2025, 1, 1) not in instants
    before = rounded_set(due_clock_set(Duration(years=5), due - US, OSLO), "year_end", OSLO)
    assert created not in before


def test_month_end_and_fiscal_year_end() -> None:
    """month_end ends 29 February at 1 March 00:00; a fiscal year from 07-01 ends at the next
    1 July 00:00, and a record of 1 July 00:00 belongs to the year it opens."""
    assert period_end(local(OSLO, 2024, 2, 29, 8), "month_end", OSLO) == local(OSLO, 2024, 3, 1)
    fiscal = parse_year_start("07-01")
    june = local(OSLO, 2026, 6, 30, 23, 59, 59)
    assert period_end(june, "fiscal_year_end", OSLO, fiscal) == local(OSLO, 2026, 7, 1)
    july = local(OSLO, 2026, 7, 1)
    assert period_end(july, "fiscal_year_end", OSLO, fiscal) == local(OSLO, 2027, 7, 1)


@pytest.mark.parametrize("text", ["02-29", "13-01", "7-1", "07/01", "", "00-10"])
def test_year_start_must_be_a_day_every_year_has(text: str) -> None:
    """The fiscal year's first day is MM-DD and exists every year (no 29 February)."""
    with pytest.raises(ValueError, match="MM-DD"):
        parse_year_start(text)


def cases() -> st.SearchStrategy[tuple[Period, ZoneInfo, tuple[int, int]]]:
    return st.tuples(
        st.sampled_from(PERIODS),
        st.sampled_from(ZONES),
        st.sampled_from([(1, 1), (4, 1), (7, 1), (10, 15), (3, 31)]),
    )


@settings(deadline=None, max_examples=examples(200))
@given(cases(), st.datetimes(datetime(1990, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)))
def test_period_end_matches_the_model(
    case: tuple[Period, ZoneInfo, tuple[int, int]], c: datetime
) -> None:
    """period_end is the first boundary after the instant, boundaries being wall-time period
    starts in the zone (a boundary in a DST gap is the transition)."""
    period, tz, fiscal = case
    assert period_end(c, period, tz, fiscal) == model_end(c, period, tz, fiscal)


@settings(deadline=None, max_examples=examples(300))
@given(
    cases(),
    st.datetimes(datetime(2000, 1, 1), datetime(2060, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([Duration(), Duration(years=5), Duration(months=3), Duration(days=30)]),
    st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-(10**14), 10**14)),
    st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-(10**14), 10**14)),
)
def test_rounded_due_set_matches_the_model(
    case: tuple[Period, ZoneInfo, tuple[int, int]],
    base: datetime,
    d: Duration,
    now_us: int,
    clock_us: int,
) -> None:
    """c is in the pushed-down set exactly when add_duration(period_end(c), d) <= now, in the
    model. `now` and `c` are drawn near a due moment and a boundary (a microsecond either side,
    or up to three years away), where an off-by-one would show."""
    period, tz, fiscal = case
    boundary = model_end(base, period, tz, fiscal)
    now = add_duration(boundary, d, tz) + now_us * US
    c = boundary + clock_us * US
    instants = rounded_set(due_clock_set(d, now, tz), period, tz, fiscal)
    expected = add_duration(model_end(c, period, tz, fiscal), d, tz) <= now
    assert (c in instants) == expected


def test_rounded_everything_and_nothing() -> None:
    """The empty set stays empty, every instant stays every instant."""
    assert rounded_set(IntervalSet.empty(), "year_end", OSLO) == IntervalSet.empty()
    assert rounded_set(IntervalSet.everything(), "month_end", OSLO) == IntervalSet.everything()
