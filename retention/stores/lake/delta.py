"""The Delta Lake store (delta-rs): a dataset is a table folder under the store's root.

Rows are read as Arrow, a page at a time, and judged by the same evaluator as listed objects
(:mod:`retention.stores.objects.evaluate`): declared timestamps, the subject's lifecycle events
from its SQL store, holds and keep rules. A batch is deleted in one table commit — a merge of its
keys whose delete condition is the rule, the holds and the keep rules again (:mod:`.predicate`) —
tagged with the dataset's name and audited as "logically deleted (version N)".

The deleted rows are still in the files older versions reference (time travel) until the table
is vacuumed. Once a delete commit is older than ``purge_after`` (dataset, store, else the
table's own ``delta.deletedFileRetentionDuration``, 7 days by default) the next live run vacuums
the table, and each such commit is audited again as "physically gone (vacuum at T, n files
removed)": only when every file it removed is really gone. delta-rs deletes by rewriting files
(copy-on-write), so no deletion vectors are written; a table whose protocol requires them is
refused by delta-rs and reported as a store error. The vacuum commits name the versions they
purged, so a version is audited as gone once.

An anonymize batch is one commit too: a merge of its keys and their anonymized values (the
SQL stores' strategies, :mod:`.anonymizing`) that updates a row only where the same predicate
still holds, tagged ``retention.action: anonymize`` and audited "anonymized (version N)"; the
original values stay in the files older versions reference until the same vacuum.

A root is a local directory or ``s3://bucket/prefix``. On S3, delta-rs is given the store's
credentials and endpoint as storage options (never logged) and commits with S3's conditional
writes, and "physically gone" is judged by asking the bucket for each removed file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
import pyarrow.fs as pafs  # type: ignore[import-untyped]
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from deltalake.fs import DeltaStorageHandler

from ...datasets import Dataset, SubjectType
from ...durations import Duration
from ...errors import StoreError
from ...rules import Rule
from ...settings import DeltaStoreConfig, Settings
from ...timemath import add_duration
from ..base import (
    BatchResult,
    Enforcement,
    Intent,
    Note,
    StoredIntent,
    SubjectSource,
    Target,
)
from ..objects.records import PAGE_SIZE, DeleteResult, ObjectRecord
from ..objects.store import RECOVERED
from .anonymizing import anonymized
from .predicate import guard, quote
from .table import ANONYMIZE, EPOCH, GONE, PURGE, Deleted, LakeStore, purged_what, wall

DATASET_TAG = "retention.dataset"  # on a delete commit: the dataset it enforced
ACTION_TAG = "retention.action"  # on an anonymize commit: "anonymize" (a delete has none)
PURGED_TAG = "retention.purged"  # on a vacuum commit: the delete versions it made gone
DELETES = ("DELETE", "MERGE")  # the operations of our delete commits
LEFT = "NoLongerDue: the delete predicate (rule, holds, keep rules) no longer matched it"
UNCHANGED = "NoLongerDue: the anonymize predicate (rule, holds, keep rules) no longer matched it"
DEFAULT_WINDOW = Duration(days=7)  # delta's own default deletedFileRetentionDuration
_UTC = ZoneInfo("UTC")
_INTERVAL = re.compile(r"^\s*interval\s+(\d+)\s+(week|day|hour|minute|second)s?\s*$", re.I)


def window_of(text: str | None) -> Duration | None:
    """A table property ``interval 7 days`` as a duration (None: absent or unreadable)."""
    found = _INTERVAL.match(text or "")
    if found is None:
        return None
    count, unit = int(found[1]), found[2].lower()
    if unit == "week":
        return Duration(days=7 * count)
    return Duration(**{unit + "s": count})


def storage_options(config: DeltaStoreConfig) -> dict[str, str]:
    """What delta-rs is told of the store's root: nothing for a local one; for ``s3://`` the
    region, endpoint and keys configured (else delta-rs's own chain finds them)."""
    if not config.on_s3:
        return {}
    options: dict[str, str] = {}
    if config.region is not None:
        options["AWS_REGION"] = config.region
    if config.endpoint_url is not None:
        options["AWS_ENDPOINT_URL"] = config.endpoint_url
        options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        if config.endpoint_url.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if config.access_key_id is not None and config.secret_access_key is not None:
        options["AWS_ACCESS_KEY_ID"] = config.access_key_id.get_secret_value()
        options["AWS_SECRET_ACCESS_KEY"] = config.secret_access_key.get_secret_value()
    return options


def delete_keys(
    table: DeltaTable,
    dataset: Dataset,
    keys: Sequence[str],
    condition: str | None,
    schema: pa.Schema,
) -> None:
    """One commit deleting the rows of `keys` that `condition` still matches: a merge against
    the keys as a table (a hash join: a predicate listing thousands of keys is evaluated as
    as many ORs, 15 times slower at 5,000), tagged with the dataset's name."""
    (column,) = dataset.key_columns
    type_ = schema.field(column).type
    values = [int(k) for k in keys] if pa.types.is_integer(type_) else list(keys)
    source = pa.table({column: pa.array(values, type_)})
    name = quote(column)
    table.merge(
        source,
        predicate=f"target.{name} = source.{name}",
        source_alias="source",
        target_alias="target",
        commit_properties=CommitProperties(custom_metadata={DATASET_TAG: dataset.name}),
    ).when_matched_delete(predicate=condition).execute()


def deleted_rows(entry: Mapping[str, Any]) -> int:
    """How many rows one of our delete commits (a DELETE or a MERGE) removed, or one of our
    anonymize commits (a MERGE) rewrote."""
    metrics = entry.get("operationMetrics", {})
    if entry.get(ACTION_TAG) == ANONYMIZE:
        return int(metrics.get("num_target_rows_updated", 0))
    return int(metrics.get("num_deleted_rows", metrics.get("num_target_rows_deleted", 0)))


def update_keys(
    table: DeltaTable,
    dataset: Dataset,
    source: pa.Table,
    condition: str | None,
) -> None:
    """One commit setting the personal columns of the rows of `source` (their keys and new
    values) that `condition` still matches, tagged with the dataset's name and the action."""
    (column,) = dataset.key_columns
    name = quote(column)
    updates = {quote(c): f"source.{quote(c)}" for c in source.column_names if c != column}
    metadata = {DATASET_TAG: dataset.name, ACTION_TAG: ANONYMIZE}
    table.merge(
        source,
        predicate=f"target.{name} = source.{name}",
        source_alias="source",
        target_alias="target",
        commit_properties=CommitProperties(custom_metadata=metadata),
    ).when_matched_update(updates, predicate=condition).execute()


class DeltaStore(LakeStore):
    """Delta tables under one root directory."""

    kind = "delta"

    def __init__(
        self,
        name: str,
        config: DeltaStoreConfig,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
        clock: Callable[[], dt.datetime] = wall,
    ) -> None:
        super().__init__(name, config, settings, subject_sources, clock)
        self.root = config.root
        self.on_s3 = config.on_s3
        self.options = storage_options(config)

    def uri(self, dataset: Dataset) -> str:
        assert dataset.config.table is not None
        if self.on_s3:
            return f"{self.root}/{dataset.config.table.strip('/')}"
        return str(Path(self.root) / dataset.config.table)

    def table(self, dataset: Dataset, version: int | None = None) -> DeltaTable:
        try:
            return DeltaTable(self.uri(dataset), version=version, storage_options=self.options)
        except TableNotFoundError:
            raise StoreError(f"no delta table {dataset.config.table!r}", store=self.name) from None
        except (DeltaError, OSError) as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None

    def window(self, dataset: Dataset, table: DeltaTable) -> Duration:
        """How long deleted rows stay in old files before a run vacuums them."""
        config: DeltaStoreConfig = self.config
        own = table.metadata().configuration.get("delta.deletedFileRetentionDuration")
        return dataset.config.purge_after or config.purge_after or window_of(own) or DEFAULT_WINDOW

    def mode(self, dataset: Dataset) -> str:
        return (
            "delta table: rows deleted or anonymized by key predicate, one commit per batch; "
            "old files vacuumed"
        )

    # -- reading -------------------------------------------------------------------------------

    def _scan(
        self, dataset: Dataset, table: DeltaTable, where: Any = None
    ) -> Iterator[list[ObjectRecord]]:
        source = table.to_pyarrow_dataset()
        self.prepare(dataset, source.schema)
        scanner = source.scanner(columns=self.columns(dataset), filter=where, batch_size=PAGE_SIZE)
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield [self.record(dataset, row) for row in batch.to_pylist()]

    def pages(self, dataset: Dataset, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        yield from self._scan(dataset, self.table(dataset))

    def _keyed(self, dataset: Dataset, table: DeltaTable, keys: Sequence[str]) -> set[str]:
        """Which of `keys` the table's current version has."""
        (column,) = dataset.key_columns
        type_ = table.to_pyarrow_dataset().schema.field(column).type
        values = pa.array([int(k) if pa.types.is_integer(type_) else k for k in keys], type_)
        where = pc.field(column).isin(values)
        return {r.key for page in self._scan(dataset, table, where) for r in page}

    def arrow_schema(self, dataset: Dataset) -> pa.Schema:
        return self.table(dataset).to_pyarrow_dataset().schema

    def rows(
        self,
        dataset: Dataset,
        keys: Sequence[str],
        columns: Sequence[str],
        table: DeltaTable | None = None,
    ) -> pa.Table:
        table = table or self.table(dataset)
        (column,) = dataset.key_columns
        source = table.to_pyarrow_dataset()
        type_ = source.schema.field(column).type
        usable = [k for k in keys if not pa.types.is_integer(type_) or re.fullmatch(r"[+-]?\d+", k)]
        values = pa.array([int(k) if pa.types.is_integer(type_) else k for k in usable], type_)
        try:
            return source.to_table(columns=list(columns), filter=pc.field(column).isin(values))
        except (DeltaError, OSError) as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None

    def head(self, dataset: Dataset, key: str) -> ObjectRecord | None:
        table = self.table(dataset)
        (column,) = dataset.key_columns
        type_ = table.to_pyarrow_dataset().schema.field(column).type
        if pa.types.is_integer(type_) and not re.fullmatch(r"[+-]?\d+", key):
            return None
        values = pa.array([int(key) if pa.types.is_integer(type_) else key], type_)
        for page in self._scan(dataset, table, pc.field(column).isin(values)):
            return page[0]
        return None

    def absent(self, dataset: Dataset, entries: Sequence[Sequence[Any]]) -> list[str]:
        keys = [str(entry[0]) for entry in entries]
        present = self._keyed(dataset, self.table(dataset), keys)
        return [k for k in keys if k not in present]

    def reach(self, dataset: Dataset | None = None) -> list[str]:
        if not self.on_s3 and not Path(self.root).is_dir():
            return [f"root {self.root} is not a directory"]
        if dataset is None:
            return []
        if len(dataset.key_columns) != 1:
            return ["a delta dataset has one key column"]
        try:
            schema = self.table(dataset).to_pyarrow_dataset().schema
        except StoreError as exc:
            return [str(exc)]
        missing = [c for c in self.columns(dataset) if c not in schema.names]
        return [f"table {dataset.config.table!r} has no column {c!r}" for c in missing]

    # -- the logical step ----------------------------------------------------------------------

    def delete(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """One commit deleting the batch's rows by their keys, the rule, the holds the batch was
        judged with (re-read before it) and the keep rules in its predicate; a row the
        predicate no longer matches is left (and reported) for the next run, and a concurrent
        writer's conflicting commit fails this one."""
        target, holds = self.acting()
        table = self.table(dataset)
        keys = [r.key for r in records]
        present = self._keyed(dataset, table, keys)
        if not present:
            return DeleteResult()
        schema = table.to_pyarrow_dataset().schema
        condition = guard(target.rule, dataset, target.now, holds, schema)
        try:
            delete_keys(table, dataset, sorted(present), condition, schema)
        except (DeltaError, OSError) as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        left = self._keyed(dataset, table, sorted(present))
        detail = f"logically deleted (version {table.version()})"
        return DeleteResult(
            deleted=tuple(k for k in keys if k in present and k not in left),
            failed={k: LEFT for k in keys if k in left},
            detail=detail,
        )

    def anonymize(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """One commit setting the batch's personal columns to their anonymized values (the
        SQL stores' strategies, computed here), where the rule, the holds the batch was
        judged with and the keep rules still match the row; a row they no longer match is
        left (and reported) for the next run."""
        target, holds = self.acting()
        table = self.table(dataset)
        schema = table.to_pyarrow_dataset().schema
        fields = self.prepare(dataset, schema)[target.rule.id]
        (key,) = dataset.key_columns
        keys = [r.key for r in records]
        current = self.rows(dataset, keys, [key, *fields], table)
        if not current.num_rows:
            return DeleteResult()
        present = sorted(str(k) for k in current.column(key).to_pylist())
        source = pa.table({key: current.column(key), **anonymized(fields, current, schema)})
        condition = guard(target.rule, dataset, target.now, holds, schema)
        try:
            update_keys(table, dataset, source, condition)
        except (DeltaError, OSError) as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        finished = self.done(dataset, target.rule, present)
        return DeleteResult(
            deleted=tuple(k for k in keys if k in finished),
            failed={k: UNCHANGED for k in present if k not in finished},
            detail=f"anonymized (version {table.version()})",
        )

    # -- the physical step ---------------------------------------------------------------------

    def deleted(self, dataset: Dataset, table: DeltaTable | None = None) -> list[Deleted]:
        """This dataset's delete commits not yet audited as physically gone, oldest first."""
        table = table or self.table(dataset)
        history = table.history()
        purged = {
            int(v)
            for entry in history
            for v in str(entry.get(PURGED_TAG, "")).split(",")
            if v.strip().isdigit()
        }
        window = self.window(dataset, table)
        found = []
        for entry in history:
            if entry.get(DATASET_TAG) != dataset.name or entry.get("operation") not in DELETES:
                continue
            if entry["version"] in purged:
                continue
            at = EPOCH + dt.timedelta(milliseconds=int(entry["timestamp"]))
            rows = deleted_rows(entry)
            action = ANONYMIZE if entry.get(ACTION_TAG) == ANONYMIZE else "delete"
            by = add_duration(at, window, _UTC)
            found.append(Deleted(entry["version"], at, rows, by, action))
        return sorted(found, key=lambda d: d.version)

    def removed_files(self, dataset: Dataset, version: int) -> set[str]:
        """The files commit `version` took out of the table (they still hold its rows)."""
        before = set(self.table(dataset, version - 1).file_uris())
        return before - set(self.table(dataset, version).file_uris())

    def gone(self, dataset: Dataset, version: int) -> bool:
        """Whether every file delete commit `version` removed is gone from storage."""
        try:
            files = self.removed_files(dataset, version)
        except StoreError:
            # the log before it was cleaned up, nothing can reach those files; anything else
            # (a bucket that did not answer) says nothing: not gone (fail closed)
            log = f"{self.uri(dataset)}/_delta_log/{version - 1:020d}.json"
            return not self.present(dataset, {log})
        return not self.present(dataset, files)

    def present(self, dataset: Dataset, files: set[str]) -> bool:
        """Whether any of the table's `files` (as :meth:`DeltaTable.file_uris` names them) is
        still in storage."""
        if not self.on_s3:
            return any(Path(f.removeprefix("file://")).exists() for f in files)
        home = self.uri(dataset) + "/"
        if any(not f.startswith(home) for f in files):
            return True  # a file outside the table's folder: nothing says it is gone
        storage = pafs.PyFileSystem(DeltaStorageHandler(self.uri(dataset), self.options))
        try:
            found = storage.get_file_info([f.removeprefix(home) for f in sorted(files)])
        except (DeltaError, OSError) as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        return any(info.type != pafs.FileType.NotFound for info in found)

    def purge(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        """Vacuum the table when one of its delete commits has passed its window; audit each
        commit whose files are really gone."""
        dataset = target.dataset
        table = self.table(dataset)
        now = self.clock()
        due = [d for d in self.deleted(dataset, table) if d.gone_by <= now]
        if not due or run.commit is None:
            return
        versions = [d.version for d in due]
        ticket = run.commit.intend(
            Intent(
                rule=target.rule.id,
                dataset=dataset.name,
                action=PURGE,
                keys=[],
                payload=json.dumps({"versions": versions}),
            )
        )
        run.probe.reached("write")
        # delta removes what was tombstoned more than this many whole hours before its own now
        hours = max(0, math.floor((wall() - max(d.at for d in due)).total_seconds() / 3600))
        try:
            removed = table.vacuum(
                retention_hours=hours,
                dry_run=False,
                enforce_retention_duration=False,
                commit_properties=CommitProperties(
                    custom_metadata={PURGED_TAG: ",".join(map(str, versions))}
                ),
            )
        except (DeltaError, OSError) as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        detail = f"vacuum at {now.isoformat(timespec='seconds')}, {len(removed)} files removed"
        result = BatchResult(notes=self._gone_notes(dataset, due, detail), audited=True)
        run.commit.done(ticket, result)
        yield result

    def _gone_notes(
        self, dataset: Dataset, due: Sequence[Deleted], detail: str
    ) -> tuple[Note, ...]:
        return tuple(
            Note(
                GONE,
                keys=[],
                detail=f"{detail}; {purged_what(d.action)} at version {d.version}",
                action=PURGE,
                count=d.rows,
            )
            for d in due
            if self.gone(dataset, d.version)
        )

    # -- recovery ------------------------------------------------------------------------------

    def settle(self, intent: StoredIntent, dataset: Dataset, rule: Rule | None) -> BatchResult:
        if intent.action != PURGE:
            return super().settle(intent, dataset, rule)
        versions = set(json.loads(intent.payload)["versions"])
        table = self.table(dataset)
        history = {e["version"]: e for e in table.history() if e.get("operation") in DELETES}
        due = [
            Deleted(
                v,
                EPOCH,
                deleted_rows(history[v]),
                EPOCH,
                ANONYMIZE if history[v].get(ACTION_TAG) == ANONYMIZE else "delete",
            )
            for v in sorted(versions)
            if v in history
        ]
        return BatchResult(notes=self._gone_notes(dataset, due, RECOVERED))


__all__ = ["Deleted", "DeltaStore", "delete_keys", "deleted_rows", "storage_options", "window_of"]
