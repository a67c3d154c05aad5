"""The commit point and the state DB it writes: a state DB that cannot be written stops the run
with one clear line (exit 3), never a traceback, and never leaves a run looking like it runs;
the next run, with the state DB back, settles what the stopped one left."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from retention.audit import AuditLog
from retention.cli import app
from retention.errors import StateDBError
from retention.executor import Executor
from retention.lease import Lease
from retention.runevents import RUN_ACTION
from retention.statedb import open_state
from retention.testing import OnPoint

from .conftest import POSTGRES_ENV, Database
from .scenario import Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")


@pytest.fixture
def world(sqlite_db: Database, tmp_path: Path) -> Scenario:
    world = Scenario(sqlite_db, tmp_path)
    world.tickets(*({"id": i, "created_at": at("2020-01-01")} for i in range(1, 7)))
    return world


def _run_cli(config: Path, monkeypatch: pytest.MonkeyPatch, state_db: str) -> tuple[int, str]:
    monkeypatch.setenv("RETENTION_STATE_DB", state_db)
    result = CliRunner().invoke(
        app, ["run", "-c", str(config), "--execute", "--now", NOW.isoformat()]
    )
    return result.exit_code, result.stderr


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_read_only_state_db_is_one_line_and_exit_3(
    world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state DB that cannot be written (a read-only file or mount) stops the run before it
    acts, with the cause in one line; nothing is deleted."""
    path = world.write([rule()])
    state = world.directory / "state.db"
    open_state(f"sqlite:///{state}").dispose()
    code, stderr = _run_cli(path, monkeypatch, f"sqlite:///file:{state}?mode=ro&uri=true")
    assert code == 3
    line = _one_line(stderr)
    assert "cannot open the state DB" in line and "OperationalError: " in line
    assert world.ticket_ids() == [1, 2, 3, 4, 5, 6]


def test_a_locked_state_db_is_one_line_and_exit_3(
    world: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the state DB's write lock past the wait (`?timeout=` seconds):
    exit 3 with the cause in one line, nothing deleted; the next run, unlocked, does the work."""
    path = world.write([rule()])
    state = world.directory / "state.db"
    open_state(f"sqlite:///{state}").dispose()
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, stderr = _run_cli(path, monkeypatch, f"sqlite:///{state}?timeout=0.5")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 3
    assert "database is locked" in _one_line(stderr)
    assert world.ticket_ids() == [1, 2, 3, 4, 5, 6]
    code, stderr = _run_cli(path, monkeypatch, f"sqlite:///{state}")
    assert code == 0, stderr
    assert world.ticket_ids() == []


@pytest.fixture
def postgres_state() -> Iterator[tuple[str, str]]:
    """A PostgreSQL database of its own for a state DB (so it can be made to go away), and the
    server's admin URL; dropped afterwards."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set: no server to test against (.ci/run sets it)")
    name = f"s_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, name
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            connection.execute(text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def _cut(name: str, allow: bool) -> None:
    """Make the state DB's database refuse (or accept again) connections, and cut those open."""
    base = os.environ[POSTGRES_ENV]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if allow else "false"}')
        )
        if not allow:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    admin.dispose()


@pytest.mark.postgres
def test_a_state_db_that_goes_away_mid_run_stops_it_and_the_next_run_settles_it(
    world: Scenario, postgres_state: tuple[str, str]
) -> None:
    """The PostgreSQL state DB goes away while a batch is written: the run stops with a
    StateDBError (no more batches: none could be audited); with it back, the next run marks
    the stopped run interrupted, settles the batch that was in flight from the data, finishes
    the work, and the chain verifies with every key audited once."""
    url, name = postgres_state
    config = world.config([rule()], state_db=url, batch_size=2, audit={"keys": "plain"})
    cut = OnPoint("write", lambda: _cut(name, allow=False), 2)  # as batch 2's DELETE is sent
    state = open_state(url)
    lease = Lease(state, ttl=dt.timedelta(seconds=1))  # so the next run need not wait a minute
    with pytest.raises(StateDBError):
        Executor(config, now=NOW, live=True, probe=cut, state=state, lease=lease).run()
    state.dispose()
    left = world.ticket_ids()
    assert 2 <= 6 - len(left) <= 4  # batch 1, and batch 2 if its data committed: no more
    _cut(name, allow=True)
    time.sleep(1.1)  # the stopped run's lease runs out
    result = Executor(config, now=NOW, live=True).run()
    assert world.ticket_ids() == []
    engine = open_state(url)
    try:
        log = AuditLog(engine, keys="plain", hmac_key=None)
        assert log.verify().ok
        entries = [e for e in log.entries() if e.action != RUN_ACTION]
        audited = [k for e in entries if e.outcome == "done" for k in json.loads(e.keys)]
        assert sorted(audited, key=int) == [str(i) for i in range(1, 7)]
        with engine.connect() as connection:
            statuses = dict(connection.execute(text("SELECT id, status FROM retention_runs")).all())
    finally:
        engine.dispose()
    assert sorted(statuses.values()) == ["complete", "interrupted"]
    assert statuses[result.run_id] == "complete"
