"""Deleting half of a table: retention against the SQL a DBA would type, in one run.

    .venv/bin/python tests/bench/bench_delete.py [--rows N] [--dialect sqlite|postgresql|mariadb]
        [--batch-size 5000 --batch-size 50000] [--layout scattered|ordered|dates]

On fresh copies of one data set (see benchlib.py), each timed on its own:

(a) the raw statement ``DELETE FROM events WHERE created_at < :cutoff AND subject_id NOT IN
    (held)``, one transaction;
(b) the same as a keyset loop in plain SQL: windows of ``batch_size`` keys in primary-key order,
    one ``DELETE ... WHERE id > :last AND id <= :end AND <predicate>`` and one commit each;
(b') (b) that also brings the deleted keys back (``RETURNING id``): the least any run that
    audits each deleted key must do; c/b' is what the audit log, intents and holds cost on top;
(c) ``retention run --execute`` (the Executor, in this process): audit log on with keys stored as
    HMAC, intents in the state DB (SQLite, next to the data), the holds file re-read per batch;
    afterwards exactly the due, unheld rows must be gone and the held ones kept;
(p) on MariaDB, where Percona Toolkit is installed (Debian's ``percona-toolkit``): ``pt-archiver
    --purge --bulk-delete --commit-each`` at ``--limit`` 1,000, 5,000 and 50,000, no audit;
(d) a naive per-row loop (select the due keys, delete each one, commit each) on a sample of
    10,000 rows, extrapolated to the whole job.

Prints rows/s for each and the ratios c/a, c/b, c/b' and d/c.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b


def raw_delete(engine: Any, shape: b.Shape, dialect: str) -> int:
    params = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    with engine.begin() as c:
        result = c.execute(b.statement(f"DELETE FROM events WHERE {b.due_unheld()}"), params)
        return int(result.rowcount)


def batched_delete(engine: Any, shape: b.Shape, dialect: str, batch_size: int) -> int:
    params = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    sql = b.statement(f"DELETE FROM events WHERE id > :last AND id <= :end AND {b.due_unheld()}")

    def step(c: Any, last: int, end: int) -> int:
        return int(c.execute(sql, {**params, "last": last, "end": end}).rowcount)

    return b.keyset_loop(engine, batch_size, step)


def batched_delete_keys(engine: Any, shape: b.Shape, dialect: str, batch_size: int) -> int:
    """(b) that also brings the deleted keys back (``RETURNING``, or a ``SELECT ... FOR UPDATE``
    first where there is none): what any run that audits each key must at least do."""
    params = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    window = f"id > :last AND id <= :end AND {b.due_unheld()}"
    returning = engine.dialect.delete_returning
    sql = b.statement(f"DELETE FROM events WHERE {window}" + (" RETURNING id" if returning else ""))
    locked = b.statement(f"SELECT id FROM events WHERE {window} FOR UPDATE")

    def step(c: Any, last: int, end: int) -> int:
        bounds = {**params, "last": last, "end": end}
        if returning:
            return len(c.execute(sql, bounds).cursor.fetchall())
        keys = c.execute(locked, bounds).cursor.fetchall()
        c.execute(sql, bounds)
        return len(keys)

    return b.keyset_loop(engine, batch_size, step)


def pt_archiver(url: str, shape: b.Shape, limit: int) -> int:
    """(p) `pt-archiver --purge --bulk-delete --commit-each --limit N` (Percona Toolkit, the
    tool MySQL and MariaDB users reach for; no audit at all) on the same predicate."""
    parts = make_url(url)
    source = f"h={parts.host},P={parts.port or 3306},u={parts.username},D={parts.database},t=events"
    held = ",".join(str(i) for i in shape.held)
    where = f"created_at < '{b.CUTOFF:%Y-%m-%d %H:%M:%S}' AND subject_id NOT IN ({held})"
    command = [
        "pt-archiver",
        "--source",
        source,
        "--purge",
        "--where",
        where,
        "--limit",
        str(limit),
    ]
    command += ["--commit-each", "--bulk-delete", "--no-check-charset", "--statistics"]
    env = {**os.environ, "TZ": "UTC"}
    if parts.password:
        env["MYSQL_PWD"] = parts.password
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    deleted = re.search(r"^DELETE\s+(\d+)", done.stdout, re.MULTILINE)
    assert deleted is not None, done.stdout
    return int(deleted.group(1))


def naive_delete(engine: Any, shape: b.Shape, dialect: str, sample: int) -> int:
    params = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    with engine.connect() as c:
        keys = [
            row[0]
            for row in c.execute(
                b.statement(f"SELECT id FROM events WHERE {b.due_unheld()} LIMIT {int(sample)}"),
                params,
            )
        ]
        c.commit()
        for key in keys:
            c.execute(text("DELETE FROM events WHERE id = :id"), {"id": key})
            c.commit()
    return len(keys)


def verify(engine: Any, shape: b.Shape, dialect: str, expected: dict[str, int]) -> None:
    """Exactly the due, unheld rows are gone; every held row is still there."""
    now = b.expected_counts(engine, shape, dialect)
    want = {
        "total": expected["total"] - expected["due_unheld"],
        "due_unheld": 0,
        "due_held": expected["due_held"],
    }
    if now != want:
        raise AssertionError(f"after the run: {now}, expected {want}")


def bench(args: Any, dialect: str, url: str | None, work: Path, report: b.Report) -> None:
    shape = b.Shape(args.rows, args.layout)
    with b.backend(dialect, url, work) as db:
        seconds, _ = b.timed(lambda: db.build_template(shape))
        print(f"[{dialect}] {shape.rows:,} rows ({shape.layout}) generated in {seconds:.1f} s")
        template = db.engine("template")
        expected = b.expected_counts(template, shape, dialect)
        template.dispose()
        due = expected["due_unheld"]
        print(f"[{dialect}] due and unheld: {due:,}; due and held: {expected['due_held']:,}")

        def on_copy(measure: Any) -> tuple[float, Any]:
            name = db.fresh()
            engine = db.engine(name)
            try:
                return b.timed(lambda: measure(name, engine))
            finally:
                engine.dispose()
                db.drop(name)

        runs: dict[str, list[float]] = {}
        fixed = [size for size in args.batch_size if size]  # 0 (the default) always runs
        for _ in range(args.repeat):  # interleaved, so a noisy minute hits every measure alike
            seconds, deleted = on_copy(lambda _n, e: raw_delete(e, shape, dialect))
            assert deleted == due, (deleted, due)
            runs.setdefault("a", []).append(seconds)
            for size in fixed:
                seconds, deleted = on_copy(
                    lambda _n, e, s=size: batched_delete(e, shape, dialect, s)
                )
                assert deleted == due, (deleted, due)
                runs.setdefault(f"b{size}", []).append(seconds)
                seconds, deleted = on_copy(
                    lambda _n, e, s=size: batched_delete_keys(e, shape, dialect, s)
                )
                assert deleted == due, (deleted, due)
                runs.setdefault(f"k{size}", []).append(seconds)
            if dialect == "mariadb" and shutil.which("pt-archiver"):
                for limit in PT_LIMITS:
                    seconds, deleted = on_copy(
                        lambda n, _e, lim=limit: pt_archiver(db.url(n), shape, lim)
                    )
                    assert deleted == due, (deleted, due)
                    runs.setdefault(f"p{limit}", []).append(seconds)
            for size in [*fixed, 0]:  # 0: retention's default settings

                def ours(name: str, engine: Any, size: int = size) -> Any:
                    directory = work / f"retention-{name}"
                    config = b.write_config(
                        directory, db.url(name), shape, rules=[b.DELETE_RULE], batch_size=size
                    )
                    seconds, result = b.run_retention(config)
                    assert result.outcomes[0].acted == due, result.as_dict()
                    verify(engine, shape, dialect, expected)
                    if not size:
                        batches, longest = b.batch_cadence(config)
                        print(
                            f"[{dialect}] default settings: {batches} batches, at most "
                            f"{longest:.2f} s between two batch entries"
                        )
                    return seconds

                _, seconds = on_copy(ours)
                runs.setdefault(f"c{size}", []).append(seconds)
        times = {name: b.median(values) for name, values in runs.items()}
        report.add("(a) raw DELETE", times["a"], due, dialect=dialect, runs=runs["a"])
        for size in fixed:
            name = f"b{size}"
            report.add(f"(b) keyset loop, batch {size}", times[name], due, runs=runs[name])
        for size in fixed:
            name = f"k{size}"
            report.add(f"(b') loop returning keys, batch {size}", times[name], due, runs=runs[name])
        for size in fixed:
            name = f"c{size}"
            report.add(
                f"(c) retention run --execute, batch {size}", times[name], due, runs=runs[name]
            )
        report.add(
            "(c) retention run --execute, default settings", times["c0"], due, runs=runs["c0"]
        )
        peers = [limit for limit in PT_LIMITS if f"p{limit}" in times]
        for limit in peers:
            name = f"p{limit}"
            report.add(
                f"(p) pt-archiver --purge --bulk-delete, limit {limit}",
                times[name],
                due,
                runs=runs[name],
            )
        if args.sample:
            seconds, deleted = on_copy(lambda _n, e: naive_delete(e, shape, dialect, args.sample))
            extrapolated = seconds * due / deleted
            report.add(f"(d) per-row loop, {deleted:,} rows, extrapolated", extrapolated, due)
            times["d"] = extrapolated
        print(f"[{dialect}] ratios (time over time):")
        for size in fixed:
            c = times[f"c{size}"]
            first = dialect == "sqlite"
            report.ratio(
                f"c/a batch {size}",
                c / times["a"],
                "<= 1.0" if first else "<= 2.5",
                c / times["a"] <= (1.0 if first else 2.5),
            )
            report.ratio(
                f"c/b batch {size}",
                c / times[f"b{size}"],
                "" if first else "<= 1.3",
                None if first else c / times[f"b{size}"] <= 1.3,
            )
            report.ratio(f"c/b' batch {size} (audit overhead)", c / times[f"k{size}"])
            if "d" in times:
                report.ratio(f"d/c batch {size}", times["d"] / c)
        default = times["c0"]
        target = default_target(dialect, shape.layout)
        report.ratio(
            "c/a default settings",
            default / times["a"],
            f"<= {target}",
            default / times["a"] <= target,
        )
        if peers:
            fastest = min(times[f"p{limit}"] for limit in peers)
            report.ratio(
                "c/p default settings, against pt-archiver at its best limit",
                default / fastest,
                "<= 1.0",
                default / fastest <= 1.0,
            )
        if fixed:
            best = min(times[f"k{size}"] for size in fixed)
            met = None if dialect != "postgresql" else default / best <= 1.1
            report.ratio(
                "c/b' default settings, against the best b'",
                default / best,
                "" if met is None else "<= 1.1",
                met,
            )


PT_LIMITS = (1_000, 5_000, 50_000)


def default_target(dialect: str, layout: str) -> float:
    """Issue 21's target for retention's default settings, as a ratio to the raw DELETE."""
    if dialect == "sqlite":
        return 1.0 if layout == "dates" else 1.5
    return 2.0


def main(argv: list[str]) -> None:
    parser = b.common_args(__doc__.splitlines()[0])
    b.batch_args(parser)
    args = parser.parse_args(argv)
    args.batch_size = args.batch_size or [5000, 50000]
    b.each_dialect(args, lambda dialect: f"delete {dialect} {args.rows} {args.layout}", bench)


if __name__ == "__main__":
    main(sys.argv[1:])
