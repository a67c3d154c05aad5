"""What a `subject.*` filter costs `retention plan`: the same delete rule with and without
``where: {subject.country: [NO]}``, and a filtered keep over an unfiltered delete.

    .venv/bin/python tests/bench/bench_subject_filter.py [--rows 1000000] [--url URL]

Orders (``--rows``, default 1,000,000) belong to customers (one per 100 orders), a tenth of them
Norwegian; every order is due. The tables are filled in SQL on SQLite (or, with ``--url``, by
batches of inserts on any database). Prints each plan's median seconds over three runs and its
counts: the filter is one ``IN (SELECT ...)`` on the subject table, so the plan stays set-based.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, text

from retention.config import load_config
from retention.planner import make_plan
from retention.stores.sql import make_engine

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
OLD = dt.datetime(2020, 1, 1)
ORDERS_PER_CUSTOMER = 100


def fill(url: str, rows: int) -> None:
    """Customers and their orders; on SQLite in one recursive INSERT each."""
    metadata = MetaData()
    customers = Table(
        "customers",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("country", String(2)),
    )
    orders = Table(
        "orders",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, index=True),
        Column("created_at", DateTime),
    )
    engine = make_engine(url)
    metadata.create_all(engine)
    count = rows // ORDERS_PER_CUSTOMER
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                text(
                    "INSERT INTO customers WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                    "FROM n WHERE i < :count) SELECT i, CASE WHEN i % 10 = 0 THEN 'NO' ELSE 'SE' "
                    "END FROM n"
                ),
                {"count": count},
            )
            connection.execute(
                text(
                    "INSERT INTO orders WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                    "FROM n WHERE i < :rows) SELECT i, 1 + i % :count, "
                    "'2020-01-01 00:00:00.000000' FROM n"
                ),
                {"rows": rows, "count": count},
            )
        else:
            connection.execute(
                insert(customers),
                [{"id": i, "country": "NO" if i % 10 == 0 else "SE"} for i in range(1, count + 1)],
            )
            for start in range(1, rows + 1, 50_000):
                batch = range(start, min(start + 50_000, rows + 1))
                connection.execute(
                    insert(orders),
                    [{"id": i, "customer_id": 1 + i % count, "created_at": OLD} for i in batch],
                )
    engine.dispose()


def config(directory: Path, url: str, rules: list[dict[str, object]]) -> Path:
    (directory / "rules").mkdir(exist_ok=True)
    pack = {"policy": {"name": "bench"}, "rules": rules}
    (directory / "rules" / "pack.yaml").write_text(yaml.safe_dump(pack))
    settings = {
        "state_db": f"sqlite:///{directory / 'state.db'}",
        "rules": ["rules/"],
        "stores": {"app": {"kind": "sql", "url": url}},
        "subjects": {"customer": {"store": "app", "table": "customers", "key": "id"}},
        "datasets": {
            "orders": {
                "store": "app",
                "table": "orders",
                "key": "id",
                "category": "orders",
                "subject": {"type": "customer", "column": "customer_id"},
                "timestamps": {"created": "created_at"},
            }
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def delete(rule_id: str, **fields: object) -> dict[str, object]:
    base = {"id": rule_id, "applies_to": {"dataset": "orders"}, "after": "record.created"}
    return {**base, "retain": "P1Y", "action": "delete", **fields}


CASES = {
    "delete, no filter": [delete("all")],
    "delete where subject.country: [NO]": [delete("no", where={"subject.country": ["NO"]})],
    "keep NO 10y + delete all": [
        delete("keep-no", where={"subject.country": ["NO"]}, retain="P10Y", action="keep"),
        delete("all"),
    ],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", help="a SQLAlchemy URL of an empty database (default: SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        url = args.url or f"sqlite:///{directory / 'app.db'}"
        started = time.perf_counter()
        fill(url, args.rows)
        print(f"{args.rows:,} orders filled in {time.perf_counter() - started:.1f} s")
        for label, rules in CASES.items():
            loaded = load_config(config(directory, url, rules))
            seconds = []
            for _ in range(3):
                started = time.perf_counter()
                plan = make_plan(loaded, NOW)
                seconds.append(time.perf_counter() - started)
            counts = {r.rule: (r.in_scope, r.blocked, r.actionable) for r in plan.rules}
            print(f"{label:40} {statistics.median(seconds):6.2f} s  {counts}")


if __name__ == "__main__":
    main()
