"""What every lake table store shares (Delta, Iceberg): rows read as records, the rule and the
holds a batch is judged with kept for its predicate, the physical step after a rule that
deletes or anonymizes, and the plan's line on deleted rows still in old files.

A lake table's delete or anonymization is logical first: the rows (their original values) are
gone from the table's current version but still in the files older versions (snapshots)
reference, until the table's own maintenance removes them once the store's ``purge_after``
window has passed (:meth:`LakeStore.purge`).
"""

from __future__ import annotations

import datetime as dt
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from ...datasets import Dataset, SubjectType
from ...errors import StoreError, StoreMisconfigured
from ...holds import HoldsFile
from ...rules import Rule
from ...settings import Settings
from ...timemath import parse_stored
from ..base import (
    BatchResult,
    Counts,
    Enforcement,
    Note,
    Problem,
    StoredIntent,
    SubjectSource,
    Target,
)
from ..objects.quarantine import Kept
from ..objects.records import DeleteResult, ObjectRecord
from ..objects.store import RECOVERED, ObjectStore
from .anonymizing import Fields, field_anonymizer, is_done, rule_fields

PURGE = "purge"  # the audit action of the physical step
ANONYMIZE = "anonymize"
GONE = "physically gone"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def purged_what(action: str) -> str:
    """What a "physically gone" entry says its batch had done to the rows now erased."""
    if action == ANONYMIZE:
        return "original values of the records anonymized"
    return "logically deleted"


def wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Deleted:
    """One delete commit this dataset's rules made, not yet audited as physically gone."""

    version: int  # a Delta table version, an Iceberg snapshot id
    at: dt.datetime
    rows: int
    gone_by: dt.datetime  # its rows may be removed from the table's files from this moment
    action: str = "delete"  # or anonymize: the rows' original values are in the old files


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
        key = settings.hmac_key if settings is not None else None
        self.hmac_key = key.get_secret_value().encode() if key is not None else None
        # dataset -> the schema they were checked against, and rule -> its anonymizers
        self._fields: dict[str, tuple[pa.Schema, dict[str, Fields]]] = {}

    @abstractmethod
    def deleted(self, dataset: Dataset) -> list[Deleted]:
        """This dataset's delete commits not yet audited as physically gone, oldest first."""

    @abstractmethod
    def purge(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        """The physical step for the delete commits whose window has passed, audited."""

    @abstractmethod
    def arrow_schema(self, dataset: Dataset) -> pa.Schema:
        """The table's current schema, as Arrow."""

    @abstractmethod
    def anonymize(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """One commit anonymizing the batch's rows that are still due, unheld and unblocked."""

    @abstractmethod
    def rows(self, dataset: Dataset, keys: Sequence[str], columns: Sequence[str]) -> pa.Table:
        """The `columns` of the rows of `keys` in the table's current version."""

    def acting(self) -> tuple[Target, HoldsFile]:
        """The rule being enforced and the holds its current batch was judged with."""
        target, holds = self._acting, self._holds
        assert target is not None and holds is not None, "a delete happens inside enforce()"
        return target, holds

    # -- rows as records -----------------------------------------------------------------------

    def columns(self, dataset: Dataset) -> list[str]:
        """The columns a record is read from: its key, its timestamps, its subject, and the
        personal columns its anonymize rules change (to know what is done)."""
        wanted = [*dataset.key_columns, *dataset.config.timestamps.values()]
        if dataset.subject_column is not None:
            wanted.append(dataset.subject_column)
        for rule in dataset.rules:
            wanted += [dataset.config.personal[p] for p in rule.anonymize]
        return list(dict.fromkeys(wanted))

    def prepare(self, dataset: Dataset, schema: pa.Schema) -> dict[str, Fields]:
        """The anonymizers of the dataset's anonymize rules on this table, by rule, built once;
        a field that cannot be anonymized here stops the run before anything is written."""
        known = self._fields.get(dataset.name)
        if known is None or known[0] != schema:
            try:
                fields = {
                    rule.id: rule_fields(rule, dataset, schema, self.hmac_key)
                    for rule in dataset.rules
                    if rule.action == ANONYMIZE
                }
            except ValueError as exc:
                raise StoreMisconfigured(f"{dataset.name}: {exc}", store=self.name) from None
            known = self._fields[dataset.name] = (schema, fields)
        return known[1]

    def fields(self, dataset: Dataset, rule: Rule) -> Fields:
        """The anonymizers of one anonymize rule on this dataset's table."""
        return self.prepare(dataset, self.arrow_schema(dataset))[rule.id]

    def done(self, dataset: Dataset, rule: Rule, keys: Sequence[str]) -> set[str]:
        """Which of `keys` the table's current version holds anonymized by `rule`."""
        fields = self.fields(dataset, rule)
        (key,) = dataset.key_columns
        rows = self.rows(dataset, keys, [key, *fields])
        return {str(row[key]) for row in rows.to_pylist() if is_done(fields, row)}

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
        fields = self._fields[dataset.name][1] if dataset.name in self._fields else {}
        finished = frozenset(rule for rule, found in fields.items() if is_done(found, row))
        return ObjectRecord(
            key=str(row[key]),
            modified=created or EPOCH,
            created=created,
            subject=None if subject is None else str(subject),
            clocks=clocks,
            clock_unreadable=unreadable,
            anonymized=finished,
        )

    # -- validate ------------------------------------------------------------------------------

    def check(self, datasets: Sequence[Dataset]) -> list[Problem]:
        """What the store and the tables are missing, and every anonymize strategy a column
        cannot hold (the same checks as on SQL: type, length, nullability, key columns)."""
        found = super().check(datasets)
        if found:
            return found
        for dataset in datasets:
            rules = [r for r in dataset.rules if r.action == ANONYMIZE]
            if not rules:
                continue
            try:
                schema = self.arrow_schema(dataset)
            except StoreError as exc:
                found.append(Problem(f"datasets.{dataset.name}", str(exc), unreachable=True))
                continue
            for rule in rules:
                for personal in rule.anonymize:
                    try:
                        field_anonymizer(personal, rule, dataset, schema, self.hmac_key)
                    except ValueError as exc:
                        found.append(Problem(f"rule {rule.id}: anonymize.{personal}", str(exc)))
        return found

    # -- anonymizing ---------------------------------------------------------------------------

    def remove(
        self, dataset: Dataset, records: Sequence[ObjectRecord], kept: Kept | None
    ) -> DeleteResult:
        """One batch of the rule being enforced: deleted, or anonymized."""
        target, _ = self.acting()
        if target.rule.action == ANONYMIZE:
            return self.anonymize(dataset, records)
        return super().remove(dataset, records, kept)

    def settle(self, intent: StoredIntent, dataset: Dataset, rule: Rule | None) -> BatchResult:
        """An interrupted anonymize batch: its keys the table now holds anonymized were
        anonymized (audited once), the rest are left for the next run."""
        if intent.action != ANONYMIZE:
            return super().settle(intent, dataset, rule)
        if rule is None:
            raise StoreMisconfigured(
                f"{dataset.name}: an interrupted anonymization of rule {intent.rule!r} cannot be "
                "settled: the rule is no longer configured",
                store=self.name,
            )
        keys = list(dict.fromkeys(str(entry[0]) for entry in json.loads(intent.payload)))
        finished = self.done(dataset, rule, keys)
        done = [k for k in keys if k in finished]
        notes = (Note("done", done, RECOVERED),) if done else ()
        return BatchResult(acted=len(done), notes=notes)

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
            ours = [d for d in pending if d.action == target.rule.action]
            rows = sum(d.rows for d in ours)
            if not rows:
                found.append(count)
                continue
            by = max(d.gone_by for d in ours).date().isoformat()
            what = (
                "deleted records"
                if target.rule.action != ANONYMIZE
                else "anonymized records' original values"
            )
            note = (
                f"{rows} {what} still physically present in old table files "
                f"({self.unit} {', '.join(str(d.version) for d in ours)}): gone by {by}"
            )
            extra = {**count.extra, "physically_present": rows, "physically_gone_by": by}
            found.append(replace(count, notes=(*count.notes, note), extra=extra))
        return found


__all__ = ["ANONYMIZE", "EPOCH", "GONE", "PURGE", "Deleted", "LakeStore", "purged_what", "wall"]
