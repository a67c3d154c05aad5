"""One SQL record as `explain` shows it: each rule's predicates evaluated on it, in SQL.

The flags come from the same predicates a plan counts and a run repeats, restricted to one key,
so `explain` cannot disagree with a run. The clock starts are also read in Python from the
record's values, for display.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Column, Connection, Table, and_, case, select
from sqlalchemy.sql.elements import ColumnElement

from ...datasets import Dataset
from ...errors import ConfigError, RecordNotFound
from ...holds import HoldsFile
from ..base import Description, Flags, RuleView
from .precedence import ceded, clock_start, subject_rows
from .schema import Schema
from .select import Selection, SelectionBuilder


def describe(
    store: Schema, builder: SelectionBuilder, dataset: Dataset, key: str, holds: HoldsFile
) -> Description:
    """Every rule's view of the record `key` (``a/b`` for a composite key) of `dataset`."""
    assert dataset.config.table is not None
    table = store.table(dataset.config.table)
    key_columns = [store.column(table, name) for name in dataset.key_columns]
    parts = key.split("/") if len(key_columns) > 1 else [key]
    if len(parts) != len(key_columns):
        raise ConfigError(
            f"dataset {dataset.name!r} has a key of {len(key_columns)} columns: give them as a/b",
            field="KEY",
        )
    match = and_(*(col == _typed(col, part) for col, part in zip(key_columns, parts, strict=True)))
    with store.engine.connect() as connection:
        row = connection.execute(store.readable_row(table).where(match)).mappings().first()
        if row is None:
            raise RecordNotFound(f"no record with key {key!r} in dataset {dataset.name!r}")
        subject = subject_rows(store, connection, dataset, row)
        covering = _covering(connection, builder, dataset, table, match, holds)
        views = []
        for rule in dataset.rules:
            selection = builder.build(rule, dataset, holds)
            flags = _flags(connection, selection, match)
            if flags.actionable and ceded(connection, store, selection, match):
                flags = dataclasses.replace(flags, superseded=True, actionable=False, overdue=False)
            start = clock_start(dataset, rule, row, subject)
            views.append(RuleView(rule, flags, start))
    return Description(tuple(views), covering)


def _flags(connection: Connection, s: Selection, match: ColumnElement[bool]) -> Flags:
    named = {
        "scope": s.scope,
        "due": and_(s.scope, s.due),
        "held": s.held,
        "blocked": s.blocked,
        "superseded": s.superseded,
        "done": s.done,
        "actionable": s.actionable,
        "overdue": and_(s.actionable, s.overdue),
        "unreadable": s.unreadable_pending,
    }
    query = (
        select(*(case((expr, 1), else_=0).label(name) for name, expr in named.items()))
        .select_from(s.table)
        .where(match)
    )
    row = connection.execute(query).mappings().one()
    return Flags(**{name: bool(row[name]) for name in named})


def _covering(
    connection: Connection,
    builder: SelectionBuilder,
    dataset: Dataset,
    table: Table,
    match: ColumnElement[bool],
    holds: HoldsFile,
) -> tuple[str, ...]:
    """The active holds whose scope covers the record `match` selects, decided by the same SQL
    predicate (:meth:`SelectionBuilder.covered_by`) a plan counts and a run repeats."""
    candidates = [h for h in holds.active() if h.covers_dataset(dataset.name)]
    if not candidates:
        return ()
    query = (
        select(
            *(
                case((builder.covered_by(hold, dataset, table), 1), else_=0).label(f"h{index}")
                for index, hold in enumerate(candidates)
            )
        )
        .select_from(table)
        .where(match)
    )
    row = connection.execute(query).one()
    return tuple(hold.id for hold, covered in zip(candidates, row, strict=True) if covered)


def _typed(column: Column[Any], text: str) -> Any:
    try:
        return column.type.python_type(text)
    except (NotImplementedError, TypeError, ValueError):
        return text
