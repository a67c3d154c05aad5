"""MariaDB anonymize write-back: one UPDATE per record against one UPDATE per batch.

    .venv/bin/python tests/bench/bench_writeback.py [--rows N] [--batch-size N] [--repeat N]

On every other row of the delete benchmark's table (``--rows`` 100,000: 50,000 rows written),
in one transaction, batch by batch, each on a fresh copy:

(a) the executor's fallback: an executemany of ``UPDATE events SET email=, ip=, name=
    WHERE id = ? AND <condition>``;
(b) :func:`retention.stores.mysqlwriteback.update_from_rows`: ``UPDATE events JOIN
    JSON_TABLE(...)`` per batch;
(c) for scale, one set-based UPDATE computing similar values in SQL (``SHA2``, ``INET_ATON``).

The values (an HMAC of the email, the IP's /24, NULL) are computed in Python before the clock
starts; (a) and (b) must leave identical tables, which the script checks. Prints rows/s and a/b.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import ipaddress
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, MetaData, Table, bindparam, text, update

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b

from retention.stores.sql.mysqlwriteback import update_from_rows

KEY = b.HMAC_KEY.encode()
SET_BASED = text(
    "UPDATE events SET email = CONCAT('h:', SHA2(CONCAT('k', email), 256)), "
    "ip = INET_NTOA(INET_ATON(ip) & 0xFFFFFF00), name = NULL "
    "WHERE id % 2 = 0 AND created_at IS NOT NULL"
)


def anonymized(rows: list[Any]) -> tuple[list[tuple[Any, ...]], list[list[Any]]]:
    """The keys and, per column (email, ip, name), the new values."""
    keys = [(row.id,) for row in rows]
    emails = ["h:" + hmac.new(KEY, r.email.encode(), hashlib.sha256).hexdigest() for r in rows]
    ips = [str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(r.ip)) & 0xFFFFFF00)) for r in rows]
    return keys, [emails, ips, [None] * len(rows)]


def per_record(connection: Connection, table: Table, keys: Any, values: Any) -> None:
    """What the SQL store writes back with off PostgreSQL and MariaDB (one UPDATE per record)."""
    statement = (
        update(table)
        .where(table.c.id == bindparam("k_0"), table.c.created_at.is_not(None))
        .values(email=bindparam("v_0"), ip=bindparam("v_1"), name=bindparam("v_2"))
    )
    rows = [
        {"k_0": k[0], "v_0": e, "v_1": i, "v_2": n}
        for k, e, i, n in zip(keys, *values, strict=True)
    ]
    connection.execute(statement, rows)


def per_batch(connection: Connection, table: Table, keys: Any, values: Any) -> None:
    columns = [table.c.email, table.c.ip, table.c.name]
    condition = table.c.created_at.is_not(None)
    assert update_from_rows(connection, table, (table.c.id,), columns, condition, keys, values)


def measure(db: b.MariaBackend, method: str, batch_size: int) -> tuple[float, int]:
    """Seconds for one method on a fresh copy; the copy's checksum."""
    name = db.fresh()
    engine = db.engine(name)
    try:
        table = Table("events", MetaData(), autoload_with=engine)
        with engine.connect() as c:
            rows = c.execute(text("SELECT id, email, ip FROM events WHERE id % 2 = 0 ORDER BY id"))
            keys, values = anonymized(rows.all())
        batches = [
            (keys[i : i + batch_size], [v[i : i + batch_size] for v in values])
            for i in range(0, len(keys), batch_size)
        ]

        def run() -> None:
            with engine.begin() as connection:
                if method == "set":
                    connection.execute(SET_BASED)
                    return
                write = per_record if method == "record" else per_batch
                for batch_keys, batch_values in batches:
                    write(connection, table, batch_keys, batch_values)

        seconds, _ = b.timed(run)
        with engine.connect() as c:
            checksum = c.execute(
                text(
                    "SELECT SUM(CRC32(CONCAT_WS('|', id, email, ip, IFNULL(name, '-')))) "
                    "FROM events"
                )
            ).scalar_one()
        return seconds, int(checksum)
    finally:
        engine.dispose()
        db.drop(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="table size; half are written")
    parser.add_argument("--batch-size", type=int, action="append", help="repeat for several")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--url", default=b.DEFAULT_URLS["mariadb"])
    parser.add_argument("--json", dest="json_out", help="append the figures as JSON lines here")
    args = parser.parse_args()
    written = args.rows // 2
    with b.backend("mariadb", args.url, Path(".")) as db:
        assert isinstance(db, b.MariaBackend)
        db.build_template(b.Shape(args.rows))
        report = b.Report(f"MariaDB write-back, {written:,} of {args.rows:,} rows")
        print(report.title)
        for batch_size in args.batch_size or [5_000, 50_000]:
            runs: dict[str, list[float]] = {"record": [], "batch": [], "set": []}
            sums: dict[str, int] = {}
            for _ in range(args.repeat):
                for method in runs:
                    seconds, sums[method] = measure(db, method, batch_size)
                    runs[method].append(seconds)
            if sums["record"] != sums["batch"]:
                raise SystemExit("per-record and per-batch write-back left different tables")
            medians = {m: b.median(v) for m, v in runs.items()}
            labels = {
                "record": f"(a) executemany, batch {batch_size:,}",
                "batch": f"(b) JSON_TABLE, batch {batch_size:,}",
                "set": "(c) one set-based UPDATE (SQL functions)",
            }
            for method, seconds in medians.items():
                report.add(labels[method], seconds, written, runs=runs[method])
            report.ratio(f"a/b, batch {batch_size:,}", medians["record"] / medians["batch"])
            report.ratio(f"b/c, batch {batch_size:,}", medians["batch"] / medians["set"])
        report.dump(args.json_out)


if __name__ == "__main__":
    main()
