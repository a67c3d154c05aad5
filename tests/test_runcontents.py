"""`retention audit rules RUN`: the rule packs a run applied, byte for byte, after the files on
disk changed; with SQLite, PostgreSQL and MariaDB state DBs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from retention.cli import app
from retention.config import load_config
from retention.executor import Executor
from retention.statedb import open_state
from retention.statetables import contents
from retention.stores.sql import make_engine

from .conftest import Database
from .scenario import Scenario, at, rule, utc


@pytest.fixture
def db(state_db: Database) -> Database:
    """`db` here is a state DB: SQLite, PostgreSQL and MariaDB (DuckDB is only a store)."""
    return state_db


NOW = utc("2026-06-01 00:00:00")
runner = CliRunner()


def test_audit_rules_prints_what_the_run_applied(db: Database, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    app_url = f"sqlite:///{tmp_path / 'data' / 'app.db'}"  # the state DB is `db`
    world = Scenario(Database(app_url, "sqlite", make_engine(app_url)), tmp_path)
    world.tickets({"id": 1, "created_at": at("2020-01-01")})
    holds = {"holds": [{"id": "case-1", "subjects": {"account": [7]}}]}
    path = world.write([rule("first", retain="P1Y")], holds=holds, state_db=db.url)
    pack = tmp_path / "rules" / "pack.yaml"
    applied = pack.read_bytes() + "# a comment, kept as written: é\n".encode()
    pack.write_bytes(applied)
    holds_text = (tmp_path / "holds.yaml").read_text()
    first = Executor(load_config(path), now=NOW, live=True).run()
    # the files change afterwards, and a second run applies the new ones
    world.write([rule("second", retain="P2Y")], state_db=db.url)
    second = Executor(load_config(path), now=NOW, live=False).run()

    result = runner.invoke(app, ["audit", "rules", first.run_id, "-c", str(path)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == applied
    result = runner.invoke(app, ["audit", "rules", second.run_id, "-c", str(path)])
    assert result.stdout_bytes == pack.read_bytes() != applied

    result = runner.invoke(
        app, ["audit", "rules", first.run_id, "-c", str(path), "--kind", "all", "--json"]
    )
    items = json.loads(result.stdout)
    assert [i["kind"] for i in items] == ["rules", "holds", "settings"]
    assert items[1]["text"] == holds_text
    assert "test-key-not-secret" not in result.stdout  # secrets are never stored

    result = runner.invoke(app, ["audit", "rules", "no-such-run", "-c", str(path)])
    assert result.exit_code == 1

    state = open_state(db.url)
    try:
        with state.begin() as connection:
            connection.execute(update(contents).values(body="rules: []\n"))
    finally:
        state.dispose()
    result = runner.invoke(app, ["audit", "rules", first.run_id, "-c", str(path)])
    assert result.exit_code == 1 and "does not match its digest" in result.stderr
