"""Partition drops against row deletes on PostgreSQL, in the same run, on the same layout.

Two tables hold the same N rows (default 1M) over the two years before ``NOW``, both
partitioned by month (24 partitions, the same bounds): ``events`` and ``events_rows``. A
``P365D`` delete rule makes the older half due: twelve whole partitions. ``retention run
--execute`` (the Executor, audit on with HMAC keys, state DB in SQLite) runs on each: on
``events`` it truncates the twelve partitions, on ``events_rows``, with partition drops switched
off in the PostgreSQL dialect's flags, it deletes the same rows batch by batch. Printed, per
round: both wall-clock times, the CPU time of this process (the server's is not counted), and
their ratio. ``--rounds`` builds the tables again and repeats, alternating which runs first.

    .venv/bin/python tests/bench/bench_partitions.py [--rows N] [--rounds R] [--url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from retention.config import load_config
from retention.executor import Executor
from retention.sqldialects import DIALECTS

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
START = dt.datetime(2024, 6, 1)
MONTHS = 24


def month(index: int) -> dt.date:
    year, offset = divmod(START.month - 1 + index, 12)
    return dt.date(START.year + year, offset + 1, 1)


def build(url: str, schema: str, rows: int) -> str:
    """Both tables, filled in SQL; the URL of the schema."""
    admin = create_engine(url)
    seconds = int((NOW.replace(tzinfo=None) - START).total_seconds())
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
        c.execute(text(f'SET search_path TO "{schema}"'))
        c.execute(
            text(
                "CREATE TABLE events (id bigint, created_at timestamp, payload text, "
                "PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at)"
            )
        )
        for i in range(MONTHS):
            c.execute(
                text(
                    f"CREATE TABLE events_m{i:02} PARTITION OF events FOR VALUES FROM "
                    f"('{month(i)}') TO ('{month(i + 1)}')"
                )
            )
        # one row every seconds/rows seconds, at half seconds: none on the cutoff itself
        c.execute(
            text(
                "INSERT INTO events SELECT g, CAST(:start AS timestamp) + "
                "make_interval(secs => (g - 0.5) * :step), md5(g::text) "
                "FROM generate_series(1, :rows) g"
            ),
            {"start": START, "step": seconds / rows, "rows": rows},
        )
        c.execute(
            text(
                "CREATE TABLE events_rows (LIKE events, PRIMARY KEY (id, created_at)) "
                "PARTITION BY RANGE (created_at)"
            )
        )
        for i in range(MONTHS):
            c.execute(
                text(
                    f"CREATE TABLE events_rows_m{i:02} PARTITION OF events_rows FOR VALUES "
                    f"FROM ('{month(i)}') TO ('{month(i + 1)}')"
                )
            )
        c.execute(text("INSERT INTO events_rows SELECT * FROM events"))
        c.execute(text("ANALYZE"))
    admin.dispose()
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False)


@dataclass(frozen=True)
class Run:
    """One live run: wall-clock and CPU seconds (this process's), the rows deleted."""

    seconds: float
    cpu: float
    rows: int

    def line(self, label: str) -> str:
        return f"  {label:<38} {self.seconds:7.2f} s, CPU {self.cpu:6.2f} s, {self.rows:,} rows"


def enforce(url: str, table: str, work: Path) -> Run:
    """One live run of the rule on `table`; partition drops only on ``events``."""
    directory = work / table
    (directory / "rules").mkdir(parents=True)
    rule = {"id": "purge", "applies_to": {"dataset": "events"}, "after": "record.created"}
    rule |= {"retain": "P365D", "action": "delete"}
    (directory / "rules" / "pack.yaml").write_text(
        yaml.safe_dump({"policy": {"name": "bench"}, "rules": [rule]})
    )
    (directory / "holds.yaml").write_text("holds: []\n")
    dataset = {"store": "app", "table": table, "key": ["id", "created_at"], "category": "events"}
    dataset["timestamps"] = {"created": "created_at"}
    config = {
        "state_db": f"sqlite:///{directory / 'state.db'}",
        "rules": ["rules/"],
        "holds": "holds.yaml",
        "hmac_key": "bench-key-not-secret",
        "stores": {"app": {"kind": "sql", "url": url}},
        "datasets": {"events": dataset},
        "limits": {"max_fraction": 1.0, "max_actions_per_run": 10_000_000},
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = load_config(directory / "config.yaml")
    flags = DIALECTS["postgresql"]
    if table != "events":
        DIALECTS["postgresql"] = replace(flags, partitions=False)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        result = Executor(loaded, now=NOW, live=True).run()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        DIALECTS["postgresql"] = flags
    return Run(seconds, cpu, sum(o.acted for o in result.outcomes))


def drop(url: str, schema: str) -> None:
    admin = create_engine(url)
    with admin.begin() as c:
        c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    # a first run in the process pays for imports and SQLAlchemy's caches: not measured
    schema = f"bench_{os.getpid()}_warm_up"
    url = build(args.url, schema, 1_000)
    try:
        with tempfile.TemporaryDirectory() as work:
            enforce(url, "events", Path(work))
    finally:
        drop(args.url, schema)
    for round_ in range(args.rounds):
        schema = f"bench_{os.getpid()}_partitions_{round_}"
        url = build(args.url, schema, args.rows)
        try:
            with tempfile.TemporaryDirectory() as work:
                tables = ["events", "events_rows"][:: 1 - 2 * (round_ % 2)]
                runs = {table: enforce(url, table, Path(work)) for table in tables}
        finally:
            drop(args.url, schema)
        dropped, deleted = runs["events"], runs["events_rows"]
        first = tables[0]
        head = f"round {round_ + 1}, rows: {args.rows:,} (due: {deleted.rows:,}), first: {first}"
        print(head, flush=True)
        print(dropped.line("partition drops (12 of 24 partitions):"))
        print(deleted.line("row deletes (same layout):"))
        print(
            f"  ratio row deletes / partition drops: {deleted.seconds / dropped.seconds:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
