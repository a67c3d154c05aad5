"""The values a batch's own statement brings back besides the keys, for the audit's per-record
facts (:mod:`retention.recordfacts`): the record's subject id and the rule's clock values.

They are extra columns of the ``DELETE``/``UPDATE ... RETURNING`` (or of the ``SELECT ... FOR
UPDATE`` where there is no RETURNING), so knowing each record's subject and due time costs no
query of its own: a record timestamp is a column of the row, a subject event a scalar subquery
on the subject table's key. A statement that changes what they read (an anonymize rule that
nulls or hashes the subject column) cannot bring them back: RETURNING says the new values, so
such a batch reads them in its ``SELECT ... FOR UPDATE`` before the ``UPDATE`` (:attr:`reads`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Column, case, select
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ColumnElement

from ...ids import canonical_id
from ...recordfacts import FactsOf, RecordFacts
from ...rules import Rule
from ...timemath import parse_stored
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
    subject, the rule's clock values, and for each keep rule that moves the rule's deadline
    (:attr:`Selection.keeps`) whether it covers the record and its clock values."""

    def __init__(self, store: Schema, selection: Selection) -> None:
        dataset, table, rule = selection.dataset, selection.table, selection.rule
        self.selection = selection
        self.columns: list[ColumnElement[Any]] = []
        self.readers: list[Callable[[object], dt.datetime | None]] = []
        # the subject the rule reads (the dataset's primary one unless the rule names another)
        subject_ref = dataset.subject_of(rule)
        subject_column = subject_ref.column if subject_ref is not None else None
        self.has_subject = subject_column is not None
        if subject_column is not None:
            self.columns.append(store.column(table, subject_column).label("retention_subject"))
        self._clocks(store, selection, rule, "retention_clock")
        self.keep_readers: list[list[Callable[[object], dt.datetime | None]]] = []
        for number, (keep, covers) in enumerate(selection.keeps):
            self.columns.append(case((covers, 1), else_=0).label(f"retention_keep{number}"))
            self.keep_readers.append(self._clocks(store, selection, keep, f"retention_k{number}c"))
        self.reads = frozenset(
            element.name
            for expression in self.columns
            for element in visitors.iterate(expression)
            if isinstance(element, Column) and element.table is table
        )
        """The names of the dataset table's columns these facts are read from."""

    def _clocks(
        self, store: Schema, selection: Selection, rule: Rule, prefix: str
    ) -> list[Callable[[object], dt.datetime | None]]:
        """Add a column per clock ref of `rule` (its subject events from the subject it reads);
        their readers (also added to `readers` for the selection's own rule)."""
        dataset, table = selection.dataset, selection.table
        readers = self.readers if rule is selection.rule else []
        subject_ref = dataset.subject_of(rule)
        for index, clock in enumerate(rule.after.refs):
            label = f"{prefix}{index}"
            if clock.source == "record":
                column = store.column(table, dataset.config.timestamps[clock.name])
                self.columns.append(store.as_stored(column).label(label))
                readers.append(_reader(store.clock_column(column, dataset.zone).zone))
                continue
            assert subject_ref is not None and subject_ref.column is not None
            subject = subject_ref.type
            subject_table = store.table(subject.config.table)
            if subject_table is table:
                subject_table = subject_table.alias("subject")  # type: ignore[assignment]
            event = store.column(subject_table, subject.event_column(clock.name))
            link = store.column(table, subject_ref.column)
            key = store.column(subject_table, subject.config.key)
            value = select(store.as_stored(event)).where(key == link).scalar_subquery()
            self.columns.append(value.label(label))
            readers.append(_reader(store.clock_column(event, subject.zone).zone))
        return readers

    def read(self, rows: Sequence[KeyTuple], width: int, now: dt.datetime) -> list[RecordFacts]:
        """The facts of each row (its first `width` values the key, then these columns).

        Once per acted-on record, so each distinct set of clock and keep-rule values is turned
        into facts once per batch and each distinct subject into its id once (a clock with few
        distinct values, such as a date, costs a dictionary look-up per record)."""
        selection, dataset = self.selection, self.selection.dataset
        make = FactsOf(
            selection.rule,
            dataset.calendar,
            now,
            fiscal_start=dataset.fiscal_start,
            keeps=[keep for keep, _ in selection.keeps],
        )
        subject_at = width if self.has_subject else None
        first_clock = width + self.has_subject
        first_keep = first_clock + len(self.readers)
        stop = first_keep + sum(1 + len(readers) for readers in self.keep_readers)
        known: dict[tuple[object, ...], RecordFacts] = {}
        subjects: dict[object, str | None] = {None: None}
        facts: list[RecordFacts] = []
        append = facts.append
        for row in rows:
            values = tuple(row[first_clock:stop])
            found = known.get(values)
            if found is None:
                found = known[values] = make(None, *self.starts_and_keeps(values))
            subject = None if subject_at is None else row[subject_at]
            if subject not in subjects:
                subjects[subject] = canonical_id(subject)
            subject_id = subjects[subject]
            append(found if subject_id is None else RecordFacts(subject_id, *found[1:]))
        return facts

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


__all__ = ["FactColumns"]
