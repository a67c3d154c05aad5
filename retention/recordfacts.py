"""What the audit log says about each record a batch acted on: its subject, when it was due,
and whether it was acted on after its deadline (late, and by how much).

A store reads the values these come from (the subject column, the clock's timestamps) in the
same statement that changes the records, and turns them into :class:`RecordFacts` with
:func:`facts_of`; the audit log keeps them beside the batch's keys, the subject in the keys'
form (plain or HMAC, :mod:`retention.audit`). This module depends on rules, ids and timemath
only, so every store can use it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .durations import Duration
from .ids import canonical_id
from .rules import Rule
from .timemath import add_duration


class RecordFacts(NamedTuple):
    """One acted-on record: its subject's canonical id (None: the record has none), when it
    became due (None: unknown), and how long after its deadline (`due + within`) it was acted
    on (None: on time, or the rule sets no deadline). A tuple: one is made per record."""

    subject: str | None
    due: dt.datetime | None
    late: dt.timedelta | None = None

    @property
    def late_seconds(self) -> int | None:
        """`late` in whole seconds, as the audit log keeps it."""
        return None if self.late is None else int(self.late.total_seconds())


Shift = Callable[[dt.datetime], dt.datetime | None]


def _shift(delay: Duration, calendar: ZoneInfo) -> Shift:
    """`start` ↦ `start` + `delay` on `calendar` (None past year 9999). Days in a zone with no
    offset changes are plain elapsed time: the common case, once per acted-on record, skips
    the calendar's wall-time conversion."""
    fixed = calendar.key == "UTC" or calendar.key.startswith("Etc/")
    if fixed and not (delay.years or delay.months):
        step = dt.timedelta(
            days=delay.days, hours=delay.hours, minutes=delay.minutes, seconds=delay.seconds
        )

        def plain(start: dt.datetime) -> dt.datetime | None:
            try:
                return start + step
            except OverflowError:
                return None

        return plain

    def on_calendar(start: dt.datetime) -> dt.datetime | None:
        try:
            return add_duration(start, delay, calendar)
        except (OverflowError, ValueError):
            return None

    return on_calendar


class FactsOf:
    """The facts of the records one rule acts on at one moment, from each record's subject id
    and when each of the rule's clocks started (in the order of ``rule.after.refs``)."""

    def __init__(self, rule: Rule, calendar: ZoneInfo, now: dt.datetime) -> None:
        self.rule, self.now = rule, now
        self._due = _shift(rule.delay, calendar)
        self._deadline = _shift(rule.delay + rule.within, calendar) if rule.within else None
        self._ids: dict[object, str] = {}
        self._one = rule.after.combine == "one"

    def __call__(self, subject: object, starts: Sequence[dt.datetime | None]) -> RecordFacts:
        if not starts:  # a rule with no clock (assert_absent): nothing is due, nothing late
            start = None
        elif self._one:
            start = starts[0]
        else:
            start = self.rule.after.start(starts)
        subject_id: str | None = None
        if subject is not None:
            subject_id = self._ids.get(subject)
            if subject_id is None:
                subject_id = self._ids[subject] = canonical_id(subject)
        if start is None:
            return RecordFacts(subject_id, None)
        late = None
        if self._deadline is not None:
            deadline = self._deadline(start)
            if deadline is not None and self.now > deadline:
                late = self.now - deadline
        return RecordFacts(subject_id, self._due(start), late)


def facts_of(
    rule: Rule,
    calendar: ZoneInfo,
    now: dt.datetime,
    subject: object,
    starts: Sequence[dt.datetime | None],
) -> RecordFacts:
    """The facts of one record `rule` acts on at `now` (:class:`FactsOf`, for one record)."""
    return FactsOf(rule, calendar, now)(subject, starts)


__all__ = ["FactsOf", "RecordFacts", "facts_of"]
