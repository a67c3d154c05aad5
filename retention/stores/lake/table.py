"""What every lake table store shares (Delta, Iceberg): rows read as records, the rule and the
holds a batch is judged with kept for its delete predicate, the physical step after a rule
that deletes, and the plan's line on deleted rows still in old files.

A lake table's delete is logical first: the rows are gone from the table's current version but
still in the files older versions (snapshots) reference, until the table's own maintenance
removes them once the store's ``purge_after`` window has passed (:meth:`LakeStore.purge`).
"""

from __future__ import annotations

import datetime as dt
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ...datasets import Dataset, SubjectType
from ...holds import HoldsFile
from ...settings import Settings
from ...timemath import parse_stored
from ..base import BatchResult, Counts, Enforcement, SubjectSource, Target
from ..objects.records import ObjectRecord
from ..objects.store import ObjectStore

PURGE = "purge"  # the audit action of the physical step
GONE = "physically gone"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Deleted:
    """One delete commit this dataset's rules made, not yet audited as physically gone."""

    version: int  # a Delta table version, an Iceberg snapshot id
    at: dt.datetime
    rows: int
    gone_by: dt.datetime  # its rows may be removed from the table's files from this moment


class LakeStore(ObjectStore):
    """Tables of rows with declared columns, deleted by predicate one commit per batch."""

    unit = "versions"  # what the table's commits are called, in the plan

    def __init__(
        self,
        name: str,
        config: Any,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
        clock: Callable[[], dt.datetime] = wall,
    ) -> None:
        super().__init__(name, config, settings, subject_sources)
        # the table's own time: commit timestamps and the physical step are on the wall clock
        self.clock = clock
        self._acting: Target | None = None  # the rule being enforced
        self._holds: HoldsFile | None = None  # the holds its current batch was judged with

    @abstractmethod
    def deleted(self, dataset: Dataset) -> list[Deleted]:
        """This dataset's delete commits not yet audited as physically gone, oldest first."""

    @abstractmethod
    def purge(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        """The physical step for the delete commits whose window has passed, audited."""

    def acting(self) -> tuple[Target, HoldsFile]:
        """The rule being enforced and the holds its current batch was judged with."""
        target, holds = self._acting, self._holds
        assert target is not None and holds is not None, "a delete happens inside enforce()"
        return target, holds

    # -- rows as records -----------------------------------------------------------------------

    def columns(self, dataset: Dataset) -> list[str]:
        """The columns a record is read from: its key, its timestamps, its subject."""
        wanted = [*dataset.key_columns, *dataset.config.timestamps.values()]
        if dataset.subject_column is not None:
            wanted.append(dataset.subject_column)
        return list(dict.fromkeys(wanted))

    def record(self, dataset: Dataset, row: dict[str, Any]) -> ObjectRecord:
        (key,) = dataset.key_columns
        clocks: dict[str, dt.datetime | None] = {}
        unreadable = False
        for name, column in dataset.config.timestamps.items():
            value = row.get(column)
            clocks[name] = parse_stored(value, dataset.zone) if value is not None else None
            unreadable = unreadable or (value is not None and clocks[name] is None)
        subject = row.get(dataset.subject_column) if dataset.subject_column else None
        created = clocks.get("created")
        return ObjectRecord(
            key=str(row[key]),
            modified=created or EPOCH,
            created=created,
            subject=None if subject is None else str(subject),
            clocks=clocks,
            clock_unreadable=unreadable,
        )

    # -- the Store protocol, where a lake table differs ----------------------------------------

    def enforce(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        read = run.holds

        def holds() -> HoldsFile:
            self._holds = read()
            return self._holds

        self._acting, self._holds = target, read()
        try:
            yield from super().enforce(target, replace(run, holds=holds))
        finally:
            self._acting = None
        if target.rule.destructive:
            yield from self.purge(target, run)

    def plan(self, targets: Sequence[Target], holds: HoldsFile, samples: int) -> list[Counts]:
        """The counts, and for a rule that deletes the rows its earlier runs deleted that are
        still in the table's old files, with the date they may be removed."""
        counts = super().plan(targets, holds, samples)
        present: dict[str, list[Deleted]] = {}
        found = []
        for target, count in zip(targets, counts, strict=True):
            dataset = target.dataset
            if not target.rule.destructive:
                found.append(count)
                continue
            if dataset.name not in present:
                present[dataset.name] = self.deleted(dataset)
            pending = present[dataset.name]
            rows = sum(d.rows for d in pending)
            if not rows:
                found.append(count)
                continue
            by = max(d.gone_by for d in pending).date().isoformat()
            note = (
                f"{rows} deleted records still physically present in old table files "
                f"({self.unit} {', '.join(str(d.version) for d in pending)}): gone by {by}"
            )
            extra = {**count.extra, "physically_present": rows, "physically_gone_by": by}
            found.append(replace(count, notes=(*count.notes, note), extra=extra))
        return found


__all__ = ["EPOCH", "GONE", "PURGE", "Deleted", "LakeStore", "wall"]
