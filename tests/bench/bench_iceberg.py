"""Deleting half of a 100,000-row Iceberg table: retention against one bare pyiceberg delete.

    .venv/bin/python tests/bench/bench_iceberg.py [--rows 100000] [--files 10] [--batch-size 5000]

The table has `--rows` rows in `--files` files (one append each) in a SQLite SQL catalog, 1,000
accounts in a SQLite subject table; every other row is two years old, a hold covers 1% of the
accounts.

(p) ``make_plan`` on the table (one scan of its columns);
(a) one bare ``Table.delete`` of the due, unheld rows (the filter a DBA would write) and one
    ``expire_snapshots`` of every older snapshot (which removes no file in pyiceberg 0.12);
(c) ``retention run --execute`` with ``purge_after: P0D``: the same rows deleted in
    ``--batch-size`` batches (one snapshot each, keys audited as HMAC), then the expiry, the
    removal of the files only the expired snapshots reached, and the "physically gone" entries;
    afterwards no snapshot and no Parquet file in the warehouse holds a deleted row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And, In, LessThanOrEqual, Not
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b

ACCOUNTS = 1000
HELD = list(range(0, ACCOUNTS, 100))  # 1% of the accounts
OLD = b.NOW - dt.timedelta(days=730)
RECENT = b.NOW - dt.timedelta(days=2)


def catalog(directory: Path) -> SqlCatalog:
    return SqlCatalog(
        "default",
        uri=f"sqlite:///{directory / 'catalog.db'}",
        warehouse=f"file://{directory / 'warehouse'}",
    )


def build(directory: Path, rows: int, files: int, batch_size: int) -> Path:
    """The table, the accounts and a config of one delete rule (P30D); the config's path."""
    (directory / "warehouse").mkdir(parents=True)
    lake = catalog(directory)
    lake.create_namespace("app")
    table = None
    size = -(-rows // files)
    for start in range(0, rows, size):
        ids = list(range(start, min(rows, start + size)))
        data = pa.table(
            {
                "id": pa.array(ids, pa.int64()),
                "account_id": pa.array([i % ACCOUNTS for i in ids], pa.int64()),
                "created_at": pa.array(
                    [OLD if i % 2 else RECENT for i in ids], pa.timestamp("us", tz="UTC")
                ),
                "email": [f"person{i}@example.com" for i in ids],
            }
        )
        table = table or lake.create_table("app.events", schema=data.schema)
        table.append(data)
    lake.engine.dispose()
    engine = create_engine(f"sqlite:///{directory / 'app.db'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE accounts (id INTEGER PRIMARY KEY, created_at TIMESTAMP)"))
        c.execute(
            text("INSERT INTO accounts (id) VALUES (:id)"), [{"id": a} for a in range(ACCOUNTS)]
        )
    engine.dispose()
    (directory / "rules").mkdir()
    rule = {
        "id": "events-30d",
        "applies_to": {"dataset": "events"},
        "after": "record.created",
        "retain": "P30D",
        "action": "delete",
    }
    (directory / "rules" / "pack.yaml").write_text(
        yaml.safe_dump({"policy": {"name": "bench"}, "rules": [rule]})
    )
    holds = {"holds": [{"id": "case", "subjects": {"account": [str(a) for a in HELD]}}]}
    (directory / "holds.yaml").write_text(yaml.safe_dump(holds))
    config = {
        "state_db": f"sqlite:///{directory / 'state.db'}",
        "rules": ["rules/"],
        "holds": "holds.yaml",
        "hmac_key": b.HMAC_KEY,
        "audit": {"keys": "hmac"},
        "batch_size": batch_size,
        "limits": {"max_fraction": 1.0, "max_actions_per_run": 1_000_000_000},
        "stores": {
            "app": {"kind": "sql", "url": f"sqlite:///{directory / 'app.db'}"},
            "lake": {
                "kind": "iceberg",
                "catalog": f"sqlite:///{directory / 'catalog.db'}",
                "warehouse": str(directory / "warehouse"),
                "purge_after": "P0D",
            },
        },
        "subjects": {"account": {"store": "app", "table": "accounts", "key": "id"}},
        "datasets": {
            "events": {
                "store": "lake",
                "table": "app.events",
                "key": "id",
                "category": "events",
                "subject": {"type": "account", "column": "account_id"},
                "timestamps": {"created": "created_at"},
            }
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bare(directory: Path) -> tuple[float, int]:
    """(a): one delete by filter and one expiry of the older snapshots; seconds, rows deleted."""
    lake = catalog(directory)
    table = lake.load_table("app.events")
    cutoff = (b.NOW - dt.timedelta(days=30)).isoformat()
    before = len(table.scan(selected_fields=("id",)).to_arrow())
    started = time.perf_counter()
    table.delete(And(LessThanOrEqual("created_at", cutoff), Not(In("account_id", set(HELD)))))
    current = table.metadata.current_snapshot_id
    old = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id != current]
    table.maintenance.expire_snapshots().by_ids(old).commit()
    seconds = time.perf_counter() - started
    after = len(table.scan(selected_fields=("id",)).to_arrow())
    lake.engine.dispose()
    return seconds, before - after


def left_in_files(directory: Path, due: set[int]) -> int:
    """Deleted rows some Parquet file of the warehouse still holds."""
    found = 0
    for path in (directory / "warehouse").rglob("*.parquet"):
        ids = set(pq.read_table(path, columns=["id"]).column("id").to_pylist())
        found += len(ids & due)
    return found


def benchmark(args: argparse.Namespace) -> None:
    from retention.config import load_config
    from retention.planner import make_plan

    report = b.Report(f"iceberg {args.rows} rows, {args.files} files")
    due = {i for i in range(args.rows) if i % 2 and i % ACCOUNTS not in HELD}
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "bare", args.rows, args.files, args.batch_size)
        seconds, deleted = bare(path.parent)
        assert deleted == len(due), (deleted, len(due))
        report.add("(a) bare pyiceberg delete + expire_snapshots", seconds, deleted)
        print(f"  deleted rows left in files after (a): {left_in_files(path.parent, due)}")

        path = build(Path(tmp) / "retention", args.rows, args.files, args.batch_size)
        b.quiet()
        seconds, plan = b.timed(lambda: make_plan(load_config(path), b.NOW))
        (row,) = plan.rules
        assert row.actionable == len(due), (row.actionable, len(due))
        report.add("(p) retention plan", seconds, row.in_scope)
        seconds, result = b.run_retention(path)
        assert result.outcomes[0].acted == len(due)
        report.add(f"(c) retention run --execute, batch {args.batch_size}", seconds, len(due))
        lake = catalog(path.parent)
        snapshots = len(lake.load_table("app.events").metadata.snapshots)
        lake.engine.dispose()
        print(f"  snapshots left after (c): {snapshots}")
        print(f"  deleted rows left in files after (c): {left_in_files(path.parent, due)}")
        report.ratio("c / a (seconds)", report.rows[2]["seconds"] / report.rows[0]["seconds"])
    report.dump(args.json)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--json")
    benchmark(parser.parse_args())


if __name__ == "__main__":
    main()
