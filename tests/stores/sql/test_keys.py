"""Keys fetched in bulk read the same as SQLAlchemy reads them, whatever the key's type.

The executor takes the driver's own ``fetchall`` when no key column needs converting; these
pin that a key of any common type comes back as the same Python value, in key order, on each
database, and that intents encode them as JSON the recovery can read back.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Uuid,
    insert,
    select,
)

from retention.settings import SqlStoreConfig
from retention.stores.sql.keys import fetch_keys, fetch_rows, keys_json
from retention.stores.sql.schema import Schema

from ...conftest import Database

KEY_TYPES: list[tuple[str, Any, list[Any]]] = [
    ("integer", Integer, [3, 1, 2**31 - 1]),
    ("text", String(20), ["b", "a", "é/ü"]),
    ("decimal", Numeric(12, 2), [Decimal("2.50"), Decimal("1.25"), Decimal("-7.00")]),
    ("date", Date, [dt.date(2024, 2, 29), dt.date(2023, 12, 31), dt.date(2024, 1, 1)]),
    (
        "datetime",
        DateTime,
        [dt.datetime(2024, 2, 29, 23, 59, 59), dt.datetime(2024, 1, 1), dt.datetime(2025, 6, 1)],
    ),
    ("uuid", Uuid, [uuid.UUID(int=3), uuid.UUID(int=1), uuid.UUID(int=2)]),
]


@pytest.mark.parametrize(("name", "type_", "values"), KEY_TYPES, ids=[k[0] for k in KEY_TYPES])
def test_fetched_keys_read_as_sqlalchemy_reads_them(
    db: Database, name: str, type_: Any, values: list[Any]
) -> None:
    """Keys of each type come back from fetch_keys/fetch_rows as SQLAlchemy reads them."""
    table = Table(
        f"keys_{name}",
        MetaData(),
        Column("id", type_, primary_key=True, autoincrement=False),
        Column("n", Integer),
    )
    table.create(db.engine)
    store = Schema("app", SqlStoreConfig(kind="sql", url=SecretStr(db.url)))
    reflected = store.table(table.name)  # as the store reflects it (DuckDB: from its catalog)
    with db.engine.begin() as connection:
        connection.execute(insert(table), [{"id": v, "n": i} for i, v in enumerate(values)])
    key = (reflected.c.id,)
    with db.engine.connect() as connection:
        expected = sorted(tuple(r) for r in connection.execute(select(*key)))
        assert fetch_keys(connection.execute(select(*key)), key) == expected
        rows = fetch_rows(
            connection.execute(select(reflected.c.id, reflected.c.n)), list(reflected.c)
        )
        assert sorted(rows) == sorted(tuple(r) for r in connection.execute(select(reflected)))
    decoded = [tuple(k) for k in json.loads(keys_json(expected))]
    assert [tuple(str(p) for p in k) for k in decoded] == [
        tuple(str(p) for p in k) for k in expected
    ]
    store.dispose()
