"""Live checks: the state DB is usable, and every table and column that config names exists
in its store, with a usable type.

`retention validate` runs these after the static checks of :mod:`retention.config`. A missing
table or column is a :class:`~retention.errors.SchemaError` (bad input, exit 2); a store that
cannot be reached is a :class:`~retention.errors.StoreError` (exit 3). The state DB likewise:
a bad URL, a missing driver or a schema newer than this release is bad input, a server that
does not answer is unreachable. Hold ids that match no subject are warnings
(:func:`check_hold_ids`), which change no exit code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .config import Config
from .errors import SchemaError, StoreError, StoreMisconfigured
from .holdcheck import HoldWarning, unmatched_hold_ids
from .statedb import check_state
from .stores import SqlStore, sql_stores
from .stores.base import ObjectStores
from .stores.sqlselect import SelectionBuilder

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one store or dataset: `where` is the field's dotted path, `file`
    and `line` where the config (or rule pack) declares it."""

    store: str
    where: str
    message: str
    unreachable: bool = False
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        place = self.file or "<config>"
        if self.line is not None:
            place += f":{self.line}"
        return f"{place}: {self.where}: {self.message}"


def _located(config: Config, problem: Problem) -> Problem:
    """`problem` with the file and line of the field it names."""
    file, line = config.locate(problem.where)
    return replace(problem, file=file, line=line)


class _Checker:
    def __init__(self, config: Config, store: SqlStore) -> None:
        self.config = config
        self.store = store
        self.problems: list[Problem] = []

    def attempt(self, where: str, check: Callable[..., Any], *args: Any) -> Any:
        try:
            return check(*args)
        except (SchemaError, ValueError) as exc:
            self.problems.append(Problem(self.store.name, where, str(exc)))
            return None

    def column_kind(self, table: Any, name: str) -> Any:
        return self.store.clock_kind(self.store.column(table, name))


def check_state_db(config: Config) -> list[Problem]:
    """The state DB's problems (:func:`~retention.statedb.check_state`), as validate reports."""
    return [
        Problem("state_db", "state_db", p.message, unreachable=p.unreachable)
        for p in check_state(config.settings.state_db.get_secret_value())
    ]


def check_stores(config: Config, stores: dict[str, SqlStore] | None = None) -> list[Problem]:
    """Check every SQL dataset, subject and rule reference against the live schema."""
    with sql_stores(config.settings, stores) as opened:
        return [_located(config, problem) for problem in _check(config, opened)]


def check_hold_ids(config: Config, stores: dict[str, SqlStore] | None = None) -> list[HoldWarning]:
    """Warnings for the ids of active holds that no subject has (likely typos); not problems:
    `validate` still exits 0 on them."""
    with sql_stores(config.settings, stores) as opened:
        return unmatched_hold_ids(config, config.load_holds(), opened)


def _check(config: Config, stores: dict[str, SqlStore]) -> list[Problem]:
    problems: list[Problem] = []
    for name, store in stores.items():
        try:
            store.ping()
        except StoreMisconfigured as exc:
            problems.append(Problem(name, f"stores.{name}.url", str(exc)))
            continue
        except StoreError as exc:
            problems.append(Problem(name, f"stores.{name}", str(exc), unreachable=True))
            continue
        checker = _Checker(config, store)
        _check_subjects(checker)
        for dataset, ds in config.settings.datasets.items():
            if ds.store == name and ds.table is not None:
                _check_dataset(checker, dataset)
        problems += checker.problems
    return problems + _check_objects(config, stores)


def _check_objects(config: Config, stores: dict[str, SqlStore]) -> list[Problem]:
    """Buckets and roots exist and can be listed, and each dataset's part of them."""
    problems: list[Problem] = []
    settings = config.settings
    with ObjectStores(config, stores) as objects:
        for name, store_config in settings.stores.items():
            if store_config.kind == "sql":
                continue
            found = objects[name].check()
            problems += [Problem(name, f"stores.{name}", m, unreachable=True) for m in found]
            if found:
                continue
            for dataset, ds in settings.datasets.items():
                if ds.store == name:
                    problems += [
                        Problem(name, f"datasets.{dataset}", m, unreachable=True)
                        for m in objects[name].check(dataset)
                    ]
    return problems


def _check_subjects(checker: _Checker) -> None:
    store = checker.store
    for name, subject in checker.config.settings.subjects.items():
        if subject.store != store.name:
            continue
        where = f"subjects.{name}"
        table = checker.attempt(f"{where}.table", store.table, subject.table)
        if table is None:
            continue
        checker.attempt(f"{where}.key", store.column, table, subject.key)
        for event, column in subject.events.items():
            checker.attempt(f"{where}.events.{event}", checker.column_kind, table, column)


def _check_dataset(checker: _Checker, dataset: str) -> None:
    config, store = checker.config, checker.store
    settings = config.settings
    ds = settings.datasets[dataset]
    where = f"datasets.{dataset}"
    table = checker.attempt(f"{where}.table", store.table, ds.table)
    if table is None:
        return
    for key in ds.key_columns:
        checker.attempt(f"{where}.key", store.column, table, key)
    for stamp, column in ds.timestamps.items():
        checker.attempt(f"{where}.timestamps.{stamp}", checker.column_kind, table, column)
    for personal, column in ds.personal.items():
        checker.attempt(f"{where}.personal.{personal}", store.column, table, column)
    if ds.subject is not None:
        checker.attempt(f"{where}.subject.column", store.column, table, ds.subject.column)
    for index, cascade in enumerate(ds.cascade):
        child = settings.datasets[cascade.dataset]
        child_table = checker.attempt(f"{where}.cascade[{index}]", store.table, child.table)
        if child_table is not None:
            checker.attempt(
                f"{where}.cascade[{index}].column", store.column, child_table, cascade.column
            )
    builder = SelectionBuilder(config, store, _EPOCH)
    for rule in config.rules_for(dataset):
        for column in rule.where:
            checker.attempt(f"rule {rule.id}: where.{column}", store.column, table, column)
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
