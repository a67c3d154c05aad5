"""One UPDATE per batch on PostgreSQL: exactly the records and values given, each only where the
condition still holds, as the per-record UPDATE it stands for would leave them."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    CHAR,
    Column,
    Date,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    delete,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from retention.stores.sql.pgwriteback import update_from_json

from ...conftest import Database
from .texts import AWKWARD_FOR_POSTGRES

pytestmark = pytest.mark.postgres


def _create(engine: Engine, name: str, *columns: Column[Any]) -> Table:
    """Create the table, then reflect it, as the store sees tables."""
    Table(name, MetaData(), *columns).create(engine)
    return Table(name, MetaData(), autoload_with=engine)


def _people(
    engine: Engine, rows: list[dict[str, Any]] | None = None, name: str = "people"
) -> Table:
    """The people table, holding `rows`."""
    people = _create(
        engine,
        name,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("status", String(10)),
        Column("email", String(40)),
        Column("notes", Text),
    )
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(people), rows)
    return people


def _rows(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(select(table).order_by(*table.primary_key))]


def _write(
    engine: Engine,
    table: Table,
    columns: Sequence[str],
    keys: Sequence[tuple[Any, ...]],
    values: Sequence[Sequence[Any]],
    condition: ColumnElement[bool] | None = None,
) -> list[tuple[Any, ...]] | None:
    key = tuple(table.primary_key.columns)
    with engine.begin() as connection:
        return update_from_json(
            connection,
            table,
            key,
            [table.c[name] for name in columns],
            true() if condition is None else condition,
            list(keys),
            values,
        )


def test_exactly_the_given_rows_get_exactly_the_given_values(postgres_db: Database) -> None:
    engine = postgres_db.engine
    people = _people(
        engine,
        [{"id": i, "status": "closed", "email": f"u{i}@x.io", "notes": "n"} for i in range(20)],
    )
    keys = [(i,) for i in range(0, 20, 2)]
    emails = [f"h:{i:x}" for i in range(0, 20, 2)]
    notes = [AWKWARD_FOR_POSTGRES[n % len(AWKWARD_FOR_POSTGRES)] for n in range(len(keys))]
    notes[3] = None
    changed = _write(engine, people, ["email", "notes"], keys, [emails, notes])
    assert changed == keys
    expected = [
        (i, "closed", f"h:{i:x}", notes[i // 2]) if i % 2 == 0 else (i, "closed", f"u{i}@x.io", "n")
        for i in range(20)
    ]
    assert _rows(engine, people) == expected


def test_rows_failing_the_condition_are_untouched(postgres_db: Database) -> None:
    engine = postgres_db.engine
    people = _people(
        engine,
        [
            {"id": i, "status": "held" if i % 3 == 0 else "closed", "email": "e", "notes": "n"}
            for i in range(9)
        ],
    )
    keys = [(i,) for i in range(9)]
    changed = _write(
        engine, people, ["email"], keys, [["x"] * 9], condition=people.c.status != "held"
    )
    assert changed == [(i,) for i in range(9) if i % 3]
    assert [r[2] for r in _rows(engine, people)] == ["e" if i % 3 == 0 else "x" for i in range(9)]


def test_composite_and_typed_keys(postgres_db: Database) -> None:
    engine = postgres_db.engine
    table = _create(
        engine,
        "visits",
        Column("account", Uuid, primary_key=True),
        Column("day", Date, primary_key=True),
        Column("at", DateTime(timezone=True), primary_key=True),
        Column("amount", Numeric(12, 2), primary_key=True),
        Column("ip", String(45)),
    )
    account = uuid.UUID("12345678-1234-5678-1234-567812345678")
    at = dt.datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=dt.UTC)
    rows = [
        {
            "account": account,
            "day": dt.date(2024, 2, d),
            "at": at,
            "amount": Decimal(f"{d}.50"),
            "ip": f"10.0.0.{d}",
        }
        for d in range(1, 6)
    ]
    with engine.begin() as connection:
        connection.execute(insert(table), rows)
    keys = [(account, dt.date(2024, 2, d), at, Decimal(f"{d}.50")) for d in (2, 4)]
    changed = _write(engine, table, ["ip"], keys, [["10.0.0.0", None]])
    assert changed == keys
    assert [r[-1] for r in _rows(engine, table)] == [
        "10.0.0.1",
        "10.0.0.0",
        "10.0.0.3",
        None,
        "10.0.0.5",
    ]


def test_padded_char_keys_match(postgres_db: Database) -> None:
    """CHAR(n) keys come back padded; they must still find their rows."""
    engine = postgres_db.engine
    table = _create(
        engine,
        "codes",
        Column("code", CHAR(6), primary_key=True),
        Column("owner", String(20)),
    )
    with engine.begin() as connection:
        connection.execute(insert(table), [{"code": c, "owner": "o"} for c in ("ab", "abc", "x y")])
    with engine.connect() as connection:
        keys = [tuple(r) for r in connection.execute(select(table.c.code).order_by(table.c.code))]
    changed = _write(engine, table, ["owner"], keys[:2], [["h1", "h2"]])
    assert changed == keys[:2]
    assert [r[1] for r in _rows(engine, table)] == ["h1", "h2", "o"]


def test_a_value_too_long_is_refused_not_cut(postgres_db: Database) -> None:
    engine = postgres_db.engine
    people = _people(engine, [{"id": 1, "status": "s"}])
    with pytest.raises(DBAPIError, match="too long"):
        _write(engine, people, ["status"], [(1,)], [["x" * 11]])
    assert _rows(engine, people) == [(1, "s", None, None)]


def test_what_json_cannot_carry_is_left_to_the_caller(postgres_db: Database) -> None:
    engine = postgres_db.engine
    table = _create(
        engine,
        "blobs",
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("data", LargeBinary),
        Column("score", String(20)),
    )
    with engine.begin() as connection:
        connection.execute(insert(table), [{"id": 1, "data": b"a", "score": "1"}])
    assert _write(engine, table, ["data"], [(1,)], [[b"\x00b"]]) is None
    assert _write(engine, table, ["score"], [(1,)], [[float("nan")]]) is None
    assert _rows(engine, table) == [(1, b"a", "1")]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.lists(
        st.tuples(
            st.booleans(),  # in the batch
            st.booleans(),  # held
            st.none()
            | st.text(
                st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
            ),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_same_result_as_one_update_per_record(postgres_db: Database, data: list[Any]) -> None:
    """Property: on a twin table, a per-record UPDATE of the same keys and values under the same
    condition leaves exactly the same rows."""
    engine = postgres_db.engine
    tables = []
    for name in ("batch", "twin"):
        table = (
            Table(name, MetaData(), autoload_with=engine)
            if _exists(engine, name)
            else _people(engine, name=name)
        )
        with engine.begin() as connection:
            connection.execute(delete(table))
            connection.execute(
                insert(table),
                [
                    {"id": i, "status": "held" if held else "closed", "notes": "old"}
                    for i, (_in, held, _v) in enumerate(data)
                ],
            )
        tables.append(table)
    batch, twin = tables
    chosen = [(i, value) for i, (selected, _held, value) in enumerate(data) if selected]
    keys = [(i,) for i, _ in chosen]
    _write(engine, batch, ["notes"], keys, [[v for _, v in chosen]], batch.c.status != "held")
    with engine.begin() as connection:
        for i, value in chosen:
            connection.execute(
                update(twin)
                .where(and_(twin.c.id == bindparam("k"), twin.c.status != "held"))
                .values(notes=bindparam("v")),
                {"k": i, "v": value},
            )
    assert _rows(engine, batch) == _rows(engine, twin)


def _exists(engine: Engine, name: str) -> bool:
    from sqlalchemy import inspect

    return inspect(engine).has_table(name)
