"""One subject's records in a SQL dataset, each with every rule's view (`retention subject`).

The records are found through the dataset's subject column, or through the cascade parents
that lead to one (a message of a ticket of the account), compared in canonical form like a
hold's ids (:mod:`.ids`). Each rule's flags are the same predicates a plan counts and a run
repeats, read as columns of one streamed query, so a subject lookup cannot disagree with a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, False_, and_, case, select
from sqlalchemy.sql.elements import ColumnElement

from ...datasets import Dataset
from ...holds import HoldsFile
from ..base import Description, Flags, RuleView
from .ids import id_matches
from .keys import format_keys
from .precedence import ceded, clock_start, subject_rows
from .schema import Schema
from .select import Selection, SelectionBuilder

_FLAGS = (
    "scope",
    "due",
    "held",
    "blocked",
    "superseded",
    "done",
    "actionable",
    "overdue",
    "unreadable",
)


def subject_condition(
    store: Schema,
    dataset: Dataset,
    subject_type: str,
    subject: str,
    via: Sequence[tuple[Dataset, str]],
) -> ColumnElement[bool]:
    """The records of `dataset` that belong to `subject`: by its own subject column, or (with
    `via`: each cascade parent upward, with the column of the one below linking to its key)
    through the parent whose subject column names it."""
    if not via:
        ref = dataset.subject_named(subject_type)
        assert dataset.config.table is not None and ref is not None and ref.column is not None
        table = store.table(dataset.config.table)
        return id_matches(store.column(table, ref.column), [subject], store.dialect)
    parent, link = via[0]
    assert dataset.config.table is not None and parent.config.table is not None
    parent_table = store.table(parent.config.table)
    (parent_key,) = (store.column(parent_table, name) for name in parent.key_columns)
    above = subject_condition(store, parent, subject_type, subject, via[1:])
    owned = select(parent_key).where(above)
    column = store.column(store.table(dataset.config.table), link)
    return column.is_not(None) & column.in_(owned)


def subject_records(
    store: Schema,
    builder: SelectionBuilder,
    dataset: Dataset,
    subject_type: str,
    subject: str,
    via: Sequence[tuple[Dataset, str]],
    holds: HoldsFile,
) -> Iterator[tuple[str, Description]]:
    """Every record of `dataset` that belongs to `subject`, in key order, with its description
    (as `explain` gives it for one record)."""
    assert dataset.config.table is not None
    table = store.table(dataset.config.table)
    condition = subject_condition(store, dataset, subject_type, subject, via)
    if isinstance(condition, False_):
        return
    selections = [builder.build(rule, dataset, holds) for rule in dataset.rules]
    candidates = [h for h in holds.active() if h.covers_dataset(dataset.name)]
    columns: list[ColumnElement[Any]] = []
    for index, s in enumerate(selections):
        columns += [case((e, 1), else_=0).label(f"r{index}_{n}") for n, e in _named(s).items()]
    columns += [
        case((builder.covered_by(h, dataset, table), 1), else_=0).label(f"h{index}")
        for index, h in enumerate(candidates)
    ]
    key = [store.column(table, name) for name in dataset.key_columns]
    with store.engine.connect() as connection:
        ceding = [_ceded(connection, store, s, condition) for s in selections]
        subject_values = None
        if len(dataset.subjects) == 1 and dataset.subject_column is not None and not via:
            # every record names the same (only) subject: its events are read once
            found = {dataset.subject_column: subject}
            subject_values = subject_rows(store, connection, dataset, found)
        query = store.readable_row(table).add_columns(*columns).where(condition).order_by(*key)
        rows = connection.execution_options(stream_results=True).execute(query).mappings()
        for row in rows:
            (text,) = format_keys([tuple(row[c.name] for c in key)])
            views = []
            for index, s in enumerate(selections):
                flags = Flags(**{n: bool(row[f"r{index}_{n}"]) for n in _FLAGS})
                if flags.actionable and text in ceding[index]:
                    flags = dataclasses.replace(
                        flags, superseded=True, actionable=False, overdue=False
                    )
                subjects = subject_values
                if subjects is None:  # several subjects, or a cascade: this record's own
                    subjects = subject_rows(store, connection, dataset, row)
                start = clock_start(dataset, s.rule, row, subjects)
                views.append(RuleView(s.rule, flags, start))
            covering = tuple(h.id for i, h in enumerate(candidates) if row[f"h{i}"])
            yield text, Description(tuple(views), covering)


def _named(s: Selection) -> dict[str, ColumnElement[bool]]:
    """The flags `explain` reads, by name (:class:`~retention.stores.base.Flags`)."""
    return {
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


def _ceded(
    connection: Connection, store: Schema, s: Selection, condition: ColumnElement[bool]
) -> set[str]:
    """The keys (text) of the subject's records `s`'s delete leaves to an earlier-due one."""
    return set(format_keys([key for key, _ in ceded(connection, store, s, condition)]))


__all__ = ["subject_condition", "subject_records"]
