"""Rules, holds and precedence for listed objects, decided in Python exactly as in SQL.

Objects cannot be asked a SQL question, so their fate is decided here, record by record, with
the same arithmetic the SQL stores push down: a record is due when its clock start lies in
:func:`~retention.timemath.due_clock_set`, holds win over everything, a keep rule not yet due
blocks delete. Subject clocks (account closed, contract terminated) come from the subject table,
one query per listing page for the subjects on that page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ...datasets import Dataset
from ...holds import Hold, HoldsFile
from ...ids import canonical_id
from ...recordfacts import FactsOf, RecordFacts
from ...rules import Rule
from ...timemath import IntervalSet
from ..base import SubjectEvents, SubjectSource
from .records import ObjectRecord

Events = Mapping[str, dt.datetime | None]


@dataclass(frozen=True)
class Verdict:
    """What one rule says about one record (scope is the whole dataset: objects have no `where`)."""

    start: dt.datetime | None
    due: bool
    overdue: bool
    held: bool
    blocked: bool
    # not due because a clock it needs is there but is no timestamp (a tag such as "soon")
    unreadable: bool = False
    # an anonymize rule's: a delete rule of the dataset acts on the record now (it goes anyway)
    superseded: bool = False
    # an anonymize rule's: the record's fields already hold their anonymized form (lake rows)
    done: bool = False

    @property
    def free(self) -> bool:
        """Due, not held, not blocked by a keep rule, not superseded by a delete and not done
        already: a candidate for the action."""
        return (
            self.due
            and not self.held
            and not self.blocked
            and not self.superseded
            and not self.done
        )


class Evaluator:
    """The rules of one object dataset as of `now`; holds are passed per page (re-read)."""

    def __init__(
        self, dataset: Dataset, now: dt.datetime, subjects: SubjectSource | None = None
    ) -> None:
        self.dataset = dataset
        self.now = now
        self.subject_type = dataset.subject.name if dataset.subject is not None else None
        self.rules = list(dataset.rules)
        self.keeps = list(dataset.keeps)
        self._due: dict[str, IntervalSet] = {
            r.id: dataset.due_set(r.after, r.delay, now) for r in self.rules
        }
        self._overdue: dict[str, IntervalSet] = {
            r.id: dataset.past_set(r.after, r.delay + r.within, now)
            for r in self.rules
            if r.within is not None
        }
        # a keep rule's end + the rule's `within`: the deadline of what the keep held back
        self._keep_overdue: dict[tuple[str, str], IntervalSet] = {
            (r.id, k.id): dataset.past_set(k.after, k.delay + r.within, now)
            for r in self.rules
            if r.within is not None and r.destructive
            for k in self.keeps
        }
        self.events = sorted(
            {ref.name for r in self.rules for ref in r.after.refs if ref.source == "subject"}
        )
        self.subjects = subjects if self.events and dataset.subject is not None else None
        self._facts: dict[str, FactsOf] = {}

    def facts_of(self, rule: Rule) -> FactsOf:
        """How the audit judges the records `rule` acts on (their subject, due time, lateness),
        with the same calendar and keep rules as the verdicts (made once per rule)."""
        made = self._facts.get(rule.id)
        if made is None:
            dataset = self.dataset
            made = self._facts[rule.id] = FactsOf(
                rule,
                dataset.calendar,
                self.now,
                fiscal_start=dataset.fiscal_start,
                keeps=self.keeps,
            )
        return made

    def clocks(
        self, rule: Rule, record: ObjectRecord, events: Events | None
    ) -> list[dt.datetime | None]:
        """The values of `rule`'s clock refs for `record`, in order (None: not started)."""
        return [
            record.clock(ref.name)
            if ref.source == "record"
            else (events.get(ref.name) if events is not None else None)
            for ref in rule.after.refs
        ]

    def page(self, records: Sequence[ObjectRecord], holds: HoldsFile) -> Page:
        """The verdicts for one listing page (one subject query for the whole page)."""
        events: dict[str, SubjectEvents] = {}
        if self.subjects is not None:
            assert self.dataset.subject is not None
            ids = (r.subject for r in records if r.subject is not None)
            events = self.subjects.subject_events(self.dataset.subject, ids, self.events)
        return Page(self, events, holds)

    def start(self, rule: Rule, record: ObjectRecord, events: Events | None) -> dt.datetime | None:
        """When `rule`'s clock started for `record` (None: not started)."""
        return rule.after.start(self.clocks(rule, record, events))

    def unreadable(self, rule: Rule, record: ObjectRecord, events: SubjectEvents | None) -> bool:
        """Whether a clock `rule` needs is there for `record` but is no timestamp."""
        return any(
            record.clock_unreadable
            if ref.source == "record"
            else events is not None and ref.name in events.unreadable
            for ref in rule.after.refs
        )

    def covers(self, hold: Hold, record: ObjectRecord) -> bool:
        """Whether `hold`'s subject scope includes `record` (its other scopes: the caller's)."""
        return self.covered(hold)(record)

    def covered(self, hold: Hold) -> Callable[[ObjectRecord], bool]:
        """:meth:`covers` for one hold, its subject ids read once for a whole page."""
        scoped = hold.scoped_subjects()
        if scoped is None:
            return lambda record: True
        subject_type = self.subject_type
        if subject_type is None:
            return lambda record: False
        ids = hold.subject_ids(subject_type)
        return lambda record: record.subject is not None and canonical_id(record.subject) in ids


class Page:
    """Verdicts of every rule for the records of one listing page."""

    def __init__(self, evaluator: Evaluator, events: dict[str, SubjectEvents], holds: HoldsFile):
        self.evaluator = evaluator
        self.events = events
        self.holds = holds
        dataset = evaluator.dataset
        self._holds = {
            r.id: [evaluator.covered(h) for h in holds.applicable(dataset.name, r.id, r.action)]
            for r in evaluator.rules
        }

    def verdict(self, rule: Rule, record: ObjectRecord) -> Verdict:
        e = self.evaluator
        subject = self.events.get(canonical_id(record.subject)) if record.subject else None
        events = subject.at if subject is not None else None
        start = e.start(rule, record, events)
        due = start is not None and start in e._due[rule.id]
        overdue = start is not None and rule.id in e._overdue and start in e._overdue[rule.id]
        held = rule.destructive and (
            self.holds.freeze or any(covers(record) for covers in self._holds[rule.id])
        )
        blocked = False
        if rule.destructive:
            for keep in e.keeps:
                keep_start = e.start(keep, record, events)
                if keep_start is None or keep_start not in e._due[keep.id]:
                    blocked = True
                if overdue and (
                    keep_start is None or keep_start not in e._keep_overdue[(rule.id, keep.id)]
                ):
                    overdue = False
        unreadable = not due and e.unreadable(rule, record, subject)
        superseded = done = False
        if rule.action == "anonymize" and due:
            deletes = e.dataset.deletes_besides(rule)
            superseded = any(self.verdict(other, record).free for other in deletes)
            done = rule.id in record.anonymized
        return Verdict(start, due, bool(overdue), held, blocked, unreadable, superseded, done)

    def facts(self, rule: Rule, record: ObjectRecord) -> RecordFacts:
        """What the audit log says of `record` when `rule` acts on it: its subject (from its
        key or its subject column), when it became due, how late it was acted on (a keep rule
        that covered it moves the deadline, as the verdict's ``overdue`` counts it)."""
        e = self.evaluator
        subject = self.events.get(canonical_id(record.subject)) if record.subject else None
        events = subject.at if subject is not None else None
        moves = rule.destructive and rule.within is not None  # keeps only move a deadline
        keeps = [e.clocks(keep, record, events) for keep in e.keeps] if moves else []
        return e.facts_of(rule)(record.subject, e.clocks(rule, record, events), keeps)

    def held_by(self, record: ObjectRecord) -> list[Hold]:
        """The active holds that cover `record` (any rule), for `explain`."""
        e = self.evaluator
        return [
            h
            for h in self.holds.active()
            if h.covers_dataset(e.dataset.name) and e.covers(h, record)
        ]


__all__ = ["Evaluator", "Page", "Verdict"]
