"""Rules, holds and precedence for listed objects, decided in Python exactly as in SQL.

Objects cannot be asked a SQL question, so their fate is decided here, record by record, with
the same arithmetic the SQL stores push down: a record is due when its clock start lies in
:func:`~retention.timemath.due_clock_set`, holds win over everything, a keep rule not yet due
blocks delete. Subject clocks (account closed, contract terminated) come from the subject table,
one query per listing page for the subjects on that page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import False_, select
from sqlalchemy.exc import SQLAlchemyError

from ..errors import StoreError
from ..ids import canonical_id
from ..timemath import IntervalSet, due_clock_set
from .base import ObjectRecord
from .sqlclock import parse_stored
from .sqlids import id_matches
from .template import subject_type

if TYPE_CHECKING:
    from ..config import Config
    from ..holds import Hold, HoldsFile
    from ..rules import Rule
    from .sql import SqlStore

Events = dict[str, dt.datetime | None]


@dataclass(frozen=True)
class SubjectEvents:
    """One subject's lifecycle events: when each happened (None: not yet, or unreadable), and
    the ones whose stored value is there but is no timestamp."""

    at: Events
    unreadable: frozenset[str] = frozenset()


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

    @property
    def free(self) -> bool:
        """Due, not held and not blocked by a keep rule: a candidate for the action."""
        return self.due and not self.held and not self.blocked


class SubjectClocks:
    """Lifecycle events of the subjects of one type, read from their table in a SQL store."""

    def __init__(self, config: Config, type_name: str, store: SqlStore, events: Sequence[str]):
        settings = config.settings
        subject = settings.subjects[type_name]
        self.store = store
        self.table = store.table(subject.table)
        self.key = store.column(self.table, subject.key)
        zone = ZoneInfo(subject.timezone) if subject.timezone else settings.zone()
        self.columns = {event: store.column(self.table, subject.events[event]) for event in events}
        self.zones = {
            event: store.clock_column(column, zone).zone for event, column in self.columns.items()
        }

    def lookup(self, ids: Iterable[str]) -> dict[str, SubjectEvents]:
        """Events of the subjects `ids` (one query), by canonical id; unknown ids are absent.

        Ids are compared in canonical form, as holds are: ``customers/0005/`` is account 5.
        """
        matches = id_matches(self.key, set(ids), self.store.dialect)
        if isinstance(matches, False_):
            return {}  # "abc" for an integer key: no such subject
        events = (self.store.as_stored(column) for column in self.columns.values())
        query = select(self.key, *events).where(matches)
        try:
            with self.store.engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as exc:
            raise StoreError(
                f"reading subjects from {self.table.name}: {type(exc).__name__}",
                store=self.store.name,
            ) from None
        found: dict[str, SubjectEvents] = {}
        for row in rows:
            at = {
                event: parse_stored(row[index + 1], self.zones[event])
                for index, event in enumerate(self.columns)
            }
            unreadable = frozenset(
                event
                for index, event in enumerate(self.columns)
                if row[index + 1] is not None and at[event] is None
            )
            found[canonical_id(row[0])] = SubjectEvents(at, unreadable)
        return found


class Evaluator:
    """The rules of one object dataset as of `now`; holds are passed per page (re-read)."""

    def __init__(self, config: Config, dataset: str, now: dt.datetime, sql: dict[str, SqlStore]):
        settings = config.settings
        self.config = config
        self.dataset = dataset
        self.now = now
        ds = settings.datasets[dataset]
        self.subject_type = subject_type(ds, settings.stores[ds.store].kind)
        self.rules = config.rules_for(dataset)
        self.keeps = [r for r in self.rules if r.action == "keep"]
        zone = settings.zone()
        self._due: dict[str, IntervalSet] = {
            r.id: due_clock_set(r.delay, now, zone) for r in self.rules
        }
        self._overdue: dict[str, IntervalSet] = {
            r.id: due_clock_set(r.delay + r.within, now, zone)
            for r in self.rules
            if r.within is not None
        }
        events = sorted(
            {ref.name for r in self.rules for ref in r.after.refs if ref.source == "subject"}
        )
        self.subjects: SubjectClocks | None = None
        if events and self.subject_type is not None:
            subject = settings.subjects[self.subject_type]
            store = sql.get(subject.store)
            if store is None:
                raise StoreError(f"subject store {subject.store!r} is not a SQL store")
            self.subjects = SubjectClocks(config, self.subject_type, store, events)

    def page(self, records: Sequence[ObjectRecord], holds: HoldsFile) -> Page:
        """The verdicts for one listing page (one subject query for the whole page)."""
        events: dict[str, SubjectEvents] = {}
        if self.subjects is not None:
            events = self.subjects.lookup(r.subject for r in records if r.subject is not None)
        return Page(self, events, holds)

    def start(self, rule: Rule, record: ObjectRecord, events: Events | None) -> dt.datetime | None:
        """When `rule`'s clock started for `record` (None: not started)."""
        values: list[dt.datetime | None] = []
        for ref in rule.after.refs:
            if ref.source == "record":
                values.append(record.created)
            else:
                values.append(events.get(ref.name) if events is not None else None)
        known = [v for v in values if v is not None]
        if rule.after.combine == "one":
            return values[0]
        if rule.after.combine == "earliest":
            return min(known, default=None)
        return max(known) if len(known) == len(values) else None

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
            r.id: [evaluator.covered(h) for h in holds.applicable(dataset, r.id)]
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
                    break
        unreadable = not due and e.unreadable(rule, record, subject)
        return Verdict(start, due, bool(overdue), held, blocked, unreadable)

    def held_by(self, record: ObjectRecord) -> list[Hold]:
        """The active holds that cover `record` (any rule), for `explain`."""
        e = self.evaluator
        return [
            h for h in self.holds.active() if h.covers_dataset(e.dataset) and e.covers(h, record)
        ]


__all__ = ["Evaluator", "Page", "SubjectClocks", "SubjectEvents", "Verdict"]
