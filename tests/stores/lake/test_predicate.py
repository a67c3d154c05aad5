"""The lake delete predicate on its own: given every key of a table, the table itself deletes only
the rows that are due, unheld and not kept, whatever the judgement before the batch said."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retention.config import Config
from retention.stores.lake.predicate import NEVER, delete_predicate, member
from retention.testing import examples

from ...conftest import Database
from ...scenario import TICKETS_DATASET, Scenario, rule, utc

NOW = utc("2026-06-01 00:00:00")


def config_of(db: Database, tmp_path: Path, holds: dict[str, Any], **fields: Any) -> Config:
    rules = [rule("purge", applies_to={"dataset": "records"}, retain="P30D")]
    if fields.get("keep"):
        rules.append(rule("min", applies_to={"dataset": "records"}, retain="P60D", action="keep"))
    return Scenario(db, tmp_path).config(
        rules,
        holds=holds,
        datasets={
            "records": {**TICKETS_DATASET, "store": "lake", "table": "records", "personal": {}}
        },
        stores={
            "app": {"kind": "sql", "url": db.url},
            "lake": {"kind": "delta", "root": str(tmp_path / "lake")},
        },
    )


def table_of(path: Path, rows: list[tuple[int, int, int]], naive: bool) -> DeltaTable:
    """Rows (id, account, age in days) with `created_at` naive (UTC wall time) or UTC."""
    stamp = pa.timestamp("us") if naive else pa.timestamp("us", tz="UTC")
    created = [NOW - dt.timedelta(days=age) for _, _, age in rows]
    write_deltalake(
        str(path),
        pa.table(
            {
                "id": pa.array([r[0] for r in rows], pa.int64()),
                "account_id": pa.array([r[1] for r in rows], pa.int64()),
                "created_at": pa.array(
                    [c.replace(tzinfo=None) if naive else c for c in created], stamp
                ),
            }
        ),
        mode="overwrite",
    )
    return DeltaTable(str(path))


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    ages=st.lists(st.integers(0, 120), min_size=1, max_size=20),
    held=st.sets(st.integers(1, 4), max_size=3),
    keep=st.booleans(),
    naive=st.booleans(),
)
def test_the_predicate_deletes_only_due_unheld_unkept_rows(
    sqlite_db: Database,
    tmp_path_factory: Any,
    ages: list[int],
    held: set[int],
    keep: bool,
    naive: bool,
) -> None:
    """Asked to delete every key, the predicate removes exactly the rows past 30 days (past 60
    with the keep rule), of no held account, in a naive or a zoned timestamp column."""
    tmp_path = tmp_path_factory.mktemp("lake")
    holds = {"holds": [{"id": "h", "subjects": {"account": [str(a) for a in sorted(held)]}}]}
    config = config_of(sqlite_db, tmp_path, holds if held else {"holds": []}, keep=keep)
    rows = [(i, 1 + i % 4, age) for i, age in enumerate(ages)]
    table = table_of(tmp_path / "lake" / "records", rows, naive)
    dataset = config.datasets["records"]
    (purge,) = [r for r in dataset.rules if r.id == "purge"]
    schema = table.to_pyarrow_dataset().schema
    keys = [str(r[0]) for r in rows]
    predicate = delete_predicate(keys, purge, dataset, NOW, config.holds_as_of(NOW), schema)
    table.delete(predicate)
    left = set(DeltaTable(str(tmp_path / "lake" / "records")).to_pyarrow_table()["id"].to_pylist())
    floor = 60 if keep else 30
    expected = {i for i, account, age in rows if age < floor or account in held}
    assert left == expected


def test_a_freeze_or_an_unscoped_hold_deletes_nothing(sqlite_db: Database, tmp_path: Path) -> None:
    """Under `freeze`, or a hold with no subject scope, the predicate matches no row."""
    for holds in ({"freeze": True, "holds": []}, {"holds": [{"id": "all"}]}):
        config = config_of(sqlite_db, tmp_path, holds)
        table = table_of(tmp_path / "lake" / "records", [(1, 1, 100)], naive=False)
        dataset = config.datasets["records"]
        schema = table.to_pyarrow_dataset().schema
        predicate = delete_predicate(
            ["1"], dataset.rules[0], dataset, NOW, config.holds_as_of(NOW), schema
        )
        assert NEVER in predicate


def test_ids_that_an_integer_column_cannot_hold_are_left_out() -> None:
    """A hold id such as ``abc`` never matches an integer column, and quotes in text are
    escaped: the predicate names only values the column can hold."""
    assert member("account_id", ["abc", "5"], pa.int64()) == '"account_id" IN (5)'
    assert member("account_id", ["abc"], pa.int64()) is None
    assert member('na"me', ["o'brien"], pa.string()) == "\"na\"\"me\" IN ('o''brien')"
