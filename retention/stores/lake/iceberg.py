"""The Iceberg store (pyiceberg, a SQL catalog): a dataset is a table ``NAMESPACE.NAME``.

Rows are read as Arrow, a page at a time, and judged by the same evaluator as listed objects.
A batch is deleted by one row filter — its keys, the rule, the holds and the keep rules again
(:mod:`.rowfilter`) — in one catalog commit (one snapshot, or two when pyiceberg drops whole
files and rewrites others: copy-on-write, no delete files), tagged with the dataset's name and
the batch in the snapshot summary and audited as "logically deleted (snapshot N)", its last.

An anonymize batch is one catalog commit too (``overwrite``): the rows of the keys whose every
row the same filter still matches, deleted by key and appended with their personal columns
anonymized (the SQL stores' strategies, :mod:`.anonymizing`), tagged ``retention.action`` and
``retention.rows``, audited "anonymized (snapshot N)"; their original values are in the older
snapshots' files until the same physical step.

The deleted rows stay in the files older snapshots reference (time travel). Once a delete
snapshot is older than ``purge_after`` (dataset, store, else the table's own
``history.expire.max-snapshot-age-ms``, 5 days by default) the next live run expires every
snapshot older than it and removes the files only those snapshots referenced (data files,
manifests, manifest lists): pyiceberg 0.12's ``expire_snapshots`` only drops snapshots from the
metadata and has no orphan-file removal, so this store removes those files itself, through the
table's FileIO. Each delete batch is audited again as "physically gone (expired at T, n files
removed)" only when no snapshot older than its last is left in the table and every data file
the batch replaced is gone from storage (the store deletes none outside the table's location);
a branch or tag head older than a delete cannot be expired, and that delete is not audited as
gone while it is there.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, BooleanExpression
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from sqlalchemy.exc import SQLAlchemyError

from ...datasets import Dataset, SubjectType
from ...durations import Duration
from ...errors import StoreError
from ...rules import Rule
from ...settings import IcebergStoreConfig, Settings
from ...timemath import add_duration
from ..base import BatchResult, Enforcement, Intent, Note, StoredIntent, SubjectSource, Target
from ..objects.records import PAGE_SIZE, DeleteResult, ObjectRecord
from ..objects.store import RECOVERED
from .anonymizing import anonymized
from .predicate import usable
from .rowfilter import delete_filter, keyed, span
from .table import ANONYMIZE, EPOCH, GONE, PURGE, Deleted, LakeStore, purged_what, wall

DATASET_TAG = "retention.dataset"  # in a delete snapshot's summary: the dataset it enforced
BATCH_TAG = "retention.batch"  # and the batch (one commit may write two snapshots)
ACTION_TAG = "retention.action"  # an anonymize batch's: "anonymize" (a delete has none)
ROWS_TAG = "retention.rows"  # an anonymize batch's: the rows it rewrote
DELETES = ("delete", "overwrite")  # the operations of our delete snapshots
AGE_PROPERTY = "history.expire.max-snapshot-age-ms"
DEFAULT_WINDOW = Duration(days=5)  # Iceberg's own default snapshot age
LEFT = "NoLongerDue: the delete filter (rule, holds, keep rules) no longer matched it"
UNCHANGED = "NoLongerDue: the anonymize filter (rule, holds, keep rules) no longer matched it"
NO_MATCH = "Delete operation did not match any records"  # pyiceberg's warning
FAILURES = (CommitFailedException, SQLAlchemyError, OSError, ValueError)
_UTC = ZoneInfo("UTC")


def window_of(text: str | None) -> Duration | None:
    """The table property ``history.expire.max-snapshot-age-ms`` as a duration (None: absent,
    not a whole number of milliseconds, or longer than any period can be)."""
    found = (text or "").strip()
    if not (found.isascii() and found.isdigit()):
        return None
    try:
        return Duration(seconds=int(found) // 1000)
    except ValueError:
        return None


def at(snapshot: Snapshot) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=snapshot.timestamp_ms)


def _count(snapshot: Snapshot, name: str) -> int:
    value = snapshot.summary.get(name) if snapshot.summary is not None else None
    return int(value) if value is not None and value.isascii() and value.isdigit() else 0


def removed_rows(snapshot: Snapshot) -> int:
    """The rows a delete snapshot removed: those of the files it dropped less those it wrote
    back (copy-on-write), from its summary."""
    return max(0, _count(snapshot, "deleted-records") - _count(snapshot, "added-records"))


def batch_rows(group: Sequence[Snapshot]) -> int:
    """The rows one batch (its snapshots) deleted, or anonymized: every snapshot of an
    anonymize batch carries the batch's count, so it is read once."""
    if action_of(group[-1]) == ANONYMIZE:
        return max(_count(s, ROWS_TAG) for s in group)
    return sum(removed_rows(s) for s in group)


def action_of(snapshot: Snapshot) -> str:
    """What the batch that wrote `snapshot` did: delete, or anonymize."""
    summary = snapshot.summary
    return ANONYMIZE if summary is not None and summary.get(ACTION_TAG) == ANONYMIZE else "delete"


def older(snapshots: Iterable[Snapshot], moment: dt.datetime) -> list[Snapshot]:
    return [s for s in snapshots if at(s) < moment]


class Files:
    """What a table's snapshots reach, each manifest read once (snapshots share most of them:
    a batch's last snapshot is the next batch's parent)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._live: dict[str, frozenset[str]] = {}

    def _manifest(self, manifest: Any) -> frozenset[str]:
        path = manifest.manifest_path
        if path not in self._live:
            entries = manifest.fetch_manifest_entry(self.table.io, discard_deleted=True)
            self._live[path] = frozenset(e.data_file.file_path for e in entries)
        return self._live[path]

    def data(self, snapshot: Snapshot) -> set[str]:
        """The data and delete files `snapshot` reads."""
        found: set[str] = set()
        for manifest in snapshot.manifests(self.table.io):
            found |= self._manifest(manifest)
        return found

    def reached(self, snapshots: Iterable[Snapshot]) -> set[str]:
        """Every file `snapshots` reach: manifest lists, manifests, data and delete files."""
        found: set[str] = set()
        for snapshot in snapshots:
            found.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(self.table.io):
                found.add(manifest.manifest_path)
                found |= self._manifest(manifest)
        return found


def _typed(key: str, type_: pa.DataType) -> int | str:
    return int(key) if pa.types.is_integer(type_) else key


def exists(table: Table, path: str) -> bool:
    return bool(table.io.new_input(path).exists())


class IcebergStore(LakeStore):
    """Iceberg tables in one SQL catalog."""

    kind = "iceberg"
    unit = "snapshots"

    def __init__(
        self,
        name: str,
        config: IcebergStoreConfig,
        settings: Settings | None = None,
        subject_sources: Callable[[SubjectType], SubjectSource] | None = None,
        clock: Callable[[], dt.datetime] = wall,
    ) -> None:
        super().__init__(name, config, settings, subject_sources, clock)
        self._catalog: SqlCatalog | None = None

    def catalog(self) -> SqlCatalog:
        """The catalog, opened on first use; it never creates its own tables in the database."""
        if self._catalog is None:
            config: IcebergStoreConfig = self.config
            try:
                self._catalog = SqlCatalog(
                    config.catalog_name,
                    uri=config.catalog.get_secret_value(),
                    warehouse="file://" + config.warehouse,
                    init_catalog_tables="false",
                )
            except FAILURES as exc:
                raise StoreError(f"catalog: {type(exc).__name__}", store=self.name) from None
        return self._catalog

    def table(self, dataset: Dataset) -> Table:
        name = dataset.config.table
        assert name is not None
        try:
            return self.catalog().load_table(name)
        except NoSuchTableError:
            raise StoreError(f"no iceberg table {name!r}", store=self.name) from None
        except SQLAlchemyError as exc:
            # the message may carry the catalog URL: say only what kind of failure it was
            raise StoreError(f"{name}: catalog {type(exc).__name__}", store=self.name) from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"{name}: {exc}", store=self.name) from None

    def schema(self, table: Table) -> pa.Schema:
        return table.schema().as_arrow()

    def window(self, dataset: Dataset, table: Table) -> Duration:
        """How long deleted rows stay readable at older snapshots before a run removes them."""
        config: IcebergStoreConfig = self.config
        own = window_of(table.properties.get(AGE_PROPERTY))
        return dataset.config.purge_after or config.purge_after or own or DEFAULT_WINDOW

    def mode(self, dataset: Dataset) -> str:
        return (
            "iceberg table: rows deleted or anonymized by key filter, one commit per batch; "
            "older snapshots expired and their files removed"
        )

    # -- reading -------------------------------------------------------------------------------

    def _scan(
        self, dataset: Dataset, table: Table, where: BooleanExpression | None = None
    ) -> Iterator[list[ObjectRecord]]:
        self.prepare(dataset, self.schema(table))
        scan = table.scan(
            row_filter=where or AlwaysTrue(), selected_fields=tuple(self.columns(dataset))
        )
        try:
            for batch in scan.to_arrow_batch_reader():
                for start in range(0, batch.num_rows, PAGE_SIZE):
                    rows = batch.slice(start, PAGE_SIZE).to_pylist()
                    yield [self.record(dataset, row) for row in rows]
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None

    def pages(self, dataset: Dataset, prefix: str | None = None) -> Iterator[list[ObjectRecord]]:
        yield from self._scan(dataset, self.table(dataset))

    def _keyed(self, dataset: Dataset, table: Table, keys: Sequence[str]) -> set[str]:
        """Which of `keys` the table's current snapshot has: a scan of the key column over
        the keys' span, matched against the keys in Arrow."""
        (column,) = dataset.key_columns
        type_ = self.schema(table).field(column).type
        values = pa.array(
            [int(k) if pa.types.is_integer(type_) else k for k in usable(keys, type_)], type_
        )
        scan = table.scan(row_filter=span(column, keys, type_), selected_fields=(column,))
        found: set[str] = set()
        try:
            for batch in scan.to_arrow_batch_reader():
                hits = batch.column(column).filter(pc.is_in(batch.column(column), values))
                found.update(str(v) for v in hits.to_pylist())
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        return found

    def arrow_schema(self, dataset: Dataset) -> pa.Schema:
        return self.schema(self.table(dataset))

    def rows(
        self,
        dataset: Dataset,
        keys: Sequence[str],
        columns: Sequence[str] | None,
        table: Table | None = None,
    ) -> pa.Table:
        """The rows of `keys` (their `columns`, else all), in the current snapshot."""
        table = table or self.table(dataset)
        (column,) = dataset.key_columns
        where = keyed(column, keys, self.schema(table).field(column).type)
        selected = tuple(columns) if columns is not None else ("*",)
        try:
            return table.scan(row_filter=where, selected_fields=selected).to_arrow()
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None

    def head(self, dataset: Dataset, key: str) -> ObjectRecord | None:
        table = self.table(dataset)
        (column,) = dataset.key_columns
        where = keyed(column, [key], self.schema(table).field(column).type)
        for page in self._scan(dataset, table, where):
            return page[0]
        return None

    def absent(self, dataset: Dataset, entries: Sequence[Sequence[Any]]) -> list[str]:
        keys = [str(entry[0]) for entry in entries]
        present = self._keyed(dataset, self.table(dataset), keys)
        return [k for k in keys if k not in present]

    def reach(self, dataset: Dataset | None = None) -> list[str]:
        try:
            self.catalog().list_namespaces()
        except StoreError as exc:
            return [str(exc)]
        except FAILURES as exc:
            return [f"catalog {self.config.catalog_name!r}: {type(exc).__name__}"]
        if dataset is None:
            return []
        if len(dataset.key_columns) != 1:
            return ["an iceberg dataset has one key column"]
        if "." not in (dataset.config.table or ""):
            return [f"table {dataset.config.table!r} is not NAMESPACE.NAME"]
        try:
            schema = self.schema(self.table(dataset))
        except StoreError as exc:
            return [str(exc)]
        missing = [c for c in self.columns(dataset) if c not in schema.names]
        return [f"table {dataset.config.table!r} has no column {c!r}" for c in missing]

    # -- the logical step ----------------------------------------------------------------------

    def delete(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """One snapshot deleting the batch's rows by their keys, the rule, the holds the batch
        was judged with (re-read before it) and the keep rules in its filter; a row the filter
        no longer matches is left (and reported) for the next run, and a concurrent writer's
        commit fails this one (the catalog's optimistic check)."""
        target, holds = self.acting()
        table = self.table(dataset)
        keys = [r.key for r in records]
        present = self._keyed(dataset, table, keys)
        if not present:
            return DeleteResult()
        schema = self.schema(table)
        where = delete_filter(sorted(present), target.rule, dataset, target.now, holds, schema)
        before = table.metadata.current_snapshot_id
        try:
            with warnings.catch_warnings():
                # every row stopped being due or became held since it was judged: reported below
                warnings.filterwarnings("ignore", NO_MATCH)
                tags = {DATASET_TAG: dataset.name, BATCH_TAG: uuid.uuid4().hex}
                table.delete(where, snapshot_properties=tags)
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        after = table.metadata.current_snapshot_id
        left = self._keyed(dataset, table, sorted(present))
        return DeleteResult(
            deleted=tuple(k for k in keys if k in present and k not in left),
            failed={k: LEFT for k in keys if k in left},
            detail=f"logically deleted (snapshot {after})" if after != before else None,
        )

    def anonymize(self, dataset: Dataset, records: Sequence[ObjectRecord]) -> DeleteResult:
        """One catalog commit rewriting the batch's rows with their personal columns
        anonymized (the SQL stores' strategies, computed here): the rows of the keys whose every
        row the filter (rule, holds the batch was judged with, keep rules) still matches are
        read, deleted by key and appended anonymized in one overwrite, so no row is lost or
        doubled; a key the filter no longer matches is left (and reported) for the next run,
        and a concurrent writer's commit fails this one."""
        target, holds = self.acting()
        table = self.table(dataset)
        schema = self.schema(table)
        fields = self.prepare(dataset, schema)[target.rule.id]
        (key,) = dataset.key_columns
        keys = [r.key for r in records]
        every = self.rows(dataset, keys, None, table)
        if not every.num_rows:
            return DeleteResult()
        where = delete_filter(keys, target.rule, dataset, target.now, holds, schema)
        try:
            scan = table.scan(row_filter=where, selected_fields=(key,))
            matching = Counter(str(k) for k in scan.to_arrow().column(key).to_pylist())
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        present = Counter(str(k) for k in every.column(key).to_pylist())
        chosen = sorted(k for k, n in present.items() if matching.get(k) == n)
        left = {k: UNCHANGED for k in present if k not in chosen}
        if not chosen:
            return DeleteResult(failed=left)
        type_ = schema.field(key).type
        values = pa.array([_typed(k, type_) for k in chosen], type_)
        rows = every.filter(pc.is_in(every.column(key), values))
        for column, array in anonymized(fields, rows, schema).items():
            rows = rows.set_column(rows.schema.get_field_index(column), column, array)
        tags = {
            DATASET_TAG: dataset.name,
            BATCH_TAG: uuid.uuid4().hex,
            ACTION_TAG: ANONYMIZE,
            ROWS_TAG: str(rows.num_rows),
        }
        try:
            table.overwrite(
                rows.cast(schema),
                overwrite_filter=keyed(key, chosen, type_),
                snapshot_properties=tags,
            )
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        finished = self.done(dataset, target.rule, chosen)
        left |= {k: UNCHANGED for k in chosen if k not in finished}
        return DeleteResult(
            deleted=tuple(k for k in keys if k in finished),
            failed=left,
            detail=f"anonymized (snapshot {table.metadata.current_snapshot_id})",
        )

    # -- the physical step ---------------------------------------------------------------------

    def batches(self, dataset: Dataset, table: Table) -> dict[int, list[Snapshot]]:
        """This dataset's delete batches still in the table, by their last snapshot: one
        commit is one snapshot, or two when pyiceberg drops whole files (a ``delete``
        snapshot) and rewrites others (an ``overwrite`` after it)."""
        groups: dict[str, list[Snapshot]] = {}
        for snapshot in table.metadata.snapshots:  # in commit order
            summary = snapshot.summary
            if summary is None or summary.get(DATASET_TAG) != dataset.name:
                continue
            if summary.operation.value in DELETES:
                batch = summary.get(BATCH_TAG) or str(snapshot.snapshot_id)
                groups.setdefault(batch, []).append(snapshot)
        return {group[-1].snapshot_id: group for group in groups.values()}

    def deleted(self, dataset: Dataset, table: Table | None = None) -> list[Deleted]:
        """This dataset's delete batches that some older snapshot of the table (which may
        still read their rows) outlives, by their last snapshot, oldest first."""
        table = table or self.table(dataset)
        window = self.window(dataset, table)
        snapshots = table.metadata.snapshots
        found = []
        for last, group in self.batches(dataset, table).items():
            when = at(group[-1])
            if not older(snapshots, when):
                continue
            rows = batch_rows(group)
            by = add_duration(when, window, _UTC)
            found.append(Deleted(last, when, rows, by, action_of(group[-1])))
        return sorted(found, key=lambda d: d.at)

    def purge(self, target: Target, run: Enforcement) -> Iterator[BatchResult]:
        """Expire the snapshots older than the newest delete snapshot whose window has passed,
        remove the files only they reached, and audit each delete whose rows are really gone.

        A branch or tag head cannot be expired: when one is older than that delete, the
        delete snapshots themselves are kept too, so that the plan goes on showing their rows
        as present (they are, at that head) until it is removed."""
        dataset = target.dataset
        table = self.table(dataset)
        now = self.clock()
        pending = self.deleted(dataset, table)
        due = [d for d in pending if d.gone_by <= now]
        if not due or run.commit is None:
            return
        meta = table.metadata
        protected = {ref.snapshot_id for ref in meta.refs.values()}
        cutoff = max(d.at for d in due)
        stuck = [s.snapshot_id for s in older(meta.snapshots, cutoff) if s.snapshot_id in protected]
        batches = self.batches(dataset, table)
        ours = {s.snapshot_id for d in pending for s in batches[d.version]}
        spared = protected | (ours if stuck else set())
        ids = {s.snapshot_id for s in older(meta.snapshots, cutoff)} - spared
        index = Files(table)
        try:
            doomed = index.reached(s for s in meta.snapshots if s.snapshot_id in ids)
            doomed -= index.reached(s for s in meta.snapshots if s.snapshot_id not in ids)
            gone = [self._replaced(index, d, batches[d.version]) for d in due]
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        payload = {"expire": sorted(ids), "files": sorted(doomed), "gone": gone}
        ticket = run.commit.intend(
            Intent(
                rule=target.rule.id,
                dataset=dataset.name,
                action=PURGE,
                keys=[],
                payload=json.dumps(payload),
            )
        )
        run.probe.reached("write")
        try:
            if ids:
                table.maintenance.expire_snapshots().by_ids(sorted(ids)).commit()
            removed = self._remove(dataset, sorted(doomed))
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        detail = f"expired at {now.isoformat(timespec='seconds')}, {removed} files removed"
        remarks = tuple(
            f"{dataset.name}: snapshot {s} is a branch or tag head older than its deletes, "
            "so the rows they deleted stay readable there until it is removed"
            for s in stuck
        )
        result = BatchResult(
            notes=self._gone_notes(dataset, gone, detail), audited=True, remarks=remarks
        )
        run.commit.done(ticket, result)
        yield result

    def _replaced(
        self, index: Files, deleted: Deleted, batch: Sequence[Snapshot]
    ) -> dict[str, Any]:
        """One delete batch: its last snapshot, its moment, its rows and the data files it
        dropped (None: the snapshot before it is no longer in the table, so they cannot be
        known)."""
        before = batch[0].parent_snapshot_id
        parent = None if before is None else index.table.metadata.snapshot_by_id(before)
        dropped = None
        if parent is not None:
            dropped = sorted(index.data(parent) - index.data(batch[-1]))
        return {
            "snapshot": deleted.version,
            "at": batch[-1].timestamp_ms,
            "rows": deleted.rows,
            "files": dropped,
            "action": deleted.action,
        }

    def _remove(self, dataset: Dataset, paths: Sequence[str]) -> int:
        """Delete those of `paths` no snapshot of the table (re-read) reaches and that lie in
        the table's own location (a file added from elsewhere may not be the table's to
        delete: it stays, and its delete is not audited as gone); how many went."""
        table = self.table(dataset)
        reachable = Files(table).reached(table.metadata.snapshots)
        home = table.location().rstrip("/") + "/"
        removed = 0
        for path in paths:
            if path in reachable or not path.startswith(home) or not exists(table, path):
                continue
            table.io.delete(path)
            removed += 1
        return removed

    def _gone_notes(
        self, dataset: Dataset, gone: Sequence[dict[str, Any]], detail: str
    ) -> tuple[Note, ...]:
        """A "physically gone" entry for each delete that no older snapshot of the table
        (re-read) outlives and whose dropped data files are known and all gone from storage:
        anything less and its rows may still be read, so nothing is said (fail closed)."""
        table = self.table(dataset)
        notes = []
        for deleted in gone:
            moment = EPOCH + dt.timedelta(milliseconds=deleted["at"])
            if deleted["files"] is None or older(table.metadata.snapshots, moment):
                continue
            if any(exists(table, path) for path in deleted["files"]):
                continue
            what = purged_what(deleted.get("action", "delete"))
            notes.append(
                Note(
                    GONE,
                    keys=[],
                    detail=f"{detail}; {what} at snapshot {deleted['snapshot']}",
                    action=PURGE,
                    count=deleted["rows"],
                )
            )
        return tuple(notes)

    # -- recovery ------------------------------------------------------------------------------

    def settle(self, intent: StoredIntent, dataset: Dataset, rule: Rule | None) -> BatchResult:
        """A physical step that was interrupted: when its expiry was committed, the files it
        meant to remove that no snapshot reaches are removed now (else nothing would ever remove
        them), and each delete whose rows are gone is audited; when it was not, the next run
        does it all again."""
        if intent.action != PURGE:
            return super().settle(intent, dataset, rule)
        payload = json.loads(intent.payload)
        table = self.table(dataset)
        if any(table.metadata.snapshot_by_id(s) is not None for s in payload["expire"]):
            return BatchResult()
        try:
            removed = self._remove(dataset, payload["files"])
        except FAILURES as exc:
            raise StoreError(f"{dataset.config.table}: {exc}", store=self.name) from None
        detail = f"{RECOVERED}, {removed} files removed"
        return BatchResult(notes=self._gone_notes(dataset, payload["gone"], detail))

    def dispose(self) -> None:
        if self._catalog is not None:
            self._catalog.engine.dispose()
            self._catalog = None


__all__ = ["IcebergStore", "window_of"]
