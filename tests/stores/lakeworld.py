"""Helpers for the lake-table tests: Delta tables of records written with delta-rs, and what
each table version holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("account_id", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("email", pa.string()),
    ]
)


def write_records(
    path: Path, rows: Iterable[tuple[int, int, dt.datetime]], *, files: int = 1
) -> None:
    """A Delta table of `rows` (id, account, created), in `files` commits of one file each."""
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
        write_deltalake(str(path), table, mode="append")


def ids_at(path: Path, version: int | None = None) -> set[int] | None:
    """The record ids table version `version` holds (latest: None), or None when that
    version can no longer be read (its files were vacuumed)."""
    try:
        table = DeltaTable(str(path), version=version).to_pyarrow_table(columns=["id"])
    except FileNotFoundError:
        return None
    return set(table.column("id").to_pylist())


def readable_anywhere(path: Path, record: int) -> bool:
    """Whether `record` can still be read at any version of the table (time travel)."""
    latest = DeltaTable(str(path)).version()
    return any(record in (ids_at(path, v) or set()) for v in range(latest + 1))
