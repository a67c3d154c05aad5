"""Due times and lateness PostgreSQL computes beside a batch's DELETE (:mod:`.factsql`) are the
ones Python computes (:mod:`retention.recordfacts`) to the microsecond, across month ends, leap
days, rounding to month and year ends and fixed-offset zones; where the database does not
compute them it hands the clock values back for Python to judge."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Date, DateTime, Engine, literal, select

from retention.durations import Duration
from retention.recordfacts import FactsOf, due_text
from retention.rules import Rule
from retention.stores.sql import make_engine
from retention.stores.sql.clock import ClockColumn
from retention.stores.sql.factsql import SqlFacts, fixed_offset, possible
from retention.timemath import parse_stored

pytestmark = pytest.mark.postgres

ZONES = ["UTC", "Etc/GMT+5", "Etc/GMT-14", "Etc/GMT-3", "Etc/GMT+12"]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    url = os.environ.get("RETENTION_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("RETENTION_TEST_POSTGRES_URL is not set: no server to test against")
    found = make_engine(url)
    yield found
    found.dispose()


def _iso(d: Duration) -> str:
    return f"P{d.years}Y{d.months}M{d.days}DT{d.hours}H{d.minutes}M{d.seconds}S"


durations = st.builds(
    Duration,
    years=st.integers(0, 30),
    months=st.integers(0, 40),
    days=st.integers(0, 800),
    hours=st.integers(0, 50),
    minutes=st.integers(0, 200),
    seconds=st.integers(0, 200_000),
)
# mostly around today, sometimes near the calendar's ends (where Python decides)
instants = st.one_of(
    st.datetimes(dt.datetime(1990, 1, 1), dt.datetime(2040, 1, 1)),
    st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30)),
    st.sampled_from(
        [
            dt.datetime(2024, 2, 29, 12),
            dt.datetime(2023, 1, 31),
            dt.datetime(2025, 12, 31, 23),
            dt.datetime(2, 6, 1),
            dt.datetime(3, 12, 31, 23, 59, 59, 999999),
            dt.datetime(4, 1, 1, 0, 0, 1),
            dt.datetime(6999, 12, 31, 23),
            dt.datetime(9999, 12, 31, 12),
        ]
    ),
)
kinds = st.sampled_from(["aware", "naive", "date"])


def _rule(
    delay: Duration, within: Duration | None, combine: str, refs: int, round_to: str | None
) -> Rule:
    names = [f"record.t{i}" for i in range(refs)]
    after: object = names[0] if combine == "one" else {combine: names}
    if round_to is not None:
        after = {"event": names[0], "round_to": round_to} if combine == "one" else after
        if isinstance(after, dict):
            after = {**after, "round_to": round_to}
    fields: dict[str, object] = {
        "id": "p",
        "applies_to": {"dataset": "d"},
        "after": after,
        "retain": _iso(delay),
        "action": "delete",
    }
    if within is not None:
        fields["within"] = _iso(within)
    return Rule.model_validate(fields)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.one_of(st.none(), instants), min_size=1, max_size=3),
    kind=kinds,
    zone=st.sampled_from(ZONES),
    calendar=st.sampled_from(ZONES),
    delay=durations,
    within=st.one_of(st.none(), durations),
    combine=st.sampled_from(["one", "earliest", "latest"]),
    round_to=st.sampled_from([None, "month_end", "year_end"]),
    now=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)),
)
def test_sql_due_and_late_equal_pythons(
    engine: Engine,
    values: list[dt.datetime | None],
    kind: str,
    zone: str,
    calendar: str,
    delay: Duration,
    within: Duration | None,
    combine: str,
    round_to: str | None,
    now: dt.datetime,
) -> None:
    """For random clock values (timestamptz, timestamp in a zone, date), durations with months,
    days and seconds, rounding, combinations and zones, the database's due time (as text) and
    lateness are exactly :func:`due_text` of Python's due time and its lateness in whole
    seconds; a row it leaves (a start outside years 4-6999) comes back with its clock values."""
    if combine == "one":
        values = values[:1]
    rule = _rule(delay, within, combine, len(values), round_to)
    calendar_zone, column_zone = ZoneInfo(calendar), ZoneInfo(zone)
    assert possible(rule, calendar_zone, []) and fixed_offset(column_zone) is not None
    clocks, stored = [], []
    for value in values:
        if kind == "aware":
            aware = None if value is None else value.replace(tzinfo=dt.UTC)
            clocks.append(ClockColumn(literal(aware, DateTime(timezone=True)), "aware", dt_utc()))
            stored.append(aware)
        elif kind == "naive":
            clocks.append(ClockColumn(literal(value, DateTime()), "naive", column_zone))
            stored.append(value)
        else:
            day = None if value is None else value.date()
            clocks.append(ClockColumn(literal(day, Date()), "date", column_zone))
            stored.append(day)
    facts = SqlFacts(rule, calendar_zone, now, clocks)
    with engine.connect() as connection:
        row = connection.execute(select(*facts.columns)).one()
    due = None if row[0] is None else row[0].isoformat() + "+00:00"
    late, raw = row[1], list(row[2:])
    starts = [parse_stored(v, column_zone) for v in stored]
    expected = FactsOf(rule, calendar_zone, now)(None, starts)
    if due is None and any(v is not None for v in raw):
        # left to Python: a start outside the range, or one not started (`latest` of a
        # clock that has not happened yet) or off Python's calendar
        start = rule.after.start(starts)
        low, high = dt.datetime(4, 1, 1, tzinfo=dt.UTC), dt.datetime(7000, 1, 1, tzinfo=dt.UTC)
        assert start is None or not low <= start < high
        assert raw == stored
        return
    assert due == (None if expected.due is None else due_text(expected.due))
    assert late == expected.late_seconds


def dt_utc() -> ZoneInfo:
    return ZoneInfo("UTC")


def test_a_calendar_with_daylight_saving_or_a_fiscal_year_stays_in_python() -> None:
    """Where SQL cannot be exact simply (a zone whose offset changes, a fiscal year end, a keep
    rule moving a destructive rule's deadline), the facts are left to Python."""
    plain = _rule(Duration(days=30), Duration(days=5), "one", 1, None)
    assert possible(plain, ZoneInfo("UTC"), [])
    assert not possible(plain, ZoneInfo("Europe/Berlin"), [])
    assert not possible(
        _rule(Duration(years=1), None, "one", 1, "fiscal_year_end"), ZoneInfo("UTC"), []
    )
    assert not possible(plain, ZoneInfo("UTC"), [plain])
    assert possible(_rule(Duration(days=30), None, "one", 1, None), ZoneInfo("UTC"), [plain])
