"""The values a batch's own statement brings back besides the keys, for the audit's per-record
facts (:mod:`retention.recordfacts`): the record's subject id and the rule's clock values.

They are extra columns of the ``DELETE``/``UPDATE ... RETURNING`` (or of the ``SELECT ... FOR
UPDATE`` where there is no RETURNING), so knowing each record's subject and due time costs no
query of its own: a record timestamp is a column of the row, a subject event a scalar subquery
on the subject table's key. On PostgreSQL the columns are the due times and lateness themselves,
where :mod:`.factsql` computes them exactly. Read back column by column: thousands of records a
batch, each with its own clock value on a scattered table. A statement that changes what they
read (an anonymize rule that nulls or hashes the subject column) cannot bring them back:
RETURNING says the new values, so such a batch reads them in its ``SELECT ... FOR UPDATE``
before the ``UPDATE`` (:attr:`FactColumns.reads`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Column, Table, case, select
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from ...ids import canonical_id
from ...recordfacts import FactsOf, FactTable, due_text
from ...rules import Rule
from ...timemath import parse_stored
from . import factsql
from .clock import ClockColumn
from .factsql import SqlFacts
from .keys import KeyTuple
from .schema import Schema
from .select import Selection


def _reader(zone: ZoneInfo) -> Callable[[object], dt.datetime | None]:
    """:func:`parse_stored` in `zone`; for text in a zone with no offset changes, without its
    wall-time resolution (no gaps or folds to resolve), since it runs once per record. Naive
    text in UTC is parsed with the offset appended (a third of the cost of parsing, then
    setting the zone); text that carries its own offset fails that and is parsed as it is."""
    if not (zone.key == "UTC" or zone.key.startswith("Etc/")):
        return lambda value: parse_stored(value, zone)
    utc = zone.key == "UTC"
    parse = dt.datetime.fromisoformat

    def read(value: object) -> dt.datetime | None:
        if isinstance(value, dt.datetime):  # the driver made it (MySQL, PostgreSQL)
            if value.tzinfo is not None:
                return value.astimezone(dt.UTC)
            return value.replace(tzinfo=dt.UTC if utc else zone)
        if not isinstance(value, str):
            return parse_stored(value, zone)
        text = value.strip()
        if utc:
            try:
                return parse(text + "+00:00")
            except (ValueError, OverflowError):
                pass  # its own offset, a date alone, or unreadable: read it as it is
        try:
            parsed = parse(text)
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=dt.UTC) if utc else parsed.replace(tzinfo=zone)
            return parsed.astimezone(dt.UTC)
        except (ValueError, OverflowError):
            return None

    return read


class FactColumns:
    """The extra columns of one selection's batch statements, and how to read them back: the
    subject, then either the due time and lateness the database computed at `now`
    (:mod:`.factsql`, with the clock values of the rows it leaves to Python), or the rule's
    clock values and, for each keep rule that moves the rule's deadline
    (:attr:`Selection.keeps`), whether it covers the record and its clock values."""

    def __init__(
        self, store: Schema, selection: Selection, *, now: dt.datetime | None = None
    ) -> None:
        dataset, table, rule = selection.dataset, selection.table, selection.rule
        self.selection = selection
        self.columns: list[ColumnElement[Any]] = []
        # the subject the rule reads (the dataset's primary one unless the rule names another)
        subject_ref = dataset.subject_of(rule)
        subject_column = subject_ref.column if subject_ref is not None else None
        self.has_subject = subject_column is not None
        if subject_column is not None:
            self.columns.append(store.column(table, subject_column).label("retention_subject"))
        clocks = self._clocks(store, selection, rule)
        self.readers = [reader for _, reader in clocks]
        keeps = [keep for keep, _ in selection.keeps]
        self.in_sql: SqlFacts | None = None
        if (
            now is not None
            and store.sql.facts_in_sql
            and factsql.possible(rule, dataset.calendar, keeps)
            and all(
                c.kind == "aware" or factsql.fixed_offset(c.zone) is not None for c, _ in clocks
            )
        ):
            self.in_sql = SqlFacts(rule, dataset.calendar, now, [c for c, _ in clocks])
            self.columns += self.in_sql.columns
            self.keep_readers: list[list[Callable[[object], dt.datetime | None]]] = []
            self.reads = self._reads(table)
            return
        for index, (clock, _) in enumerate(clocks):
            self.columns.append(clock.expr.label(f"retention_clock{index}"))
        self.keep_readers = []
        for number, (keep, covers) in enumerate(selection.keeps):
            self.columns.append(case((covers, 1), else_=0).label(f"retention_keep{number}"))
            found = self._clocks(store, selection, keep)
            self.columns += [
                c.expr.label(f"retention_k{number}c{i}") for i, (c, _) in enumerate(found)
            ]
            self.keep_readers.append([reader for _, reader in found])
        self.reads = self._reads(table)

    def _reads(self, table: Table) -> frozenset[str]:
        """The names of the dataset table's columns these facts are read from."""
        return frozenset(
            element.name
            for expression in self.columns
            for element in visitors.iterate(expression)
            if isinstance(element, Column) and element.table is table
        )

    def _clocks(
        self, store: Schema, selection: Selection, rule: Rule
    ) -> list[tuple[ClockColumn, Callable[[object], dt.datetime | None]]]:
        """A value per clock ref of `rule` (its subject events from the subject it reads), as
        stored, and its reader."""
        dataset, table = selection.dataset, selection.table
        subject_ref = dataset.subject_of(rule)
        found = []
        for clock in rule.after.refs:
            if clock.source == "record":
                column = store.column(table, dataset.config.timestamps[clock.name])
                kind = store.clock_column(column, dataset.zone)
                value = ClockColumn(store.as_stored(column), kind.kind, kind.zone)
                found.append((value, _reader(kind.zone)))
                continue
            assert subject_ref is not None and subject_ref.column is not None
            subject = subject_ref.type
            subject_table = store.table(subject.config.table)
            if subject_table is table:
                subject_table = subject_table.alias("subject")  # type: ignore[assignment]
            event = store.column(subject_table, subject.event_column(clock.name))
            link = store.column(table, subject_ref.column)
            key = store.column(subject_table, subject.config.key)
            expr = select(store.as_stored(event)).where(key == link).scalar_subquery()
            kind = store.clock_column(event, subject.zone)
            found.append((ClockColumn(expr, kind.kind, kind.zone), _reader(kind.zone)))
        return found

    def read(self, rows: Sequence[KeyTuple], width: int, now: dt.datetime) -> FactTable:
        """The facts of each row (its first `width` values the key, then these columns).

        Once per acted-on record, so column by column: each distinct subject is turned into
        its id once; due times the database computed are only formatted; otherwise each
        distinct clock value (:func:`plain_judge`), or set of clock and keep-rule values, is
        judged once per batch (a clock with few distinct values, such as a date, costs a
        dictionary look-up per record)."""
        selection, dataset = self.selection, self.selection.dataset
        in_sql = self.in_sql is not None
        make = FactsOf(
            selection.rule,
            dataset.calendar,
            now,
            fiscal_start=dataset.fiscal_start,
            keeps=[] if in_sql else [keep for keep, _ in selection.keeps],
        )
        subjects: Sequence[str | None] = (None,) * len(rows)
        if self.has_subject:
            raw = [row[width] for row in rows]
            ids = {v: None if v is None else canonical_id(v) for v in set(raw)}
            subjects = [ids[v] for v in raw]
        at = width + self.has_subject
        if in_sql:
            # naive UTC timestamps: isoformat here costs less than the server's to_char
            stamps = [row[at] for row in rows]
            dues: list[str | None] = [
                None if d is None else d.isoformat() + "+00:00" for d in stamps
            ]
            lates: list[int | None] = [row[at + 1] for row in rows]
            for index in [i for i, due in enumerate(dues) if due is None]:
                values = rows[index][at + 2 :]
                if any(value is not None for value in values):  # out of the database's range
                    dues[index], lates[index] = self._judge(make, values)
            return FactTable(tuple(subjects), tuple(dues), tuple(lates))
        keeps = [keep for keep, _ in selection.keeps]
        plain = plain_judge(selection.rule, dataset.calendar, now, keeps, self.readers)
        if plain is not None:  # one clock, elapsed time only: each distinct value judged once
            column = [row[at] for row in rows]
            by_value = {value: plain(value) for value in set(column)}
            judged = [by_value[value] for value in column]
            return FactTable(
                tuple(subjects), tuple(d for d, _ in judged), tuple(late for _, late in judged)
            )
        stop = at + len(self.readers) + sum(1 + len(r) for r in self.keep_readers)
        known: dict[tuple[object, ...], tuple[str | None, int | None]] = {}
        judged = []
        for row in rows:
            values = tuple(row[at:stop])
            found = known.get(values)
            if found is None:
                found = known[values] = self._judge(make, values)
            judged.append(found)
        return FactTable(
            tuple(subjects), tuple(due for due, _ in judged), tuple(late for _, late in judged)
        )

    def _judge(self, make: FactsOf, values: Sequence[object]) -> tuple[str | None, int | None]:
        """One row's due text and lateness, from its clock (and keep-rule) values."""
        fact = make(None, *self.starts_and_keeps(values))
        return (None if fact.due is None else due_text(fact.due)), fact.late_seconds

    def starts_and_keeps(
        self, values: Sequence[object]
    ) -> tuple[list[dt.datetime | None], list[list[dt.datetime | None] | None]]:
        """One row's clock values read as instants, and per keep rule the instants of its
        clocks when it covers the row (else None)."""
        starts = [read(value) for read, value in zip(self.readers, values, strict=False)]
        keeps: list[list[dt.datetime | None] | None] = []
        at = len(self.readers)
        for readers in self.keep_readers:
            covers = values[at]
            keep_values = [read(values[at + 1 + i]) for i, read in enumerate(readers)]
            keeps.append(keep_values if covers else None)
            at += 1 + len(readers)
        return starts, keeps


Judge = Callable[[object], tuple[str | None, int | None]]


def plain_judge(
    rule: Rule,
    calendar: ZoneInfo,
    now: dt.datetime,
    keeps: Sequence[Rule],
    readers: Sequence[Callable[[object], dt.datetime | None]],
) -> Judge | None:
    """A record's due text and lateness from its one clock value, where that is plain
    elapsed-time arithmetic: one clock ref, not rounded, a calendar with a fixed offset,
    durations without months or years, no keep rule moving the deadline. The same figures as
    :class:`~retention.recordfacts.FactsOf` (a value off the calendar: None), without its
    per-record objects; None where the rule is not plain."""
    clock, within = rule.after, rule.within
    durations = [rule.delay, *([rule.delay + within] if within else [])]
    if (
        len(clock.refs) != 1
        or len(readers) != 1
        or clock.round_to is not None
        or factsql.fixed_offset(calendar) is None
        or any(d.years or d.months for d in durations)
        or (within and rule.destructive and keeps)
    ):
        return None
    steps = [
        dt.timedelta(days=d.days, hours=d.hours, minutes=d.minutes, seconds=d.seconds)
        for d in durations
    ]
    (read,) = readers
    step, deadline_step = steps[0], (steps[1] if len(steps) > 1 else None)

    def judge(value: object) -> tuple[str | None, int | None]:
        start = read(value)
        if start is None:
            return None, None
        late = None
        if deadline_step is not None:
            try:
                deadline = start + deadline_step
            except OverflowError:
                deadline = None
            if deadline is not None and now > deadline:
                late = int((now - deadline).total_seconds())
        try:
            due = start + step
        except OverflowError:
            return None, late
        return due_text(due), late

    return judge


__all__ = ["FactColumns", "plain_judge"]
