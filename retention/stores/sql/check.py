"""`validate` on a SQL store: every table and column config names exists, with a usable type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...datasets import Dataset
from ...errors import SchemaError, StoreError, StoreMisconfigured
from ...settings import SubjectConfig
from ..base import Problem
from .schema import Schema
from .select import SelectionBuilder

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class _Checker:
    def __init__(self, store: Schema) -> None:
        self.store = store
        self.problems: list[Problem] = []

    def attempt(self, where: str, check: Callable[..., Any], *args: Any) -> Any:
        try:
            return check(*args)
        except (SchemaError, ValueError) as exc:
            self.problems.append(Problem(where, str(exc)))
            return None

    def column_kind(self, table: Any, name: str) -> Any:
        return self.store.clock_kind(self.store.column(table, name))


def check(
    store: Schema,
    subjects: Mapping[str, SubjectConfig],
    datasets: Sequence[Dataset],
    hmac_key: bytes | None,
) -> list[Problem]:
    """The problems of this store: unreachable, or what config names that is not there."""
    try:
        store.ping()
    except StoreMisconfigured as exc:
        return [Problem(f"stores.{store.name}.url", str(exc))]
    except StoreError as exc:
        return [Problem(f"stores.{store.name}", str(exc), unreachable=True)]
    checker = _Checker(store)
    for name, subject in subjects.items():
        if subject.store == store.name:
            _check_subject(checker, name, subject)
    for dataset in datasets:
        _check_dataset(checker, dataset, hmac_key)
    return checker.problems


def _check_subject(checker: _Checker, name: str, subject: SubjectConfig) -> None:
    store = checker.store
    where = f"subjects.{name}"
    table = checker.attempt(f"{where}.table", store.table, subject.table)
    if table is None:
        return
    checker.attempt(f"{where}.key", store.column, table, subject.key)
    for event, column in subject.events.items():
        checker.attempt(f"{where}.events.{event}", checker.column_kind, table, column)


def _check_dataset(checker: _Checker, dataset: Dataset, hmac_key: bytes | None) -> None:
    store, ds = checker.store, dataset.config
    where = f"datasets.{dataset.name}"
    table = checker.attempt(f"{where}.table", store.table, ds.table)
    if table is None:
        return
    for key in ds.key_columns:
        checker.attempt(f"{where}.key", store.column, table, key)
    for stamp, column in ds.timestamps.items():
        checker.attempt(f"{where}.timestamps.{stamp}", checker.column_kind, table, column)
    for personal, column in ds.personal.items():
        checker.attempt(f"{where}.personal.{personal}", store.column, table, column)
    many = isinstance(ds.subject, list)
    for position, link in enumerate(ds.subject_links):
        at = f"{where}.subject[{position}].column" if many else f"{where}.subject.column"
        checker.attempt(at, store.column, table, link.column)
    for index, cascade in enumerate(dataset.cascade):
        child_table = checker.attempt(
            f"{where}.cascade[{index}]", store.table, cascade.dataset.config.table
        )
        if child_table is not None:
            checker.attempt(
                f"{where}.cascade[{index}].column", store.column, child_table, cascade.column
            )
    builder = SelectionBuilder(store, _EPOCH, hmac_key)
    for rule in dataset.rules:
        for column in rule.record_where:
            checker.attempt(f"rule {rule.id}: where.{column}", store.column, table, column)
        ref = dataset.subject_of(rule)
        if rule.subject_where and ref is not None:
            subject_table = checker.attempt(
                f"rule {rule.id}: where", store.table, ref.type.config.table
            )
            for column in rule.subject_where if subject_table is not None else ():
                checker.attempt(
                    f"rule {rule.id}: where.subject.{column}",
                    store.column,
                    subject_table,
                    column,
                )
        for column in rule.columns or ():
            checker.attempt(f"rule {rule.id}: columns", store.column, table, column)
        for personal in rule.anonymize:
            if personal in ds.personal:
                anonymizer = checker.attempt(
                    f"rule {rule.id}: anonymize.{personal}",
                    builder.anonymizer,
                    personal,
                    rule,
                    dataset,
                    table,
                )
                if anonymizer is not None:
                    checker.attempt(
                        f"rule {rule.id}: anonymize.{personal}", anonymizer.check_column
                    )


__all__ = ["check"]
