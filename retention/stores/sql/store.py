"""The SQL store: any database SQLAlchemy 2 can reach (SQLite, PostgreSQL, MySQL/MariaDB, …).

Every question is one set-based statement evaluated by the database (:mod:`.select` builds the
predicates, :mod:`.plan` counts them, :mod:`.batches` acts on them batch by batch); database
errors leave this module as :class:`~retention.errors.StoreFailed`, in one line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import False_, func, select

from ...datasets import Dataset, SubjectType
from ...holds import Hold, HoldsFile
from ...kinds import SQL
from ...rules import Rule
from ...settings import Settings, SqlStoreConfig
from ..base import (
    BatchResult,
    Counts,
    Description,
    Enforcement,
    KeyMatcher,
    Problem,
    Quarantined,
    StoredIntent,
    SubjectEvents,
    SubjectPath,
    SubjectSource,
    Tally,
    Target,
)
from . import check, describe, plan, quarantine, settle, subjectrecords, subjects
from .batches import Batches
from .engine import translated
from .replay import Replay
from .schema import Schema
from .select import Selection, SelectionBuilder
from .settledfacts import placed

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class SqlStore(Schema):
    """One configured SQL store, behind the :class:`~retention.stores.base.Store` protocol."""

    capabilities = SQL

    def __init__(
        self,
        name: str,
        config: SqlStoreConfig,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
    ) -> None:
        super().__init__(name, config)
        self.settings = settings
        key = settings.hmac_key if settings is not None else None
        self.hmac_key = key.get_secret_value().encode() if key is not None else None
        # the selections the last plan() built, for records() of the same targets and holds
        # (kept for one holds file and one moment: a new plan starts afresh)
        self._planned: tuple[Any, dict[Target, Selection]] = (None, {})

    def builder(self, now: dt.datetime) -> SelectionBuilder:
        """The predicates of this store's datasets as of `now`."""
        return SelectionBuilder(self, now, self.hmac_key)

    def check(self, datasets: Sequence[Dataset]) -> list[Problem]:
        known = self.settings.subjects if self.settings is not None else {}
        return check.check(self, known, datasets, self.hmac_key)

    def plan(self, targets: Sequence[Target], holds: HoldsFile, samples: int) -> list[Counts]:
        found = []
        moment = (holds, targets[0].now) if targets else None
        if self._planned[0] != moment:
            self._planned = (moment, {})
        with translated(self.name), self.engine.connect() as connection:
            for target in targets:
                selection = self._selection(target, holds)
                found.append(plan.plan_counts(connection, self, selection, samples))
        return found

    def records(self, targets: Sequence[Target], holds: HoldsFile) -> Counts:
        with translated(self.name), self.engine.connect() as connection:
            selections = [self._selection(t, holds) for t in targets]
            return plan.distinct_counts(connection, selections)

    def _selection(self, target: Target, holds: HoldsFile) -> Selection:
        """`target`'s predicates under `holds`, built once for a plan and its records()."""
        kept, built = self._planned
        if kept == (holds, target.now) and target in built:
            return built[target]
        selection = self.builder(target.now).build(target.rule, target.dataset, holds)
        if kept == (holds, target.now):
            built[target] = selection
        return selection

    def tally(
        self, target: Target, holds: HoldsFile, *, size: bool, unreadable: bool = True
    ) -> Tally:
        with translated(self.name), self.engine.connect() as connection:
            selection = self.builder(target.now).build(target.rule, target.dataset, holds)
            return plan.tally(connection, self, selection, size=size, unreadable=unreadable)

    def enforce(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        with translated(self.name):
            yield from Batches(self, self.builder(target.now), target, run)

    def settle(self, intent: StoredIntent, dataset: Dataset, rule: Rule | None) -> BatchResult:
        with translated(self.name):
            settled = settle.settle(self, self.builder(_EPOCH), intent, dataset, rule)
            return placed(settled, intent)

    def purge_quarantine(
        self, dataset: Dataset, now: dt.datetime, run: Enforcement
    ) -> Iterator[BatchResult]:
        with translated(self.name):
            yield from quarantine.purge(self, dataset, now, run)

    def quarantined(self, dataset: Dataset) -> list[Quarantined]:
        with translated(self.name):
            return quarantine.summary(self, dataset)

    def replay(
        self, target: Target, recorded: KeyMatcher, run: Enforcement
    ) -> Iterator[BatchResult]:
        with translated(self.name):
            yield from Replay(self, self.builder(target.now), target, run, recorded)

    def restore(
        self,
        dataset: Dataset,
        run_id: str,
        rule: str | None,
        now: dt.datetime,
        run: Enforcement,
    ) -> Iterator[BatchResult]:
        with translated(self.name):
            yield from quarantine.restore(self, dataset, run_id, rule, now, run)

    def describe(
        self, dataset: Dataset, key: str, holds: HoldsFile, now: dt.datetime
    ) -> Description:
        with translated(self.name):
            return describe.describe(self, self.builder(now), dataset, key, holds)

    def subject_records(
        self,
        dataset: Dataset,
        subject: str,
        via: SubjectPath,
        holds: HoldsFile,
        now: dt.datetime,
        subject_type: str | None = None,
    ) -> Iterator[tuple[str, Description]]:
        with translated(self.name):
            builder = self.builder(now)
            yield from subjectrecords.subject_records(
                self, builder, dataset, subject, via, holds, subject_type
            )

    def covered(self, dataset: Dataset, hold: Hold) -> int:
        assert dataset.config.table is not None
        with translated(self.name):
            table = self.table(dataset.config.table)
            condition = self.builder(_EPOCH).covered_by(hold, dataset, table)
            if isinstance(condition, False_):
                return 0
            with self.engine.connect() as connection:
                query = select(func.count()).select_from(table).where(condition)
                return int(connection.execute(query).scalar_one())

    def subject_events(
        self, subject: SubjectType, ids: Iterable[str], events: Sequence[str]
    ) -> dict[str, SubjectEvents]:
        return subjects.subject_events(self, subject, ids, events)

    def known_subjects(self, subject: SubjectType, ids: Sequence[str]) -> tuple[set[str], bool]:
        with translated(self.name):
            return subjects.known_subjects(self, subject, ids)

    def close(self) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"SqlStore({self.name!r})"


__all__ = ["SqlStore"]
