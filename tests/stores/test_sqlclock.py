"""Exact timestamp comparison on every dialect and column type, at the boundary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, text

from retention.config import load_config
from retention.planner import make_plan

from ..conftest import Database
from ..scenario import Scenario, rule, utc


def _world(db: Database, tmp_path: Path, column_type: object) -> tuple[Scenario, Table]:
    meta = MetaData()
    table = Table(
        "stamps",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("created_at", column_type),  # type: ignore[arg-type]
    )
    meta.create_all(db.engine)
    return Scenario(db, tmp_path), table


DATASET = {
    "stamps": {
        "store": "app",
        "table": "stamps",
        "key": "id",
        "category": "stamps",
        "timestamps": {"created": "created_at"},
    }
}


def due_ids(world: Scenario, now: dt.datetime, **settings: object) -> list[int]:
    config = load_config(
        world.write(
            [rule(applies_to={"dataset": "stamps"}, retain="P1D")], datasets=DATASET, **settings
        )
    )
    plan = make_plan(config, now, samples=100)
    (row,) = plan.rules
    return [int(key) for key in row.samples]


def test_sqlite_text_formats_compare_as_instants(sqlite_db: Database, tmp_path: Path) -> None:
    """SQLite keeps timestamps as text in any format; each is compared as the instant it names."""
    world, table = _world(sqlite_db, tmp_path, String(40))
    values = {
        1: "2026-01-01 10:00:00",  # exactly at the cutoff: due
        2: "2026-01-01T10:00:00",  # same instant, ISO 'T'
        3: "2026-01-01T10:00:00Z",  # same instant, Zulu
        4: "2026-01-01T11:00:00+01:00",  # same instant, offset
        5: "2026-01-01 10:00:00.000001",  # one microsecond later: not due
        6: "2026-01-01T10:00:01+00:00",  # one second later: not due
        7: "2026-01-01T05:00:00-05:00",  # same instant, negative offset
        8: "2026-01-01",  # midnight: due
        9: "not a date",  # unreadable: never due
        10: "2026-01-01T09:59:59.999999",  # just before: due
    }
    with sqlite_db.engine.begin() as connection:
        connection.execute(insert(table), [{"id": k, "created_at": v} for k, v in values.items()])
    assert due_ids(world, utc("2026-01-02 10:00:00")) == [1, 2, 3, 4, 7, 8, 10]


def test_sqlite_naive_text_in_dataset_zone(sqlite_db: Database, tmp_path: Path) -> None:
    """Naive text is wall time in the configured zone; text with an offset is absolute."""
    world, table = _world(sqlite_db, tmp_path, String(40))
    with sqlite_db.engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {"id": 1, "created_at": "2026-07-01 12:00:00"},  # Berlin summer: 10:00 UTC
                {"id": 2, "created_at": "2026-07-01T11:00:00Z"},
            ],
        )
    ids = due_ids(world, utc("2026-07-02 10:30:00"), timezone="Europe/Berlin")
    assert ids == [1]


@pytest.mark.postgres
def test_postgres_timestamptz(postgres_db: Database, tmp_path: Path) -> None:
    """A timestamptz column is compared as absolute instants, whatever the session zone."""
    world, table = _world(postgres_db, tmp_path, DateTime(timezone=True))
    with postgres_db.engine.begin() as connection:
        connection.execute(text("SET TIME ZONE 'America/New_York'"))
        connection.execute(
            insert(table),
            [
                {"id": 1, "created_at": dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)},
                {"id": 2, "created_at": dt.datetime(2026, 1, 1, 10, 0, 0, 1, tzinfo=dt.UTC)},
            ],
        )
    assert due_ids(world, utc("2026-01-02 10:00:00"), timezone="Europe/Berlin") == [1]


@pytest.mark.mariadb
def test_mariadb_timestamp_column_reads_as_utc(mariadb_db: Database, tmp_path: Path) -> None:
    """MariaDB TIMESTAMP columns are read in a UTC session, so they compare as UTC instants."""
    from sqlalchemy.dialects import mysql

    world, table = _world(mariadb_db, tmp_path, mysql.TIMESTAMP(fsp=6))
    with mariadb_db.engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {"id": 1, "created_at": dt.datetime(2026, 1, 1, 10)},
                {"id": 2, "created_at": dt.datetime(2026, 1, 1, 10, 0, 0, 1)},
            ],
        )
    assert due_ids(world, utc("2026-01-02 10:00:00"), timezone="Europe/Berlin") == [1]
