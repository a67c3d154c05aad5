"""Exact timestamp comparison on every dialect and column type, at the boundary."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    text,
)

from retention.config import load_config
from retention.planner import make_plan
from retention.stores.sql import make_engine
from retention.stores.sql.clock import ClockColumn
from retention.timemath import parse_stored

from ...conftest import Database
from ...scenario import Scenario, rule, utc


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


# -- unreadable text is never due ----------------------------------------------------------------

TEXTS = MetaData()
VALUES = Table(
    "clock_texts",
    TEXTS,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("value", String(60)),
)
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EDGE_TEXTS = [
    "2020-13-45",
    "2020-02-31 00:00:00",
    "2021-02-29",
    "2024-02-29",
    "2020-01-01 24:00:00",
    "2020-01-01 23:60:00",
    "2020-01-01 garbage",
    "2020-01-01T10:00:00+24:00",
    "2020-01-01T10:00:00.1234567",
    "2020-01-01T10:00:00.5",
    "2020-01-01T10:00:00+0530",
    "0001-01-01 00:00:00",
    "0000-01-01",
    "yesterday",
    "",
    " 2020-01-01",
    "2020-01-01 10:00:00z",
    "2020-01-01T",
    "2020-01-01  10:00:00",
    "2020-04-31 00:00:00",
    "2020-01-31 00:00:00.123Z",
    "2020-12-31T23:59:59.999999+14:59",
    "2020-01-01 10:00:00-00:00",
    "2020-01-01 24:00:00.000000",
]


@st.composite
def stamp_texts(draw: st.DrawFn) -> str:
    """Timestamps as writers spell them, sometimes with one character changed."""
    moment = draw(st.datetimes(dt.datetime(2015, 1, 1), dt.datetime(2035, 12, 31)))
    value = moment.strftime("%Y-%m-%d")
    if draw(st.booleans()):
        value += draw(st.sampled_from([" ", "T"])) + moment.strftime("%H:%M:%S")
        value += draw(st.sampled_from(["", ".123", ".123456", ".5", ".1234567"]))
        value += draw(st.sampled_from(["", "Z", "+02:00", "-11:30", "+23:59", "+24:00", "+0100"]))
    if draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        value = value[:index] + draw(st.sampled_from("0123456789 -:T.+Zx")) + value[index + 1 :]
    return value


@pytest.fixture(scope="module")
def texts_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('clock-texts') / 'texts.db'}")
    TEXTS.create_all(engine)
    yield engine
    engine.dispose()


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.one_of(stamp_texts(), st.sampled_from(EDGE_TEXTS), st.text(max_size=25))),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
    bound=st.datetimes(dt.datetime(2015, 1, 1), dt.datetime(2040, 1, 1)),
)
def test_sqlite_text_is_due_only_when_python_reads_it(
    texts_engine: Engine, values: list[str], zone: str, bound: dt.datetime
) -> None:
    """A SQLite text clock is known exactly when :func:`parse_stored` reads it, unreadable
    exactly when it is there but does not parse, and (when it starts with an ISO date) at or
    before a bound exactly when the instant it names is. Before, text with a valid-looking
    date prefix far enough in the past ('2020-13-45', '2020-02-31 00:00:00', '2020-01-01
    garbage') was due, and a live run deleted it."""
    clock = ClockColumn(VALUES.c.value, "sqlite_text", ZoneInfo(zone))
    instant = bound.replace(tzinfo=dt.UTC)
    with texts_engine.begin() as connection:
        connection.execute(delete(VALUES))
        if values:
            connection.execute(
                insert(VALUES), [{"id": i, "value": v} for i, v in enumerate(values)]
            )
        query = select(VALUES.c.value, clock.known(), clock.unreadable(), clock.le(instant))
        for value, known, unreadable, due in connection.execute(query.order_by(VALUES.c.id)):
            try:
                parsed = parse_stored(value, ZoneInfo(zone))
            except (ValueError, OverflowError):
                parsed = None
            assert (bool(known), bool(unreadable)) == (parsed is not None, parsed is None), value
            python_due = parsed is not None and parsed <= instant
            if ISO_DATE.match(value):
                assert bool(due) == python_due, value
            else:  # no ISO date first (' 2020-01-01', '20200101'): never due, the safe side
                assert not due, value
