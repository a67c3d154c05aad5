"""Shared parts of the SQL benchmarks: one data set, generated in SQL, copied fresh per measurement.

The table ``events`` has N rows over two years before ``NOW`` (one row per ~63 s at 1M rows, at
half seconds so that none sits exactly on the whole-second cutoff),
an index on ``created_at``, and a ``subject_id`` pointing at ``subjects`` (100 rows each). With
``retain: P365D`` half of the rows are due; the hold covers every subject whose id is a
multiple of 100, that is 1% of the subjects and of the rows.

``layout`` says how time relates to the primary key: ``scattered`` (the default) spreads the
timestamps over the key space by a fixed permutation, so every key window holds due and not-due
rows, as in a table filled out of order or migrated; ``ordered`` makes time grow with the key,
as in an append-only log, so the due rows are the first half of the key space; ``dates`` is
scattered like the first, with the clock a date without a time (noon of each of 730 days): the
common case of a clock with few distinct values.

The baselines are what a DBA would type: plain SQL through the same driver, with the cutoff and
the held subjects written into the statement. Each measurement runs on its own fresh copy of
the template (SQLite: a copy of the file; PostgreSQL: CREATE TABLE AS into a new schema;
MariaDB: INSERT ... SELECT into a new database), made before the clock starts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine, bindparam, create_engine, text
from sqlalchemy.engine import make_url

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 1, tzinfo=UTC)
SPAN = dt.timedelta(days=730)
RETAIN_DAYS = 365
CUTOFF = NOW - dt.timedelta(days=RETAIN_DAYS)
START = NOW - SPAN
ROWS_PER_SUBJECT = 100
HELD_EVERY = 100  # subjects whose id is a multiple of this are held: 1%
PERMUTE = 7919  # a prime: (id * PERMUTE) % rows permutes the positions when rows is coprime
HMAC_KEY = "bench-key-not-secret"
DEFAULT_URLS = {
    "sqlite": None,
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Shape:
    """The size and layout of one data set."""

    rows: int
    layout: str = "scattered"
    fixed_subjects: int | None = None  # default: one subject per ROWS_PER_SUBJECT rows

    @property
    def subjects(self) -> int:
        return self.fixed_subjects or max(1, self.rows // ROWS_PER_SUBJECT)

    @property
    def held(self) -> list[int]:
        return list(range(HELD_EVERY, self.subjects + 1, HELD_EVERY))

    @property
    def step_seconds(self) -> float:
        return SPAN.total_seconds() / self.rows

    @property
    def permuted(self) -> bool:
        return self.layout in ("scattered", "dates")

    def offset(self, seconds: str, days: str = "FLOOR({} / 86400)") -> str:
        """SQL for the row's offset from START in seconds, from `seconds` (SQL for its exact
        offset): the same, or noon of its day in the ``dates`` layout (`days`: the dialect's
        whole days of a number of seconds)."""
        if self.layout == "dates":
            return f"({days.format(f'({seconds})')} * 86400 + 43200)"
        return seconds


def cutoff_param(dialect: str) -> Any:
    """The cutoff as the driver compares it with the stored column."""
    if dialect == "sqlite":
        return CUTOFF.strftime("%Y-%m-%d %H:%M:%S")
    if dialect == "mariadb":
        return CUTOFF.replace(tzinfo=None)
    return CUTOFF


class Backend:
    """A database server (or SQLite directory) holding a template and fresh copies of it."""

    dialect = ""

    def __init__(self, url: str | None, workdir: Path) -> None:
        self.base_url = url
        self.workdir = workdir
        self.copies = 0

    def url(self, name: str) -> str:
        raise NotImplementedError

    def engine(self, name: str) -> Engine:
        """A plain SQLAlchemy engine on copy `name` (no retention set-up)."""
        return create_engine(self.url(name))

    def build_template(self, shape: Shape, *, with_subjects: bool = True) -> None:
        raise NotImplementedError

    def fresh(self) -> str:
        """A new copy of the template; its name."""
        raise NotImplementedError

    def drop(self, name: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SqliteBackend(Backend):
    dialect = "sqlite"

    def url(self, name: str) -> str:
        return f"sqlite:///{self.workdir / (name + '.db')}"

    def build_template(self, shape: Shape, *, with_subjects: bool = True) -> None:
        path = self.workdir / "template.db"
        if path.exists():
            path.unlink()
        position = "(i * :permute) % :rows" if shape.permuted else "(i - 1)"
        offset = shape.offset(f"CAST({position} * :step AS INTEGER)", "{} / 86400")
        engine = self.engine("template")
        with engine.begin() as c:
            c.exec_driver_sql("PRAGMA journal_mode=DELETE")
            c.exec_driver_sql(
                "CREATE TABLE subjects (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL)"
            )
            c.exec_driver_sql(
                "CREATE TABLE events (id INTEGER PRIMARY KEY, subject_id INTEGER NOT NULL, "
                "created_at TEXT, email VARCHAR(120), ip VARCHAR(45), name VARCHAR(80))"
            )
            c.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < :subjects) "
                    "INSERT INTO subjects SELECT i, :start FROM n"
                ),
                {"subjects": shape.subjects, "start": START.strftime("%Y-%m-%d %H:%M:%S")},
            )
            c.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                    "WHERE i < :rows) "
                    "INSERT INTO events SELECT i, i % :subjects + 1, "
                    "strftime('%Y-%m-%d %H:%M:%f', :start, "
                    f"'+' || CAST({offset} AS INTEGER) || '.5 seconds'), "
                    "'user' || i || '@example.com', "
                    "'10.' || (i % 256) || '.' || (i / 256 % 256) || '.' || (i % 250 + 1), "
                    "'Name ' || i FROM n"
                ),
                {
                    "rows": shape.rows,
                    "subjects": shape.subjects,
                    "permute": PERMUTE,
                    "start": START.strftime("%Y-%m-%d %H:%M:%S"),
                    "step": shape.step_seconds,
                },
            )
            c.exec_driver_sql("CREATE INDEX events_created_at ON events (created_at)")
            c.exec_driver_sql("ANALYZE")
        engine.dispose()

    def fresh(self) -> str:
        self.copies += 1
        name = f"copy{self.copies}"
        shutil.copyfile(self.workdir / "template.db", self.workdir / f"{name}.db")
        return name

    def drop(self, name: str) -> None:
        for suffix in (".db", ".db-journal", ".db-wal", ".db-shm"):
            (self.workdir / (name + suffix)).unlink(missing_ok=True)


class ServerBackend(Backend):
    """A database server: copies are schemas or databases named ``bench_<pid>_<name>``."""

    def __init__(self, url: str | None, workdir: Path) -> None:
        super().__init__(url, workdir)
        assert url is not None
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.prefix = f"bench_{os.getpid()}_"

    def close(self) -> None:
        self.drop("template")
        self.admin.dispose()


class PostgresBackend(ServerBackend):
    dialect = "postgresql"

    def url(self, name: str) -> str:
        assert self.base_url is not None
        schema = self.prefix + name
        url = make_url(self.base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def build_template(self, shape: Shape, *, with_subjects: bool = True) -> None:
        schema = self.prefix + "template"
        position = "(i::bigint * :permute) % :rows" if shape.permuted else "(i - 1)"
        offset = shape.offset(f"floor({position} * :step)")
        with self.admin.connect() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
            c.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
            c.exec_driver_sql(
                f"CREATE TABLE {schema}.subjects (id integer PRIMARY KEY, "
                "created_at timestamptz NOT NULL)"
            )
            c.exec_driver_sql(
                f"CREATE TABLE {schema}.events (id integer NOT NULL, subject_id integer NOT NULL, "
                "created_at timestamptz, email varchar(120), ip varchar(45), name varchar(80))"
            )
            c.execute(
                text(
                    f"INSERT INTO {schema}.subjects SELECT i, :start "
                    "FROM generate_series(1, :subjects) i"
                ),
                {"subjects": shape.subjects, "start": START},
            )
            c.execute(
                text(
                    f"INSERT INTO {schema}.events SELECT i, i % :subjects + 1, "
                    "CAST(:start AS timestamptz) "
                    f"+ make_interval(secs => {offset} + 0.5),"
                    " 'user' || i || '@example.com', "
                    "'10.' || (i % 256) || '.' || (i / 256 % 256) || '.' || (i % 250 + 1), "
                    "'Name ' || i FROM generate_series(1, :rows) i"
                ),
                {
                    "rows": shape.rows,
                    "subjects": shape.subjects,
                    "permute": PERMUTE,
                    "start": START,
                    "step": shape.step_seconds,
                },
            )
            self._index(c, schema)

    def _index(self, c: Any, schema: str) -> None:
        c.exec_driver_sql(f"ALTER TABLE {schema}.events ADD PRIMARY KEY (id)")
        c.exec_driver_sql(f"CREATE INDEX ON {schema}.events (created_at)")
        c.exec_driver_sql(f"VACUUM ANALYZE {schema}.events")
        c.exec_driver_sql(f"VACUUM ANALYZE {schema}.subjects")

    def fresh(self) -> str:
        self.copies += 1
        name = f"copy{self.copies}"
        schema, template = self.prefix + name, self.prefix + "template"
        with self.admin.connect() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
            c.exec_driver_sql(
                f"CREATE TABLE {schema}.subjects AS SELECT * FROM {template}.subjects"
            )
            c.exec_driver_sql(f"ALTER TABLE {schema}.subjects ADD PRIMARY KEY (id)")
            c.exec_driver_sql(
                f"CREATE TABLE {schema}.events AS SELECT * FROM {template}.events ORDER BY id"
            )
            self._index(c, schema)
            c.exec_driver_sql("CHECKPOINT")  # the copy's dirty pages are not the next timing's
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {self.prefix + name} CASCADE")


class MariaBackend(ServerBackend):
    dialect = "mariadb"

    def url(self, name: str) -> str:
        assert self.base_url is not None
        url = make_url(self.base_url).set(database=self.prefix + name)
        return url.render_as_string(hide_password=False)

    def engine(self, name: str) -> Engine:
        engine = create_engine(self.url(name))
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _utc(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET time_zone = '+00:00'")
            cursor.close()

        return engine

    def build_template(self, shape: Shape, *, with_subjects: bool = True) -> None:
        db = self.prefix + "template"
        position = "(seq * :permute) % :rows" if shape.permuted else "(seq - 1)"
        offset = shape.offset(f"FLOOR({position} * :step)")
        with self.admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
            c.exec_driver_sql(f"CREATE DATABASE {db}")
            c.exec_driver_sql(
                f"CREATE TABLE {db}.subjects (id int PRIMARY KEY, created_at datetime(6) NOT NULL)"
            )
            c.exec_driver_sql(
                f"CREATE TABLE {db}.events (id int PRIMARY KEY, subject_id int NOT NULL, "
                "created_at datetime(6), email varchar(120), ip varchar(45), name varchar(80), "
                "KEY events_created_at (created_at))"
            )
            c.execute(
                text(
                    f"INSERT INTO {db}.subjects SELECT seq, :start FROM seq_1_to_{shape.subjects}"
                ),
                {"start": START.replace(tzinfo=None)},
            )
            c.execute(
                text(
                    f"INSERT INTO {db}.events SELECT seq, seq % :subjects + 1, "
                    "TIMESTAMPADD(MICROSECOND, "
                    f"{offset} * 1000000 + 500000, :start), "
                    "CONCAT('user', seq, '@example.com'), "
                    "CONCAT('10.', seq % 256, '.', FLOOR(seq / 256) % 256, '.', seq % 250 + 1), "
                    f"CONCAT('Name ', seq) FROM seq_1_to_{shape.rows}"
                ),
                {
                    "rows": shape.rows,
                    "subjects": shape.subjects,
                    "permute": PERMUTE,
                    "start": START.replace(tzinfo=None),
                    "step": shape.step_seconds,
                },
            )
            c.exec_driver_sql(f"ANALYZE TABLE {db}.events, {db}.subjects")

    def fresh(self) -> str:
        self.copies += 1
        name = f"copy{self.copies}"
        db, template = self.prefix + name, self.prefix + "template"
        with self.admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
            c.exec_driver_sql(f"CREATE DATABASE {db}")
            for table in ("subjects", "events"):
                c.exec_driver_sql(f"CREATE TABLE {db}.{table} LIKE {template}.{table}")
                c.exec_driver_sql(f"INSERT INTO {db}.{table} SELECT * FROM {template}.{table}")
            c.exec_driver_sql(f"ANALYZE TABLE {db}.events")
        return name

    def drop(self, name: str) -> None:
        with self.admin.connect() as c:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.prefix + name}")


BACKENDS: dict[str, type[Backend]] = {
    "sqlite": SqliteBackend,
    "postgresql": PostgresBackend,
    "mariadb": MariaBackend,
}


@contextmanager
def backend(dialect: str, url: str | None, workdir: Path) -> Iterator[Backend]:
    found = BACKENDS[dialect](url or DEFAULT_URLS[dialect], workdir)
    try:
        yield found
    finally:
        found.close()


# -- the plain-SQL baselines ---------------------------------------------------------------------


def due_unheld(alias: str = "") -> str:
    """The DBA's predicate: due and not held (`:cutoff`, `:held` bound)."""
    return f"{alias}created_at < :cutoff AND {alias}subject_id NOT IN :held"


def statement(sql: str) -> Any:
    """`sql` with `:held` (where it appears) as an expanding IN list."""
    if ":held" not in sql:
        return text(sql)
    return text(sql).bindparams(bindparam("held", expanding=True))


def expected_counts(engine: Engine, shape: Shape, dialect: str) -> dict[str, int]:
    """How many rows are due and unheld, and due and held, in a copy before any change."""
    params = {"cutoff": cutoff_param(dialect), "held": shape.held}
    with engine.connect() as c:
        total = c.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
        unheld = c.execute(
            statement(f"SELECT count(*) FROM events WHERE {due_unheld()}"), params
        ).scalar_one()
        held = c.execute(
            statement(
                "SELECT count(*) FROM events WHERE created_at < :cutoff AND subject_id IN :held"
            ),
            params,
        ).scalar_one()
    return {"total": int(total), "due_unheld": int(unheld), "due_held": int(held)}


def window_end(c: Any, last: int, batch_size: int) -> int | None:
    """The last key of the next `batch_size` keys after `last` (the keyset window)."""
    row = c.execute(
        text("SELECT max(id) FROM (SELECT id FROM events WHERE id > :last ORDER BY id LIMIT :n) w"),
        {"last": last, "n": batch_size},
    ).first()
    return None if row is None or row[0] is None else int(row[0])


def keyset_loop(engine: Engine, batch_size: int, step: Callable[[Any, int, int], int]) -> int:
    """A DBA's batched job: windows of `batch_size` keys in primary-key order, each handled by
    ``step(connection, last, end)`` (the rows it changed) and committed on its own; the total."""
    done, last = 0, 0
    with engine.connect() as c:
        while True:
            end = window_end(c, last, batch_size)
            c.commit()
            if end is None:
                return done
            done += step(c, last, end)
            c.commit()
            last = end


@contextmanager
def moto_server(script: str, count: int) -> Iterator[str]:
    """``python script --serve COUNT PORT`` on a free loopback port, a moto S3 server seeded
    with `count` objects that prints "ready"; its endpoint URL, the server killed afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, script, "--serve", str(count), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


# -- retention's side ----------------------------------------------------------------------------


def write_config(
    directory: Path,
    url: str,
    shape: Shape,
    *,
    rules: list[dict[str, Any]],
    batch_size: int = 5000,  # 0: leave it to the default
    state_url: str | None = None,
) -> Path:
    """config.yaml, rules/pack.yaml and holds.yaml for the `events` table; the config path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules").mkdir(exist_ok=True)
    (directory / "rules" / "pack.yaml").write_text(
        yaml.safe_dump({"policy": {"name": "bench"}, "rules": rules}, sort_keys=False)
    )
    holds = {"holds": [{"id": "litigation", "subjects": {"customer": shape.held}}]}
    (directory / "holds.yaml").write_text(yaml.safe_dump(holds))
    config = {
        "state_db": state_url or f"sqlite:///{directory / 'state.db'}",
        "rules": ["rules/"],
        "holds": "holds.yaml",
        "hmac_key": HMAC_KEY,
        "audit": {"keys": "hmac"},
        **({"batch_size": batch_size} if batch_size else {}),  # 0: the default
        "limits": {"max_fraction": 1.0, "max_actions_per_run": 1_000_000_000},
        "stores": {"app": {"kind": "sql", "url": url}},
        "subjects": {
            "customer": {
                "store": "app",
                "table": "subjects",
                "key": "id",
                "events": {"created": "created_at"},
            }
        },
        "datasets": {
            "events": {
                "store": "app",
                "table": "events",
                "key": "id",
                "category": "events",
                "subject": {"type": "customer", "column": "subject_id"},
                "timestamps": {"created": "created_at"},
                "personal": {"email": "email", "ip": "ip", "name": "name"},
            }
        },
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


DELETE_RULE: dict[str, Any] = {
    "id": "events-1y",
    "applies_to": {"dataset": "events"},
    "after": "record.created",
    "retain": f"P{RETAIN_DAYS}D",
    "action": "delete",
}
ANONYMIZE_RULE: dict[str, Any] = {
    "id": "events-anon-1y",
    "applies_to": {"dataset": "events"},
    "after": "record.created",
    "retain": f"P{RETAIN_DAYS}D",
    "action": "anonymize",
    "anonymize": {"email": "hash", "ip": "truncate_ip", "name": "null"},
}


def batch_cadence(config_path: Path) -> tuple[int, float]:
    """A finished run's batches and the longest time between two of its batch entries: about
    how long a hold placed mid-run, or a stop, waits for the batch under way."""
    from retention.audit import AuditLog
    from retention.runevents import RUN_ACTION
    from retention.statedb import open_state

    engine = open_state(f"sqlite:///{config_path.parent / 'state.db'}")
    try:
        entries = list(AuditLog(engine, keys="plain", hmac_key=None).entries())
    finally:
        engine.dispose()
    times = [dt.datetime.fromisoformat(e.at) for e in entries if e.action != RUN_ACTION]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    return len(times), max(gaps, default=0.0)


def run_retention(config_path: Path) -> tuple[float, Any]:
    """`retention run --execute` in this process: seconds and the RunResult."""
    from retention.config import load_config
    from retention.executor import Executor

    quiet()
    config = load_config(config_path)
    started = time.perf_counter()
    result = Executor(config, now=NOW, live=True).run()
    seconds = time.perf_counter() - started
    if result.status != "complete":
        raise RuntimeError(f"retention run ended {result.status}: {result.as_dict()}")
    return seconds, result


def quiet() -> None:
    """Only warnings from retention's logs: one line per audited batch is not what is measured."""
    import logging

    from retention.logs import configure

    configure(level=logging.WARNING)


# -- reporting -------------------------------------------------------------------------------


@dataclass
class Report:
    """Figures of one benchmark run, printed as a table and (with --json) as JSON lines."""

    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    ratios: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, seconds: float, rows: int, **extra: Any) -> None:
        if "runs" in extra:
            extra["runs"] = [round(v, 3) for v in extra["runs"]]
        rate = rows / seconds if seconds else float("inf")
        self.rows.append(
            {"measure": name, "seconds": round(seconds, 3), "rows": rows, "rows_per_s": round(rate)}
            | extra
        )
        print(f"  {name:<46} {seconds:9.3f} s  {rows:>10,} rows  {rate:>12,.0f} rows/s", flush=True)

    def ratio(self, name: str, value: float, target: str = "", met: bool | None = None) -> None:
        self.ratios.append({"ratio": name, "value": round(value, 3), "target": target, "met": met})
        verdict = "" if met is None else ("  met" if met else "  MISSED")
        goal = f"  (target {target})" if target else ""
        print(f"  {name:<46} {value:9.2f}{goal}{verdict}", flush=True)

    def dump(self, path: str | None) -> None:
        if path:
            with open(path, "a") as out:
                out.write(
                    json.dumps({"title": self.title, "rows": self.rows, "ratios": self.ratios})
                )
                out.write("\n")


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def common_args(description: str, *, sizes: bool = False) -> argparse.ArgumentParser:
    """The options every SQL benchmark takes (`sizes`: --rows may be repeated)."""
    parser = argparse.ArgumentParser(description=description)
    if sizes:
        parser.add_argument("--rows", type=int, action="append", help="repeat for several")
    else:
        parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--dialect",
        action="append",
        choices=sorted(BACKENDS),
        help="repeat for several (default: sqlite and postgresql)",
    )
    parser.add_argument("--url", action="append", default=[], help="dialect=URL, to override")
    parser.add_argument("--layout", choices=("scattered", "ordered", "dates"), default="scattered")
    parser.add_argument(
        "--workdir", help="where SQLite files and state DBs go (default: a temp dir)"
    )
    parser.add_argument("--json", dest="json_out", help="append the figures as JSON lines here")
    return parser


def batch_args(parser: argparse.ArgumentParser) -> None:
    """The options of the benchmarks that compare batch sizes against a per-row loop."""
    parser.add_argument(
        "--batch-size", type=int, action="append", help="repeat for several; 0: the default"
    )
    parser.add_argument("--sample", type=int, default=10_000, help="rows for (d); 0 skips it")
    parser.add_argument("--repeat", type=int, default=1, help="runs of (a)-(c); medians shown")


def each_dialect(
    args: argparse.Namespace,
    title: Callable[[str], str],
    bench: Callable[[argparse.Namespace, str, str | None, Path, Report], None],
) -> None:
    """Run `bench` once per chosen dialect (default SQLite and PostgreSQL), each with its own
    report, printed and appended to ``--json``."""
    found = urls(args)
    with workdir(args) as work:
        for dialect in args.dialect or ["sqlite", "postgresql"]:
            report = Report(title(dialect))
            bench(args, dialect, found.get(dialect), work, report)
            report.dump(args.json_out)


def urls(args: argparse.Namespace) -> dict[str, str]:
    found = {}
    for item in args.url:
        name, _, url = item.partition("=")
        found[name] = url
    return found


@contextmanager
def workdir(args: argparse.Namespace) -> Iterator[Path]:
    if args.workdir:
        path = Path(args.workdir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="retention-bench-") as name:
        yield Path(name)


def in_child(argv: list[str]) -> dict[str, Any]:
    """Run this interpreter on `argv`: its last stdout line as JSON, plus its peak RSS.

    The peak comes from the kernel's accounting of that one child (``wait4``), so it is the
    whole process's maximum resident set, interpreter and libraries included.
    """
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, *argv], stdout=subprocess.PIPE, stderr=errors, cwd=REPO
        )
        assert child.stdout is not None
        output = child.stdout.read().decode()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"child failed ({child.returncode}): {errors.read()[-3000:]!r}")
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["max_rss_mib"] = round(usage.ru_maxrss / 1024, 1)
    return result
