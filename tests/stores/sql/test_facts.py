"""Reading a batch's fact columns (:mod:`retention.stores.sql.facts`): the plain path, one clock
and elapsed time only, judges each record as :class:`~retention.recordfacts.FactsOf` does."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from retention.durations import Duration
from retention.recordfacts import FactsOf, due_text
from retention.rules import Rule
from retention.stores.sql.facts import plain_judge
from retention.timemath import parse_stored

ZONES = ["UTC", "Etc/GMT+5", "Etc/GMT-14"]


def _iso(d: Duration) -> str:
    return f"P{d.days}DT{d.hours}H{d.minutes}M{d.seconds}S"


elapsed = st.builds(
    Duration,
    days=st.integers(0, 2000),
    hours=st.integers(0, 50),
    minutes=st.integers(0, 200),
    seconds=st.integers(0, 200_000),
)
moments = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31))
stored = st.one_of(
    st.none(),
    moments,  # naive: wall time in the column's zone
    moments.map(lambda m: m.replace(tzinfo=dt.UTC)),
    moments.map(lambda m: m.isoformat(sep=" ")),  # text, as SQLite keeps it
    moments.map(lambda m: m.date()),
    st.just("not a timestamp"),
)


@example(  # acted on exactly at its deadline: on time
    value=dt.datetime(2026, 4, 25, tzinfo=dt.UTC),
    zone="UTC",
    calendar="UTC",
    delay=Duration(days=30),
    within=Duration(days=7),
    now=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
)
@given(
    value=stored,
    zone=st.sampled_from(ZONES),
    calendar=st.sampled_from(ZONES),
    delay=elapsed,
    within=st.one_of(st.none(), elapsed),
    now=st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)),
)
def test_the_plain_path_judges_as_facts_of(
    value: object,
    zone: str,
    calendar: str,
    delay: Duration,
    within: Duration | None,
    now: dt.datetime,
) -> None:
    """For any stored clock value (timestamp, text, date, unreadable, none) in a fixed-offset
    zone and any elapsed-time retention and deadline, the plain path gives the due text and
    lateness :class:`FactsOf` gives: off the calendar, none."""
    fields: dict[str, object] = {
        "id": "p",
        "applies_to": {"dataset": "d"},
        "after": "record.created",
        "retain": _iso(delay),
        "action": "delete",
    }
    if within is not None:
        fields["within"] = _iso(within)
    rule = Rule.model_validate(fields)
    column_zone = ZoneInfo(zone)

    def read(stored: object) -> dt.datetime | None:
        return parse_stored(stored, column_zone)

    judge = plain_judge(rule, ZoneInfo(calendar), now, [], [read])
    assert judge is not None
    fact = FactsOf(rule, ZoneInfo(calendar), now)(None, [read(value)])
    expected = (None if fact.due is None else due_text(fact.due)), fact.late_seconds
    assert judge(value) == expected


def test_rules_that_are_not_plain_take_the_general_path() -> None:
    """Months or years, a rounded or combined clock, a zone with daylight saving time, or a keep
    rule moving a destructive rule's deadline: judged by :class:`FactsOf`, as before."""
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

    def read(stored: object) -> dt.datetime | None:
        return parse_stored(stored, ZoneInfo("UTC"))

    def rule(after: object, retain: str = "P30D", within: str | None = None) -> Rule:
        fields: dict[str, object] = {
            "id": "p",
            "applies_to": {"dataset": "d"},
            "after": after,
            "retain": retain,
            "action": "delete",
        }
        if within:
            fields["within"] = within
        return Rule.model_validate(fields)

    utc = ZoneInfo("UTC")
    assert plain_judge(rule("record.created"), utc, now, [], [read]) is not None
    assert plain_judge(rule("record.created", "P1M"), utc, now, [], [read]) is None
    rounded = {"event": "record.created", "round_to": "year_end"}
    assert plain_judge(rule(rounded), utc, now, [], [read]) is None
    combined = {"earliest": ["record.a", "record.b"]}
    assert plain_judge(rule(combined), utc, now, [], [read, read]) is None
    assert plain_judge(rule("record.created"), ZoneInfo("Europe/Oslo"), now, [], [read]) is None
    late = rule("record.created", within="P7D")
    assert plain_judge(late, utc, now, [rule("record.created")], [read]) is None
