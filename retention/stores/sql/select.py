"""Rules × a SQL dataset → SQL predicates for what is due, held, blocked and to be acted on.

One :class:`Selection` holds, for one rule on one dataset at one moment, the boolean SQL
expressions the planner counts and the executor repeats inside its DELETE/UPDATE. Precedence
(DESIGN.md): an active hold wins over everything; a keep rule not yet due wins over delete and
anonymize; when a delete and an anonymize are both due, the delete applies; of two delete rules
both due, the earlier due one (:mod:`.precedence` decides the records they contest).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, False_, Table, and_, exists, false, literal, not_, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from ...anonymize import Anonymizer
from ...datasets import Dataset, SubjectType
from ...durations import Duration
from ...errors import SchemaError
from ...holds import Hold, HoldsFile
from ...rules import Rule, WhereValue
from .clock import ClockColumn, clock_in
from .ids import id_matches, in_values
from .schema import Schema


@dataclass(frozen=True)
class Selection:
    """The SQL predicates of one rule on one dataset, evaluated as of `now`."""

    rule: Rule
    dataset: Dataset
    table: Table
    key: tuple[Column[Any], ...]
    scope: ColumnElement[bool]
    due: ColumnElement[bool]
    overdue: ColumnElement[bool]
    held: ColumnElement[bool]
    blocked: ColumnElement[bool]
    superseded: ColumnElement[bool]
    done: ColumnElement[bool]
    # a clock the rule needs is there but is not a timestamp (SQLite text): never due, reported
    unreadable: ColumnElement[bool] = field(default_factory=false)
    # a delete rule's rivals: each other delete rule of the dataset and the records it deletes
    # now; of a record both would delete, the earlier due one acts (:mod:`.precedence`)
    rivals: tuple[tuple[Rule, ColumnElement[bool]], ...] = ()
    # the keep rules that move this rule's deadline (`overdue`) and the records each covers:
    # what the audit's per-record lateness reads (:mod:`.facts`)
    keeps: tuple[tuple[Rule, ColumnElement[bool]], ...] = ()

    @property
    def unreadable_pending(self) -> ColumnElement[bool]:
        """Covered, not due, and a clock it needs is unreadable: what the plan reports."""
        return and_(self.scope, not_(self.due), self.unreadable)

    @property
    def due_in_scope(self) -> ColumnElement[bool]:
        return and_(self.scope, self.due)

    @property
    def actionable(self) -> ColumnElement[bool]:
        """What a live run changes now: due and not held, blocked, superseded or done."""
        return and_(
            self.scope,
            self.due,
            not_(self.held),
            not_(self.blocked),
            not_(self.superseded),
            not_(self.done),
        )


class SelectionBuilder:
    """Builds :class:`Selection` objects for the datasets of one SQL store."""

    def __init__(self, store: Schema, now: dt.datetime, hmac_key: bytes | None = None) -> None:
        self.store = store
        self.now = now
        self.hmac_key = hmac_key
        # predicates already built, by the identity of what they were built from: a delete
        # rule's selection repeats every rival delete's clock and protection (and cascades
        # repeat their children's), and building one costs far more than reusing it
        self._memo: dict[tuple[Any, ...], tuple[tuple[object, ...], Any]] = {}

    def _remember(self, name: str, parts: tuple[object, ...], make: Any) -> Any:
        """`make()` once per `name` and the same `parts` (durations by value, the rest by
        identity; the parts are kept alive with the result, so an identity is never reused)."""
        key = (name, *(p if isinstance(p, Duration) else id(p) for p in parts))
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = (parts, make())
        return found[1]

    def build(self, rule: Rule, dataset: Dataset, holds: HoldsFile) -> Selection:
        """The predicates of `rule` on `dataset` given the holds in force."""
        ds = dataset.config
        assert ds.table is not None
        table = self.store.table(ds.table)
        key = tuple(self.store.column(table, name) for name in ds.key_columns)
        due = self._clock(rule, dataset, table, rule.delay)
        overdue = self.overdue(rule, dataset, table)
        delete_rules = dataset.deletes_besides(rule)
        superseded: ColumnElement[bool] = false()
        done: ColumnElement[bool] = false()
        rivals: tuple[tuple[Rule, ColumnElement[bool]], ...] = ()
        if rule.action == "delete":
            rivals = tuple((o, self._deletes(o, dataset, table, holds)) for o in delete_rules)
        if rule.action == "anonymize":
            superseded = or_(
                false(), *(self._deletes(o, dataset, table, holds) for o in delete_rules)
            )
            done = self.done(rule, dataset, table)
        held, blocked = self.protection(rule, dataset, table, holds)
        return Selection(
            rule=rule,
            dataset=dataset,
            table=table,
            key=key,
            scope=self.scope(rule, dataset, table),
            due=due,
            overdue=overdue,
            held=held,
            blocked=blocked,
            superseded=superseded,
            done=done,
            unreadable=self.unreadable(rule, dataset, table),
            rivals=rivals,
            keeps=tuple(
                (keep, self.scope(keep, dataset, table))
                for keep in (dataset.keeps if rule.destructive and rule.within else ())
            ),
        )

    def _deletes(
        self, rule: Rule, dataset: Dataset, table: Table, holds: HoldsFile
    ) -> ColumnElement[bool]:
        """Records the delete `rule` really deletes now: due, and neither held nor blocked,
        directly or through a cascade child. Only such a delete supersedes an anonymize."""
        held, blocked = self.protection(rule, dataset, table, holds)
        return and_(
            self.scope(rule, dataset, table),
            self._clock(rule, dataset, table, rule.delay),
            not_(held),
            not_(blocked),
        )

    def protection(
        self, rule: Rule, dataset: Dataset, table: Table, holds: HoldsFile
    ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        """(held, blocked) for records of `dataset`, including through cascade children.

        A delete cascades to child rows, so a parent is held when one of its children is held,
        and blocked when a keep rule still protects one of its children.
        """
        result: tuple[ColumnElement[bool], ColumnElement[bool]] = self._remember(
            "protection",
            (rule, dataset, table, holds),
            lambda: self._protection(rule, dataset, table, holds),
        )
        return result

    def _protection(
        self, rule: Rule, dataset: Dataset, table: Table, holds: HoldsFile
    ) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        held = self.held(rule, dataset, table, holds)
        blocked = self.blocked(rule, dataset, table)
        if rule.action != "delete":
            return held, blocked
        for cascade in dataset.cascade:
            child = cascade.dataset
            assert child.config.table is not None
            child_table = self.store.table(child.config.table)
            if child_table is table:
                child_table = child_table.alias("child")  # type: ignore[assignment]
            link = self.store.column(child_table, cascade.column)
            (parent_key,) = (self.store.column(table, name) for name in dataset.key_columns)
            child_held, child_blocked = self.protection(rule, child, child_table, holds)
            for condition, target in ((child_held, "held"), (child_blocked, "blocked")):
                if isinstance(condition, False_):
                    continue
                found = exists(
                    select(literal(1)).select_from(child_table).where(link == parent_key, condition)
                )
                if target == "held":
                    held = or_(held, found)
                else:
                    blocked = or_(blocked, found)
        return held, blocked

    def scope(self, rule: Rule, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """The rule's `where` filter (its `applies_to` chose the dataset already); for an
        assert_absent with `columns`, only the records where one of them holds a value."""
        conditions: list[ColumnElement[bool]] = []
        if rule.columns:
            filled = [self.store.column(table, name).is_not(None) for name in rule.columns]
            conditions.append(or_(*filled))
        for name, wanted in rule.record_where.items():
            conditions.append(_matches(self.store.column(table, name), wanted))
        if rule.subject_where:
            conditions.append(self._subject_scope(rule, dataset, table))
        return and_(true(), *conditions)

    def _subject_scope(self, rule: Rule, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """The rule's `subject.*` filters, joined against the subject's table.

        Fail closed either way when the subject's value cannot be read (the record names no
        subject, its subject row is missing, or the column is NULL where the filter does not
        ask for null): a delete or anonymize rule does not cover the record, and a keep rule
        (a legal minimum) does, so that in doubt the record is kept.
        """
        subject_table, subject_key, link, _ = self._subject(rule, dataset, table)
        columns = {name: self.store.column(subject_table, name) for name in rule.subject_where}
        if rule.action == "keep" and not rule.asserts_absent:
            other = or_(
                false(),
                *(
                    and_(columns[name].is_not(None), not_(_matches(columns[name], wanted)))
                    for name, wanted in rule.subject_where.items()
                ),
            )
            known_other = select(literal(1)).select_from(subject_table)
            return not_(exists(known_other.where(subject_key == link, other)))
        match = and_(
            *(_matches(columns[name], wanted) for name, wanted in rule.subject_where.items())
        )
        return and_(link.is_not(None), link.in_(select(subject_key).where(match)))

    def held(
        self, rule: Rule, dataset: Dataset, table: Table, holds: HoldsFile
    ) -> ColumnElement[bool]:
        """Records covered by an active hold for this rule × dataset (or a freeze)."""
        if holds.freeze:
            return true()
        applicable = holds.applicable(dataset.name, rule.id, rule.action)
        return or_(false(), *(self.covered_by(hold, dataset, table) for hold in applicable))

    def covered_by(self, hold: Hold, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """Records of `dataset` in the subject scope of `hold` (other scopes: the caller's).

        Ids are compared in canonical form (:mod:`.ids`): a hold on ``5`` covers ``'0005'``
        and ``' 5'`` in a text column; with an integer column the integers are compared
        directly, on its index.
        """
        scoped = hold.scoped_subjects()
        if scoped is None:
            return true()
        matches = [
            id_matches(self.store.column(table, ref.column), ids, self.store.dialect)
            for ref in dataset.subjects
            if ref.column is not None and (ids := scoped.get(ref.name, []))
        ]
        return or_(false(), *matches)  # a hold on any of a record's subjects holds it

    def blocked(self, rule: Rule, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """Records a keep rule still protects (its minimum retention has not run out)."""
        if rule.action == "keep":
            return false()
        return or_(
            false(),
            *(
                and_(
                    self.scope(keep, dataset, table),
                    not_(self._clock(keep, dataset, table, keep.delay)),
                )
                for keep in dataset.keeps
            ),
        )

    def done(self, rule: Rule, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """Records whose personal columns already hold their anonymized form."""
        return and_(
            *(
                self.anonymizer(spec_field, rule, dataset, table).done(self.store.dialect)
                for spec_field in rule.anonymize
            )
        )

    def anonymizer(self, personal: str, rule: Rule, dataset: Dataset, table: Table) -> Anonymizer:
        """The anonymizer for one personal field of one rule on one dataset."""
        column = self.store.column(table, dataset.config.personal[personal])
        return Anonymizer(rule.anonymize[personal], column, hmac_key=self.hmac_key)

    def _clock(
        self, rule: Rule, dataset: Dataset, table: Table, delay: Any, past: bool = False
    ) -> ColumnElement[bool]:
        """SQL for "this record's clock for `rule` started at least `delay` ago" (`past`: more
        than `delay` ago, as a deadline is overdue only once past)."""
        result: ColumnElement[bool] = self._remember(
            "clock",
            (rule, dataset, table, delay, past),
            lambda: self._build_clock(rule, dataset, table, delay, past),
        )
        return result

    def _build_clock(
        self, rule: Rule, dataset: Dataset, table: Table, delay: Any, past: bool
    ) -> ColumnElement[bool]:
        if not rule.after.refs:  # assert_absent: due at once, always
            return true()
        sets = dataset.past_set if past else dataset.due_set
        instants = sets(rule.after, delay, self.now)
        refs = rule.after.refs
        if all(ref.source == "subject" for ref in refs):
            subject_table, subject_key, link, subject = self._subject(rule, dataset, table)
            inner = clock_in(
                rule.after,
                instants,
                lambda ref: self.store.clock_column(
                    self.store.column(subject_table, subject.event_column(ref.name)),
                    subject.zone,
                ),
            )
            return and_(link.is_not(None), link.in_(select(subject_key).where(inner)))

        def column(ref: Any) -> ClockColumn:
            if ref.source == "record":
                name = dataset.config.timestamps[ref.name]
                return self.store.clock_column(self.store.column(table, name), dataset.zone)
            subject_table, subject_key, link, subject = self._subject(rule, dataset, table)
            event_column = self.store.column(subject_table, subject.event_column(ref.name))
            value = select(event_column).where(subject_key == link).scalar_subquery()
            clock = self.store.clock_column(event_column, subject.zone)
            return ClockColumn(value, clock.kind, clock.zone)

        return clock_in(rule.after, instants, column)

    def overdue(self, rule: Rule, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """Records past the rule's deadline: `within` after it became due and after every
        keep rule covering them ran out — a delete a statutory minimum held back is overdue
        `within` after the minimum ends, not at once."""
        within = rule.within
        if within is None:
            return false()
        ended = [
            or_(
                not_(self.scope(keep, dataset, table)),
                self._clock(keep, dataset, table, keep.delay + within, past=True),
            )
            for keep in (dataset.keeps if rule.destructive else ())
        ]
        return and_(self._clock(rule, dataset, table, rule.delay + within, past=True), *ended)

    def unreadable(self, rule: Rule, dataset: Dataset, table: Table) -> ColumnElement[bool]:
        """Records with a clock `rule` needs that holds a value but not a timestamp (SQLite
        text such as ``'yesterday'``; typed columns cannot): its clock counts as not started,
        so the record is never acted on, and it is counted so that somebody fixes it."""
        conditions: list[ColumnElement[bool]] = []
        for ref in rule.after.refs:
            if ref.source == "record":
                column = self.store.column(table, dataset.config.timestamps[ref.name])
                conditions.append(self.store.clock_column(column, dataset.zone).unreadable())
        events = [ref.name for ref in rule.after.refs if ref.source == "subject"]
        if events:
            subject_table, subject_key, link, subject = self._subject(rule, dataset, table)
            unreadable = [
                self.store.clock_column(
                    self.store.column(subject_table, subject.event_column(event)), subject.zone
                ).unreadable()
                for event in events
            ]
            unreadable = [u for u in unreadable if not isinstance(u, False_)]
            if unreadable:
                in_subjects = select(subject_key).where(or_(*unreadable))
                conditions.append(and_(link.is_not(None), link.in_(in_subjects)))
        conditions = [c for c in conditions if not isinstance(c, False_)]
        return or_(*conditions) if conditions else false()

    def _subject(
        self, rule: Rule, dataset: Dataset, table: Table
    ) -> tuple[Table, Column[Any], Column[Any], SubjectType]:
        """The subject table `rule` reads on `dataset`, its key, the record's link column."""
        ref = dataset.subject_of(rule)
        if ref is None or ref.column is None:
            raise SchemaError(
                f"dataset {dataset.name!r} has no subject {rule.subject or ''}".rstrip(),
                store=self.store.name,
            )
        subject = ref.type
        subject_table = self.store.table(subject.config.table)
        if subject_table is table:
            subject_table = subject_table.alias("subject")  # type: ignore[assignment]
        return (
            subject_table,
            self.store.column(subject_table, subject.config.key),
            self.store.column(table, ref.column),
            subject,
        )


def _matches(column: ColumnElement[Any], wanted: WhereValue) -> ColumnElement[bool]:
    """`column` holds one of the `where` values (``null`` among them matches NULL)."""
    values = wanted if isinstance(wanted, list) else [wanted]
    present = [v for v in values if v is not None]
    options: list[ColumnElement[bool]] = []
    if present:
        options.append(and_(column.is_not(None), in_values(column, present)))
    if len(present) != len(values):
        options.append(column.is_(None))
    return or_(false(), *options)  # `in: []` matches nothing
