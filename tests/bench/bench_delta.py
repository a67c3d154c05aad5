"""Deleting half of a 100,000-row Delta table: retention against one bare delta-rs delete.

    .venv/bin/python tests/bench/bench_delta.py [--rows 100000] [--files 10] [--batch-size 5000]
    .venv/bin/python tests/bench/bench_delta.py --s3-probe [--in-process]

The table has `--rows` rows in `--files` files (one commit each), 1,000 accounts in a SQLite
subject table; every other row is two years old, a hold covers 1% of the accounts.

(p) ``make_plan`` on the table (one pass over its columns);
(a) one bare ``DeltaTable.delete`` of the due, unheld rows (the predicate a DBA would type) and
    one ``vacuum`` with a zero window: the least the physical erasure costs;
(c) ``retention run --execute`` with ``purge_after: P0D``: the same rows deleted in
    ``--batch-size`` batches (one commit each, keys audited as HMAC), then the vacuum and the
    "physically gone" entries; afterwards no version of the table can be read that holds a
    deleted row.

``--s3-probe`` instead runs delta-rs against a moto server on a loopback port and prints each
step's outcome and time: in its own process (``retention.testing.moto_process``) every step
answers; with ``--in-process`` (a server thread of this interpreter, as the S3 object-store
tests use) ``history()`` times out, because delta-rs holds the GIL while it waits for it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from deltalake import DeltaTable, write_deltalake
from sqlalchemy import create_engine, text

from retention.testing import moto_process

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b

ACCOUNTS = 1000
HELD = list(range(0, ACCOUNTS, 100))  # 1% of the accounts
OLD = b.NOW - dt.timedelta(days=730)
RECENT = b.NOW - dt.timedelta(days=2)


def build(directory: Path, rows: int, files: int) -> Path:
    """The table, the accounts and a config of one delete rule (P30D); the config's path."""
    lake = directory / "lake"
    size = -(-rows // files)
    for start in range(0, rows, size):
        ids = list(range(start, min(rows, start + size)))
        write_deltalake(
            str(lake / "events"),
            pa.table(
                {
                    "id": pa.array(ids, pa.int64()),
                    "account_id": pa.array([i % ACCOUNTS for i in ids], pa.int64()),
                    "created_at": pa.array(
                        [OLD if i % 2 else RECENT for i in ids], pa.timestamp("us", tz="UTC")
                    ),
                    "email": [f"person{i}@example.com" for i in ids],
                }
            ),
            mode="append",
        )
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
        "limits": {"max_fraction": 1.0, "max_actions_per_run": 1_000_000_000},
        "stores": {
            "app": {"kind": "sql", "url": f"sqlite:///{directory / 'app.db'}"},
            "lake": {"kind": "delta", "root": str(lake), "purge_after": "P0D"},
        },
        "subjects": {"account": {"store": "app", "table": "accounts", "key": "id"}},
        "datasets": {
            "events": {
                "store": "lake",
                "table": "events",
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
    """(a): one delete by predicate and one vacuum; seconds and rows deleted."""
    table = DeltaTable(str(directory / "lake" / "events"))
    held = ", ".join(map(str, HELD))
    cutoff = (b.NOW - dt.timedelta(days=30)).isoformat().replace("+00:00", "Z")
    started = time.perf_counter()
    metrics = table.delete(f"created_at <= '{cutoff}' AND NOT (account_id IN ({held}))")
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return time.perf_counter() - started, int(metrics["num_deleted_rows"])


def benchmark(args: argparse.Namespace) -> None:
    from retention.config import load_config
    from retention.planner import make_plan

    report = b.Report(f"delta {args.rows} rows, {args.files} files")
    due = sum(1 for i in range(args.rows) if i % 2 and i % ACCOUNTS not in HELD)
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "bare", args.rows, args.files)
        seconds, deleted = bare(path.parent)
        assert deleted == due, (deleted, due)
        report.add("(a) bare delta-rs delete + vacuum", seconds, deleted)

        path = build(Path(tmp) / "retention", args.rows, args.files)
        config = path.read_text().replace("limits:", f"batch_size: {args.batch_size}\nlimits:")
        path.write_text(config)
        b.quiet()
        seconds, plan = b.timed(lambda: make_plan(load_config(path), b.NOW))
        (row,) = plan.rules
        assert row.actionable == due, (row.actionable, due)
        report.add("(p) retention plan", seconds, row.in_scope)
        seconds, result = b.run_retention(path)
        assert result.outcomes[0].acted == due
        report.add(f"(c) retention run --execute, batch {args.batch_size}", seconds, due)
        table = DeltaTable(str(path.parent / "lake" / "events"))
        readable = 0
        for version in range(table.version() + 1):
            try:
                DeltaTable(str(table.table_uri), version=version).to_pyarrow_table(columns=["id"])
                readable += 1
            except FileNotFoundError:
                pass
        print(f"  versions still readable after the run: {readable} of {table.version() + 1}")
        report.ratio("c / a (seconds)", report.rows[2]["seconds"] / report.rows[0]["seconds"])
    report.dump(args.json)


@contextmanager
def threaded_moto() -> Iterator[str]:
    """A moto server thread in this interpreter."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_probe(in_process: bool) -> None:
    """Each delta-rs step against a moto server: ok or the error, and the time it took."""
    with threaded_moto() if in_process else moto_process() as endpoint:
        probe_steps(endpoint)


def probe_steps(endpoint: str) -> None:
    import boto3

    keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys).create_bucket(
        Bucket="lake"
    )
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "timeout": "5s",
    }
    uri = "s3://lake/tables/events"
    rows = pa.table({"id": pa.array(range(10), pa.int64())})

    def table(version: int | None = None) -> DeltaTable:
        return DeltaTable(uri, version=version, storage_options=options)

    steps: list[tuple[str, Any]] = [
        ("write", lambda: write_deltalake(uri, rows, storage_options=options)),
        ("append", lambda: write_deltalake(uri, rows, mode="append", storage_options=options)),
        ("delete", lambda: table().delete("id IN (1, 2)")["num_deleted_rows"]),
        ("read version 1 (time travel)", lambda: table(1).to_pyarrow_table().num_rows),
        ("history(limit=1)", lambda: len(table().history(1))),
        ("history()", lambda: len(table().history())),
        (
            "vacuum",
            lambda: len(table().vacuum(0, dry_run=False, enforce_retention_duration=False)),
        ),
        ("read version 1 after vacuum", lambda: table(1).to_pyarrow_table().num_rows),
    ]
    for name, step in steps:
        started = time.perf_counter()
        try:
            outcome = f"ok: {step()}"
        except Exception as exc:
            outcome = f"FAILED: {str(exc).splitlines()[0][:120]}"
        print(f"  {name:<30} {time.perf_counter() - started:8.3f} s  {outcome}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--json")
    parser.add_argument("--s3-probe", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="--s3-probe on a server thread")
    args = parser.parse_args()
    if args.s3_probe:
        s3_probe(args.in_process)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
