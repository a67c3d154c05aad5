"""What the audit log says about each record a batch acted on: its subject, when it was due,
and whether it was acted on after its deadline (late, and by how much).

A store reads the values these come from (the subject column, the clock's timestamps) in the
same statement that changes the records, and turns them into :class:`RecordFacts` with
:func:`facts_of`; the audit log keeps them beside the batch's keys, the subject in the keys'
form (plain or HMAC, :mod:`retention.audit`). This module depends on rules, ids, periods and
timemath only, so every store can use it.

Due times and deadlines are judged as the evaluator judges them: a clock with ``round_to`` starts
at the end of its period (:func:`~retention.periods.period_end`), and a destructive rule's
deadline moves past every keep rule that covered the record: `within` after the keep minimum
ended, as the plan's ``overdue`` counts it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, overload
from zoneinfo import ZoneInfo

from .durations import Duration
from .ids import canonical_id
from .periods import YearStart, period_end
from .rules import Clock, Rule
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


def _rounded(clock: Clock, calendar: ZoneInfo, fiscal_start: YearStart) -> Shift | None:
    """A clock start moved to the end of its period (None: `clock` is not rounded)."""
    period = clock.round_to
    if period is None:
        return None

    def end(start: dt.datetime) -> dt.datetime | None:
        try:
            return period_end(start, period, calendar, fiscal_start)
        except (OverflowError, ValueError):
            return None

    return end


# starts ↦ the clock's start: its one value, or its earliest/latest (`Clock.start`)
_Start = Callable[[Sequence[dt.datetime | None]], dt.datetime | None]


class _Moment:
    """When one clock (maybe rounded) is `delay` old, from the values its refs read."""

    def __init__(
        self, clock: Clock, delay: Duration, calendar: ZoneInfo, fiscal_start: YearStart
    ) -> None:
        self._start: _Start = (lambda s: s[0]) if clock.combine == "one" else clock.start
        self._round = _rounded(clock, calendar, fiscal_start)
        self._shift = _shift(delay, calendar)

    def start(self, starts: Sequence[dt.datetime | None]) -> dt.datetime | None:
        """The clock's (rounded) start, None when it has not started."""
        if not starts:  # a rule with no clock (assert_absent)
            return None
        start = self._start(starts)
        if start is not None and self._round is not None:
            start = self._round(start)
        return start

    def after(self, start: dt.datetime | None) -> dt.datetime | None:
        return None if start is None else self._shift(start)


class FactsOf:
    """The facts of the records one rule acts on at one moment, from each record's subject id
    and when each of the rule's clocks started (in the order of ``rule.after.refs``).

    `keeps` are the dataset's keep rules that move a destructive rule's deadline; each record
    then also gives, per keep rule, its clocks' values, or None when the keep rule does not
    cover it (its ``where``)."""

    def __init__(
        self,
        rule: Rule,
        calendar: ZoneInfo,
        now: dt.datetime,
        *,
        fiscal_start: YearStart = (1, 1),
        keeps: Sequence[Rule] = (),
    ) -> None:
        self.rule, self.now = rule, now
        self._due = _Moment(rule.after, rule.delay, calendar, fiscal_start)
        within = rule.within
        self._deadline: _Moment | None = None
        self._keeps: list[_Moment] = []
        if within:
            self._deadline = _Moment(rule.after, rule.delay + within, calendar, fiscal_start)
            moves = keeps if rule.destructive else ()
            self._keeps = [
                _Moment(k.after, k.delay + within, calendar, fiscal_start) for k in moves
            ]
        self._ids: dict[object, str] = {}

    def __call__(
        self,
        subject: object,
        starts: Sequence[dt.datetime | None],
        keeps: Sequence[Sequence[dt.datetime | None] | None] = (),
    ) -> RecordFacts:
        subject_id: str | None = None
        if subject is not None:
            subject_id = self._ids.get(subject)
            if subject_id is None:
                subject_id = self._ids[subject] = canonical_id(subject)
        start = self._due.start(starts)
        if start is None:
            return RecordFacts(subject_id, None)
        late = None
        if self._deadline is not None:
            deadline = self._deadline.after(start)
            for moment, keep_starts in zip(self._keeps, keeps, strict=False):
                if deadline is None or keep_starts is None:  # None: the keep does not cover it
                    continue
                ends = moment.after(moment.start(keep_starts))
                deadline = None if ends is None else max(deadline, ends)
            if deadline is not None and self.now > deadline:
                late = self.now - deadline
        return RecordFacts(subject_id, self._due.after(start), late)


def facts_of(
    rule: Rule,
    calendar: ZoneInfo,
    now: dt.datetime,
    subject: object,
    starts: Sequence[dt.datetime | None],
    *,
    fiscal_start: YearStart = (1, 1),
    keeps: Sequence[tuple[Rule, Sequence[dt.datetime | None] | None]] = (),
) -> RecordFacts:
    """The facts of one record `rule` acts on at `now` (:class:`FactsOf`, for one record);
    `keeps` the dataset's keep rules with their clock values for it (None: not covered)."""
    make = FactsOf(rule, calendar, now, fiscal_start=fiscal_start, keeps=[k for k, _ in keeps])
    return make(subject, starts, [s for _, s in keeps])


def due_text(due: dt.datetime) -> str:
    """A due time as the audit log keeps it: ISO 8601 in UTC (``+00:00``, microseconds only
    when there are any)."""
    return due.astimezone(dt.UTC).isoformat()


@dataclass(frozen=True)
class FactTable(Sequence[RecordFacts]):
    """A batch's facts column by column, in the audit log's own form: each record's subject id,
    due time as :func:`due_text` (None: unknown) and lateness in whole seconds.

    What a store hands on for thousands of records at a time: made from values its database
    computed, or from :class:`RecordFacts` with :meth:`of`, it is written to the log without a
    per-record object. Read one by one, it gives :class:`RecordFacts` back (lateness to the
    second, as the log keeps it)."""

    subjects: tuple[str | None, ...] = ()
    dues: tuple[str | None, ...] = ()
    lates: tuple[int | None, ...] = ()

    @classmethod
    def of(cls, facts: Iterable[RecordFacts]) -> FactTable:
        """`facts` as columns, each distinct due time formatted once."""
        if isinstance(facts, FactTable):
            return facts
        subjects: list[str | None] = []
        dues: list[str | None] = []
        lates: list[int | None] = []
        texts: dict[dt.datetime | None, str | None] = {None: None}
        for fact in facts:
            due = fact.due
            text = texts.get(due)
            if text is None and due is not None:
                text = texts[due] = due_text(due)
            subjects.append(fact.subject)
            dues.append(text)
            lates.append(fact.late_seconds)
        return cls(tuple(subjects), tuple(dues), tuple(lates))

    def __len__(self) -> int:
        return len(self.subjects)

    @overload
    def __getitem__(self, index: int) -> RecordFacts: ...

    @overload
    def __getitem__(self, index: slice) -> FactTable: ...

    def __getitem__(self, index: int | slice) -> RecordFacts | FactTable:
        if isinstance(index, slice):
            return FactTable(self.subjects[index], self.dues[index], self.lates[index])
        due, late = self.dues[index], self.lates[index]
        return RecordFacts(
            self.subjects[index],
            None if due is None else dt.datetime.fromisoformat(due),
            None if late is None else dt.timedelta(seconds=late),
        )

    def take(self, indices: Iterable[int]) -> FactTable:
        """The facts at `indices`, in that order."""
        chosen = list(indices)
        return FactTable(
            tuple(self.subjects[i] for i in chosen),
            tuple(self.dues[i] for i in chosen),
            tuple(self.lates[i] for i in chosen),
        )


__all__ = ["FactTable", "FactsOf", "RecordFacts", "due_text", "facts_of"]
