"""What an interrupted SQL batch really changed, judged from the data itself.

A batch's intent lists the keys it was changing. After a crash between the data commit and its
audit entry, the keys that are gone were deleted (and the anonymized records are in anonymized
form): those are audited; the rest never happened.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import and_, select
from sqlalchemy.sql.elements import ColumnElement

from ...datasets import Dataset
from ...rules import Rule
from ..base import PURGE, RESTORE, BatchResult, Note, StoredIntent
from . import quarantine
from .keys import KeyTuple, format_keys, key_in, normal_key
from .schema import Schema
from .select import SelectionBuilder

RECOVERED = "recorded after an interruption: the change had committed"


def settle(
    store: Schema,
    builder: SelectionBuilder,
    intent: StoredIntent,
    dataset: Dataset,
    rule: Rule | None,
) -> BatchResult:
    """The audit entries an interrupted batch is owed."""
    if intent.action in (PURGE, RESTORE):
        return quarantine.settle(store, intent.action, intent.payload, dataset)
    keys = [tuple(k) for k in json.loads(intent.payload)]
    children = [(name, [tuple(k) for k in ks]) for name, ks in json.loads(intent.children)]
    notes: list[Note] = []
    if intent.action == "delete":
        changed = _absent(store, dataset, keys)
        for name, child_keys in children:
            child = _descendant(dataset, name)
            gone = _absent(store, child, child_keys) if child is not None else []
            if gone:
                notes.append(
                    Note(
                        "done",
                        format_keys(gone),
                        RECOVERED,
                        dataset=name,
                        action="delete (cascade)",
                    )
                )
    else:
        changed = _anonymized(store, builder, dataset, rule, keys)
    if changed:
        notes.append(Note("done", format_keys(changed), RECOVERED))
    return BatchResult(acted=len(changed), notes=tuple(notes))


def _descendant(dataset: Dataset, name: str) -> Dataset | None:
    """The cascade descendant of `dataset` called `name`."""
    for cascade in dataset.cascade:
        if cascade.dataset.name == name:
            return cascade.dataset
        found = _descendant(cascade.dataset, name)
        if found is not None:
            return found
    return None


def _absent(store: Schema, dataset: Dataset, keys: list[KeyTuple]) -> list[KeyTuple]:
    present = set(_present(store, dataset, keys, None))
    return [k for k in keys if normal_key(k) not in present]


def _anonymized(
    store: Schema,
    builder: SelectionBuilder,
    dataset: Dataset,
    rule: Rule | None,
    keys: list[KeyTuple],
) -> list[KeyTuple]:
    if rule is None:  # the rule is gone from config: nothing can be judged anonymized
        return []
    assert dataset.config.table is not None
    table = store.table(dataset.config.table)
    done = and_(
        *(builder.anonymizer(p, rule, dataset, table).done(store.dialect) for p in rule.anonymize)
    )
    found = set(_present(store, dataset, keys, done))
    return [k for k in keys if normal_key(k) in found]


def _present(
    store: Schema,
    dataset: Dataset,
    keys: Sequence[KeyTuple],
    condition: ColumnElement[bool] | None,
) -> list[KeyTuple]:
    assert dataset.config.table is not None
    table = store.table(dataset.config.table)
    key = tuple(store.column(table, name) for name in dataset.key_columns)
    found: list[KeyTuple] = []
    with store.engine.connect() as connection:
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            query = select(*key).where(key_in(key, chunk))
            if condition is not None:
                query = query.where(condition)
            found += [normal_key(tuple(row)) for row in connection.execute(query)]
    return found


__all__ = ["RECOVERED", "settle"]
