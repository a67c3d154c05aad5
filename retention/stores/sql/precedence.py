"""Which delete rule acts on a record two or more delete rules would delete now: the earliest due.

DESIGN.md's precedence: "the earliest due action applies". Each rule's due moment is its clock
start plus its `retain + grace`, calendar-aware in the configured zone (:mod:`retention.timemath`),
so it cannot be compared in SQL; only the records that another delete rule would also delete
now (the contested ones, found in SQL) are read, in the window at hand, and their due moments
compared in Python. Equal due moments go to the rule declared first. A plan, a run and
`explain` all ask :func:`ceded`, so they credit the same rule.

A batch's statement leaves the ceded keys of its window out by listing them (``NOT IN``), and a
statement's bound parameters are capped (PostgreSQL 65,535, SQLite 32,766, MariaDB's prepared
statements 65,535): a window with more contested records than :data:`CEDED_PARAMETERS`
parameters' worth of keys is cut short after the last one judged (:func:`ceded_window`), and
the next window starts there. A plan's sample keys skip the ceded ones in Python.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection, False_, and_, case, or_
from sqlalchemy.sql.elements import ColumnElement

from ...datasets import Dataset
from ...rules import Rule
from ...timemath import parse_stored
from .ids import id_matches
from .keys import KeyTuple, key_in
from .schema import Schema
from .select import Selection

CEDED_PARAMETERS = 10_000
"""The most bound parameters a batch's statement spends listing the keys it leaves to other
rules (well under every supported database's cap, with room for the rule's own predicate)."""


def ceded(
    connection: Connection, store: Schema, s: Selection, condition: ColumnElement[bool]
) -> list[tuple[KeyTuple, bool]]:
    """The records among `condition` that `s`'s delete rule would delete now but leaves to an
    earlier-due delete rule, each with whether it is overdue for `s`'s rule, in key order."""
    return _ceded(connection, store, s, condition, None)[0]


def ceded_window(
    connection: Connection,
    store: Schema,
    s: Selection,
    window: Callable[[KeyTuple], ColumnElement[bool]],
    end: KeyTuple,
) -> tuple[ColumnElement[bool], KeyTuple]:
    """The key window up to `end` (`window(end)`) less the records it cedes, and the window's
    end: `end`, or earlier when more records in it are contested than one statement can list
    (then it ends at the last one judged, and the next window takes the rest)."""
    cap = max(1, CEDED_PARAMETERS // len(s.key))
    lost, last = _ceded(connection, store, s, window(end), cap)
    if last is not None:
        end = last
    return without(s, lost, window(end)), end


def _ceded(
    connection: Connection,
    store: Schema,
    s: Selection,
    condition: ColumnElement[bool],
    limit: int | None,
) -> tuple[list[tuple[KeyTuple, bool]], KeyTuple | None]:
    """:func:`ceded`, judging the first `limit` contested records only (when given), and the
    key of the last one judged when there were more."""
    rivals = [(rule, expr) for rule, expr in s.rivals if not isinstance(expr, False_)]
    if not rivals:
        return [], None
    flags = [case((expr, 1), else_=0).label(f"rival{i}") for i, (_, expr) in enumerate(rivals)]
    overdue = case((s.overdue, 1), else_=0).label("overdue_for_rule")
    row_query = store.readable_row(s.table).add_columns(*flags, overdue)
    query = row_query.where(condition, s.actionable, or_(*(expr for _, expr in rivals)))
    query = query.order_by(*s.key)
    if limit is not None:
        query = query.limit(limit + 1)
    order = {rule.id: index for index, rule in enumerate(s.dataset.rules)}
    # the subject rows are read only when a clock needs them (one query per record)
    subjects = any(
        ref.source == "subject"
        for rule in (s.rule, *(r for r, _ in rivals))
        for ref in rule.after.refs
    )
    found: list[tuple[KeyTuple, bool]] = []
    # read whole (one window's rows) before the subject rows are: a DuckDB connection has one
    # open result at a time
    rows = connection.execute(query).mappings().all()
    last = None
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]
        last = tuple(rows[-1][column.name] for column in s.key)
    moments: dict[tuple[str, dt.datetime], dt.datetime | None] = {}

    def moment(rule: Rule, row: Mapping[Any, Any], subject: SubjectRows) -> dt.datetime | None:
        """:func:`due_moment`, each (rule, clock start) computed once a window."""
        start = clock_start(s.dataset, rule, row, subject)
        if start is None:
            return None
        known = (rule.id, start)
        if known not in moments:
            moments[known] = _due_from(s.dataset, rule, start)
        return moments[known]

    for row in rows:
        subject = subject_rows(store, connection, s.dataset, row) if subjects else {}
        mine = (moment(s.rule, row, subject), order[s.rule.id])
        for index, (rule, _) in enumerate(rivals):
            if row[f"rival{index}"] and _earlier(
                (moment(rule, row, subject), order[rule.id]), mine
            ):
                key = tuple(row[column.name] for column in s.key)
                found.append((key, bool(row["overdue_for_rule"])))
                break
    return found, last


def _earlier(theirs: tuple[dt.datetime | None, int], mine: tuple[dt.datetime | None, int]) -> bool:
    """Whether the rival's (due moment, declaration index) comes first; a due moment that cannot
    be computed (past year 9999) compares by declaration order alone."""
    if theirs[0] is None or mine[0] is None or theirs[0] == mine[0]:
        return theirs[1] < mine[1]
    return theirs[0] < mine[0]


SubjectRows = Mapping[str, Mapping[str, Any] | None]


def due_moment(
    dataset: Dataset, rule: Rule, row: Mapping[Any, Any], subjects: SubjectRows
) -> dt.datetime | None:
    """When `rule` became (or becomes) due for the record `row`, None if never or unknown."""
    start = clock_start(dataset, rule, row, subjects)
    return None if start is None else _due_from(dataset, rule, start)


def _due_from(dataset: Dataset, rule: Rule, start: dt.datetime) -> dt.datetime | None:
    """When `rule` is due for a clock that started at `start` (None past year 9999)."""
    try:
        return dataset.due_at(rule.after, start, rule.delay)
    except (OverflowError, ValueError):
        return None


def subject_rows(
    store: Schema, connection: Connection, dataset: Dataset, row: Mapping[Any, Any]
) -> dict[str, dict[str, Any] | None]:
    """The subject rows of the record `row` (their events), by subject type; None for a
    subject the record does not name or whose row is missing."""
    found: dict[str, dict[str, Any] | None] = {}
    for ref in dataset.subjects:
        if ref.column is None or row[ref.column] is None:
            found[ref.name] = None
            continue
        table = store.table(ref.type.config.table)
        key = store.column(table, ref.type.config.key)
        matches = id_matches(key, [row[ref.column]], store.dialect)  # '0005' is account 5
        if isinstance(matches, False_):
            found[ref.name] = None
            continue
        first = connection.execute(store.readable_row(table).where(matches)).mappings().first()
        found[ref.name] = dict(first) if first else None
    return found


def clock_start(
    dataset: Dataset, rule: Rule, row: Mapping[Any, Any], subjects: SubjectRows
) -> dt.datetime | None:
    """When `rule`'s clock started for the record `row` (None: not started, or unreadable),
    its subject events read from the subject `rule` reads (:meth:`Dataset.subject_of`)."""
    values: list[dt.datetime | None] = []
    ref = dataset.subject_of(rule)
    subject = subjects.get(ref.name) if ref is not None else None
    for clock in rule.after.refs:
        if clock.source == "record":
            values.append(parse_stored(row[dataset.config.timestamps[clock.name]], dataset.zone))
        else:
            assert ref is not None
            raw = subject.get(ref.type.event_column(clock.name)) if subject else None
            values.append(parse_stored(raw, ref.type.zone))
    return rule.after.start(values)


def without(
    s: Selection, keys: list[tuple[KeyTuple, bool]], condition: ColumnElement[bool]
) -> ColumnElement[bool]:
    """`condition` less the ceded `keys`."""
    if not keys:
        return condition
    return and_(condition, ~key_in(s.key, [key for key, _ in keys]))


__all__ = [
    "CEDED_PARAMETERS",
    "SubjectRows",
    "ceded",
    "ceded_window",
    "clock_start",
    "due_moment",
    "subject_rows",
    "without",
]
