"""Replay after a backup restore (`retention replay --since`): every delete and anonymize the
audit log recorded since the backup is applied again to the records the restore brought back,
matched by their keys' HMAC (the state DB holds no plain keys), held records never touched."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.executor import Executor
from retention.testing import CrashAt, FixedClock, SimulatedCrash

from .conftest import Database
from .scenario import ACCOUNTS, TICKETS, Scenario, at, rule

BACKUP = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)
DIALECTS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
RULES = [
    rule("tickets.delete", where={"status": ["closed"]}),
    rule(
        "tickets.pseudonymize",
        where={"status": ["open"]},
        action="anonymize",
        anonymize={"email": "hash"},
    ),
]
HOLD = {"holds": [{"id": "case-1", "active": True, "subjects": {"account": [2]}}]}
runner = CliRunner()


@pytest.fixture(params=DIALECTS)
def rdb(request: pytest.FixtureRequest) -> Database:
    """SQLite, PostgreSQL and MariaDB."""
    database: Database = request.getfixturevalue(f"{request.param}_db")
    return database


def world(db: Database, tmp_path: Path) -> tuple[Scenario, Path]:
    """Accounts 1 and 2; tickets 1-12, even ones closed (deleted), odd ones open (pseudonymized)."""
    scenario = Scenario(db, tmp_path)
    scenario.accounts({"id": 1}, {"id": 2})
    scenario.tickets(
        *(
            {
                "id": i,
                "account_id": 1 if i <= 8 else 2,
                "created_at": at("2020-01-01"),
                "status": "closed" if i % 2 == 0 else "open",
                "email": f"user{i}@example.org",
            }
            for i in range(1, 13)
        )
    )
    return scenario, scenario.write(RULES, batch_size=2, audit={"keys": "hmac"})


def snapshot(db: Database) -> list[tuple[Any, ...]]:
    with db.engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(TICKETS).order_by(TICKETS.c.id))]


def restore_backup(scenario: Scenario, backup: list[tuple[Any, ...]]) -> None:
    """What restoring last night's backup does: the tables as they were."""
    scenario.clear()
    with scenario.db.engine.begin() as connection:
        connection.execute(insert(ACCOUNTS), [{"id": 1}, {"id": 2}])
        names = [c.name for c in TICKETS.columns]
        connection.execute(insert(TICKETS), [dict(zip(names, r, strict=True)) for r in backup])


def executor(config: Path, **kwargs: Any) -> Executor:
    return Executor(load_config(config), now=NOW, live=True, clock=FixedClock(NOW), **kwargs)


def audit(config: Path) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["audit", "export", "-c", str(config), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def verifies(config: Path) -> None:
    result = runner.invoke(app, ["audit", "verify", "-c", str(config)])
    assert result.exit_code == 0, result.output


def test_replay_reapplies_what_the_log_recorded_since_the_backup(
    rdb: Database, tmp_path: Path
) -> None:
    """After a backup from before a run is restored, a dry-run replay changes nothing and
    counts what it would do; `--execute` brings the tables back to what the run left, a
    ticket created after the backup is untouched, the log holds only HMACs, and it verifies."""
    scenario, config = world(rdb, tmp_path)
    backup = snapshot(rdb)
    executor(config).run()
    after_run = snapshot(rdb)
    assert [t[0] for t in after_run] == [1, 3, 5, 7, 9, 11]
    restore_backup(scenario, backup)
    scenario.tickets({"id": 40, "account_id": 1, "status": "closed", "email": "new@example.org"})
    since = BACKUP.isoformat()
    dry = runner.invoke(app, ["replay", "--since", since, "-c", str(config)])
    assert dry.exit_code == 0, dry.output
    assert len(snapshot(rdb)) == 13
    result = executor(config).replay(BACKUP)
    by_rule = {o.rule: o.acted for o in result.outcomes}
    assert by_rule == {"tickets.delete": 6, "tickets.pseudonymize": 6}
    assert [t for t in snapshot(rdb) if t[0] != 40] == after_run
    assert next(t for t in snapshot(rdb) if t[0] == 40)[5] == "new@example.org"
    entries = audit(config)
    text = json.dumps(entries)
    assert "user2@example.org" not in text
    assert all(len(k) == 64 for e in entries for k in e.get("keys") or [])
    verifies(config)


def test_replay_never_touches_held_records(rdb: Database, tmp_path: Path) -> None:
    """A hold placed on account 2 after the run: its tickets come back from the backup and stay
    as they are; the others are deleted or pseudonymized again."""
    scenario, config = world(rdb, tmp_path)
    backup = snapshot(rdb)
    executor(config).run()
    restore_backup(scenario, backup)
    scenario.write(RULES, holds=HOLD, batch_size=2, audit={"keys": "hmac"})
    executor(config).replay(BACKUP)
    rows = {t[0]: t for t in snapshot(rdb)}
    assert [k for k in rows if k > 8] == [9, 10, 11, 12]
    assert all(rows[k][5] == f"user{k}@example.org" for k in (9, 10, 11, 12))
    assert [k for k in rows if k <= 8] == [1, 3, 5, 7]
    assert all(rows[k][5] != f"user{k}@example.org" for k in (1, 3, 5, 7))
    verifies(config)


def test_a_crash_in_the_middle_of_a_replay(rdb: Database, tmp_path: Path) -> None:
    """A replay killed after its second batch's intent: the next replay settles that batch and
    finishes; every recorded ticket is deleted again exactly once (one replay entry per key),
    and the chain verifies."""
    scenario, config = world(rdb, tmp_path)
    backup = snapshot(rdb)
    first = executor(config).run()
    after_run = snapshot(rdb)
    restore_backup(scenario, backup)
    with pytest.raises(SimulatedCrash):
        executor(config, probe=CrashAt("intent", 2)).replay(BACKUP)
    assert snapshot(rdb) != after_run
    executor(config).replay(BACKUP)
    assert snapshot(rdb) == after_run
    replayed = [
        key
        for e in audit(config)
        if e["run_id"] != first.run_id and e["action"] == "delete" and e["outcome"] == "done"
        for key in e["keys"]
    ]
    assert len(replayed) == len(set(replayed)) == 6
    verifies(config)
