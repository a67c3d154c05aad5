"""Which delete rule acts on a record two or more delete rules would delete now: the earliest due.

DESIGN.md's precedence: "the earliest due action applies". Each rule's due moment is its clock
start plus its `retain + grace`, calendar-aware in the configured zone (:mod:`retention.timemath`),
so it cannot be compared in SQL; only the records that another delete rule would also delete
now (the contested ones, found in SQL) are read, in the window at hand, and their due moments
compared in Python. Equal due moments go to the rule declared first. A plan, a run and
`explain` all ask :func:`ceded`, so they credit the same rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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


def ceded(
    connection: Connection, store: Schema, s: Selection, condition: ColumnElement[bool]
) -> list[tuple[KeyTuple, bool]]:
    """The records among `condition` that `s`'s delete rule would delete now but leaves to an
    earlier-due delete rule, each with whether it is overdue for `s`'s rule, in key order."""
    rivals = [(rule, expr) for rule, expr in s.rivals if not isinstance(expr, False_)]
    if not rivals:
        return []
    flags = [case((expr, 1), else_=0).label(f"rival{i}") for i, (_, expr) in enumerate(rivals)]
    overdue = case((s.overdue, 1), else_=0).label("overdue_for_rule")
    row_query = store.readable_row(s.table).add_columns(*flags, overdue)
    query = row_query.where(condition, s.actionable, or_(*(expr for _, expr in rivals)))
    order = {rule.id: index for index, rule in enumerate(s.dataset.rules)}
    found: list[tuple[KeyTuple, bool]] = []
    # read whole (one window's rows) before the subject rows are: a DuckDB connection has one
    # open result at a time
    for row in connection.execute(query.order_by(*s.key)).mappings().all():
        subject = subject_rows(store, connection, s.dataset, row)
        mine = (due_moment(s.dataset, s.rule, row, subject), order[s.rule.id])
        for index, (rule, _) in enumerate(rivals):
            if row[f"rival{index}"] and _earlier(
                (due_moment(s.dataset, rule, row, subject), order[rule.id]), mine
            ):
                key = tuple(row[column.name] for column in s.key)
                found.append((key, bool(row["overdue_for_rule"])))
                break
    return found


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
    if start is None:
        return None
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


__all__ = ["SubjectRows", "ceded", "clock_start", "due_moment", "subject_rows", "without"]
