"""Partition drops against row deletes on PostgreSQL, in the same run, on the same rows.

Two tables hold the same N rows (default 1M) over the two years before ``NOW``: ``events``
partitioned by month (24 partitions), and ``events_plain``, not partitioned. A ``P365D`` delete
rule makes the older half due: twelve whole partitions. ``retention run --execute`` (the
Executor, audit on with HMAC keys, state DB in SQLite) runs on each; on ``events`` it truncates
the twelve partitions, on ``events_plain`` it deletes the same rows batch by batch. Printed: both
times, and their ratio.

    .venv/bin/python tests/bench/bench_partitions.py [--rows N] [--url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from retention.config import load_config
from retention.executor import Executor

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
        c.execute(text("CREATE TABLE events_plain (LIKE events)"))
        c.execute(text("ALTER TABLE events_plain ADD PRIMARY KEY (id)"))
        c.execute(text("INSERT INTO events_plain SELECT * FROM events"))
        c.execute(text("ANALYZE"))
    admin.dispose()
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False)


def enforce(url: str, table: str, work: Path) -> tuple[float, int]:
    """Seconds of one live run of the rule on `table`, and the rows it deleted."""
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
    started = time.perf_counter()
    result = Executor(loaded, now=NOW, live=True).run()
    seconds = time.perf_counter() - started
    return seconds, sum(o.acted for o in result.outcomes)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    schema = f"bench_{os.getpid()}_partitions"
    url = build(args.url, schema, args.rows)
    try:
        with tempfile.TemporaryDirectory() as work:
            dropped, dropped_rows = enforce(url, "events", Path(work))
            deleted, deleted_rows = enforce(url, "events_plain", Path(work))
        print(f"rows: {args.rows:,} (due: {deleted_rows:,})")
        print(f"partition drops (events, 12 of 24 partitions): {dropped:8.2f} s, {dropped_rows:,}")
        print(f"row deletes (events_plain):                   {deleted:8.2f} s, {deleted_rows:,}")
        print(f"ratio row deletes / partition drops: {deleted / dropped:.1f}x")
    finally:
        admin = create_engine(args.url)
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
