"""Hold ids against SQL subject columns: held whatever way either side spells the id, pushed down.

A text subject column may hold ``'5'``, ``'0005'``, ``' 5'`` or ``'+5'`` for account 5, and a
holds file may say ``5``, ``"5"`` or ``"0005"``: every one of them is the same id, on SQLite,
PostgreSQL and MariaDB, for plan counts, the live DELETE, `retention holds` and `explain`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select
from typer.testing import CliRunner

from retention.cli import app
from retention.config import Config
from retention.executor import Executor
from retention.explain import explain
from retention.holdsreport import hold_coverage
from retention.ids import canonical_id
from retention.planner import make_plan
from retention.stores.sql.ids import canonical_sql, id_matches

from ...conftest import Database
from ...scenario import TICKETS_DATASET, TS, Scenario, at, rule, utc

NOW = utc("2026-06-01 00:00:00")
SPELLINGS = {1: "5", 2: "0005", 3: " 5", 4: "+5", 5: "6", 6: "05 ", 7: "abc", 8: None}
HELD_BY_5 = [1, 2, 3, 4, 6]  # every spelling of 5

NOTES_DATASET: dict[str, Any] = {
    "store": "app",
    "table": "notes",
    "key": "id",
    "category": "notes",
    "subject": {"type": "account", "column": "account_ref"},
    "timestamps": {"created": "created_at"},
}


def notes_table(db: Database) -> Table:
    """`notes`: records whose subject column is text, every row due for a 30-day delete."""
    meta = MetaData()
    table = Table(
        "notes",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("account_ref", String(20)),
        Column("created_at", TS),
    )
    meta.create_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {"id": key, "account_ref": ref, "created_at": at("2020-01-01")}
                for key, ref in SPELLINGS.items()
            ],
        )
    return table


def configure(world: Scenario, hold_ids: list[Any]) -> Config:
    return world.config(
        [rule("purge", applies_to={"dataset": "notes"})],
        holds={"holds": [{"id": "case-5", "subjects": {"account": hold_ids}}]},
        datasets={"notes": NOTES_DATASET},
    )


def remaining(db: Database, table: Table) -> list[int]:
    with db.engine.connect() as connection:
        return [row[0] for row in connection.execute(select(table.c.id).order_by(table.c.id))]


@pytest.mark.parametrize("hold_ids", [[5], ["5"], ["0005"], [" 5"], ["+5"]])
def test_a_hold_covers_every_spelling_in_a_text_column(
    db: Database, tmp_path: Path, hold_ids: list[Any]
) -> None:
    """On every dialect, a hold on 5 (or "0005", " 5", "+5") holds the rows '5', '0005', ' 5',
    '+5' and '05 ' of a text subject column, in the plan, in `retention holds` and in `explain`,
    and a live run deletes only the others; before, only the exact text was held."""
    world = Scenario(db, tmp_path)
    table = notes_table(db)
    config = configure(world, hold_ids)
    (row,) = make_plan(config, NOW).rules
    assert (row.due, row.held, row.actionable) == (8, 5, 3)
    (coverage,) = hold_coverage(config, now=NOW).holds
    assert coverage.records == 5
    assert explain(config, "notes", "2", NOW).holds == ("case-5",)
    assert explain(config, "notes", "5", NOW).holds == ()

    result = Executor(config, now=NOW, live=True).run()
    assert result.outcomes[0].acted == 3
    assert remaining(db, table) == HELD_BY_5


def test_a_hold_written_with_zeros_covers_an_integer_column(db: Database, tmp_path: Path) -> None:
    """A hold on "0002" or " 2" is account 2 of an integer subject column (compared as the
    integer, on the column's index); a hold on "abc" can never match an integer column, and
    no longer makes PostgreSQL refuse the whole plan (``integer = 'abc'``)."""
    world = Scenario(db, tmp_path)
    world.accounts({"id": 2}, {"id": 3})
    world.tickets(
        {"id": 1, "account_id": 2, "created_at": at("2020-01-01")},
        {"id": 2, "account_id": 3, "created_at": at("2020-01-01")},
    )
    holds = {
        "holds": [
            {"id": "zeros", "subjects": {"account": ["0002"]}},
            {"id": "space", "subjects": {"account": [" 2"]}},
            {"id": "text", "subjects": {"account": ["abc"]}},
        ]
    }
    config = world.config([rule()], holds=holds, datasets={"tickets": TICKETS_DATASET})
    (row,) = make_plan(config, NOW).rules
    assert (row.due, row.held, row.actionable) == (2, 1, 1)
    coverage = {h.id: h.records for h in hold_coverage(config, now=NOW).holds}
    assert coverage == {"zeros": 1, "space": 1, "text": 0}
    Executor(config, now=NOW, live=True).run()
    assert world.ticket_ids() == [1]


def test_cli_run_execute_keeps_the_zero_padded_row(sqlite_db: Database, tmp_path: Path) -> None:
    """`retention run --execute` with a hold on 5 leaves '0005' and ' 5' alone, and
    `retention holds --json` counts them."""
    world = Scenario(sqlite_db, tmp_path)
    table = notes_table(sqlite_db)
    path = world.write(
        [rule("purge", applies_to={"dataset": "notes"})],
        holds={"holds": [{"id": "case-5", "subjects": {"account": [5]}}]},
        datasets={"notes": NOTES_DATASET},
    )
    runner = CliRunner()
    result = runner.invoke(app, ["holds", "-c", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["holds"][0]["records_covered"] == 5
    result = runner.invoke(
        app, ["run", "-c", str(path), "--execute", "--now", "2026-06-01T00:00:00"]
    )
    assert result.exit_code == 0, result.output
    assert remaining(sqlite_db, table) == HELD_BY_5


VALUES = [
    "5",
    "0005",
    " 5",
    "+5",
    "-5",
    "-0005",
    "-0",
    "+0",
    "000",
    " 0005\t",
    "\n+0005 ",
    "abc",
    " abc ",
    "5a",
    "+-5",
    "+",
    "-",
    "",
    "   ",
    "00012345678901234567890123",  # longer than any integer type: compared as digits
    "5 5",
    "0x5",
    "5.0",
    "\u00a05",  # a no-break space is part of the id
]


def test_sql_canonical_form_is_canonical_id(db: Database) -> None:
    """The SQL canonical form of a text value is exactly :func:`canonical_id` of it, on every
    dialect, and `id_matches` finds exactly the values whose canonical form is the id's."""
    meta = MetaData()
    table = Table(
        "ids",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("value", String(60)),
    )
    meta.create_all(db.engine)
    dialect = db.engine.dialect.name
    with db.engine.begin() as connection:
        connection.execute(insert(table), [{"id": i, "value": v} for i, v in enumerate(VALUES)])
        rows = connection.execute(select(table.c.value, canonical_sql(table.c.value, dialect)))
        assert {value: got for value, got in rows} == {v: canonical_id(v) for v in VALUES}
        for wanted in (5, "5", "0005", "-5", "0", "12345678901234567890123", " abc"):
            query = select(table.c.value).where(id_matches(table.c.value, [wanted], dialect))
            found = sorted(row[0] for row in connection.execute(query))
            assert found == sorted(v for v in VALUES if canonical_id(v) == canonical_id(wanted))
