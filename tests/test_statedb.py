"""`statedb.check_state` and `retention validate`: what stands between a URL and a usable state DB.

A bad URL or a missing driver is bad input (exit 2), a server that does not answer is
unreachable (exit 3), a schema newer than this release is refused (exit 2); a URL whose
database does not exist yet, or is at an older revision, is fine: it is created or upgraded
on first use. Messages never repeat the URL, which may hold a password.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from retention.cli import app
from retention.schema import VERSION_TABLE
from retention.statedb import StateProblem, check_state, open_state

from .conftest import Database
from .scenario import Scenario, rule


@pytest.fixture
def db(state_db: Database) -> Database:
    """`db` here is a state DB: SQLite, PostgreSQL and MariaDB (DuckDB is only a store)."""
    return state_db


def test_a_current_or_new_state_db_has_no_problem(db: Database, tmp_path: Path) -> None:
    """A state DB at the newest revision, an empty database and a SQLite file not yet created
    (in a directory that exists) are all usable; checking creates nothing."""
    assert check_state(db.url) == []
    open_state(db.url).dispose()
    assert check_state(db.url) == []
    missing = tmp_path / "later.db"
    assert check_state(f"sqlite:///{missing}") == []
    assert not missing.exists()


def test_bad_urls_and_missing_drivers_are_bad_input() -> None:
    """Unparseable URLs, unknown dialects and uninstalled drivers are problems that are not
    `unreachable`, and say what to install, never the URL."""
    (bad,) = check_state("not a url")
    assert not bad.unreachable and "not a database URL" in bad.message
    (dialect,) = check_state("nosuchdb://user:secret@host/db")
    assert not dialect.unreachable and "nosuchdb" in dialect.message
    (driver,) = check_state("postgresql+nosuchdriver://user:secret@host/db")
    assert not driver.unreachable
    assert all("secret" not in p.message for p in (bad, dialect, driver))


def test_an_unreachable_server_or_directory_is_unreachable(tmp_path: Path) -> None:
    """A server that refuses the connection, or a SQLite file in a missing directory, is
    `unreachable` (exit 3 from validate)."""
    (server,) = check_state("postgresql+psycopg://u:secret@127.0.0.1:1/db?connect_timeout=2")
    assert server.unreachable and "secret" not in server.message
    (directory,) = check_state(f"sqlite:///{tmp_path / 'nowhere' / 'state.db'}")
    assert directory == StateProblem(
        f"state_db: directory {tmp_path / 'nowhere'} does not exist", True
    )


def test_a_newer_schema_is_a_problem(db: Database) -> None:
    """A state DB upgraded by a newer release is reported, not unreachable."""
    open_state(db.url).dispose()
    with db.engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    (newer,) = check_state(db.url)
    assert not newer.unreachable and "revision 0099" in newer.message


def test_validate_checks_the_state_db(sqlite_db: Database, tmp_path: Path) -> None:
    """`retention validate` reports the state DB's problems with its exit codes: 0 when it is
    usable, 3 when unreachable, 2 when its schema is newer than this release."""
    world = Scenario(sqlite_db, tmp_path)
    path = world.write([rule()])
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", "--config", str(path)])
    assert ok.exit_code == 0, ok.output
    away = world.write([rule()], state_db=f"sqlite:///{tmp_path / 'gone' / 'state.db'}")
    unreachable = runner.invoke(app, ["validate", "--json", "--config", str(away)])
    assert unreachable.exit_code == 3, unreachable.output
    problems = json.loads(unreachable.stdout)["problems"]
    assert [(p["where"], p["unreachable"]) for p in problems] == [("state_db", True)]
    state = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(state).dispose()
    engine = open_state(state)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0099'"))
    engine.dispose()
    newer = runner.invoke(app, ["validate", "--config", str(world.write([rule()]))])
    assert newer.exit_code == 2 and "newer than this release" in newer.output
