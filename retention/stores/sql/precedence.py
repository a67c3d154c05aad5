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
    for row in connection.execute(query.order_by(*s.key)).mappings():
        subject = subject_row(store, connection, s.dataset, row)
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


def due_moment(
    dataset: Dataset, rule: Rule, row: Mapping[Any, Any], subject: Mapping[str, Any] | None
) -> dt.datetime | None:
    """When `rule` became (or becomes) due for the record `row`, None if never or unknown."""
    start = clock_start(dataset, rule, row, subject)
    if start is None:
        return None
    try:
        return dataset.due_at(rule.after, start, rule.delay)
    except (OverflowError, ValueError):
        return None


def subject_row(
    store: Schema, connection: Connection, dataset: Dataset, row: Mapping[Any, Any]
) -> dict[str, Any] | None:
    """The subject row of the record `row` (its events), if it has one."""
    subject, column = dataset.subject, dataset.subject_column
    if subject is None or column is None or row[column] is None:
        return None
    table = store.table(subject.config.table)
    key = store.column(table, subject.config.key)
    matches = id_matches(key, [row[column]], store.dialect)  # '0005' is account 5
    if isinstance(matches, False_):
        return None
    found = connection.execute(store.readable_row(table).where(matches)).mappings().first()
    return dict(found) if found else None


def clock_start(
    dataset: Dataset, rule: Rule, row: Mapping[Any, Any], subject: Mapping[str, Any] | None
) -> dt.datetime | None:
    """When `rule`'s clock started for the record `row` (None: not started, or unreadable)."""
    values: list[dt.datetime | None] = []
    for ref in rule.after.refs:
        if ref.source == "record":
            values.append(parse_stored(row[dataset.config.timestamps[ref.name]], dataset.zone))
        else:
            kind = dataset.subject
            assert kind is not None
            raw = subject.get(kind.event_column(ref.name)) if subject else None
            values.append(parse_stored(raw, kind.zone))
    return rule.after.start(values)


def without(
    s: Selection, keys: list[tuple[KeyTuple, bool]], condition: ColumnElement[bool]
) -> ColumnElement[bool]:
    """`condition` less the ceded `keys`."""
    if not keys:
        return condition
    return and_(condition, ~key_in(s.key, [key for key, _ in keys]))


__all__ = ["ceded", "clock_start", "due_moment", "subject_row", "without"]
