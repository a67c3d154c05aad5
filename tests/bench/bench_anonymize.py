"""Anonymizing half of a table: retention against the closest set-based UPDATE, in one run.

    .venv/bin/python tests/bench/bench_anonymize.py [--rows N] [--dialect sqlite|postgresql|mariadb]

The rule anonymizes ``email: hash``, ``ip: truncate_ip`` and ``name: null`` on the due, unheld
rows of the delete benchmark's table. On fresh copies, each timed on its own:

(a) the closest set-based UPDATE the engine runs natively, one transaction:
    PostgreSQL ``'h:' || encode(hmac(email, key, 'sha256'), 'hex')`` (pgcrypto) and
    ``host(network(set_masklen(ip::inet, 24)))``, which produce exactly retention's values;
    SQLite the same through two registered Python functions (SQLite has neither HMAC nor inet
    functions); MariaDB ``SHA2(CONCAT(key, email), 256)`` (no HMAC there: a cheaper stand-in)
    and ``INET_NTOA(INET_ATON(ip) & 0xFFFFFF00)``;
(b) that UPDATE as a keyset loop of ``batch_size`` keys, one commit each;
(c) ``retention run --execute`` with the audit log on (keys as HMAC); afterwards exactly the due,
    unheld rows are anonymized, and on PostgreSQL and SQLite they hold the values (a) wrote;
(d) a naive per-row loop (select a row, compute its values in Python, UPDATE it, commit) on a
    sample, extrapolated.

Prints rows/s for each and the ratios c/a, c/b and d/c.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b

KEY = b.HMAC_KEY.encode()


def py_hash(value: str | None) -> str | None:
    if value is None:
        return None
    return "h:" + hmac.new(KEY, value.encode(), hashlib.sha256).hexdigest()


def py_truncate_ip(value: str | None) -> str | None:
    if value is None:
        return None
    return str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(value)) & 0xFFFFFF00))


def set_clause(dialect: str) -> str:
    """The SET list of the set-based UPDATE (`:key` bound to the HMAC key)."""
    if dialect == "postgresql":
        return (
            "email = 'h:' || "
            "encode(public.hmac(email::text, CAST(:key AS text), 'sha256'), 'hex'), "
            "ip = host(network(set_masklen(ip::inet, 24))), name = NULL"
        )
    if dialect == "mariadb":
        return (
            "email = CONCAT('h:', SHA2(CONCAT(:key, email), 256)), "
            "ip = INET_NTOA(INET_ATON(ip) & 0xFFFFFF00), name = NULL"
        )
    return "email = bench_hash(email), ip = bench_truncate_ip(ip), name = NULL"


def engine_for(db: b.Backend, name: str) -> Any:
    engine = db.engine(name)
    if db.dialect == "sqlite":

        @event.listens_for(engine, "connect")
        def _functions(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.create_function("bench_hash", 1, py_hash, deterministic=True)
            dbapi_connection.create_function(
                "bench_truncate_ip", 1, py_truncate_ip, deterministic=True
            )

    return engine


def params(shape: b.Shape, dialect: str) -> dict[str, Any]:
    found: dict[str, Any] = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    if dialect != "sqlite":
        found["key"] = b.HMAC_KEY
    return found


def raw_update(engine: Any, shape: b.Shape, dialect: str) -> int:
    sql = f"UPDATE events SET {set_clause(dialect)} WHERE {b.due_unheld()}"
    with engine.begin() as c:
        return int(c.execute(b.statement(sql), params(shape, dialect)).rowcount)


def batched_update(engine: Any, shape: b.Shape, dialect: str, batch_size: int) -> int:
    sql = b.statement(
        f"UPDATE events SET {set_clause(dialect)} "
        f"WHERE id > :last AND id <= :end AND {b.due_unheld()}"
    )

    def step(c: Any, last: int, end: int) -> int:
        return int(c.execute(sql, {**params(shape, dialect), "last": last, "end": end}).rowcount)

    return b.keyset_loop(engine, batch_size, step)


def naive_update(engine: Any, shape: b.Shape, dialect: str, sample: int) -> int:
    with engine.connect() as c:
        rows = c.execute(
            b.statement(
                f"SELECT id, email, ip FROM events WHERE {b.due_unheld()} LIMIT {int(sample)}"
            ),
            {"cutoff": b.cutoff_param(dialect), "held": shape.held},
        ).all()
        c.commit()
        update = text("UPDATE events SET email = :email, ip = :ip, name = NULL WHERE id = :id")
        for key, email, ip in rows:
            c.execute(update, {"id": key, "email": py_hash(email), "ip": py_truncate_ip(ip)})
            c.commit()
    return len(rows)


def anonymized(engine: Any, shape: b.Shape, dialect: str) -> dict[str, int]:
    """Due-unheld rows anonymized / not; held or not-due rows anonymized (must be 0)."""
    shaped = "email LIKE 'h:%' AND name IS NULL AND ip LIKE '%.0'"
    p = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    with engine.connect() as c:

        def count(where: str) -> int:
            return int(
                c.execute(b.statement(f"SELECT count(*) FROM events WHERE {where}"), p).scalar_one()
            )

        return {
            "done": count(f"{b.due_unheld()} AND {shaped}"),
            "left": count(f"{b.due_unheld()} AND NOT ({shaped})"),
            "wrongly": count(f"NOT ({b.due_unheld()}) AND (email LIKE 'h:%' OR name IS NULL)"),
        }


def sample_values(engine: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as c:
        return [
            tuple(row)
            for row in c.execute(
                text("SELECT id, email, ip, name FROM events WHERE mod(id, 997) = 0 ORDER BY id")
            )
        ]


def bench(args: Any, dialect: str, url: str | None, work: Path, report: b.Report) -> None:
    shape = b.Shape(args.rows, args.layout)
    with b.backend(dialect, url, work) as db:
        seconds, _ = b.timed(lambda: db.build_template(shape))
        print(f"[{dialect}] {shape.rows:,} rows ({shape.layout}) generated in {seconds:.1f} s")
        template = db.engine("template")
        due = b.expected_counts(template, shape, dialect)["due_unheld"]
        template.dispose()

        def on_copy(measure: Any) -> tuple[float, Any]:
            name = db.fresh()
            engine = engine_for(db, name)
            try:
                return b.timed(lambda: measure(name, engine))
            finally:
                engine.dispose()
                db.drop(name)

        runs: dict[str, list[float]] = {}
        reference: list[tuple[Any, ...]] = []

        def native(_name: str, engine: Any) -> float:
            seconds, changed = b.timed(lambda: raw_update(engine, shape, dialect))
            assert changed == due, (changed, due)
            reference[:] = sample_values(engine)
            return seconds

        for _ in range(args.repeat):
            runs.setdefault("a", []).append(on_copy(native)[1])
            for size in args.batch_size:
                seconds, changed = on_copy(
                    lambda _n, e, s=size: batched_update(e, shape, dialect, s)
                )
                assert changed == due, (changed, due)
                runs.setdefault(f"b{size}", []).append(seconds)
            for size in args.batch_size:

                def ours(name: str, engine: Any, size: int = size) -> float:
                    directory = work / f"retention-{name}"
                    config = b.write_config(
                        directory, db.url(name), shape, rules=[b.ANONYMIZE_RULE], batch_size=size
                    )
                    seconds, result = b.run_retention(config)
                    assert result.outcomes[0].acted == due, result.as_dict()
                    found = anonymized(engine, shape, dialect)
                    assert found == {"done": due, "left": 0, "wrongly": 0}, found
                    if dialect != "mariadb":
                        assert sample_values(engine) == reference, "values differ from (a)"
                    return seconds

                runs.setdefault(f"c{size}", []).append(on_copy(ours)[1])
        times = {name: b.median(values) for name, values in runs.items()}
        report.add("(a) set-based UPDATE", times["a"], due, dialect=dialect, runs=runs["a"])
        for size in args.batch_size:
            name = f"b{size}"
            report.add(f"(b) keyset UPDATE loop, batch {size}", times[name], due, runs=runs[name])
        for size in args.batch_size:
            name = f"c{size}"
            report.add(
                f"(c) retention run --execute, batch {size}", times[name], due, runs=runs[name]
            )
        if args.sample:
            seconds, changed = on_copy(lambda _n, e: naive_update(e, shape, dialect, args.sample))
            times["d"] = seconds * due / changed
            report.add(f"(d) per-row loop, {changed:,} rows, extrapolated", times["d"], due)
        print(f"[{dialect}] ratios (time over time):")
        for size in args.batch_size:
            c = times[f"c{size}"]
            report.ratio(f"c/a batch {size}", c / times["a"], "<= 2.0", c / times["a"] <= 2.0)
            report.ratio(f"c/b batch {size}", c / times[f"b{size}"])
            if "d" in times:
                report.ratio(f"d/c batch {size}", times["d"] / c)


def main(argv: list[str]) -> None:
    parser = b.common_args(__doc__.splitlines()[0])
    b.batch_args(parser)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or [5000, 50000]
    b.each_dialect(args, lambda dialect: f"anonymize {dialect} {args.rows} {args.layout}", bench)


if __name__ == "__main__":
    main(sys.argv[1:])
