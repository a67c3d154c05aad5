"""Deleting half of a 100,000-row Delta table: retention against one bare delta-rs delete.

    .venv/bin/python tests/bench/bench_delta.py [--rows 100000] [--files 10] [--batch-size 5000]
        [--action delete|anonymize] [--s3]
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

``--action anonymize`` measures an anonymize rule (``email: hash``) instead: (a) is one bare
``DeltaTable.update`` of the same rows and a vacuum. ``--s3`` puts the tables in a bucket of a
moto server in its own process instead of a directory.

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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Where:
    """Where the benchmark's tables go: a directory, or a bucket (`endpoint` set)."""

    action: str = "delete"
    endpoint: str | None = None

    def root(self, directory: Path) -> str:
        if self.endpoint is None:
            return str(directory / "lake")
        return f"s3://bench/{directory.name}/lake"

    def options(self) -> dict[str, str] | None:
        if self.endpoint is None:
            return None
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def store(self, directory: Path) -> dict[str, Any]:
        store: dict[str, Any] = {
            "kind": "delta",
            "root": self.root(directory),
            "purge_after": "P0D",
        }
        if self.endpoint is not None:
            store |= {
                "endpoint_url": self.endpoint,
                "region": "us-east-1",
                "access_key_id": "testing",
                "secret_access_key": "testing",
            }
        return store


def build(directory: Path, rows: int, files: int, where: Where) -> Path:
    """The table, the accounts and a config of one delete (or anonymize) rule (P30D); the
    config's path."""
    directory.mkdir(parents=True, exist_ok=True)
    uri = f"{where.root(directory)}/events"
    size = -(-rows // files)
    for start in range(0, rows, size):
        ids = list(range(start, min(rows, start + size)))
        write_deltalake(
            uri,
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
            storage_options=where.options(),
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
        "action": where.action,
    }
    if where.action == "anonymize":
        rule["anonymize"] = {"email": "hash"}
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
            "lake": where.store(directory),
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
                "personal": {"email": "email"},
            }
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def bare(directory: Path, where: Where) -> tuple[float, int]:
    """(a): one delete (or update) by predicate and one vacuum; seconds and rows changed."""
    table = DeltaTable(f"{where.root(directory)}/events", storage_options=where.options())
    held = ", ".join(map(str, HELD))
    cutoff = (b.NOW - dt.timedelta(days=30)).isoformat().replace("+00:00", "Z")
    predicate = f"created_at <= '{cutoff}' AND NOT (account_id IN ({held}))"
    started = time.perf_counter()
    if where.action == "anonymize":
        metrics = table.update(updates={"email": "'h:0'"}, predicate=predicate)
        changed = int(metrics["num_updated_rows"])
    else:
        changed = int(table.delete(predicate)["num_deleted_rows"])
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return time.perf_counter() - started, changed


def benchmark(args: argparse.Namespace) -> None:
    if not args.s3:
        measure(args, Where(args.action))
        return
    import boto3

    with moto_process() as endpoint:
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="bench")
        measure(args, Where(args.action, endpoint))


def measure(args: argparse.Namespace, where: Where) -> None:
    from retention.config import load_config
    from retention.planner import make_plan

    place = "moto S3" if where.endpoint else "local"
    report = b.Report(f"delta {where.action} {args.rows} rows, {args.files} files, {place}")
    due = sum(1 for i in range(args.rows) if i % 2 and i % ACCOUNTS not in HELD)
    with tempfile.TemporaryDirectory() as tmp:
        path = build(Path(tmp) / "bare", args.rows, args.files, where)
        seconds, deleted = bare(path.parent, where)
        assert deleted == due, (deleted, due)
        report.add(f"(a) bare delta-rs {where.action} + vacuum", seconds, deleted)

        path = build(Path(tmp) / "retention", args.rows, args.files, where)
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
        options = where.options()
        table = DeltaTable(f"{where.root(path.parent)}/events", storage_options=options)
        readable = 0
        for version in range(table.version() + 1):
            try:
                DeltaTable(
                    table.table_uri, version=version, storage_options=options
                ).to_pyarrow_table(columns=["id"])
                readable += 1
            except OSError:  # FileNotFoundError locally, the object store's "not found" on S3
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
    parser.add_argument("--action", choices=("delete", "anonymize"), default="delete")
    parser.add_argument("--s3", action="store_true", help="tables in a moto bucket")
    parser.add_argument("--s3-probe", action="store_true")
    parser.add_argument("--in-process", action="store_true", help="--s3-probe on a server thread")
    args = parser.parse_args()
    if args.s3_probe:
        s3_probe(args.in_process)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
