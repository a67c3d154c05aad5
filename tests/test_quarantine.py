"""The restore window (`quarantine: P7D`): a live delete keeps its rows (and its cascade
children's) in a quarantine table in the same transaction, `retention restore --run` puts them
back while the window lasts, and a run purges them for good once it has ended."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, func, insert, select
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.errors import ConfigError
from retention.executor import Executor
from retention.stores.sql import make_engine
from retention.testing import CrashAt, FixedClock, SimulatedCrash, examples

from .conftest import Database
from .scenario import MESSAGES, TICKETS, TICKETS_DATASET, Scenario, at, rule

NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
DIALECTS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
runner = CliRunner()


@pytest.fixture(params=DIALECTS)
def qdb(request: pytest.FixtureRequest) -> Database:
    """SQLite, PostgreSQL and MariaDB (where a delete selects and locks its rows first: no
    DELETE ... RETURNING on every version)."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


def datasets(window: str = "P7D") -> dict[str, Any]:
    tickets = {
        **TICKETS_DATASET,
        "quarantine": window,
        "cascade": [{"dataset": "messages", "column": "ticket_id"}],
    }
    messages = {"store": "app", "table": "messages", "key": "id", "category": "support_data"}
    return {"tickets": tickets, "messages": messages}


def world(db: Database, tmp_path: Path, tickets: int = 10, **settings: Any) -> Path:
    scenario = Scenario(db, tmp_path)
    scenario.accounts({"id": 1})
    scenario.tickets(
        *(
            {
                "id": i,
                "account_id": 1,
                "created_at": at("2020-01-01"),
                "status": "closed",
                "email": f"user{i}@example.org",
            }
            for i in range(1, tickets + 1)
        )
    )
    scenario.messages(*({"id": 100 + i, "ticket_id": i, "body": f"m{i}"} for i in (1, 2, 3)))
    return scenario.write([rule("tickets.delete")], datasets=datasets(), **settings)


def rows(db: Database, name: str) -> list[tuple[Any, ...]]:
    table = Table(name, MetaData(), autoload_with=db.engine)
    with db.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(table).order_by(*table.primary_key))]


def live_rows(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with db.engine.connect() as connection:
        tickets = [tuple(r) for r in connection.execute(select(TICKETS).order_by(TICKETS.c.id))]
        messages = [tuple(r) for r in connection.execute(select(MESSAGES).order_by(MESSAGES.c.id))]
    return tickets, messages


def audit(config: Path) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["audit", "export", "-c", str(config), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def verifies(config: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "-c", str(config)])
    assert result.exit_code == 0, result.output


def keys_of(entries: list[dict[str, Any]], action: str, dataset: str = "tickets") -> list[str]:
    return [
        key
        for entry in entries
        if entry["action"] == action and entry["outcome"] == "done" and not entry["dry_run"]
        if entry["dataset"] == dataset
        for key in entry.get("keys") or []
    ]


def run(config: Path, moment: dt.datetime = NOW, **kwargs: Any) -> Any:
    return Executor(
        load_config(config), now=moment, live=True, clock=FixedClock(moment), **kwargs
    ).run()


def test_a_delete_keeps_its_rows_and_restore_puts_them_back(qdb: Database, tmp_path: Path) -> None:
    """A live delete empties the live tables and fills `retention_quarantine_tickets` (and
    `..._messages` for the cascade) with exactly the deleted rows, tagged with the run; a
    dry-run restore changes nothing; `restore --run --execute` puts back every column of every
    row, audited, and the chain verifies."""
    config = world(qdb, tmp_path, audit={"keys": "plain"})
    before = live_rows(qdb)
    result = run(config)
    assert live_rows(qdb) == ([], [])
    kept = rows(qdb, "retention_quarantine_tickets")
    assert [r[1] for r in kept] == list(range(1, 11)) and {r[0] for r in kept} == {result.run_id}
    assert len(rows(qdb, "retention_quarantine_messages")) == 3
    restoring = ["restore", "--run", result.run_id, "-c", str(config), "--now", NOW.isoformat()]
    dry = runner.invoke(app, restoring)
    assert dry.exit_code == 0, dry.output
    assert "would" in dry.stdout and live_rows(qdb) == ([], [])
    done = runner.invoke(app, [*restoring, "--execute"])
    assert done.exit_code == 0, done.output
    assert live_rows(qdb) == before
    assert rows(qdb, "retention_quarantine_tickets") == []
    assert rows(qdb, "retention_quarantine_messages") == []
    entries = audit(config)
    assert sorted(keys_of(entries, "restore"), key=int) == [str(i) for i in range(1, 11)]
    assert sorted(keys_of(entries, "restore", "messages")) == ["101", "102", "103"]
    verifies(config)


def test_plan_shows_what_each_quarantined_dataset_keeps(qdb: Database, tmp_path: Path) -> None:
    """After a quarantined delete the plan says, per dataset and cascade child, how many
    records are kept and when they are purged (text and --json); nothing before the delete,
    nothing once purged."""
    config = world(qdb, tmp_path)
    plan = ["plan", "-c", str(config), "--now", NOW.isoformat()]
    before = json.loads(runner.invoke(app, [*plan, "--json"]).stdout)["quarantine"]
    assert [(q["dataset"], q["count"]) for q in before] == [("tickets", 0), ("messages", 0)]
    run(config)
    shown = runner.invoke(app, plan)
    assert "quarantine: tickets keeps 10, purged on 2026-11-28" in shown.stdout, shown.output
    assert "quarantine: messages keeps 3, purged on 2026-11-28" in shown.stdout
    data = json.loads(runner.invoke(app, [*plan, "--json"]).stdout)["quarantine"]
    assert data[0] == {
        "dataset": "tickets",
        "count": 10,
        "first_purge": "2026-11-28T00:00:00+00:00",
        "last_purge": "2026-11-28T00:00:00+00:00",
    }
    run(config, NOW + dt.timedelta(days=8))
    after = json.loads(runner.invoke(app, [*plan, "--json"]).stdout)["quarantine"]
    assert [q["count"] for q in after] == [0, 0]


def test_a_key_that_exists_again_is_reported_not_restored(qdb: Database, tmp_path: Path) -> None:
    """A ticket created again with a deleted one's key is left as it is: the restore reports
    its key (audited), puts back the others, and the old row stays in quarantine."""
    config = world(qdb, tmp_path, audit={"keys": "plain"})
    result = run(config)
    Scenario(qdb, tmp_path).tickets({"id": 4, "account_id": 1, "email": "new@example.org"})
    restored = Executor(load_config(config), now=NOW, live=True).restore(result.run_id)
    tickets, _ = live_rows(qdb)
    assert [t[0] for t in tickets] == list(range(1, 11))
    assert next(t for t in tickets if t[0] == 4)[5] == "new@example.org"
    assert [r[1] for r in rows(qdb, "retention_quarantine_tickets")] == [4]
    (outcome,) = [o for o in restored.outcomes if o.dataset == "tickets"]
    assert outcome.acted == 9 and "1 not restored" in (outcome.message or "")
    refused = [e for e in audit(config) if e["outcome"].startswith("not restored")]
    assert [e["keys"] for e in refused] == [["4"]]
    verifies(config)


def test_what_is_past_its_window_is_not_restored(qdb: Database, tmp_path: Path) -> None:
    """Eight days on, before any run has purged them, the rows of a P7D window are not put
    back (their window ended: they wait for their purge); a day before, they are."""
    config = world(qdb, tmp_path)
    result = run(config)
    late = Executor(load_config(config), now=NOW + dt.timedelta(days=8), live=True)
    assert late.restore(result.run_id).outcomes == () and live_rows(qdb) == ([], [])
    assert len(rows(qdb, "retention_quarantine_tickets")) == 10
    in_time = Executor(load_config(config), now=NOW + dt.timedelta(days=6), live=True)
    (tickets, messages) = in_time.restore(result.run_id).outcomes
    assert (tickets.acted, messages.acted) == (10, 3)


def test_a_run_purges_what_is_past_its_window(qdb: Database, tmp_path: Path) -> None:
    """Six days on, a run purges nothing; eight days on, it purges every quarantined row
    for good (audited as `purge quarantine`, children too), and a restore finds nothing."""
    config = world(qdb, tmp_path, audit={"keys": "plain"})
    first = run(config)
    run(config, NOW + dt.timedelta(days=6))
    assert len(rows(qdb, "retention_quarantine_tickets")) == 10
    run(config, NOW + dt.timedelta(days=8))
    assert rows(qdb, "retention_quarantine_tickets") == []
    assert rows(qdb, "retention_quarantine_messages") == []
    entries = audit(config)
    assert sorted(keys_of(entries, "purge quarantine"), key=int) == [str(i) for i in range(1, 11)]
    assert len(keys_of(entries, "purge quarantine", "messages")) == 3
    later = Executor(load_config(config), now=NOW, live=True).restore(first.run_id)
    assert later.outcomes == () and live_rows(qdb) == ([], [])
    verifies(config)


@pytest.mark.parametrize("step", ["delete", "restore", "purge"])
def test_a_crash_in_the_middle_loses_nothing_and_does_nothing_twice(
    qdb: Database, tmp_path: Path, step: str
) -> None:
    """Killed after the second batch's intent (a delete, a restore, a purge): the next run
    settles it and finishes; every ticket is deleted, quarantined, restored or purged exactly
    once, each audited once, and the chain verifies."""
    config = world(qdb, tmp_path, batch_size=3, audit={"keys": "plain"})
    expected = [str(i) for i in range(1, 11)]
    crash = CrashAt("intent", 2)
    if step == "delete":
        with pytest.raises(SimulatedCrash):
            run(config, probe=crash)
        assert 0 < len(live_rows(qdb)[0]) < 10
        run(config)
        kept = sorted(r[1] for r in rows(qdb, "retention_quarantine_tickets"))
        assert kept == list(range(1, 11))
        action = "delete"
    elif step == "restore":
        first = run(config)
        with pytest.raises(SimulatedCrash):
            Executor(load_config(config), now=NOW, live=True, probe=crash).restore(first.run_id)
        Executor(load_config(config), now=NOW, live=True).restore(first.run_id)
        assert [t[0] for t in live_rows(qdb)[0]] == list(range(1, 11))
        action = "restore"
    else:
        run(config)
        later = NOW + dt.timedelta(days=8)
        with pytest.raises(SimulatedCrash):
            run(config, later, probe=crash)
        run(config, later)
        action = "purge quarantine"
    if step != "delete":
        assert rows(qdb, "retention_quarantine_tickets") == []
    keys = keys_of(audit(config), action)
    assert sorted(keys, key=int) == expected
    verifies(config)


def test_a_lake_table_has_no_quarantine(tmp_path: Path) -> None:
    """`quarantine:` on a Delta table (its deletes have their own `purge_after`) is a config
    error naming the field."""
    (tmp_path / "lake").mkdir()
    (tmp_path / "config.yaml").write_text(
        "stores: {lake: {kind: delta, root: lake}}\n"
        "datasets:\n"
        "  logs: {store: lake, table: logs, key: id, category: logs, quarantine: P7D}\n"
    )
    with pytest.raises(ConfigError, match="quarantine"):
        load_config(tmp_path / "config.yaml")


@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    recreated=st.sets(st.integers(1, 10), max_size=10),
    batch=st.integers(1, 12),
)
def test_restore_never_overwrites_and_never_loses(
    tmp_path_factory: pytest.TempPathFactory, recreated: set[int], batch: int
) -> None:
    """Whatever keys were created again and whatever the batch size: after delete and restore
    each ticket is either its restored self or the new row with its key, never both, never
    neither; what was not restored is still in quarantine."""
    directory = tmp_path_factory.mktemp("q")
    url = f"sqlite:///{directory / 'app.db'}"
    database = Database(url, "sqlite", make_engine(url))
    try:
        config = world(database, directory, batch_size=batch)
        before = {t[0]: t for t in live_rows(database)[0]}
        result = run(config)
        Scenario(database, directory).tickets(
            *({"id": i, "account_id": 1, "email": "again"} for i in sorted(recreated))
        )
        Executor(load_config(config), now=NOW, live=True).restore(result.run_id)
        after = {t[0]: t for t in live_rows(database)[0]}
        assert sorted(after) == list(range(1, 11))
        for key, row in after.items():
            assert row[5] == ("again" if key in recreated else before[key][5])
        kept = [r[1] for r in rows(database, "retention_quarantine_tickets")]
        assert kept == sorted(recreated)
        with database.engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(TICKETS)).scalar() == 10
    finally:
        database.engine.dispose()


@pytest.mark.postgres
def test_a_restore_puts_back_as_many_rows_as_were_quarantined_in_large_batches(
    postgres_db: Database, tmp_path: Path
) -> None:
    """20,000 rows with a four-column key, deleted and restored in batches of 17,000: every
    quarantined row comes back, counted and audited once. (A batch's keys went into one
    IN-list, four parameters a key: past PostgreSQL's 65,535 bound parameters the restore
    failed, restoring fewer rows than were quarantined; a single-column key needed batches
    over 65,535 rows.)"""
    db = postgres_db
    names = ("region", "shard", "day", "seq")
    events = Table(
        "events",
        MetaData(),
        *(Column(name, Integer, primary_key=True, autoincrement=False) for name in names),
        Column("created_at", DateTime),
    )
    events.metadata.create_all(db.engine)
    total = 20_000
    old = dt.datetime(2020, 1, 1)
    with db.engine.begin() as connection:
        data = [
            {"region": i % 3, "shard": i % 7, "day": i % 11, "seq": i, "created_at": old}
            for i in range(total)
        ]
        connection.execute(insert(events), data)
    dataset = {
        "store": "app",
        "table": "events",
        "key": list(names),
        "category": "logs",
        "timestamps": {"created": "created_at"},
        "quarantine": "P7D",
    }
    config = Scenario(db, tmp_path).write(
        [rule("events.delete", applies_to={"dataset": "events"})],
        datasets={"events": dataset},
        batch_size=17_000,
    )
    deleted = run(config)
    assert [o.acted for o in deleted.outcomes] == [total]
    assert len(rows(db, "retention_quarantine_events")) == total
    restored = Executor(load_config(config), now=NOW, live=True).restore(deleted.run_id)
    (outcome,) = restored.outcomes
    assert (outcome.acted, outcome.batches, outcome.status) == (total, 2, "ok")
    assert len(rows(db, "events")) == total
    assert rows(db, "retention_quarantine_events") == []
    entries = audit(config)
    assert sum(e["count"] for e in entries if e["action"] == "restore") == total
    verifies(config)
