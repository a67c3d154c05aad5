"""Helpers for the lake-table tests: Delta tables of records written with delta-rs, Iceberg
tables written with pyiceberg into a SQLite catalog, and what each table version holds."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from pyiceberg.catalog.sql import SqlCatalog

from ..scenario import utc

# The lake tests' twelve records: record i belongs to account 1 + i % 4; i <= 8 are old (due),
# account 2 is held.
NOW = utc("2026-06-01 00:00:00")
OLD = NOW - dt.timedelta(days=400)
RECENT = NOW - dt.timedelta(days=2)
RECORDS = range(1, 13)
HOLD = {"holds": [{"id": "case", "subjects": {"account": ["2"]}}]}
DUE = {i for i in RECORDS if i <= 8}
HELD = {i for i in DUE if 1 + i % 4 == 2}
GONE = DUE - HELD

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("account_id", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("email", pa.string()),
    ]
)


def write_records(
    path: Path | str,
    rows: Iterable[tuple[int, int, dt.datetime]],
    *,
    files: int = 1,
    options: dict[str, str] | None = None,
) -> None:
    """A Delta table of `rows` (id, account, created), in `files` commits of one file each, at
    a local `path` or an ``s3://`` URI (with delta-rs storage `options`)."""
    rows = list(rows)
    size = max(1, -(-len(rows) // files))
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        table = pa.table(
            {
                "id": [r[0] for r in chunk],
                "account_id": [r[1] for r in chunk],
                "created_at": [r[2] for r in chunk],
                "email": [f"person{r[0]}@example.com" for r in chunk],
            },
            schema=SCHEMA,
        )
        write_deltalake(str(path), table, mode="append", storage_options=options)


def delta_s3_store(root: str, endpoint: str, **fields: Any) -> dict[str, Any]:
    """A `delta` store entry for tables under the ``s3://`` `root` of a moto server."""
    return {
        "kind": "delta",
        "root": root,
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "access_key_id": "testing",
        "secret_access_key": "testing",
        **fields,
    }


def delta_s3_options(endpoint: str) -> dict[str, str]:
    """The delta-rs storage options the tests write and read moto tables with."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def delta_column(
    path: Path | str,
    column: str,
    version: int | None = None,
    options: dict[str, str] | None = None,
) -> dict[int, Any] | None:
    """Record id -> `column` at table version `version` (latest: None), or None when that
    version can no longer be read (its files were vacuumed)."""
    try:
        table = DeltaTable(str(path), version=version, storage_options=options)
        read = table.to_pyarrow_table(columns=list(dict.fromkeys(["id", column])))
    except FileNotFoundError:
        return None
    except OSError as exc:  # on S3: the object store's "not found"
        if "not found" not in str(exc):
            raise
        return None
    return dict(zip(read.column("id").to_pylist(), read.column(column).to_pylist(), strict=True))


def ids_at(
    path: Path | str, version: int | None = None, options: dict[str, str] | None = None
) -> set[int] | None:
    """The record ids table version `version` holds (latest: None), or None when that
    version can no longer be read (its files were vacuumed)."""
    found = delta_column(path, "id", version, options)
    return None if found is None else set(found)


def delta_versions(path: Path | str, options: dict[str, str] | None = None) -> range:
    """Every version number the table has had."""
    return range(DeltaTable(str(path), storage_options=options).version() + 1)


def readable_anywhere(path: Path | str, record: int, options: dict[str, str] | None = None) -> bool:
    """Whether `record` can still be read at any version of the table (time travel)."""
    return any(record in (ids_at(path, v, options) or set()) for v in delta_versions(path, options))


def catalog_url(directory: Path) -> str:
    """Where the tests' SQL catalog of `directory` is: a PostgreSQL database a test put there
    (catalog.url), else SQLite (catalog.db)."""
    pointer = directory / "catalog.url"
    if pointer.exists():
        return pointer.read_text()
    return f"sqlite:///{directory / 'catalog.db'}"


def iceberg_catalog(directory: Path, url: str | None = None) -> SqlCatalog:
    """The SQL catalog of `directory` (SQLite unless `url` names another database, which is
    then remembered for the directory), its warehouse `directory`/warehouse."""
    (directory / "warehouse").mkdir(parents=True, exist_ok=True)
    if url is not None:
        (directory / "catalog.url").write_text(url)
    return SqlCatalog(
        "default", uri=catalog_url(directory), warehouse=f"file://{directory / 'warehouse'}"
    )


def iceberg_store(directory: Path, **fields: Any) -> dict[str, Any]:
    """The store config of the catalog :func:`iceberg_catalog` made in `directory`."""
    return {
        "kind": "iceberg",
        "catalog": catalog_url(directory),
        "warehouse": str(directory / "warehouse"),
        **fields,
    }


def write_iceberg(
    directory: Path,
    name: str,
    rows: Iterable[tuple[int, int, dt.datetime]],
    *,
    files: int = 1,
    url: str | None = None,
) -> None:
    """An Iceberg table `name` (NAMESPACE.NAME) of `rows` (id, account, created), in `files`
    appends (snapshots) of one file each, in the catalog of `directory` (or at `url`)."""
    catalog = iceberg_catalog(directory, url)
    catalog.create_namespace_if_not_exists(name.split(".")[0])
    table = catalog.create_table(name, schema=SCHEMA)
    rows = list(rows)
    size = max(1, -(-len(rows) // files))
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        table.append(
            pa.table(
                {
                    "id": [r[0] for r in chunk],
                    "account_id": [r[1] for r in chunk],
                    "created_at": [r[2] for r in chunk],
                    "email": [f"person{r[0]}@example.com" for r in chunk],
                },
                schema=SCHEMA,
            )
        )
    catalog.engine.dispose()


def iceberg_ids(directory: Path, name: str, snapshot: int | None = None) -> set[int]:
    """The record ids snapshot `snapshot` of table `name` reads (latest: None)."""
    catalog = iceberg_catalog(directory)
    try:
        scan = catalog.load_table(name).scan(selected_fields=("id",), snapshot_id=snapshot)
        return set(scan.to_arrow().column("id").to_pylist())
    finally:
        catalog.engine.dispose()


def iceberg_snapshots(directory: Path, name: str) -> list[int]:
    """Every snapshot the table's metadata still has, oldest first."""
    catalog = iceberg_catalog(directory)
    try:
        return [s.snapshot_id for s in catalog.load_table(name).metadata.snapshots]
    finally:
        catalog.engine.dispose()


def iceberg_readable_anywhere(directory: Path, name: str, record: int) -> bool:
    """Whether `record` can still be read at any snapshot of the table (time travel), or from
    any Parquet file left in the warehouse (what a reader of the files themselves sees)."""
    if any(record in iceberg_ids(directory, name, s) for s in iceberg_snapshots(directory, name)):
        return True
    for path in (directory / "warehouse").rglob("*.parquet"):
        if record in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            return True
    return False


def iceberg_column(
    directory: Path, name: str, column: str, snapshot: int | None = None
) -> dict[int, Any]:
    """Record id -> `column` at snapshot `snapshot` of table `name` (latest: None)."""
    catalog = iceberg_catalog(directory)
    try:
        fields = tuple(dict.fromkeys(("id", column)))
        scan = catalog.load_table(name).scan(selected_fields=fields, snapshot_id=snapshot)
        read = scan.to_arrow()
        ids, values = read.column("id").to_pylist(), read.column(column).to_pylist()
        return dict(zip(ids, values, strict=True))
    finally:
        catalog.engine.dispose()


def in_parquet_files(directory: Path, column: str, value: Any) -> bool:
    """Whether any Parquet file under `directory` holds `value` in `column` (what a reader of
    the files themselves, not of the table, sees)."""
    return any(
        value in pq.read_table(path, columns=[column]).column(column).to_pylist()
        for path in directory.rglob("*.parquet")
    )


def facts_by_record(entries: Iterable[Any]) -> dict[int, tuple[str | None, str | None, Any]]:
    """Each record a "done" audit entry among `entries` acted on, with its facts (subject, due
    time, lateness)."""
    return {
        int(key): fact
        for e in entries
        if e.outcome == "done"
        for key, fact in zip(json.loads(e.keys), e.facts(), strict=True)
    }
