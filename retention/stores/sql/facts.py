"""The values a batch's own statement brings back besides the keys, for the audit's per-record
facts (:mod:`retention.recordfacts`): the record's subject id and the rule's clock values.

They are extra columns of the ``DELETE``/``UPDATE ... RETURNING`` (or of the ``SELECT ... FOR
UPDATE`` where there is no RETURNING), so knowing each record's subject and due time costs no
query of its own: a record timestamp is a column of the row, a subject event a scalar subquery
on the subject table's key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.sql.elements import ColumnElement

from ...recordfacts import FactsOf, RecordFacts
from ...timemath import parse_stored
from .keys import KeyTuple
from .schema import Schema
from .select import Selection


def _reader(zone: ZoneInfo) -> Callable[[object], dt.datetime | None]:
    """:func:`parse_stored` in `zone`; for text in a zone with no offset changes, without its
    wall-time resolution (no gaps or folds to resolve), since it runs once per record."""
    if not (zone.key == "UTC" or zone.key.startswith("Etc/")):
        return lambda value: parse_stored(value, zone)
    utc = zone.key == "UTC"

    def read(value: object) -> dt.datetime | None:
        if not isinstance(value, str):
            return parse_stored(value, zone)
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
            if parsed.tzinfo is None:
                return parsed.replace(tzinfo=dt.UTC) if utc else parsed.replace(tzinfo=zone)
            return parsed.astimezone(dt.UTC)
        except (ValueError, OverflowError):
            return None

    return read


class FactColumns:
    """The extra columns of one selection's batch statements, and how to read them back."""

    def __init__(self, store: Schema, selection: Selection) -> None:
        dataset, table, rule = selection.dataset, selection.table, selection.rule
        self.selection = selection
        self.columns: list[ColumnElement[Any]] = []
        self.readers: list[Callable[[object], dt.datetime | None]] = []
        # the subject the rule reads (the dataset's primary one unless the rule names another)
        ref = dataset.subject_of(rule)
        column = ref.column if ref is not None else None
        self.has_subject = column is not None
        if column is not None:
            self.columns.append(store.column(table, column).label("retention_subject"))
        for index, clock in enumerate(rule.after.refs):
            label = f"retention_clock{index}"
            if clock.source == "record":
                stamp = store.column(table, dataset.config.timestamps[clock.name])
                self.columns.append(store.as_stored(stamp).label(label))
                self.readers.append(_reader(store.clock_column(stamp, dataset.zone).zone))
                continue
            assert ref is not None and column is not None
            subject = ref.type
            subject_table = store.table(subject.config.table)
            if subject_table is table:
                subject_table = subject_table.alias("subject")  # type: ignore[assignment]
            event = store.column(subject_table, subject.event_column(clock.name))
            link = store.column(table, column)
            key = store.column(subject_table, subject.config.key)
            value = select(store.as_stored(event)).where(key == link).scalar_subquery()
            self.columns.append(value.label(label))
            self.readers.append(_reader(store.clock_column(event, subject.zone).zone))

    def read(self, rows: Sequence[KeyTuple], width: int, now: dt.datetime) -> list[RecordFacts]:
        """The facts of each row (its first `width` values the key, then these columns)."""
        make = FactsOf(self.selection.rule, self.selection.dataset.calendar, now)
        subject_at = width if self.has_subject else None
        first_clock = width + self.has_subject
        facts = []
        for row in rows:
            starts = [read(row[first_clock + i]) for i, read in enumerate(self.readers)]
            subject = row[subject_at] if subject_at is not None else None
            facts.append(make(subject, starts))
        return facts


__all__ = ["FactColumns"]
