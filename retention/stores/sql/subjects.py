"""Subject tables read for others: lifecycle events for object stores, ids for hold checks.

A bucket's keys name their account (``customers/4411/``); whether that account is closed is in
the accounts table of a SQL store. Ids are compared in canonical form everywhere (:mod:`.ids`):
``customers/0005/`` is account 5, and a hold on ``"0005"`` finds account 5.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import False_, select
from sqlalchemy.exc import SQLAlchemyError

from ...datasets import SubjectType
from ...errors import StoreError
from ...ids import canonical_id, canonical_ids
from ...timemath import parse_stored
from ..base import SubjectEvents
from .ids import id_kind, id_matches, in_values
from .schema import Schema


def subject_events(
    store: Schema, subject: SubjectType, ids: Iterable[str], events: Sequence[str]
) -> dict[str, SubjectEvents]:
    """Events of the subjects `ids` (one query), by canonical id; unknown ids are absent."""
    table = store.table(subject.config.table)
    key = store.column(table, subject.config.key)
    columns = {event: store.column(table, subject.event_column(event)) for event in events}
    zones = {
        event: store.clock_column(column, subject.zone).zone for event, column in columns.items()
    }
    matches = id_matches(key, set(ids), store.dialect)
    if isinstance(matches, False_):
        return {}  # "abc" for an integer key: no such subject
    query = select(key, *(store.as_stored(column) for column in columns.values())).where(matches)
    try:
        with store.engine.connect() as connection:
            rows = connection.execute(query).all()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"reading subjects from {table.name}: {type(exc).__name__}", store=store.name
        ) from None
    found: dict[str, SubjectEvents] = {}
    for row in rows:
        at = {event: parse_stored(row[i + 1], zones[event]) for i, event in enumerate(columns)}
        unreadable = frozenset(
            event for i, event in enumerate(columns) if row[i + 1] is not None and at[event] is None
        )
        found[canonical_id(row[0])] = SubjectEvents(at, unreadable)
    return found


def known_subjects(
    store: Schema, subject: SubjectType, ids: Sequence[str]
) -> tuple[set[str], bool]:
    """Which of `ids` (canonical) the subject table has, and whether its key is an integer."""
    table = store.table(subject.config.table)
    key = store.column(table, subject.config.key)
    kind = id_kind(key)
    found: set[str] = set()
    with store.engine.connect() as connection:
        rest: Sequence[str] = ids
        if kind == "text":
            # first the ids as written and in canonical form, on the key's index; the canonical
            # comparison (a scan) only for those not found so
            exact = sorted({str(value) for value in ids} | canonical_ids(ids))
            query = select(key).where(in_values(key, exact)).distinct()
            found |= {canonical_id(row[0]) for row in connection.execute(query)}
            rest = [value for value in ids if canonical_id(value) not in found]
        matches = id_matches(key, rest, store.dialect) if rest else None
        if matches is not None and not isinstance(matches, False_):
            query = select(key).where(matches).distinct()
            found |= {canonical_id(row[0]) for row in connection.execute(query)}
    return found, kind == "integer"


__all__ = ["known_subjects", "subject_events"]
