"""Tests for retention.durations: parsing, canonical text, addition and the pydantic field type."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from retention.durations import Duration

components = st.integers(min_value=0, max_value=10_000)
# Together at most ~610 years: within MAX_YEARS even when two are added.
durations = st.builds(
    Duration,
    years=st.integers(min_value=0, max_value=300),
    months=st.integers(min_value=0, max_value=120),
    days=components,
    hours=components,
    minutes=components,
    seconds=components,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", Duration(days=30)),
        ("P3M", Duration(months=3)),
        ("P5Y", Duration(years=5)),
        ("PT12H", Duration(hours=12)),
        ("P1Y6M", Duration(years=1, months=6)),
        ("P2W", Duration(days=14)),
        ("P1DT12H", Duration(days=1, hours=12)),
        ("PT90M", Duration(minutes=90)),
        ("PT30S", Duration(seconds=30)),
        ("P1Y2M3W4DT5H6M7S", Duration(1, 2, 25, 5, 6, 7)),
        ("P0D", Duration()),
        ("PT0S", Duration()),
        ("p3m", Duration(months=3)),
        ("p1dt12h", Duration(days=1, hours=12)),
        ("  P30D\n", Duration(days=30)),
    ],
)
def test_parse_iso(text: str, expected: Duration) -> None:
    """ISO 8601 durations parse, weeks become 7 days, and P/T and units are case-insensitive."""
    assert Duration.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30 days", Duration(days=30)),
        ("3 months", Duration(months=3)),
        ("5 years", Duration(years=5)),
        ("1 year", Duration(years=1)),
        ("12 hours", Duration(hours=12)),
        ("2 weeks", Duration(days=14)),
        ("1 day", Duration(days=1)),
        ("90 minutes", Duration(minutes=90)),
        ("30 seconds", Duration(seconds=30)),
        ("1 year 6 months", Duration(years=1, months=6)),
        ("1 year, 6 months", Duration(years=1, months=6)),
        ("1 year and 6 months", Duration(years=1, months=6)),
        ("1 year, 2 months and 3 days", Duration(years=1, months=2, days=3)),
        ("2 weeks 3 days", Duration(days=17)),
        ("  3 Months ", Duration(months=3)),
        ("30days", Duration(days=30)),
        ("0", Duration()),
        ("0 days", Duration()),
    ],
)
def test_parse_words(text: str, expected: Duration) -> None:
    """The human spellings used in policies parse, alone or combined with commas and 'and'."""
    assert Duration.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-P3D", "durations cannot be negative"),
        ("P-3D", "durations cannot be negative"),
        ("-3 days", "durations cannot be negative"),
        ("P1.5D", "fractions are not supported"),
        ("P1,5D", "fractions are not supported"),
        ("1.5 days", "fractions are not supported"),
        ("P", "not a duration"),
        ("PT", "not a duration"),
        ("P1DT", "not a duration"),
        ("P1H", "not a duration"),
        ("P3D2M", "not a duration"),
        ("garbage", "not a duration"),
        ("days", "not a duration"),
        ("3", "not a duration"),
        ("", "it is empty"),
        ("   ", "it is empty"),
    ],
)
def test_parse_rejects_with_accepted_forms(text: str, reason: str) -> None:
    """Invalid text raises ValueError naming the input, the reason and the accepted forms."""
    with pytest.raises(ValueError) as excinfo:
        Duration.parse(text)
    message = str(excinfo.value)
    assert f"invalid duration {text!r}: {reason}" in message
    assert "P30D" in message
    assert "'30 days'" in message


def test_parse_rejects_unknown_unit() -> None:
    """An unknown unit word is named, with the units that are understood."""
    with pytest.raises(ValueError, match=r"unknown unit 'fortnights' \(years, months, weeks"):
        Duration.parse("3 fortnights")


def test_parse_rejects_repeated_unit() -> None:
    """A unit given twice is refused instead of being silently summed or overwritten."""
    with pytest.raises(ValueError, match="days given more than once"):
        Duration.parse("3 days and 4 days")


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (Duration(), "P0D"),
        (Duration(months=3), "P3M"),
        (Duration(years=1, months=6), "P1Y6M"),
        (Duration(hours=12), "PT12H"),
        (Duration(days=1, hours=12), "P1DT12H"),
        (Duration.parse("P2W"), "P14D"),
        (Duration.parse("90 minutes"), "PT90M"),
        (Duration(1, 2, 3, 4, 5, 6), "P1Y2M3DT4H5M6S"),
    ],
)
def test_str_is_canonical_iso(duration: Duration, text: str) -> None:
    """str() gives the canonical ISO form: zero units omitted, weeks as days, zero as P0D."""
    assert str(duration) == text


@given(durations)
def test_str_round_trips(d: Duration) -> None:
    """Parsing the canonical text of any duration gives the same duration back."""
    assert Duration.parse(str(d)) == d


@given(
    st.dictionaries(
        st.sampled_from(["year", "month", "week", "day", "hour", "minute", "second"]),
        st.integers(min_value=0, max_value=100),
        min_size=1,
    ),
    st.sampled_from([" ", ", ", " and ", ", and "]),
)
def test_word_forms_match_iso(parts: dict[str, int], separator: str) -> None:
    """A duration spelt in words equals the same duration built from its components."""
    text = separator.join(f"{n} {unit}{'' if n == 1 else 's'}" for unit, n in parts.items())
    expected = Duration(
        years=parts.get("year", 0),
        months=parts.get("month", 0),
        days=parts.get("day", 0) + 7 * parts.get("week", 0),
        hours=parts.get("hour", 0),
        minutes=parts.get("minute", 0),
        seconds=parts.get("second", 0),
    )
    assert Duration.parse(text) == expected


def test_add_is_componentwise() -> None:
    """retain + grace adds each unit separately, without normalising months into years."""
    assert Duration(months=3) + Duration(days=14) == Duration(months=3, days=14)
    assert Duration(months=11) + Duration(months=2) == Duration(months=13)
    assert Duration(hours=23) + Duration(hours=2) == Duration(hours=25)


@given(durations, durations)
def test_add_properties(a: Duration, b: Duration) -> None:
    """Addition is commutative and P0D is its identity."""
    assert a + b == b + a
    assert a + Duration() == a


def test_is_zero() -> None:
    """Only the empty duration is zero, however it is spelt."""
    assert Duration.parse("P0D").is_zero
    assert Duration.parse("PT0S").is_zero
    assert Duration.parse("0").is_zero
    assert not Duration(seconds=1).is_zero


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3"])
def test_constructor_rejects_non_natural_components(bad: object) -> None:
    """Components must be whole numbers >= 0; bools and strings are not numbers here."""
    with pytest.raises(ValueError, match=r"Duration\.days must be a whole number >= 0"):
        Duration(days=bad)  # type: ignore[arg-type]


def test_is_frozen() -> None:
    """Duration is an immutable value object."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Duration().days = 3  # type: ignore[misc]


class Rule(BaseModel):
    retain: Duration
    grace: Duration = Duration()


@pytest.mark.parametrize("value", ["P3M", "3 months", Duration(months=3)])
def test_pydantic_accepts_text_and_duration(value: object) -> None:
    """A pydantic field of type Duration takes ISO text, words or a Duration."""
    assert Rule.model_validate({"retain": value}).retain == Duration(months=3)


def test_pydantic_accepts_bare_zero() -> None:
    """YAML `retain: 0` arrives as the integer 0 and means no retention period."""
    assert Rule.model_validate({"retain": 0}).retain.is_zero


def test_pydantic_serialises_to_iso() -> None:
    """Dumping a model writes durations as canonical ISO strings, in Python and JSON modes."""
    rule = Rule.model_validate({"retain": "1 year and 6 months"})
    assert rule.model_dump() == {"retain": "P1Y6M", "grace": "P0D"}
    assert rule.model_dump_json() == '{"retain":"P1Y6M","grace":"P0D"}'


def test_pydantic_json_schema_is_string() -> None:
    """The JSON schema of a Duration field says it is a string."""
    assert Rule.model_json_schema()["properties"]["retain"]["type"] == "string"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("P1.5D", "invalid duration 'P1.5D': fractions are not supported"),
        ("-P3D", "invalid duration '-P3D': durations cannot be negative"),
        (7, "invalid duration 7: use ISO 8601"),
        (1.5, "invalid duration 1.5: use ISO 8601"),
    ],
)
def test_pydantic_error_carries_the_clear_message(value: object, fragment: str) -> None:
    """A bad value fails validation with the same user-facing message as Duration.parse."""
    with pytest.raises(ValidationError) as excinfo:
        Rule.model_validate({"retain": value})
    (error,) = excinfo.value.errors()
    assert error["loc"] == ("retain",)
    assert fragment in error["msg"]


@pytest.mark.parametrize(
    "text", ["P9999Y", "P100000000D", "P1001Y", "P12013M", "P99999999999999999999D"]
)
def test_a_period_with_no_computable_due_date_is_refused(text: str) -> None:
    """A period longer than MAX_YEARS is refused when read (no due date exists for it), not
    turned into an overflow in plan, run or explain."""
    with pytest.raises(ValueError, match="longer than 1000 years"):
        Duration.parse(text)


def test_a_sum_past_the_limit_is_refused() -> None:
    """retain + grace past the limit is refused too: each alone is fine."""
    with pytest.raises(ValueError, match="longer than 1000 years"):
        Duration(years=600) + Duration(years=600)
