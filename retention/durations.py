"""Retention periods: ISO 8601 durations and their human spellings.

Rules say how long data is kept (``retain``), the safeguard after that (``grace``) and the
deadline for acting (``within``). :class:`Duration` is the value object for all three. It keeps
calendar units (years, months, days) apart from elapsed-time units (hours, minutes, seconds)
because they are added differently: three months after 30 November is 28 February, while twelve
hours are twelve real hours even across a DST change. The arithmetic itself lives in
:mod:`retention.timemath`.

Accepted spellings::

    ISO 8601   P30D  P3M  P5Y  PT12H  P1Y6M  P2W (= P14D)  P1DT12H  PT90M  PT30S  (P/T any case)
    words      30 days  3 months  1 year 6 months  1 year, 6 months  1 year and 6 months  0

Numbers are whole and non-negative. ``str()`` gives the canonical ISO form (``P0D`` for zero),
which :meth:`Duration.parse` reads back to an equal value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

__all__ = ["MAX_YEARS", "Duration"]

# No retention period this long can be turned into a due date: a clock start plus it, or the
# present minus it, would leave the calendar (years 1-9999). Longer is refused, not overflowed.
MAX_YEARS = 1000

_ACCEPTED = (
    "use ISO 8601 such as P30D, P3M, P5Y, PT12H, P1Y6M, P2W or P1DT12H, "
    "or words such as '30 days', '3 months' or '1 year 6 months' (whole numbers, not negative)"
)

_ISO = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.IGNORECASE,
)
_PART = r"\d+\s*[a-z]+"
_WORDS = re.compile(rf"{_PART}(?:(?:\s*,\s*|\s+)(?:and\s+)?{_PART})*")
_WORD_PART = re.compile(r"(\d+)\s*([a-z]+)")
_UNITS = {
    "year": "years",
    "month": "months",
    "week": "weeks",
    "day": "days",
    "hour": "hours",
    "minute": "minutes",
    "second": "seconds",
}


@dataclass(frozen=True)
class Duration:
    """A non-negative span of calendar units and elapsed-time units (weeks count as 7 days)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 0:
                raise ValueError(f"Duration.{f.name} must be a whole number >= 0, got {value!r}")
        if self.years_at_most > MAX_YEARS:
            raise ValueError(
                f"a period of {self} is longer than {MAX_YEARS} years: no due date can be "
                "computed for it (a record kept for good is one no delete rule reaches)"
            )

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Read an ISO 8601 or word duration; raise ValueError saying which forms are accepted."""
        if not isinstance(text, str):
            raise ValueError(f"invalid duration {text!r}: expected text; {_ACCEPTED}")
        stripped = text.strip()
        if stripped == "0":
            return cls()
        if stripped.upper().startswith("P"):
            return cls._parse_iso(text, stripped)
        return cls._parse_words(text, stripped.lower())

    @classmethod
    def _parse_iso(cls, text: str, stripped: str) -> Duration:
        match = _ISO.fullmatch(stripped)
        if match is None or not any(match.groups()):
            raise _invalid(text)
        parts = {name: int(value) for name, value in match.groupdict().items() if value}
        return cls._build(parts)

    @classmethod
    def _parse_words(cls, text: str, lowered: str) -> Duration:
        if _WORDS.fullmatch(lowered) is None:
            raise _invalid(text)
        parts: dict[str, int] = {}
        for number, word in _WORD_PART.findall(lowered):
            unit = _UNITS.get(word.removesuffix("s"))
            if unit is None:
                raise ValueError(
                    f"invalid duration {text!r}: unknown unit {word!r} "
                    "(years, months, weeks, days, hours, minutes or seconds)"
                )
            if unit in parts:
                raise ValueError(f"invalid duration {text!r}: {unit} given more than once")
            parts[unit] = int(number)
        return cls._build(parts)

    @classmethod
    def _build(cls, parts: dict[str, int]) -> Duration:
        weeks = parts.pop("weeks", 0)
        parts["days"] = parts.get("days", 0) + 7 * weeks
        return cls(**parts)

    def __str__(self) -> str:
        date = "".join(
            f"{n}{unit}"
            for n, unit in ((self.years, "Y"), (self.months, "M"), (self.days, "D"))
            if n
        )
        time = "".join(
            f"{n}{unit}"
            for n, unit in ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S"))
            if n
        )
        if not date and not time:
            return "P0D"
        return f"P{date}T{time}" if time else f"P{date}"

    def __add__(self, other: Duration) -> Duration:
        """Add componentwise, as when a rule's ``grace`` is added to its ``retain``."""
        if not isinstance(other, Duration):
            return NotImplemented
        return Duration(
            years=self.years + other.years,
            months=self.months + other.months,
            days=self.days + other.days,
            hours=self.hours + other.hours,
            minutes=self.minutes + other.minutes,
            seconds=self.seconds + other.seconds,
        )

    @property
    def years_at_most(self) -> float:
        """The longest this period can be, in years (a month counted as 31 days)."""
        days = (
            self.days
            + 31 * self.months
            + (self.hours + (self.minutes + self.seconds / 60) / 60) / 24
        )
        return self.years + days / 365

    @property
    def is_zero(self) -> bool:
        """True for the empty duration (``P0D``)."""
        return self == Duration()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        """Let pydantic models take a Duration or its text, and dump it as the ISO string."""
        return core_schema.no_info_plain_validator_function(
            _validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def _validate(value: object) -> Duration:
    if isinstance(value, Duration):
        return value
    if isinstance(value, str):
        return Duration.parse(value)
    if type(value) is int and value == 0:
        return Duration()
    raise ValueError(f"invalid duration {value!r}: {_ACCEPTED}")


def _invalid(text: str) -> ValueError:
    if re.search(r"^\s*-|-\s*\d", text):
        reason = "durations cannot be negative"
    elif re.search(r"\d[.,]\d", text):
        reason = "fractions are not supported"
    elif not text.strip():
        reason = "it is empty"
    else:
        reason = "not a duration"
    return ValueError(f"invalid duration {text!r}: {reason}; {_ACCEPTED}")
