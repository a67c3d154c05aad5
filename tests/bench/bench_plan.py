"""`retention plan` against the COUNT queries it stands for, and its peak memory, by table size.

    .venv/bin/python tests/bench/bench_plan.py [--rows 1000000 --rows 10000000]
        [--dialect sqlite|postgresql|mariadb]

For each size the delete benchmark's table is generated in SQL (no fresh copies: nothing is
changed). Then, alternately and ``--repeat`` times each:

(r) the raw queries a DBA would type for the same numbers, through a plain engine: rows in
    scope, due, due and held, due and not held, and five sample keys;
(p) ``make_plan`` (what ``retention plan`` runs) in a fresh child process, twice: the second
    is the figure compared (the first also pays for lazy imports and the driver's first
    connection, shown too); the child's peak RSS is what the kernel counted (``wait4``):
    interpreter, libraries and all.

The table has 10,000 subjects at every size and the hold covers 100 of them (1% of the rows),
so only the table grows between sizes.

Prints the medians, the ratio p/r per size, and the peak RSS at the largest size over the
smallest (it must not grow with the table).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib as b


def child(config_path: str) -> None:
    """In the child: one make_plan, its seconds and what it counted, as JSON."""
    b.quiet()
    from retention.config import load_config
    from retention.planner import make_plan

    config = load_config(Path(config_path))
    times = []
    for _ in range(2):  # the first also pays for lazy imports and the driver's first connect
        started = time.perf_counter()
        plan = make_plan(config, b.NOW)
        times.append(time.perf_counter() - started)
    assert not plan.skipped, plan.skipped
    (row,) = plan.rules
    counts = [row.in_scope, row.due, row.held, row.actionable, list(row.samples)]
    print(json.dumps({"cold": times[0], "seconds": times[1], "counts": counts}))


def raw_counts(engine: Any, shape: b.Shape, dialect: str) -> list[Any]:
    p = {"cutoff": b.cutoff_param(dialect), "held": shape.held}
    due = "created_at < :cutoff"
    with engine.connect() as c:

        def one(sql: str) -> Any:
            return c.execute(b.statement(sql), p).scalar_one()

        found = [
            one("SELECT count(*) FROM events"),
            one(f"SELECT count(*) FROM events WHERE {due}"),
            one(f"SELECT count(*) FROM events WHERE {due} AND subject_id IN :held"),
            one(f"SELECT count(*) FROM events WHERE {b.due_unheld()}"),
        ]
        samples = c.execute(
            b.statement(f"SELECT id FROM events WHERE {b.due_unheld()} ORDER BY id LIMIT 5"), p
        )
        found.append([str(row[0]) for row in samples])
    return found


def bench(args: Any, dialect: str, url: str | None, work: Path, report: b.Report) -> None:
    peaks: dict[int, float] = {}
    for rows in args.rows:
        # the same 10,000 subjects at every size, so the hold (1% of them) is the same size
        # and only the table grows
        shape = b.Shape(rows, args.layout, fixed_subjects=10_000)
        with b.backend(dialect, url, work) as db:
            seconds, _ = b.timed(lambda s=shape: db.build_template(s))
            print(f"[{dialect}] {rows:,} rows ({shape.layout}) generated in {seconds:.1f} s")
            config = b.write_config(
                work / f"plan-{dialect}-{rows}", db.url("template"), shape, rules=[b.DELETE_RULE]
            )
            raw_times: list[float] = []
            plan_times: list[float] = []
            cold_times: list[float] = []
            rss: list[float] = []
            expected: list[Any] = []
            for _ in range(args.repeat):
                engine = db.engine("template")
                seconds, expected = b.timed(lambda e=engine, s=shape: raw_counts(e, s, dialect))
                engine.dispose()
                raw_times.append(seconds)
                found = b.in_child([__file__, "--child", str(config)])
                assert found["counts"] == expected, (found["counts"], expected)
                plan_times.append(found["seconds"])
                cold_times.append(found["cold"])
                rss.append(found["max_rss_mib"])
            raw, ours = b.median(raw_times), b.median(plan_times)
            report.add(f"(r) raw COUNT queries, {rows:,} rows", raw, rows, runs=raw_times)
            report.add(
                f"(p) retention plan, {rows:,} rows", ours, rows, runs=plan_times, rss_mib=rss
            )
            report.add(
                f"(p) the same, first in its process, {rows:,} rows",
                b.median(cold_times),
                rows,
                runs=cold_times,
            )
            peaks[rows] = max(rss)
            print(f"  peak RSS of the plan process at {rows:,} rows: {peaks[rows]:.1f} MiB")
            report.ratio(f"p/r at {rows:,} rows", ours / raw, "<= 1.2", ours / raw <= 1.2)
    if len(peaks) > 1:
        low, high = min(peaks), max(peaks)
        growth = peaks[high] / peaks[low]
        report.ratio(f"peak RSS {high:,} / {low:,} rows", growth, "<= 1.10", growth <= 1.10)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        child(argv[1])
        return
    parser = b.common_args(__doc__.splitlines()[0], sizes=True)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each; medians shown")
    args = parser.parse_args(argv)
    args.rows = args.rows or [1_000_000, 10_000_000]
    b.each_dialect(args, lambda dialect: f"plan {dialect} {args.layout}", bench)


if __name__ == "__main__":
    main(sys.argv[1:])
