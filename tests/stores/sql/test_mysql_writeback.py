"""One UPDATE per batch on MariaDB: the records and values given, nothing else, exactly as the
per-record UPDATE it replaces would leave them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    delete,
    event,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from retention.stores.sql import mysqlwriteback
from retention.stores.sql.mysqlwriteback import update_from_rows

from ...conftest import Database
from .texts import AWKWARD


def _create(engine: Engine, name: str, *columns: Column[Any], **kw: Any) -> Table:
    """Create the table, then reflect it, as the store sees tables."""
    Table(name, MetaData(), *columns, **kw).create(engine)
    return Table(name, MetaData(), autoload_with=engine)


def _people(engine: Engine, name: str = "people") -> Table:
    return _create(
        engine,
        name,
        Column("id", mysql.INTEGER, primary_key=True, autoincrement=False),
        Column("status", mysql.VARCHAR(10)),
        Column("email", mysql.VARCHAR(120)),
        Column("notes", mysql.TEXT),
        Column("seen_at", mysql.DATETIME(fsp=6)),
        Column("visits", mysql.INTEGER),
    )


def _person(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "status": "due",
        "email": f"user{i}@example.com",
        "notes": f"notes of {i}",
        "seen_at": dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i, microseconds=i),
        "visits": i,
    }


def _snapshot(connection: Connection, table: Table) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    key = [c for c in table.c if c.primary_key]
    return {
        tuple(row[: len(key)]): tuple(row) for row in connection.execute(select(*key, *table.c))
    }


def _apply(
    before: dict[tuple[Any, ...], tuple[Any, ...]],
    table: Table,
    columns: Sequence[Column[Any]],
    keys: Sequence[tuple[Any, ...]],
    values: Sequence[Sequence[Any]],
) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """What `before` should become: the given values on the given keys, all else as it was."""
    width = len([c for c in table.c if c.primary_key])
    positions = [width + list(table.c).index(c) for c in columns]
    after = dict(before)
    for j, k in enumerate(keys):
        row = list(after[k])
        for i, position in enumerate(positions):
            row[position] = values[i][j]
        after[k] = tuple(row)
    return after


def _row_by_row(
    connection: Connection,
    table: Table,
    key: Sequence[Column[Any]],
    columns: Sequence[Column[Any]],
    condition: ColumnElement[bool],
    keys: Sequence[tuple[Any, ...]],
    values: Sequence[Sequence[Any]],
) -> None:
    """The per-record UPDATE the executor falls back to."""
    if not keys:
        return
    match = and_(*(c == bindparam(f"k_{i}") for i, c in enumerate(key)))
    statement = (
        update(table)
        .where(match, condition)
        .values({c.name: bindparam(f"v_{i}") for i, c in enumerate(columns)})
    )
    rows = [
        {
            **{f"k_{i}": part for i, part in enumerate(k)},
            **{f"v_{i}": v[j] for i, v in enumerate(values)},
        }
        for j, k in enumerate(keys)
    ]
    connection.execute(statement, rows)


@pytest.mark.mariadb
def test_exactly_the_given_records_get_exactly_the_given_values(mariadb_db: Database) -> None:
    """Each listed record gets its own values in every listed column; other records and other
    columns keep theirs."""
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [_person(i) for i in range(1, 21)])
        before = _snapshot(connection, people)
    keys = [(3,), (7,), (8,), (20,)]
    columns = [people.c.email, people.c.notes, people.c.seen_at, people.c.visits]
    values: list[list[Any]] = [
        ["a@x", "b@x", "c@x", "d@x"],
        ["n3", "n7", "n8", "n20"],
        [dt.datetime(2000, 1, 1), None, dt.datetime(2030, 6, 1, 12, 0, 0, 1), None],
        [0, -5, 2_147_483_647, None],
    ]
    with engine.begin() as connection:
        done = update_from_rows(connection, people, (people.c.id,), columns, true(), keys, values)
        assert done
    with engine.connect() as connection:
        assert _snapshot(connection, people) == _apply(before, people, columns, keys, values)


@pytest.mark.mariadb
def test_records_failing_the_condition_are_untouched(mariadb_db: Database) -> None:
    """A record that stopped being actionable (here: put on hold) between select and write
    keeps its values although it is in the batch."""
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [_person(i) for i in range(1, 11)])
        connection.execute(update(people).where(people.c.id.in_([2, 5])).values(status="held"))
        before = _snapshot(connection, people)
    keys = [(i,) for i in range(1, 11)]
    values = [[f"anon{i}" for i in range(1, 11)]]
    with engine.begin() as connection:
        assert update_from_rows(
            connection,
            people,
            (people.c.id,),
            [people.c.email],
            people.c.status == "due",
            keys,
            values,
        )
    due = [k for k in keys if k not in [(2,), (5,)]]
    expected = _apply(before, people, [people.c.email], due, [[f"anon{k[0]}" for k in due]])
    with engine.connect() as connection:
        assert _snapshot(connection, people) == expected


@pytest.mark.mariadb
def test_composite_keys(mariadb_db: Database) -> None:
    """With a key of several columns a record changes only when every part matches: the same id
    under another tenant, or the same tenant and day with another id, is left alone."""
    engine = mariadb_db.engine
    events = _create(
        engine,
        "events",
        Column("tenant", mysql.VARCHAR(20), primary_key=True),
        Column("day", mysql.DATE, primary_key=True),
        Column("id", mysql.BIGINT(unsigned=True), primary_key=True, autoincrement=False),
        Column("payload", mysql.VARCHAR(50)),
    )
    rows = [
        {"tenant": t, "day": dt.date(2024, 2, d), "id": i, "payload": f"{t}/{d}/{i}"}
        for t in ("acme", "globex")
        for d in (28, 29)
        for i in (1, 2**64 - 1)
    ]
    with engine.begin() as connection:
        connection.execute(insert(events), rows)
        before = _snapshot(connection, events)
    keys = [("acme", dt.date(2024, 2, 29), 2**64 - 1), ("globex", dt.date(2024, 2, 28), 1)]
    key = (events.c.tenant, events.c.day, events.c.id)
    with engine.begin() as connection:
        assert update_from_rows(
            connection, events, key, [events.c.payload], true(), keys, [["one", "two"]]
        )
    with engine.connect() as connection:
        after = _snapshot(connection, events)
    assert after == _apply(before, events, [events.c.payload], keys, [["one", "two"]])


@pytest.mark.mariadb
def test_nulls_both_ways(mariadb_db: Database) -> None:
    """None writes SQL NULL (not the text 'null'), and a NULL column gets a value."""
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [_person(1), {**_person(2), "email": None}])
    columns = [people.c.email, people.c.notes, people.c.seen_at, people.c.visits]
    values: list[list[Any]] = [
        [None, "now set"],
        [None, "null"],
        [None, dt.datetime(2024, 1, 1)],
        [None, 0],
    ]
    with engine.begin() as connection:
        assert update_from_rows(
            connection, people, (people.c.id,), columns, true(), [(1,), (2,)], values
        )
    with engine.connect() as connection:
        rows = connection.execute(select(*columns).order_by(people.c.id)).all()
    assert [tuple(r) for r in rows] == [
        (None, None, None, None),
        ("now set", "null", dt.datetime(2024, 1, 1), 0),
    ]


@pytest.mark.mariadb
def test_awkward_text_round_trips(mariadb_db: Database) -> None:
    """Quotes, backslashes, newlines, NUL, astral characters, padding and text that looks like
    JSON or SQL are written byte for byte, in VARCHAR and TEXT alike."""
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [_person(i) for i in range(len(AWKWARD))])
    keys = [(i,) for i in range(len(AWKWARD))]
    columns = [people.c.email, people.c.notes]
    values = [AWKWARD, list(reversed(AWKWARD))]
    with engine.begin() as connection:
        assert update_from_rows(connection, people, (people.c.id,), columns, true(), keys, values)
    with engine.connect() as connection:
        rows = connection.execute(select(*columns).order_by(people.c.id)).all()
    assert [tuple(r) for r in rows] == list(zip(*values, strict=True))


@pytest.mark.mariadb
def test_text_keys_compare_with_the_columns_own_collation(mariadb_db: Database) -> None:
    """A text key whose collation is not the connection's (a table default, a column's own)
    matches as ``WHERE key = 'literal'`` would: case-insensitively under a _ci collation,
    exactly under _bin."""
    engine = mariadb_db.engine
    accounts = _create(
        engine,
        "accounts",
        Column("handle", mysql.VARCHAR(30), primary_key=True),
        Column("code", mysql.CHAR(4, charset="latin1", collation="latin1_bin"), primary_key=True),
        Column("name", mysql.VARCHAR(30)),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_unicode_ci",
    )
    with engine.begin() as connection:
        connection.execute(
            insert(accounts),
            [
                {"handle": "Zoë", "code": "ab", "name": "a"},
                {"handle": "Zoë", "code": "AB", "name": "b"},
            ],
        )
    key = (accounts.c.handle, accounts.c.code)
    with engine.begin() as connection:
        assert update_from_rows(
            connection, accounts, key, [accounts.c.name], true(), [("ZOË", "AB")], [["x"]]
        )
    with engine.connect() as connection:
        rows = connection.execute(select(accounts.c.code, accounts.c.name)).all()
    assert sorted(tuple(r) for r in rows) == [("AB", "x"), ("ab", "a")]


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("key_type", "values"),
    [
        (mysql.TINYINT, [-128, 0, 127]),
        (mysql.BIGINT(unsigned=True), [0, 2**63, 2**64 - 1]),
        (mysql.VARCHAR(12), ["a", "a b", "ümlaut"]),
        (mysql.CHAR(3), ["a", "ab", "abc"]),
        (mysql.DECIMAL(12, 4), [Decimal("-1.5000"), Decimal("0.0001"), Decimal("99999999.9999")]),
        (mysql.DATE, [dt.date(1000, 1, 1), dt.date(2024, 2, 29), dt.date(9999, 12, 31)]),
        (
            mysql.DATETIME(fsp=6),
            [
                dt.datetime(2024, 3, 31, 2, 30),
                dt.datetime(2024, 3, 31, 2, 30, 0, 1),
                dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
            ],
        ),
        (mysql.DATETIME, [dt.datetime(1970, 1, 1), dt.datetime(2038, 1, 19, 3, 14, 8)]),
    ],
    ids=lambda v: getattr(v, "__visit_name__", "values"),
)
def test_each_key_type_matches_its_records(
    mariadb_db: Database, key_type: Any, values: list[Any]
) -> None:
    """Every key type said in JSON_TABLE finds its own record and no neighbour."""
    engine = mariadb_db.engine
    things = _create(
        engine,
        "things",
        Column("k", key_type, primary_key=True, autoincrement=False),
        Column("v", mysql.VARCHAR(10)),
    )
    with engine.begin() as connection:
        connection.execute(insert(things), [{"k": k, "v": "old"} for k in values])
    with engine.begin() as connection:
        assert update_from_rows(
            connection, things, (things.c.k,), [things.c.v], true(), [(values[-1],)], [["new"]]
        )
    with engine.connect() as connection:
        rows = dict(tuple(r) for r in connection.execute(select(things.c.k, things.c.v)).all())
    assert rows == {k: "new" if k == values[-1] else "old" for k in values}


@pytest.mark.mariadb
def test_a_key_declared_narrower_than_its_column_still_matches_exactly(
    mariadb_db: Database,
) -> None:
    """Keys are compared at full width whatever the Table says: a BIGINT UNSIGNED key declared
    as a plain Integer, and a DATETIME(6) key declared as DateTime, never match a neighbour
    (a key clamped to INT, or cut to whole seconds, would)."""
    engine = mariadb_db.engine
    _create(
        engine,
        "wide",
        Column("k", mysql.BIGINT(unsigned=True), primary_key=True, autoincrement=False),
        Column("t", mysql.DATETIME(fsp=6), primary_key=True),
        Column("v", mysql.VARCHAR(10)),
    )
    wide = Table(
        "wide",
        MetaData(),
        Column("k", Integer, primary_key=True),
        Column("t", DateTime, primary_key=True),
        Column("v", String(10)),
    )
    second = dt.datetime(2024, 1, 1)
    rows = [(2**31 - 1, second), (2**64 - 1, second), (2**64 - 1, second.replace(microsecond=5))]
    with engine.begin() as connection:
        connection.execute(insert(wide), [{"k": k, "t": t, "v": "old"} for k, t in rows])
        assert update_from_rows(
            connection, wide, (wide.c.k, wide.c.t), [wide.c.v], true(), [rows[2]], [["new"]]
        )
        after = {(k, t): v for k, t, v in connection.execute(select(wide))}
    assert after == {rows[0]: "old", rows[1]: "old", rows[2]: "new"}


@pytest.mark.mariadb
def test_datetime_values_read_as_their_literal_would(mariadb_db: Database) -> None:
    """A datetime written into a text column reads as the per-record UPDATE would write it (no
    '.000000' when there are no microseconds); into DATETIME(0) its microseconds are dropped
    the same way."""
    engine = mariadb_db.engine
    stamps = _create(
        engine,
        "stamps",
        Column("id", mysql.INTEGER, primary_key=True, autoincrement=False),
        Column("as_text", mysql.VARCHAR(40)),
        Column("whole", mysql.DATETIME),
    )
    reference = _create(
        engine,
        "stamps_reference",
        *(Column(c.name, c.type, primary_key=c.primary_key) for c in stamps.c),
    )
    moments = [dt.datetime(2024, 1, 1, 0, 0), dt.datetime(2024, 1, 1, 23, 59, 59, 999999)]
    values = [moments, moments]
    for target, write in ((stamps, update_from_rows), (reference, _row_by_row)):
        with engine.begin() as connection:
            connection.execute(insert(target), [{"id": 1}, {"id": 2}])
            columns = [target.c.as_text, target.c.whole]
            write(connection, target, (target.c.id,), columns, true(), [(1,), (2,)], values)
    with engine.connect() as connection:
        assert _snapshot(connection, stamps) == _snapshot(connection, reference)
        texts = connection.execute(select(stamps.c.as_text).order_by(stamps.c.id)).scalars()
        assert list(texts) == ["2024-01-01 00:00:00", "2024-01-01 23:59:59.999999"]


@pytest.mark.mariadb
def test_a_value_that_does_not_fit_is_refused_not_shortened(mariadb_db: Database) -> None:
    """In strict mode a value too long for its column, or out of its range, fails the whole
    statement as the per-record UPDATE would; nothing is written truncated or clamped."""
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [_person(1), _person(2)])
        before = _snapshot(connection, people)
    for column, value, error in (
        (people.c.status, "x" * 11, DataError),
        (people.c.visits, 2**31, DataError),
        (people.c.seen_at, "not a date", OperationalError),
    ):
        with pytest.raises(error), engine.begin() as connection:
            keys = [(1,), (2,)]
            update_from_rows(
                connection, people, (people.c.id,), [column], true(), keys, [[None, value]]
            )
    with engine.connect() as connection:
        assert _snapshot(connection, people) == before


@pytest.mark.mariadb
def test_a_batch_of_5000_records(mariadb_db: Database) -> None:
    """5,000 records of a 6,000-record table, every other one held: exactly the 2,500 due ones
    get their values."""
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        rows = [{**_person(i), "status": "due" if i % 2 else "held"} for i in range(1, 6001)]
        connection.execute(insert(people), rows)
        before = _snapshot(connection, people)
    keys = [(i,) for i in range(501, 5501)]
    values: list[list[Any]] = [[f"h:{i:064x}" for i in range(501, 5501)], [None] * 5000]
    columns = [people.c.email, people.c.notes]
    with engine.begin() as connection:
        assert update_from_rows(
            connection, people, (people.c.id,), columns, people.c.status == "due", keys, values
        )
    due = [j for j, k in enumerate(keys) if k[0] % 2]
    expected = _apply(
        before, people, columns, [keys[j] for j in due], [[v[j] for j in due] for v in values]
    )
    with engine.connect() as connection:
        assert _snapshot(connection, people) == expected


@pytest.mark.mariadb
def test_a_batch_over_one_document_is_split(
    mariadb_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose JSON exceeds the per-statement limit is written by several statements,
    with the same result."""
    monkeypatch.setattr(mysqlwriteback, "MAX_DOCUMENT", 200)
    engine = mariadb_db.engine
    people = _people(engine)
    with engine.begin() as connection:
        connection.execute(insert(people), [_person(i) for i in range(1, 101)])
        before = _snapshot(connection, people)
    keys = [(i,) for i in range(1, 101)]
    values = [[f"{i}-{'x' * (i % 17)}" for i in range(1, 101)]]
    statements: list[str] = []

    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", _record)
    try:
        with engine.begin() as connection:
            assert update_from_rows(
                connection, people, (people.c.id,), [people.c.notes], true(), keys, values
            )
    finally:
        event.remove(engine, "before_cursor_execute", _record)
    assert sum(s.startswith("UPDATE") for s in statements) >= 5
    with engine.connect() as connection:
        assert _snapshot(connection, people) == _apply(
            before, people, [people.c.notes], keys, values
        )


@pytest.mark.mariadb
@pytest.mark.parametrize(
    ("column", "value"),
    [
        (Column("v", mysql.VARCHAR(10)), b"bytes"),
        (Column("v", mysql.DOUBLE), 1.5),
        (Column("v", mysql.DATETIME), dt.datetime(2024, 1, 1, tzinfo=dt.UTC)),
        (Column("v", mysql.BLOB), None),
        (Column("v", mysql.ENUM("a", "b")), "a"),
        (Column("v", mysql.BIT(8)), 1),
    ],
    ids=["bytes", "double", "aware-datetime", "blob", "enum", "bit"],
)
def test_what_cannot_be_said_exactly_is_left_to_the_caller(
    mariadb_db: Database, column: Column[Any], value: Any
) -> None:
    """A value or target type without an exact text form returns False and writes nothing, so
    the caller's per-record UPDATE handles it."""
    engine = mariadb_db.engine
    things = _create(
        engine, "things", Column("id", mysql.INTEGER, primary_key=True, autoincrement=False), column
    )
    with engine.begin() as connection:
        connection.execute(insert(things), [{"id": 1}])
        before = _snapshot(connection, things)
        assert not update_from_rows(
            connection, things, (things.c.id,), [things.c.v], true(), [(1,)], [[value]]
        )
        assert _snapshot(connection, things) == before


@pytest.mark.mariadb
def test_timestamp_and_text_keys_are_left_to_the_caller(mariadb_db: Database) -> None:
    """TIMESTAMP and TEXT key columns return False (no exact JSON_TABLE form)."""
    engine = mariadb_db.engine
    for name, key_type in (("ts", mysql.TIMESTAMP(fsp=6)), ("tx", mysql.VARCHAR(10))):
        things = _create(
            engine,
            name,
            Column("k", key_type, primary_key=True),
            Column("body", mysql.TEXT),
            Column("v", mysql.VARCHAR(10)),
        )
        key = (things.c.k,) if name == "ts" else (things.c.body,)
        with engine.begin() as connection:
            assert not update_from_rows(
                connection, things, key, [things.c.v], true(), [("x",)], [["y"]]
            )


def test_other_databases_are_left_to_the_caller(sqlite_db: Database) -> None:
    """Without MariaDB's JSON_TABLE the answer is False and nothing runs; an empty batch is done
    anywhere."""
    things = _create(
        sqlite_db.engine,
        "things",
        Column("id", mysql.INTEGER, primary_key=True, autoincrement=False),
        Column("v", mysql.VARCHAR(10)),
    )
    with sqlite_db.engine.begin() as connection:
        args = (connection, things, (things.c.id,), [things.c.v], true())
        assert not update_from_rows(*args, [(1,)], [["x"]])
        assert update_from_rows(*args, [], [[]])
        with pytest.raises(ValueError, match="one value per key"):
            update_from_rows(*args, [(1,)], [["x", "y"]])


TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(AWKWARD)
MOMENTS = st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999))


@pytest.mark.mariadb
def test_same_result_as_row_by_row(mariadb_db: Database) -> None:
    """For any table, any subset of its records, any values and any condition, the table ends
    as the per-record UPDATE leaves it."""
    engine = mariadb_db.engine
    tables = [_people(engine, "people_a"), _people(engine, "people_b")]

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        size=st.integers(1, 12),
        chosen=st.lists(st.integers(1, 12), unique=True, max_size=12),
        threshold=st.integers(0, 13),
        emails=st.lists(st.none() | TEXT, min_size=12, max_size=12),
        notes=st.lists(st.none() | TEXT, min_size=12, max_size=12),
        moments=st.lists(st.none() | MOMENTS, min_size=12, max_size=12),
        visits=st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), min_size=12, max_size=12),
    )
    def check(
        size: int,
        chosen: list[int],
        threshold: int,
        emails: list[str | None],
        notes: list[str | None],
        moments: list[dt.datetime | None],
        visits: list[int | None],
    ) -> None:
        keys = [(k,) for k in chosen if k <= size]
        n = len(keys)
        values: list[list[Any]] = [emails[:n], notes[:n], moments[:n], visits[:n]]
        for target, write in zip(tables, (update_from_rows, _row_by_row), strict=True):
            columns = [target.c.email, target.c.notes, target.c.seen_at, target.c.visits]
            with engine.begin() as connection:
                connection.execute(delete(target))
                connection.execute(insert(target), [_person(i) for i in range(1, size + 1)])
                condition = target.c.visits < threshold
                write(connection, target, (target.c.id,), columns, condition, keys, values)
        with engine.connect() as connection:
            assert _snapshot(connection, tables[0]) == _snapshot(connection, tables[1])

    check()
